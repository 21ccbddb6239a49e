//! The mirror's durable state (РИС ↔ ФИС) in the records' PostgreSQL database: the part of
//! the mirror's driver that is not networking.
//!
//! It lives in the records' database, next to the records, because the owner's outbox row
//! must be written in the same transaction as the change it records ([`PgMirror::push`]):
//! a row can then never be lost nor sent for a change that was rolled back. The tables are
//! migrations 3 and 4 of the records' schema, so a federal node and a region migrate them
//! like the rest.
//!
//! Each call is one transaction and keeps one step of the core's [`Endpoint`], as the core
//! asks (see `konvert_mirror`'s rules): a row pushed with its change; the batches
//! [`Endpoint::cut`] returns, stored before anything is sent; an [`Event::Applied`] (rows,
//! checkpoint and receipt at once); a [`SendEvent::Acked`] (checkpoint and receipt).
//! [`PgMirror::load`] gives back what [`Endpoint::restore`] takes.
//!
//! A driver's order:
//! 1. A change and its rows: [`PgMirror::push`] (or [`PgMirror::push_many`]) with the
//!    change's statements.
//! 2. [`Endpoint::cut`], then [`PgMirror::store_cut`], and only then
//!    [`Endpoint::poll_transmit`].
//! 3. Bytes in: [`Endpoint::handle`], then every event stored before anything is sent:
//!    an applied batch with [`PgMirror::apply`] (with the bytes, so the receiver keeps the
//!    owner's signature; the batches of several messages in one transaction with
//!    [`PgMirror::apply_many`]), a receipt with [`PgMirror::acked`], a refusal with
//!    [`PgMirror::refused`].
//! 4. At start: [`PgMirror::load`], then [`Endpoint::restore`]. [`PgMirror::status`] gives
//!    the lag per channel and direction.
//!
//! The node in memory moves before the store does (the core applies, then the driver
//! stores). So when a call fails the driver drops the node, with whatever it queued
//! (a receipt for a batch not stored must never go out), and rebuilds it from
//! [`PgMirror::load`]. A node that went on anyway is caught at its next step
//! ([`Error::MirrorOutOfStep`]); the store itself never moves on a step that does not
//! follow the stored state.
//!
//! Outbox rows, cut batches, receipts (sent and received), applied rows and checkpoints are
//! never deleted here: they are the audit trail, kept as long as the records (10 years,
//! `002:6659`).
//!
//! [`Event::Applied`]: konvert_mirror::Event::Applied
//! [`SendEvent::Acked`]: konvert_mirror::SendEvent::Acked

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex};

use konvert_mirror::{
    AppliedBatch, Checkpoint, CutBatch, Digest, Endpoint, Message, Node, OutboxRow, ReceiveState, RecordKind,
    RefusalNotice, SendCheckpoint, SendState, SignedReceipt,
};
use postgres::{IsolationLevel, Statement, Transaction};

use crate::pg_records::{decode, encode, int};
use crate::{Error, OutOfStep, PgRecords, Result};

/// The mirror's state of one node, in its records' PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PgMirror {
    records: Arc<PgRecords>,
    me: Node,
    /// [`PgMirror::apply`]'s statements, prepared once per connection: preparing is a
    /// round trip of its own, and round trips were most of an apply's time.
    prepared: Arc<Mutex<Option<Prepared>>>,
}

/// Statements prepared on connection `generation` ([`PgRecords::generation`]).
#[derive(Debug)]
struct Prepared {
    generation: u64,
    channel: Statement,
    apply: Statement,
}

/// An applied batch checked against the bytes it came in, with its columns ready.
struct Checked<'a> {
    batch: &'a AppliedBatch,
    signed: &'a [u8],
    sender: i16,
    kind: i16,
    first: i64,
    last: u64,
    next: i64,
    batches: i64,
    receipt: Vec<u8>,
}

impl<'a> Checked<'a> {
    /// `batch` if `signed` are the bytes it came in.
    fn new(batch: &'a AppliedBatch, signed: &'a [u8]) -> Result<Self> {
        // The core checked the bytes it was handed: when those are these, they are the
        // batch's, and decoding and digesting them again is half an apply's work.
        let checked = !batch.signed.is_empty() && batch.signed == signed;
        let same = checked
            || match konvert_mirror::decode(signed) {
                Ok(Message::Batch(b)) => {
                    b.body.from == batch.from
                        && b.body.kind == batch.kind
                        && b.body.first_seq == batch.first_seq
                        && b.body.digest()? == batch.digest
                }
                _ => false,
            };
        if !same {
            return Err(Error::MirrorOutOfStep {
                peer: batch.from,
                kind: batch.kind,
                what: OutOfStep::BatchBytes {
                    first_seq: batch.first_seq,
                },
            });
        }
        let count = batch.rows.len() as u64;
        Ok(Checked {
            batch,
            signed,
            sender: node_code(batch.from)?,
            kind: kind_code(batch.kind),
            first: int("mirror batch", batch.first_seq)?,
            last: batch.first_seq + count.saturating_sub(1),
            next: int("mirror checkpoint", batch.checkpoint.next_seq)?,
            batches: int("mirror checkpoint", batch.checkpoint.batches)?,
            receipt: encode("mirror receipt", &batch.receipt)?,
        })
    }
}

/// The channel's row, made if new, and its lock (an update that changes nothing still
/// takes it), in one round trip: two deliveries of one batch apply it once.
const APPLY_CHANNEL: &str = "INSERT INTO mirror_receive AS r (sender, kind, next_seq, last_batch, batches)
     VALUES ($1, $2, 1, $3, 0)
     ON CONFLICT (sender, kind) DO UPDATE SET next_seq = r.next_seq
     RETURNING r.next_seq";

/// Rows, checkpoint and the batch with its receipt in one statement: each round trip is a
/// wait, and on a busy server the waits, not the writes, were most of an apply
/// (`konvert bench mirror`). A row's payload is stored once, in the signed batch
/// (`bytes`), and its number once, in the batch's range: the checkpoint moves past a batch
/// only in the statement that stores it, so a row is applied once (migration 8).
const APPLY_BATCH: &str = "WITH checkpoint AS (
         UPDATE mirror_receive SET next_seq = $3, last_batch = $4, batches = $5
         WHERE sender = $1 AND kind = $2
     )
     INSERT INTO mirror_batches_in (sender, kind, first_seq, last_seq, digest, bytes, receipt)
     VALUES ($1, $2, $9, $10, $6, $7, $8)";

/// The advisory lock key of a database's mirror driver ("konvmirr").
const DRIVER_LOCK: i64 = 0x6b6f_6e76_6d69_7272;

/// How long [`PgMirror::lock_driver`] waits for a holder that is going away (a driver
/// restarted in the same process: its old connection's backend ends a moment later).
const DRIVER_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// This process is the one mirror driver of its database for as long as this lives: a
/// session advisory lock, held on a connection of its own (dropping it ends the session
/// and the lock with it).
pub struct MirrorDriverLock {
    session: Option<postgres::Client>,
}

impl Drop for MirrorDriverLock {
    fn drop(&mut self) {
        // The blocking client must not be dropped inside a runtime (its own would nest).
        if let Some(session) = self.session.take() {
            crate::pg_records::outside_runtime(move || drop(session));
        }
    }
}

impl std::fmt::Debug for MirrorDriverLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MirrorDriverLock")
    }
}

/// Which way a channel's rows go, seen from this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MirrorDirection {
    /// This node owns the kind and sends the rows.
    Outgoing,
    /// The peer owns the kind and this node applies the rows.
    Incoming,
}

impl MirrorDirection {
    /// `outgoing` or `incoming`, for the status table and metrics labels.
    pub fn name(self) -> &'static str {
        match self {
            MirrorDirection::Outgoing => "outgoing",
            MirrorDirection::Incoming => "incoming",
        }
    }
}

/// One channel's figures ([`PgMirror::status`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorChannelStatus {
    /// The peer.
    pub peer: Node,
    /// The kind.
    pub kind: RecordKind,
    /// Which way the rows go.
    pub direction: MirrorDirection,
    /// Outgoing: rows written; incoming: rows applied.
    pub rows: u64,
    /// Outgoing: rows the peer receipted; incoming: rows applied.
    pub through: u64,
    /// Outgoing: rows written and not receipted. Incoming: `None`, only the owner knows.
    pub lag: Option<u64>,
    /// When the last receipt came (outgoing) or the last batch was applied (incoming),
    /// in Unix milliseconds by the database's clock; `None` before the first.
    pub last_exchange_unix_ms: Option<i64>,
    /// Outgoing: when the oldest row not yet receipted was written, in Unix milliseconds by
    /// the database's clock (the lag in time is now less this); `None` when every row is
    /// receipted. Incoming: `None`, only the owner knows.
    pub oldest_unreceipted_unix_ms: Option<i64>,
}

/// A node as stored: 0 the federal node, 1–99 a region.
pub(crate) fn node_code(node: Node) -> Result<i16> {
    match node {
        Node::Federal => Ok(0),
        Node::Region(c @ 1..=99) => Ok(i16::from(c)),
        Node::Region(c) => Err(Error::Encode {
            what: "mirror node",
            message: format!("region code {c} is not 1–99"),
        }),
    }
}

fn node_of(code: i16) -> Result<Node> {
    match code {
        0 => Ok(Node::Federal),
        1..=99 => Ok(Node::Region(code as u8)),
        _ => Err(Error::Corrupt {
            what: "mirror node",
            message: format!("node code {code}"),
        }),
    }
}

fn kind_code(kind: RecordKind) -> i16 {
    i16::from(kind.code())
}

fn kind_of(code: i16) -> Result<RecordKind> {
    usize::try_from(code)
        .ok()
        .and_then(|i| RecordKind::ALL.get(i).copied())
        .ok_or_else(|| Error::Corrupt {
            what: "mirror kind",
            message: format!("kind code {code}"),
        })
}

fn seq_of(what: &'static str, n: i64) -> Result<u64> {
    u64::try_from(n).map_err(|_| Error::Corrupt {
        what,
        message: format!("sequence number {n}"),
    })
}

fn digest_of(what: &'static str, bytes: &[u8]) -> Result<Digest> {
    <[u8; 32]>::try_from(bytes).map(Digest).map_err(|_| Error::Corrupt {
        what,
        message: format!("a digest of {} bytes", bytes.len()),
    })
}

/// Makes sure channel (`p`, `k`) has its row, locks it (the lock numbers the channel's rows
/// one push at a time) and returns the next row's number.
fn lock_channel(tx: &mut Transaction<'_>, p: i16, k: i16, db: &dyn Fn(postgres::Error) -> Error) -> Result<u64> {
    tx.execute(
        "INSERT INTO mirror_send (peer, kind, next_seq, cut_through, acked_through, last_acked)
         VALUES ($1, $2, 1, 0, 0, $3) ON CONFLICT (peer, kind) DO NOTHING",
        &[&p, &k, &Digest::ZERO.0.as_slice()],
    )
    .map_err(db)?;
    let stored: i64 = tx
        .query_one(
            "SELECT next_seq FROM mirror_send WHERE peer = $1 AND kind = $2 FOR UPDATE",
            &[&p, &k],
        )
        .map_err(db)?
        .try_get(0)
        .map_err(db)?;
    seq_of("mirror channel", stored)
}

/// Appends `rows` (numbered from the channel's next row on) to the outbox and moves the
/// channel's next row past them.
fn insert_rows(
    tx: &mut Transaction<'_>,
    p: i16,
    k: i16,
    rows: &[OutboxRow],
    db: &dyn Fn(postgres::Error) -> Error,
) -> Result<()> {
    let Some(last) = rows.last().map(|r| r.seq) else {
        return Ok(());
    };
    let seqs = rows
        .iter()
        .map(|r| int("mirror outbox row", r.seq))
        .collect::<Result<Vec<i64>>>()?;
    let next = int("mirror outbox row", last + 1)?;
    let payloads: Vec<&[u8]> = rows.iter().map(|r| r.payload.as_slice()).collect();
    let digests: Vec<&[u8]> = rows.iter().map(|r| r.digest.0.as_slice()).collect();
    tx.execute(
        "INSERT INTO mirror_outbox (peer, kind, seq, payload, digest)
         SELECT $1::smallint, $2::smallint, u.seq, u.payload, u.digest
         FROM unnest($3::bigint[], $4::bytea[], $5::bytea[]) AS u(seq, payload, digest)",
        &[&p, &k, &seqs, &payloads, &digests],
    )
    .map_err(db)?;
    tx.execute(
        "UPDATE mirror_send SET next_seq = $3 WHERE peer = $1 AND kind = $2",
        &[&p, &k, &next],
    )
    .map_err(db)?;
    Ok(())
}

/// The mirror node the records database at `records` belongs to, if a mirror was set up for
/// it (the node's mirror process claimed it with [`PgMirror::open`]).
pub fn mirror_node_of(records: &PgRecords) -> Result<Option<Node>> {
    records.with(|c| {
        let row = c
            .query_opt("SELECT node FROM mirror_node", &[])
            .map_err(|e| records.db(e))?;
        row.map(|r| node_of(r.try_get(0).map_err(|e| records.db(e))?))
            .transpose()
    })
}

/// Appends outbox rows of `kind` for `peer` from node `me` in the caller's transaction, with
/// no endpoint in memory: for the writers that run in other processes than the mirror's
/// driver (the loader's commands). The driver takes them up at its next [`PgMirror::load`];
/// the writer sends `NOTIFY konvert_mirror` to wake it. Returns the rows' numbers.
pub(crate) fn push_in(
    tx: &mut Transaction<'_>,
    me: Node,
    peer: Node,
    kind: RecordKind,
    payloads: Vec<Vec<u8>>,
) -> Result<RangeInclusive<u64>> {
    if kind.owner() != me.side() {
        return Err(konvert_mirror::Error::NotOwner { node: me, kind }.into());
    }
    if !me.is_peer_of(peer) {
        return Err(konvert_mirror::Error::NotAPeer { node: me, peer }.into());
    }
    let db = |e| Error::database("the records' mirror outbox", e);
    let (p, k) = (node_code(peer)?, kind_code(kind));
    let first = lock_channel(tx, p, k, &db)?;
    let rows = payloads
        .into_iter()
        .zip(first..)
        .map(|(payload, seq)| OutboxRow::new(me, peer, kind, seq, payload))
        .collect::<konvert_mirror::Result<Vec<_>>>()?;
    insert_rows(tx, p, k, &rows, &db)?;
    Ok(first..=first + rows.len() as u64 - 1)
}

impl PgMirror {
    /// The mirror state of node `me` in `records`' database. The first node to open a
    /// database claims it; another node's is refused ([`Error::MirrorNode`]), since its
    /// checkpoints and outbox would be sent under the wrong name.
    pub fn open(records: Arc<PgRecords>, me: Node) -> Result<PgMirror> {
        let code = node_code(me)?;
        let found = records.with(|c| {
            let db = |e| records.db(e);
            c.execute(
                "INSERT INTO mirror_node (one, node) VALUES (true, $1) ON CONFLICT (one) DO NOTHING",
                &[&code],
            )
            .map_err(db)?;
            let row = c.query_one("SELECT node FROM mirror_node", &[]).map_err(db)?;
            node_of(row.try_get(0).map_err(db)?)
        })?;
        if found != me {
            return Err(Error::MirrorNode {
                target: records.target().to_owned(),
                found,
                me,
            });
        }
        Ok(PgMirror {
            records,
            me,
            prepared: Arc::new(Mutex::new(None)),
        })
    }

    /// Makes this process the one driver of the database's mirror: two drivers would each
    /// move their node and store steps the other's node does not know, and rebuild each
    /// other out of step forever. A second is refused ([`Error::MirrorBusy`], naming the
    /// holder as PostgreSQL sees it) after waiting a moment for a holder that is ending.
    /// The writers (`loader close`, `federal publish`) need no lock: they only append
    /// outbox rows, which the driver takes up.
    pub fn lock_driver(&self) -> Result<MirrorDriverLock> {
        let records = &self.records;
        crate::pg_records::outside_runtime(|| {
            let db = |e| records.db(e);
            let mut session = records.open()?;
            let until = std::time::Instant::now() + DRIVER_LOCK_WAIT;
            loop {
                let got: bool = session
                    .query_one("SELECT pg_try_advisory_lock($1)", &[&DRIVER_LOCK])
                    .map_err(db)?
                    .try_get(0)
                    .map_err(db)?;
                if got {
                    return Ok(MirrorDriverLock { session: Some(session) });
                }
                if std::time::Instant::now() >= until {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            // A bigint key is split over classid (high half) and objid (low half).
            let holder = session
                .query_opt(
                    "SELECT a.pid, coalesce(host(a.client_addr), 'a local socket'), \
                            to_char(a.backend_start, 'YYYY-MM-DD HH24:MI:SS TZ')
                     FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                     WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
                       AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                       AND l.classid::bigint * 4294967296 + l.objid::bigint = $1
                     LIMIT 1",
                    &[&DRIVER_LOCK],
                )
                .map_err(db)?
                .map(|r| -> Result<String> {
                    let pid: i32 = r.try_get(0).map_err(db)?;
                    let from: String = r.try_get(1).map_err(db)?;
                    let since: String = r.try_get(2).map_err(db)?;
                    Ok(format!("PostgreSQL backend {pid}, connected from {from} since {since}"))
                })
                .transpose()?
                .unwrap_or_else(|| "its holder has just gone; try again".to_owned());
            Err(Error::MirrorBusy {
                target: records.target().to_owned(),
                holder,
            })
        })
    }

    /// The records the mirror's state lives with.
    pub fn records(&self) -> &PgRecords {
        &self.records
    }

    /// The records the mirror's state lives with, to share with what runs beside it.
    pub fn shared_records(&self) -> Arc<PgRecords> {
        self.records.clone()
    }

    /// The node whose state this is.
    pub fn node(&self) -> Node {
        self.me
    }

    fn db(&self, e: postgres::Error) -> Error {
        self.records.db(e)
    }

    /// [`PgMirror::apply`]'s statements on the connection `tx` is on, prepared there first
    /// if that connection has not seen them. Call inside [`PgRecords::with`].
    fn apply_statements(&self, tx: &mut Transaction<'_>) -> Result<(Statement, Statement)> {
        let generation = self.records.generation();
        let mut cache = self.prepared.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = cache.as_ref().filter(|p| p.generation == generation) {
            return Ok((p.channel.clone(), p.apply.clone()));
        }
        let channel = tx.prepare(APPLY_CHANNEL).map_err(|e| self.db(e))?;
        let apply = tx.prepare(APPLY_BATCH).map_err(|e| self.db(e))?;
        *cache = Some(Prepared {
            generation,
            channel: channel.clone(),
            apply: apply.clone(),
        });
        Ok((channel, apply))
    }

    /// Writes an outbox row of `kind` for `peer` in the same transaction as `change`, the
    /// caller's statements that make the change the row records, and pushes it to
    /// `endpoint`. Either both are stored or neither: an error from `change` (or from
    /// anything else before the commit) rolls back the change and the row, and leaves the
    /// endpoint as it was, unless the commit itself failed (then rebuild it from
    /// [`PgMirror::load`]). Returns the row's number and what `change` returned.
    pub fn push<T: Send>(
        &self,
        endpoint: &mut Endpoint,
        peer: Node,
        kind: RecordKind,
        payload: Vec<u8>,
        change: impl FnOnce(&mut Transaction<'_>) -> Result<T> + Send,
    ) -> Result<(u64, T)> {
        let (seqs, out) = self.push_many(endpoint, peer, kind, vec![payload], change)?;
        Ok((*seqs.start(), out))
    }

    /// [`PgMirror::push`] for many rows of one channel recording one change (closing an
    /// exam writes all its results at once): one transaction, one statement for the rows.
    /// Returns the rows' numbers (an empty range for no rows) and what `change` returned.
    pub fn push_many<T: Send>(
        &self,
        endpoint: &mut Endpoint,
        peer: Node,
        kind: RecordKind,
        payloads: Vec<Vec<u8>>,
        change: impl FnOnce(&mut Transaction<'_>) -> Result<T> + Send,
    ) -> Result<(RangeInclusive<u64>, T)> {
        let me = self.me;
        if endpoint.sender().node() != me {
            return Err(Error::MirrorNode {
                target: self.records.target().to_owned(),
                found: me,
                me: endpoint.sender().node(),
            });
        }
        if kind.owner() != me.side() {
            return Err(konvert_mirror::Error::NotOwner { node: me, kind }.into());
        }
        let (p, k) = (node_code(peer)?, kind_code(kind));
        self.records.with(|c| {
            let db = |e| self.db(e);
            let mut tx = c.transaction().map_err(db)?;
            let first = lock_channel(&mut tx, p, k, &db)?;
            let sender = endpoint.sender();
            let node = sender.checkpoint(peer, kind).acked_through + sender.lag(peer, kind) + 1;
            if node != first {
                return Err(Error::MirrorOutOfStep {
                    peer,
                    kind,
                    what: OutOfStep::Push { stored: first, node },
                });
            }
            let out = change(&mut tx)?;
            // Every row is built (and so checked) before the endpoint sees any of them.
            let rows = payloads
                .into_iter()
                .zip(first..)
                .map(|(payload, seq)| OutboxRow::new(me, peer, kind, seq, payload))
                .collect::<konvert_mirror::Result<Vec<_>>>()?;
            let Some(last) = rows.last().map(|r| r.seq) else {
                tx.commit().map_err(db)?;
                return Ok((first..=first.saturating_sub(1), out));
            };
            insert_rows(&mut tx, p, k, &rows, &db)?;
            // Last before the commit: the core refuses what the store cannot tell (a peer
            // not configured) at the first row, and then nothing is stored; the rows were
            // checked above, so no later one fails.
            for row in rows {
                let pushed = endpoint.sender_mut().push(peer, kind, row.payload.clone())?;
                if pushed != row {
                    return Err(Error::MirrorOutOfStep {
                        peer,
                        kind,
                        what: OutOfStep::Push {
                            stored: row.seq,
                            node: pushed.seq,
                        },
                    });
                }
            }
            tx.commit().map_err(db)?;
            Ok((first..=last, out))
        })
    }

    /// Stores the batches [`Endpoint::cut`] returned, all or none, before any of them is
    /// sent. Storing the same batch again changes nothing; a batch that does not follow the
    /// channel's stored cuts, or another batch for rows already cut, is refused
    /// ([`Error::MirrorOutOfStep`]).
    pub fn store_cut(&self, batches: &[CutBatch]) -> Result<()> {
        if batches.is_empty() {
            return Ok(());
        }
        self.records.with(|c| {
            let db = |e| self.db(e);
            let mut tx = c.transaction().map_err(db)?;
            for b in batches {
                let (p, k) = (node_code(b.peer)?, kind_code(b.kind));
                let first = int("mirror batch", b.first_seq)?;
                let last = int("mirror batch", b.last_seq)?;
                let row = tx
                    .query_opt(
                        "SELECT cut_through, next_seq FROM mirror_send WHERE peer = $1 AND kind = $2 FOR UPDATE",
                        &[&p, &k],
                    )
                    .map_err(db)?;
                let (cut_through, next_seq): (i64, i64) = match &row {
                    Some(r) => (r.try_get(0).map_err(db)?, r.try_get(1).map_err(db)?),
                    None => (0, 1),
                };
                if first <= cut_through {
                    let old = tx
                        .query_opt(
                            "SELECT digest FROM mirror_batches_out WHERE peer = $1 AND kind = $2 AND first_seq = $3",
                            &[&p, &k, &first],
                        )
                        .map_err(db)?;
                    let same = match old {
                        Some(r) => r.try_get::<_, &[u8]>(0).map_err(db)? == b.digest.0.as_slice(),
                        None => false,
                    };
                    if same {
                        continue;
                    }
                    return Err(Error::MirrorOutOfStep {
                        peer: b.peer,
                        kind: b.kind,
                        what: OutOfStep::CutConflict { first_seq: b.first_seq },
                    });
                }
                if first != cut_through + 1 || last < first || last >= next_seq {
                    return Err(Error::MirrorOutOfStep {
                        peer: b.peer,
                        kind: b.kind,
                        what: OutOfStep::Cut {
                            first_seq: b.first_seq,
                            last_seq: b.last_seq,
                            cut_through: seq_of("mirror channel", cut_through)?,
                            pushed_through: seq_of("mirror channel", next_seq - 1)?,
                        },
                    });
                }
                tx.execute(
                    "INSERT INTO mirror_batches_out (peer, kind, first_seq, last_seq, digest, bytes)
                     VALUES ($1, $2, $3, $4, $5, $6)",
                    &[&p, &k, &first, &last, &b.digest.0.as_slice(), &b.bytes],
                )
                .map_err(db)?;
                tx.execute(
                    "UPDATE mirror_send SET cut_through = $3 WHERE peer = $1 AND kind = $2",
                    &[&p, &k, &last],
                )
                .map_err(db)?;
            }
            tx.commit().map_err(db)
        })
    }

    /// Stores an applied batch ([`konvert_mirror::Event::Applied`]) exactly once: its rows,
    /// the signed batch as it came (`signed`, the bytes handed to [`Endpoint::handle`]:
    /// the owner's signature is the audit trail's proof of who vouched for the rows), the
    /// channel's new checkpoint and the receipt, with whatever `rows_into` does with
    /// the rows in the same transaction (the records the rows feed). Returns `None` if
    /// this very batch was stored before: nothing changes and `rows_into` does not run.
    /// A batch that does not follow the stored checkpoint is refused
    /// ([`Error::MirrorOutOfStep`]) without a change.
    pub fn apply<T: Send>(
        &self,
        batch: &AppliedBatch,
        signed: &[u8],
        rows_into: impl FnOnce(&mut Transaction<'_>, &AppliedBatch) -> Result<T> + Send,
    ) -> Result<Option<T>> {
        let (_, out) = self.apply_many(&[(batch, signed)], |tx, fresh| match fresh {
            [b] => rows_into(tx, b).map(Some),
            _ => Ok(None),
        })?;
        Ok(out)
    }

    /// [`PgMirror::apply`] for batches applied one after the other (those queued on the
    /// links while the last transaction ran), in one transaction: all are stored or none,
    /// and `rows_into` runs once, with the batches not stored before, in order. A commit
    /// is a wait for the disk with `fsync` on, so a receiver that commits once per batch
    /// is as fast as its disk's flushes; the receipts go out after this returns, as ever.
    /// Returns, per batch, whether it was stored now (`false`: stored before, nothing
    /// changed), and what `rows_into` returned.
    pub fn apply_many<T: Send>(
        &self,
        batches: &[(&AppliedBatch, &[u8])],
        rows_into: impl FnOnce(&mut Transaction<'_>, &[&AppliedBatch]) -> Result<T> + Send,
    ) -> Result<(Vec<bool>, T)> {
        // Everything the transaction does not need is checked and encoded before it opens.
        let checked = batches
            .iter()
            .map(|(batch, signed)| Checked::new(batch, signed))
            .collect::<Result<Vec<_>>>()?;
        self.records.with(|c| {
            let db = |e| self.db(e);
            let mut tx = c.transaction().map_err(db)?;
            let (channel, apply) = self.apply_statements(&mut tx)?;
            let mut fresh = Vec::with_capacity(checked.len());
            for b in &checked {
                fresh.push(self.apply_in(&mut tx, &channel, &apply, b)?);
            }
            let now: Vec<&AppliedBatch> = checked
                .iter()
                .zip(&fresh)
                .filter(|(_, f)| **f)
                .map(|(b, _)| b.batch)
                .collect();
            let out = rows_into(&mut tx, &now)?;
            tx.commit().map_err(db)?;
            Ok((fresh, out))
        })
    }

    /// One batch of [`PgMirror::apply_many`] in its transaction: `false` if it was stored
    /// before.
    fn apply_in(
        &self,
        tx: &mut Transaction<'_>,
        channel: &Statement,
        apply: &Statement,
        b: &Checked<'_>,
    ) -> Result<bool> {
        let db = |e| self.db(e);
        let batch = b.batch;
        let conflict = |what| Error::MirrorOutOfStep {
            peer: batch.from,
            kind: batch.kind,
            what,
        };
        let stored: i64 = tx
            .query_one(channel, &[&b.sender, &b.kind, &Digest::ZERO.0.as_slice()])
            .map_err(db)?
            .try_get(0)
            .map_err(db)?;
        if b.first < stored {
            let old = tx
                .query_opt(
                    "SELECT digest FROM mirror_batches_in WHERE sender = $1 AND kind = $2 AND first_seq = $3",
                    &[&b.sender, &b.kind, &b.first],
                )
                .map_err(db)?;
            return match old {
                Some(r) if r.try_get::<_, &[u8]>(0).map_err(db)? == batch.digest.0.as_slice() => Ok(false),
                _ => Err(conflict(OutOfStep::ApplyConflict {
                    first_seq: batch.first_seq,
                })),
            };
        }
        if b.first != stored || batch.checkpoint.next_seq != b.last + 1 || batch.rows.is_empty() {
            return Err(conflict(OutOfStep::Apply {
                first_seq: batch.first_seq,
                next_seq: seq_of("mirror checkpoint", stored)?,
            }));
        }
        tx.execute(
            apply,
            &[
                &b.sender,
                &b.kind,
                &b.next,
                &batch.checkpoint.last_batch.0.as_slice(),
                &b.batches,
                &batch.digest.0.as_slice(),
                &b.signed,
                &b.receipt,
                &b.first,
                &int("mirror batch", b.last)?,
            ],
        )
        .map_err(db)?;
        Ok(true)
    }

    /// Stores a receipt for our batches ([`konvert_mirror::SendEvent::Acked`]) and moves
    /// the channel's checkpoint to it, forward only: `false` if the checkpoint was there or
    /// beyond already (the receipt is kept all the same). A receipt beyond the stored cuts
    /// is refused ([`Error::MirrorOutOfStep`]).
    pub fn acked(
        &self,
        peer: Node,
        kind: RecordKind,
        checkpoint: &SendCheckpoint,
        receipt: &SignedReceipt,
    ) -> Result<bool> {
        let (p, k) = (node_code(peer)?, kind_code(kind));
        let r = &receipt.body;
        let bytes = encode("mirror receipt", receipt)?;
        let (first, last) = (int("mirror receipt", r.first_seq)?, int("mirror receipt", r.last_seq)?);
        let through = int("mirror checkpoint", checkpoint.acked_through)?;
        self.records.with(|c| {
            let db = |e| self.db(e);
            let mut tx = c.transaction().map_err(db)?;
            let row = tx
                .query_opt(
                    "SELECT cut_through, acked_through FROM mirror_send WHERE peer = $1 AND kind = $2 FOR UPDATE",
                    &[&p, &k],
                )
                .map_err(db)?;
            let (cut_through, acked): (i64, i64) = match &row {
                Some(r) => (r.try_get(0).map_err(db)?, r.try_get(1).map_err(db)?),
                None => (0, 0),
            };
            if through > cut_through {
                return Err(Error::MirrorOutOfStep {
                    peer,
                    kind,
                    what: OutOfStep::Ack {
                        acked_through: checkpoint.acked_through,
                        cut_through: seq_of("mirror channel", cut_through)?,
                    },
                });
            }
            tx.execute(
                "INSERT INTO mirror_receipts_in (peer, kind, first_seq, last_seq, digest, receipt)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (peer, kind, first_seq) DO NOTHING",
                &[&p, &k, &first, &last, &r.batch.0.as_slice(), &bytes],
            )
            .map_err(db)?;
            let moved = through > acked;
            if moved {
                tx.execute(
                    "UPDATE mirror_send SET acked_through = $3, last_acked = $4 WHERE peer = $1 AND kind = $2",
                    &[&p, &k, &through, &checkpoint.last_acked.0.as_slice()],
                )
                .map_err(db)?;
            }
            tx.commit().map_err(db)?;
            Ok(moved)
        })
    }

    /// Records a batch this node refused ([`konvert_mirror::Event::Refused`]): who sent it,
    /// its kind, rows and digest, and why. A refused batch is never merged, but the refusal
    /// is kept with the audit trail (a non-owner's batch, a wrong signer: someone must look).
    pub fn refused(&self, notice: &RefusalNotice) -> Result<()> {
        let (s, k) = (node_code(notice.to)?, kind_code(notice.kind));
        let first = int("mirror refusal", notice.first_seq)?;
        let reason = encode("mirror refusal", &notice.reason)?;
        let text = notice.reason.to_string();
        self.records.with(|c| {
            c.execute(
                "INSERT INTO mirror_refusals (sender, kind, first_seq, digest, reason, reason_text)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[&s, &k, &first, &notice.batch.0.as_slice(), &reason, &text],
            )
            .map_err(|e| self.db(e))?;
            Ok(())
        })
    }

    /// What [`Endpoint::restore`] takes: per channel the sender's checkpoint, its batches
    /// cut and not receipted and its outbox rows not yet cut; the receiver's checkpoints
    /// and receipts. Read in one snapshot, so it holds together whatever runs meanwhile.
    pub fn load(&self) -> Result<(Vec<SendState>, Vec<ReceiveState>)> {
        self.records.with(|c| {
            let db = |e| self.db(e);
            let mut tx = c
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .map_err(db)?;
            let mut send: BTreeMap<(Node, RecordKind), SendState> = BTreeMap::new();
            for r in tx
                .query(
                    "SELECT peer, kind, acked_through, last_acked FROM mirror_send ORDER BY peer, kind",
                    &[],
                )
                .map_err(db)?
            {
                let peer = node_of(r.try_get(0).map_err(db)?)?;
                let kind = kind_of(r.try_get(1).map_err(db)?)?;
                let checkpoint = SendCheckpoint {
                    acked_through: seq_of("mirror channel", r.try_get(2).map_err(db)?)?,
                    last_acked: digest_of("mirror channel", r.try_get(3).map_err(db)?)?,
                };
                send.insert(
                    (peer, kind),
                    SendState {
                        peer,
                        kind,
                        checkpoint,
                        pending: Vec::new(),
                        unbatched: Vec::new(),
                    },
                );
            }
            for r in tx
                .query(
                    "SELECT b.peer, b.kind, b.bytes FROM mirror_batches_out b
                     JOIN mirror_send s ON s.peer = b.peer AND s.kind = b.kind
                     WHERE b.first_seq > s.acked_through ORDER BY b.peer, b.kind, b.first_seq",
                    &[],
                )
                .map_err(db)?
            {
                let key = (node_of(r.try_get(0).map_err(db)?)?, kind_of(r.try_get(1).map_err(db)?)?);
                let bytes: Vec<u8> = r.try_get(2).map_err(db)?;
                if let Some(s) = send.get_mut(&key) {
                    s.pending.push(bytes.into());
                }
            }
            for r in tx
                .query(
                    "SELECT o.peer, o.kind, o.seq, o.payload, o.digest FROM mirror_outbox o
                     JOIN mirror_send s ON s.peer = o.peer AND s.kind = o.kind
                     WHERE o.seq > s.cut_through ORDER BY o.peer, o.kind, o.seq",
                    &[],
                )
                .map_err(db)?
            {
                let (peer, kind) = (node_of(r.try_get(0).map_err(db)?)?, kind_of(r.try_get(1).map_err(db)?)?);
                let row = OutboxRow {
                    peer,
                    kind,
                    seq: seq_of("mirror outbox row", r.try_get(2).map_err(db)?)?,
                    payload: r.try_get(3).map_err(db)?,
                    digest: digest_of("mirror outbox row", r.try_get(4).map_err(db)?)?,
                };
                if let Some(s) = send.get_mut(&(peer, kind)) {
                    s.unbatched.push(row);
                }
            }
            let mut receive: BTreeMap<(Node, RecordKind), ReceiveState> = BTreeMap::new();
            for r in tx
                .query(
                    "SELECT sender, kind, next_seq, last_batch, batches FROM mirror_receive ORDER BY sender, kind",
                    &[],
                )
                .map_err(db)?
            {
                let (from, kind) = (node_of(r.try_get(0).map_err(db)?)?, kind_of(r.try_get(1).map_err(db)?)?);
                let checkpoint = Checkpoint {
                    next_seq: seq_of("mirror checkpoint", r.try_get(2).map_err(db)?)?,
                    last_batch: digest_of("mirror checkpoint", r.try_get(3).map_err(db)?)?,
                    batches: seq_of("mirror checkpoint", r.try_get(4).map_err(db)?)?,
                };
                receive.insert(
                    (from, kind),
                    ReceiveState {
                        from,
                        kind,
                        checkpoint,
                        receipts: Vec::new(),
                    },
                );
            }
            for r in tx
                .query(
                    "SELECT sender, kind, receipt FROM mirror_batches_in ORDER BY sender, kind, first_seq",
                    &[],
                )
                .map_err(db)?
            {
                let key = (node_of(r.try_get(0).map_err(db)?)?, kind_of(r.try_get(1).map_err(db)?)?);
                let receipt: SignedReceipt = decode("mirror receipt", r.try_get(2).map_err(db)?)?;
                if let Some(s) = receive.get_mut(&key) {
                    s.receipts.push(receipt);
                }
            }
            tx.commit().map_err(db)?;
            Ok((send.into_values().collect(), receive.into_values().collect()))
        })
    }

    /// Each channel's figures, for `mirror status` and the metrics: what this node wrote
    /// and its peers receipted (the lag is the owner's to know), and what it applied of
    /// its peers' rows; with the time of the last receipt or applied batch and when the
    /// oldest unreceipted row was written, by the database's clock.
    pub fn status(&self) -> Result<Vec<MirrorChannelStatus>> {
        self.records.with(|c| {
            let db = |e| self.db(e);
            let mut out = Vec::new();
            for r in c
                .query(
                    // The first unreceipted row is the oldest: rows are numbered under the
                    // channel's lock, so a later number was written no earlier, give or take
                    // one push's wait for that lock (`now()` is its transaction's start).
                    // One index probe, however long the lag.
                    "SELECT s.peer, s.kind, s.next_seq - 1, s.acked_through,
                         (SELECT (extract(epoch FROM max(received_at)) * 1000)::bigint FROM mirror_receipts_in i
                          WHERE i.peer = s.peer AND i.kind = s.kind),
                         (SELECT (extract(epoch FROM o.written_at) * 1000)::bigint FROM mirror_outbox o
                          WHERE o.peer = s.peer AND o.kind = s.kind AND o.seq > s.acked_through
                          ORDER BY o.seq LIMIT 1)
                     FROM mirror_send s ORDER BY s.peer, s.kind",
                    &[],
                )
                .map_err(db)?
            {
                let written = seq_of("mirror channel", r.try_get(2).map_err(db)?)?;
                let through = seq_of("mirror channel", r.try_get(3).map_err(db)?)?;
                out.push(MirrorChannelStatus {
                    peer: node_of(r.try_get(0).map_err(db)?)?,
                    kind: kind_of(r.try_get(1).map_err(db)?)?,
                    direction: MirrorDirection::Outgoing,
                    rows: written,
                    through,
                    lag: Some(written.saturating_sub(through)),
                    last_exchange_unix_ms: r.try_get(4).map_err(db)?,
                    oldest_unreceipted_unix_ms: r.try_get(5).map_err(db)?,
                });
            }
            for r in c
                .query(
                    "SELECT v.sender, v.kind, v.next_seq - 1,
                         (SELECT (extract(epoch FROM max(applied_at)) * 1000)::bigint FROM mirror_batches_in b
                          WHERE b.sender = v.sender AND b.kind = v.kind)
                     FROM mirror_receive v ORDER BY v.sender, v.kind",
                    &[],
                )
                .map_err(db)?
            {
                let applied = seq_of("mirror checkpoint", r.try_get(2).map_err(db)?)?;
                out.push(MirrorChannelStatus {
                    peer: node_of(r.try_get(0).map_err(db)?)?,
                    kind: kind_of(r.try_get(1).map_err(db)?)?,
                    direction: MirrorDirection::Incoming,
                    rows: applied,
                    through: applied,
                    lag: None,
                    last_exchange_unix_ms: r.try_get(3).map_err(db)?,
                    oldest_unreceipted_unix_ms: None,
                });
            }
            Ok(out)
        })
    }

    /// The rows applied from `from`'s channel of `kind`, in order: each row's number and
    /// the exact bytes its owner signed, read out of the stored signed batches (where a
    /// row's payload is kept, once).
    pub fn applied_rows(&self, from: Node, kind: RecordKind) -> Result<Vec<(u64, Vec<u8>)>> {
        applied_payloads(&self.records, from, kind)
    }
}

/// The rows of `kind` applied from `from`, with their numbers, in order: read out of the
/// signed batches that brought them (each row's bytes are kept there, once).
pub(crate) fn applied_payloads(records: &PgRecords, from: Node, kind: RecordKind) -> Result<Vec<(u64, Vec<u8>)>> {
    let (s, k) = (node_code(from)?, kind_code(kind));
    records.with(|c| {
        let db = |e| records.db(e);
        let mut out = Vec::new();
        for r in c
            .query(
                "SELECT first_seq, last_seq, bytes FROM mirror_batches_in
                 WHERE sender = $1 AND kind = $2 ORDER BY first_seq",
                &[&s, &k],
            )
            .map_err(db)?
        {
            let first = seq_of("mirror batch", r.try_get(0).map_err(db)?)?;
            let last = seq_of("mirror batch", r.try_get(1).map_err(db)?)?;
            let corrupt = |message: String| Error::Corrupt {
                what: "mirror batch",
                message,
            };
            let batch = match konvert_mirror::decode(r.try_get(2).map_err(db)?) {
                Ok(Message::Batch(b)) => b.body,
                Ok(_) => return Err(corrupt(format!("the batch at {first} is stored as another message"))),
                Err(e) => return Err(corrupt(format!("the batch at {first} does not decode: {e}"))),
            };
            if batch.first_seq != first || batch.last_seq() != last || batch.rows.is_empty() {
                return Err(corrupt(format!(
                    "the batch stored as rows {first}–{last} holds rows {}–{}",
                    batch.first_seq,
                    batch.last_seq()
                )));
            }
            out.extend((first..).zip(batch.rows.into_iter().map(|r| r.into_vec())));
        }
        Ok(out)
    })
}

#[cfg(test)]
#[path = "pg_mirror_tests.rs"]
mod tests;
