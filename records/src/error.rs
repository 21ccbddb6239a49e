/// Everything that can go wrong with the regional records.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database could not be opened, read or written.
    #[error("the records at {path} cannot be used: {source}; check the folder and that no other process holds it")]
    Store {
        /// The records' folder.
        path: String,
        /// What sled said.
        source: sled::Error,
    },
    /// A stored record does not decode: the records were altered or written by a newer konvert.
    #[error("a stored {what} record does not decode ({message}); restore the records from the last backup")]
    Corrupt {
        /// Which kind of record.
        what: &'static str,
        /// The decoder's message.
        message: String,
    },
    /// A record could not be encoded.
    #[error("cannot encode a {what} record: {message}; report this as a bug")]
    Encode {
        /// Which kind of record.
        what: &'static str,
        /// The encoder's message.
        message: String,
    },
    /// A packet version was registered before with other contents.
    #[error("packet {packet} v{version} was registered before with other contents; the records or the store were altered — restore from backup")]
    Conflict {
        /// The packet id.
        packet: String,
        /// The version.
        version: u32,
    },
    /// No hold has this number.
    #[error("there is no hold {id}; list them with `konvert-center retention holds`")]
    UnknownHold {
        /// The number asked for.
        id: u64,
    },
    /// The hold was released before.
    #[error("hold {id} was released before; a released hold stays as it was (place a new one if needed)")]
    HoldReleased {
        /// Its number.
        id: u64,
    },
    /// The PostgreSQL records could not be reached, read or written. Each call is one
    /// transaction: a change was applied whole or not at all (if the connection broke during
    /// the commit itself, the server may have committed it).
    #[error("the records in PostgreSQL at {target} cannot be used: {detail} (each change is one transaction: applied whole or not at all)")]
    Database {
        /// Where: host, port and database (never the password).
        target: String,
        /// What went wrong, with the server's or the system's own words.
        detail: String,
        /// What the client said.
        source: postgres::Error,
    },
    /// The PostgreSQL connection URL or its TLS settings are wrong.
    #[error("the records' PostgreSQL connection {target} is misconfigured: {message}")]
    Connection {
        /// Where: host, port and database (never the password).
        target: String,
        /// What is wrong and what to do.
        message: String,
    },
    /// The records database was made by a newer konvert than this one.
    #[error("the records database at {target} has schema version {found}, but this konvert knows versions up to {known}; run the konvert that wrote it (or a newer one), or restore a backup made by this version — it was not changed")]
    NewerSchema {
        /// Where: host, port and database.
        target: String,
        /// The database's schema version.
        found: i64,
        /// The newest version this build knows.
        known: i64,
    },
    /// The mirror's core refused an operation (a kind this node does not own, a peer it
    /// does not exchange with, a row too large).
    #[error("the mirror refused: {0}")]
    Mirror(#[from] konvert_mirror::Error),
    /// The records database holds the mirror of another node.
    #[error("the records at {target} hold the mirror state of {found}, not of {me}; check the records URL in the configuration")]
    MirrorNode {
        /// Where: host, port and database.
        target: String,
        /// The node the database belongs to.
        found: konvert_mirror::Node,
        /// This node.
        me: konvert_mirror::Node,
    },
    /// Another mirror process drives this database's mirror already.
    #[error("another konvert mirror process is running on {target} ({holder}); two would take each other's steps: stop it first, or leave the exchange to it (`status` shows what it did)")]
    MirrorBusy {
        /// Where: host, port and database.
        target: String,
        /// Who holds it, as PostgreSQL sees it (backend pid, client address, since when).
        holder: String,
    },
    /// The node in memory and its stored mirror state disagree: the node moved on after a
    /// step that failed to store. Nothing was stored by the call that says so.
    #[error("the mirror channel {peer} {kind} is out of step with its stored state ({what}); drop the node and rebuild it from the stored state (PgMirror::load)")]
    MirrorOutOfStep {
        /// The peer of the channel.
        peer: konvert_mirror::Node,
        /// The kind.
        kind: konvert_mirror::RecordKind,
        /// How.
        what: OutOfStep,
    },
    /// A mirrored row does not decode as its kind; its whole batch is not applied.
    #[error("row {seq} of {kind} from {from} is not a row this node can read ({message}); the batch is not applied — upgrade the node if the sender is newer")]
    MirrorRow {
        /// The sender.
        from: konvert_mirror::Node,
        /// The channel's kind.
        kind: konvert_mirror::RecordKind,
        /// The row's number.
        seq: u64,
        /// What is wrong.
        message: String,
    },
    /// A mirror operation that needs records on PostgreSQL with a mirror node.
    #[error("{what}: {hint}")]
    MirrorUnavailable {
        /// What was tried.
        what: String,
        /// What to do.
        hint: &'static str,
    },
    /// A row about a participant who is not in the stored plan (the consent allow-list,
    /// R18): it is not written.
    #[error("{what}: the participant is not in a stored plan of this region; only planned participants (with consent) are in the records")]
    NotPlanned {
        /// What was refused.
        what: String,
    },
    /// PostgreSQL's `pg_dump` or `pg_restore` is missing or failed.
    #[error("{tool}{}: {message}", if target.is_empty() { String::new() } else { format!(" of the records at {target}") })]
    Tool {
        /// The tool.
        tool: &'static str,
        /// Where: host, port and database (never the password); empty before one is known.
        target: String,
        /// What went wrong, with the tool's own words.
        message: String,
    },
    /// A restore into a database that holds something already.
    #[error("the database at {target} is not empty ({count} table(s), view(s) or sequence(s), e.g. {some}); the records are restored only into an empty database, so that nothing there is mixed with them or lost — make one (createdb), name it in records_url and restore again (nothing was changed)")]
    NotEmpty {
        /// Where: host, port and database.
        target: String,
        /// How many relations it holds.
        count: i64,
        /// A few of their names.
        some: String,
    },
}

/// How a node in memory and its stored mirror state disagree (see [`Error::MirrorOutOfStep`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OutOfStep {
    /// A row pushed: the store and the node would number it differently.
    #[error("the store's next row is {stored}, the node's is {node}")]
    Push {
        /// The stored channel's next row.
        stored: u64,
        /// The node's next row.
        node: u64,
    },
    /// A batch cut that does not follow the stored cuts.
    #[error("a batch of rows {first_seq}..={last_seq} was cut, but the stored cuts end at row {cut_through} and the outbox at row {pushed_through}")]
    Cut {
        /// The batch's first row.
        first_seq: u64,
        /// The batch's last row.
        last_seq: u64,
        /// The last row in a stored batch.
        cut_through: u64,
        /// The last row in the stored outbox.
        pushed_through: u64,
    },
    /// Another batch for these rows was stored before: the node cut another history.
    #[error("a different batch starting at row {first_seq} was stored before")]
    CutConflict {
        /// The batch's first row.
        first_seq: u64,
    },
    /// A batch applied in memory that does not follow the stored checkpoint.
    #[error("a batch from row {first_seq} was applied, but the stored checkpoint expects row {next_seq}")]
    Apply {
        /// The batch's first row.
        first_seq: u64,
        /// The stored checkpoint's next row.
        next_seq: u64,
    },
    /// A batch applied in memory for rows the store holds from another batch.
    #[error("rows from {first_seq} were applied before from a different batch")]
    ApplyConflict {
        /// The batch's first row.
        first_seq: u64,
    },
    /// The bytes given as an applied batch's are not that batch.
    #[error("the bytes stored for the batch from row {first_seq} are not the batch that was applied")]
    BatchBytes {
        /// The applied batch's first row.
        first_seq: u64,
    },
    /// A receipt for rows that were never stored as cut.
    #[error("a receipt through row {acked_through}, but the stored cuts end at row {cut_through}")]
    Ack {
        /// The receipt's last row.
        acked_through: u64,
        /// The last row in a stored batch.
        cut_through: u64,
    },
}

impl Error {
    /// A PostgreSQL failure at `target`, with the whole chain of causes in words (the
    /// client's own message is only "db error" or "error connecting to server") and what
    /// to do; also for a driver's own statements in [`crate::PgMirror::apply`]'s `rows_into`.
    pub fn database(target: &str, source: postgres::Error) -> Error {
        let mut detail = source.to_string();
        if let Some(db) = source.as_db_error() {
            detail = format!(
                "{detail}: {} {} [SQLSTATE {}]",
                db.severity(),
                db.message(),
                db.code().code()
            );
            if let Some(more) = db.detail() {
                detail.push_str(&format!(" ({more})"));
            }
            if let Some(hint) = db.hint() {
                detail.push_str(&format!("; PostgreSQL's hint: {hint}"));
            }
            // The classes an operator can fix on the server while konvert waits and retries.
            let code = db.code().code();
            if code.starts_with("53") {
                detail.push_str(
                    "; the database server is out of resources (disk full, out of memory or too many \
                     connections): free disk space or memory on it — nothing of this change was written; make it \
                     again once there is room (a running mirror process tries again by itself)",
                );
            } else if code.starts_with("57P") || code.starts_with("08") {
                detail.push_str(
                    "; the server is shutting down or unreachable: check that PostgreSQL runs there — nothing of \
                     this change was written; make it again once it is back (a running mirror process tries again \
                     by itself)",
                );
            }
        } else {
            let mut cause = std::error::Error::source(&source);
            while let Some(c) = cause {
                detail.push_str(&format!(": {c}"));
                cause = c.source();
            }
            detail.push_str("; check that PostgreSQL runs there and the connection URL");
            if source.is_closed() || io_cause(&source) {
                detail.push_str(
                    " — nothing of this change was written; make it again once it is back (a running mirror process \
                     tries again by itself)",
                );
            }
        }
        Error::Database {
            target: target.to_owned(),
            detail,
            source,
        }
    }

    /// Whether trying the same call again later can succeed without anyone changing
    /// konvert's data: PostgreSQL down, restarting or unreachable, out of disk, memory or
    /// connections, or a transaction that lost a race (serialization failure, deadlock).
    /// The call changed nothing (each is one transaction), so a driver keeps what it
    /// holds and retries; any other error needs someone to look.
    pub fn is_retryable(&self) -> bool {
        let Error::Database { source, .. } = self else {
            return false;
        };
        match source.code() {
            // No answer from the server: retryable if the connection failed or broke (not
            // if a value did not convert, which is no server's doing).
            None => source.is_closed() || io_cause(source),
            Some(code) => {
                let code = code.code();
                // 08: connection exception; 53: insufficient resources (53100 disk full);
                // 57P0x: admin/crash shutdown, cannot connect now; 40001/40P01: lost a race.
                code.starts_with("08")
                    || code.starts_with("53")
                    || code.starts_with("57P")
                    || code == "40001"
                    || code == "40P01"
            }
        }
    }
}

/// Whether an I/O error is among `e`'s causes (a refused, timed-out or broken connection).
fn io_cause(e: &postgres::Error) -> bool {
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        if c.is::<std::io::Error>() {
            return true;
        }
        cause = c.source();
    }
    false
}
