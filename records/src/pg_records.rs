//! The records in PostgreSQL 15: the same contract as [`crate::SledRecords`], each call one
//! transaction (a packet version with all its pages, or nothing), values in the same
//! postcard bytes, listings in the same order.
//!
//! The client is the blocking `postgres` crate, which drives its own small tokio runtime and
//! so panics if used (or dropped) on a thread that is running async code. The center's
//! commands call the records from inside their runtime, as they do sled; so a call made
//! there runs on a short-lived plain thread instead (it blocks the caller as sled's disk
//! writes do). A lost connection (PostgreSQL restarted) fails the call in progress with
//! [`Error::Database`] and is reopened by the next call.
//!
//! TLS: `sslmode=disable` is plain; the default (`prefer`) is plain only to a local socket or
//! a loopback address, and elsewhere becomes `require`, because records never cross a
//! network in clear unless the URL says so. TLS always verifies the server against the CA in
//! `sslrootcert=<PEM file>` (rustls on ring).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use konvert_exam::DayPlan;
use konvert_replication::PacketAnswer;
use postgres::config::{Host, SslMode};
use postgres::{Client, Config, NoTls};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::pg_migrations::{self, LATEST};
use crate::retention::{deleted, released};
use crate::{
    Decision, DecisionKind, Error, Finding, FindingRecord, Hold, ImageRef, NewHold, PacketEntry, PageEntry,
    PageOutcome, Records, Release, Removal, Result, Role,
};

/// The records in a PostgreSQL database.
pub struct PgRecords {
    config: Config,
    tls: Option<MakeRustlsConnect>,
    target: String,
    /// The CA file the URL named (`sslrootcert`), for PostgreSQL's own tools.
    root_cert: Option<String>,
    client: Mutex<Option<Client>>,
    /// How many times the connection was opened again: what was prepared on an older one
    /// is gone.
    generation: AtomicU64,
}

impl std::fmt::Debug for PgRecords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgRecords").field("target", &self.target).finish()
    }
}

pub(crate) fn encode<T: Serialize>(what: &'static str, value: &T) -> Result<Vec<u8>> {
    postcard::to_allocvec(value).map_err(|e| Error::Encode {
        what,
        message: e.to_string(),
    })
}

pub(crate) fn decode<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T> {
    postcard::from_bytes(bytes).map_err(|e| Error::Corrupt {
        what,
        message: e.to_string(),
    })
}

/// Keeps the last row of each key, as sled's batch does when a key comes twice (PostgreSQL
/// refuses to upsert one row twice in a statement).
fn last_per_key<R>(rows: Vec<R>, key: impl Fn(&R) -> Vec<u8>) -> Vec<R> {
    let mut by_key: BTreeMap<Vec<u8>, R> = BTreeMap::new();
    for row in rows {
        by_key.insert(key(&row), row);
    }
    by_key.into_values().collect()
}

/// Takes `sslrootcert` out of a connection string (the client does not know it): both the
/// URL form (`postgresql://…?sslrootcert=…`) and the key=value form.
fn split_root_cert(url: &str) -> (String, Option<String>) {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let Some((base, query)) = url.split_once('?') else {
            return (url.to_owned(), None);
        };
        let mut root = None;
        let rest: Vec<&str> = query
            .split('&')
            .filter(|p| match p.strip_prefix("sslrootcert=") {
                Some(v) => {
                    root = Some(v.to_owned());
                    false
                }
                None => true,
            })
            .collect();
        let url = if rest.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", rest.join("&"))
        };
        (url, root)
    } else {
        let mut root = None;
        let rest: Vec<&str> = url
            .split_whitespace()
            .filter(|p| match p.strip_prefix("sslrootcert=") {
                Some(v) => {
                    root = Some(v.to_owned());
                    false
                }
                None => true,
            })
            .collect();
        (rest.join(" "), root)
    }
}

/// Where the records are, for messages: hosts, ports, database and user, never a password.
fn describe(config: &Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let port = config
                .get_ports()
                .get(i)
                .or(config.get_ports().first())
                .copied()
                .unwrap_or(5432);
            match h {
                Host::Tcp(name) => format!("{name}:{port}"),
                Host::Unix(path) => format!("{}:{port}", path.display()),
            }
        })
        .collect();
    format!(
        "{}/{} (user {})",
        hosts.join(","),
        config.get_dbname().unwrap_or("?"),
        config.get_user().unwrap_or("?")
    )
}

/// Whether every host is this machine: a socket, `localhost` or a loopback address.
fn all_local(config: &Config) -> bool {
    let local_name = |name: &str| {
        name == "localhost"
            || name
                .parse::<std::net::IpAddr>()
                .map(|ip| ip.is_loopback())
                .unwrap_or(false)
    };
    !config.get_hosts().is_empty()
        && config.get_hosts().iter().all(|h| match h {
            Host::Tcp(name) => local_name(name),
            Host::Unix(_) => true,
        })
        && config.get_hostaddrs().iter().all(|a| a.is_loopback())
}

fn tls_config(target: &str, root_cert: Option<&str>) -> Result<MakeRustlsConnect> {
    let bad = |message: String| Error::Connection {
        target: target.to_owned(),
        message,
    };
    let Some(path) = root_cert else {
        return Err(bad(
            "TLS is required (sslmode=require, or a host that is not this machine) and konvert always verifies \
             the server: name the CA that signed its certificate with sslrootcert=<PEM file> in the URL"
                .to_owned(),
        ));
    };
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(format!("cannot read sslrootcert {path}: {e}")))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("sslrootcert {path} is not a PEM certificate file: {e}")))?;
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| bad(format!("sslrootcert {path} holds a certificate rustls refuses: {e}")))?;
    }
    if roots.is_empty() {
        return Err(bad(format!("sslrootcert {path} holds no certificate")));
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(format!("TLS setup failed: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

impl PgRecords {
    /// Connects to the records at `url` (a `postgresql://` URL or `key=value` string) and
    /// brings the schema to this build's version; refuses a database from a newer konvert.
    pub fn connect(url: &str) -> Result<PgRecords> {
        Self::connect_at(url, LATEST)
    }

    /// [`connect`](Self::connect) with the schema brought only to `version` (tests of
    /// migrations).
    pub(crate) fn connect_at(url: &str, version: i64) -> Result<PgRecords> {
        outside_runtime(|| Self::connect_here(url, version))
    }

    fn connect_here(url: &str, version: i64) -> Result<PgRecords> {
        let records = Self::configure(url)?;
        let mut client = records.open()?;
        pg_migrations::migrate(&mut client, &records.target, version)?;
        *records.lock() = Some(client);
        Ok(records)
    }

    /// Checks `url` as [`Self::connect`] would (it parses; TLS for a host that is not this
    /// machine, with its sslrootcert readable) without connecting; returns where it points
    /// (no password), for `check-config`.
    pub fn check_url(url: &str) -> Result<String> {
        Ok(Self::configure(url)?.target.clone())
    }

    /// The records at `url` configured (URL parsed, TLS set up as [`Self::connect`] does),
    /// not yet connected; [`Self::open`] connects without touching the schema.
    pub(crate) fn configure(url: &str) -> Result<PgRecords> {
        let (url, root_cert) = split_root_cert(url);
        let mut config = Config::from_str(&url).map_err(|e| Error::Connection {
            target: "(unparsed URL)".to_owned(),
            message: format!("the URL does not parse ({e}); it looks like postgresql://user@host:port/database"),
        })?;
        let target = describe(&config);
        let tls = match config.get_ssl_mode() {
            SslMode::Disable => None,
            SslMode::Prefer if all_local(&config) => {
                // Prefer would try TLS first and then settle for plain: say plain outright.
                config.ssl_mode(SslMode::Disable);
                None
            }
            _ => {
                config.ssl_mode(SslMode::Require);
                Some(tls_config(&target, root_cert.as_deref())?)
            }
        };
        if tls.is_none() && !all_local(&config) {
            tracing::warn!(%target, "the records' connection is not encrypted (sslmode=disable)");
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        Ok(PgRecords {
            config,
            tls,
            target,
            root_cert,
            client: Mutex::new(None),
            generation: AtomicU64::new(0),
        })
    }

    /// Where the records are (hosts, ports, database, user; no password).
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Which connection [`Self::with`] hands out now: statements prepared on one are valid
    /// while this stays the same. Read inside `with`, whose lock keeps it from changing.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// The connection settings, as parsed and settled (TLS mode decided).
    pub(crate) fn config(&self) -> &Config {
        &self.config
    }

    /// The CA file the URL named for TLS, if any.
    pub(crate) fn root_cert(&self) -> Option<&str> {
        self.root_cert.as_deref()
    }

    /// A new connection, the schema untouched.
    pub(crate) fn open(&self) -> Result<Client> {
        let connected = match &self.tls {
            None => self.config.connect(NoTls),
            Some(tls) => self.config.connect(tls.clone()),
        };
        let mut client = connected.map_err(|e| self.db(e))?;
        // Large values (the mirror's signed batches, up to a megabyte) compress with lz4
        // where the server was built with it: PostgreSQL's default, pglz, took longer to
        // compress a batch than to insert all its rows (`konvert bench mirror`). Stored
        // values read back whichever way they were compressed. A server without lz4
        // refuses the setting and keeps pglz; outside a transaction that changes nothing
        // else, so the refusal is not an error.
        if let Err(e) = client.batch_execute("SET default_toast_compression = lz4") {
            tracing::debug!(target_db = %self.target, error = %e, "the server has no lz4; values compress with pglz");
        }
        Ok(client)
    }

    fn lock(&self) -> MutexGuard<'_, Option<Client>> {
        // A panic while the lock was held dropped its transaction (rolled back): the client
        // is still usable.
        self.client.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn db(&self, source: postgres::Error) -> Error {
        Error::database(&self.target, source)
    }

    /// Runs `f` on the connection, reopening it first if it was lost (and checking the
    /// schema again: another konvert may have migrated it meanwhile).
    pub(crate) fn with<T: Send>(&self, f: impl FnOnce(&mut Client) -> Result<T> + Send) -> Result<T> {
        outside_runtime(|| self.with_here(f))
    }

    fn with_here<T>(&self, f: impl FnOnce(&mut Client) -> Result<T>) -> Result<T> {
        let mut guard = self.lock();
        let client = match guard.take() {
            Some(c) if !c.is_closed() => guard.insert(c),
            _ => {
                let mut c = self.open()?;
                let found = pg_migrations::migrate(&mut c, &self.target, 0)?;
                if found < LATEST {
                    return Err(Error::Connection {
                        target: self.target.clone(),
                        message: format!(
                            "the database was reset to schema version {found} while konvert ran; restart konvert"
                        ),
                    });
                }
                self.generation.fetch_add(1, Ordering::SeqCst);
                guard.insert(c)
            }
        };
        f(client)
    }

    fn all<T: DeserializeOwned + Send>(&self, what: &'static str, sql: &str) -> Result<Vec<T>> {
        self.with(|c| {
            let rows = c.query(sql, &[]).map_err(|e| self.db(e))?;
            rows.iter()
                .map(|r| decode(what, r.try_get::<_, &[u8]>(0).map_err(|e| self.db(e))?))
                .collect()
        })
    }
}

impl Drop for PgRecords {
    fn drop(&mut self) {
        // The client's runtime must not be dropped inside another runtime either.
        let client = self.client.get_mut().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(client) = client {
            outside_runtime(move || drop(client));
        }
    }
}

/// Runs `op` here, or on a plain thread if this thread is inside a tokio runtime (where the
/// blocking client would panic).
pub(crate) fn outside_runtime<T: Send>(op: impl FnOnce() -> T + Send) -> T {
    if tokio::runtime::Handle::try_current().is_err() {
        return op();
    }
    std::thread::scope(|s| match s.spawn(op).join() {
        Ok(value) => value,
        // A panic in `op` is a bug: pass it on unchanged.
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

pub(crate) fn int(what: &'static str, n: u64) -> Result<i64> {
    i64::try_from(n).map_err(|_| Error::Encode {
        what,
        message: format!("{n} does not fit a bigint"),
    })
}

impl Records for PgRecords {
    fn put_plan(&self, plan: &DayPlan) -> Result<()> {
        self.with(|c| {
            let mut tx = c.transaction().map_err(|e| self.db(e))?;
            self.put_plan_in(&mut tx, plan)?;
            tx.commit().map_err(|e| self.db(e))
        })
    }

    fn plans(&self) -> Result<Vec<DayPlan>> {
        self.all("plan", "SELECT value FROM plans ORDER BY key")
    }

    fn is_registered(&self, envelope: &[u8; 32]) -> Result<bool> {
        self.with(|c| {
            let row = c
                .query_opt("SELECT 1 FROM packets WHERE envelope = $1", &[&envelope.as_slice()])
                .map_err(|e| self.db(e))?;
            Ok(row.is_some())
        })
    }

    fn register(&self, packet: &PacketEntry, pages: &[PageEntry]) -> Result<bool> {
        let entry = encode("packet", packet)?;
        let rows = pages
            .iter()
            .map(|p| Ok((p, encode("page", p)?)))
            .collect::<Result<Vec<_>>>()?;
        let rows = last_per_key(rows, |(p, _)| p.key.to_bytes().to_vec());
        let keys: Vec<Vec<u8>> = rows.iter().map(|(p, _)| p.key.to_bytes().to_vec()).collect();
        let envelopes: Vec<&[u8]> = rows.iter().map(|(p, _)| p.key.envelope.as_slice()).collect();
        let files: Vec<i64> = rows.iter().map(|(p, _)| i64::from(p.key.file)).collect();
        let numbers: Vec<i64> = rows.iter().map(|(p, _)| i64::from(p.key.page)).collect();
        let digests: Vec<&[u8]> = rows.iter().map(|(p, _)| p.digest.as_slice()).collect();
        let values: Vec<&[u8]> = rows.iter().map(|(_, v)| v.as_slice()).collect();
        let fresh = self.with(|c| {
            let mut tx = c.transaction().map_err(|e| self.db(e))?;
            let inserted = tx
                .execute(
                    "INSERT INTO packets (envelope, site, packet_id, version, date, exam, value)
                     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (envelope) DO NOTHING",
                    &[
                        &packet.envelope.as_slice(),
                        &packet.site,
                        &packet.packet_id,
                        &i64::from(packet.version),
                        &packet.day.date.to_string(),
                        &packet.day.exam.code(),
                        &entry,
                    ],
                )
                .map_err(|e| self.db(e))?;
            if inserted == 0 {
                let old = tx
                    .query_one(
                        "SELECT value FROM packets WHERE envelope = $1",
                        &[&packet.envelope.as_slice()],
                    )
                    .map_err(|e| self.db(e))?;
                let old_bytes: &[u8] = old.try_get(0).map_err(|e| self.db(e))?;
                if old_bytes == entry.as_slice() {
                    return Ok(false);
                }
                // Registered before: the same contents, only the loader's time differs?
                let old: PacketEntry = decode("packet", old_bytes)?;
                let same = PacketEntry {
                    registered_at_unix_ms: old.registered_at_unix_ms,
                    ..packet.clone()
                } == old;
                return if same {
                    Ok(false)
                } else {
                    Err(Error::Conflict {
                        packet: packet.packet_id.clone(),
                        version: packet.version,
                    })
                };
            }
            // All pages in one statement: one round trip whatever the packet's size.
            tx.execute(
                "INSERT INTO pages (key, envelope, file, page, digest, value)
                 SELECT * FROM unnest($1::bytea[], $2::bytea[], $3::bigint[], $4::bigint[], $5::bytea[], $6::bytea[])
                 ON CONFLICT (key) DO UPDATE SET envelope = excluded.envelope, file = excluded.file,
                     page = excluded.page, digest = excluded.digest, value = excluded.value",
                &[&keys, &envelopes, &files, &numbers, &digests, &values],
            )
            .map_err(|e| self.db(e))?;
            tx.commit().map_err(|e| self.db(e))?;
            Ok(true)
        })?;
        Ok(fresh)
    }

    fn packets(&self) -> Result<Vec<PacketEntry>> {
        self.all("packet", "SELECT value FROM packets ORDER BY envelope")
    }

    fn pages(&self) -> Result<Vec<PageEntry>> {
        self.all("page", "SELECT value FROM pages ORDER BY key")
    }

    fn put_outcomes(&self, outcomes: &[PageOutcome]) -> Result<()> {
        let rows = outcomes
            .iter()
            .map(|o| Ok((o, encode("outcome", o)?)))
            .collect::<Result<Vec<_>>>()?;
        let rows = last_per_key(rows, |(o, _)| o.key.to_bytes().to_vec());
        let keys: Vec<Vec<u8>> = rows.iter().map(|(o, _)| o.key.to_bytes().to_vec()).collect();
        let digests: Vec<&[u8]> = rows.iter().map(|(o, _)| o.digest.as_slice()).collect();
        let dates: Vec<String> = rows.iter().map(|(o, _)| o.day.date.to_string()).collect();
        let exams: Vec<&str> = rows.iter().map(|(o, _)| o.day.exam.code()).collect();
        let sites: Vec<&str> = rows.iter().map(|(o, _)| o.site.as_str()).collect();
        let values: Vec<&[u8]> = rows.iter().map(|(_, v)| v.as_slice()).collect();
        self.with(|c| {
            let mut tx = c.transaction().map_err(|e| self.db(e))?;
            tx.execute("DELETE FROM outcomes WHERE NOT (key = ANY($1))", &[&keys])
                .map_err(|e| self.db(e))?;
            tx.execute(
                "INSERT INTO outcomes (key, digest, date, exam, site, value)
                 SELECT * FROM unnest($1::bytea[], $2::bytea[], $3::text[], $4::text[], $5::text[], $6::bytea[])
                 ON CONFLICT (key) DO UPDATE SET digest = excluded.digest, date = excluded.date,
                     exam = excluded.exam, site = excluded.site, value = excluded.value
                 WHERE outcomes.value IS DISTINCT FROM excluded.value",
                &[&keys, &digests, &dates, &exams, &sites, &values],
            )
            .map_err(|e| self.db(e))?;
            tx.commit().map_err(|e| self.db(e))
        })
    }

    fn outcomes(&self) -> Result<Vec<PageOutcome>> {
        self.all("outcome", "SELECT value FROM outcomes ORDER BY key")
    }

    fn put_findings(&self, found: &[Finding], now_unix_ms: u64) -> Result<Vec<String>> {
        let ids: Vec<&str> = found.iter().map(|f| f.id.as_str()).collect();
        self.with(|c| {
            let mut tx = c.transaction().map_err(|e| self.db(e))?;
            // One run at a time decides what is new and what is resolved; readers go on.
            tx.batch_execute("LOCK TABLE findings IN SHARE ROW EXCLUSIVE MODE")
                .map_err(|e| self.db(e))?;
            let mut old: HashMap<String, FindingRecord> = HashMap::new();
            for row in tx
                .query("SELECT id, value FROM findings WHERE id = ANY($1)", &[&ids])
                .map_err(|e| self.db(e))?
            {
                let id: String = row.try_get(0).map_err(|e| self.db(e))?;
                old.insert(
                    id,
                    decode("finding", row.try_get::<_, &[u8]>(1).map_err(|e| self.db(e))?)?,
                );
            }
            let open: Vec<FindingRecord> = tx
                .query("SELECT value FROM findings WHERE NOT resolved ORDER BY id", &[])
                .map_err(|e| self.db(e))?
                .iter()
                .map(|r| decode("finding", r.try_get::<_, &[u8]>(0).map_err(|e| self.db(e))?))
                .collect::<Result<_>>()?;

            // The same decisions as sled's, in the same order.
            let mut new = Vec::new();
            let mut write: Vec<FindingRecord> = Vec::new();
            let found_ids: HashSet<&str> = ids.iter().copied().collect();
            for f in found {
                let before = old.get(&f.id);
                let Some(record) = FindingRecord::found_again(before, f, now_unix_ms) else {
                    continue;
                };
                if before.is_none() {
                    new.push(f.id.clone());
                }
                write.push(record);
            }
            for old in open {
                if !found_ids.contains(old.finding.id.as_str()) {
                    write.push(FindingRecord {
                        resolved_at_unix_ms: Some(now_unix_ms),
                        ..old
                    });
                }
            }
            let write = last_per_key(write, |r| r.finding.id.as_bytes().to_vec());
            let ids: Vec<&str> = write.iter().map(|r| r.finding.id.as_str()).collect();
            let resolved: Vec<bool> = write.iter().map(|r| r.resolved_at_unix_ms.is_some()).collect();
            let values = write.iter().map(|r| encode("finding", r)).collect::<Result<Vec<_>>>()?;
            tx.execute(
                "INSERT INTO findings (id, resolved, value)
                 SELECT * FROM unnest($1::text[], $2::boolean[], $3::bytea[])
                 ON CONFLICT (id) DO UPDATE SET resolved = excluded.resolved, value = excluded.value",
                &[&ids, &resolved, &values],
            )
            .map_err(|e| self.db(e))?;
            tx.commit().map_err(|e| self.db(e))?;
            Ok(new)
        })
    }

    fn findings(&self) -> Result<Vec<FindingRecord>> {
        self.all("finding", "SELECT value FROM findings ORDER BY id")
    }

    fn decide(&self, by: &str, role: Role, at_unix_ms: u64, kind: DecisionKind) -> Result<Decision> {
        self.with(|c| {
            let mut tx = c.transaction().map_err(|e| self.db(e))?;
            let decision = self.decide_in(&mut tx, by, role, at_unix_ms, kind)?;
            tx.commit().map_err(|e| self.db(e))?;
            Ok(decision)
        })
    }

    fn decisions(&self) -> Result<Vec<Decision>> {
        self.all("decision", "SELECT value FROM decisions ORDER BY seq")
    }

    fn put_answer(&self, answer: &PacketAnswer) -> Result<bool> {
        let value = encode("answer", answer)?;
        let version = int("answer", u64::from(answer.version))?;
        self.with(|c| {
            let mut tx = c.transaction().map_err(|e| self.db(e))?;
            let old = tx
                .query_opt(
                    "SELECT value FROM answers WHERE digest = $1 FOR UPDATE",
                    &[&answer.digest.as_slice()],
                )
                .map_err(|e| self.db(e))?;
            // The time it was made is not a change: only what it says is.
            if let Some(old) = old {
                let old: PacketAnswer = decode("answer", old.try_get::<_, &[u8]>(0).map_err(|e| self.db(e))?)?;
                let unchanged = PacketAnswer {
                    answered_at_unix_ms: answer.answered_at_unix_ms,
                    ..old
                } == *answer;
                if unchanged {
                    return Ok(false);
                }
            }
            tx.execute(
                "INSERT INTO answers (digest, site, packet_id, version, value) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (digest) DO UPDATE SET site = excluded.site, packet_id = excluded.packet_id,
                     version = excluded.version, value = excluded.value",
                &[
                    &answer.digest.as_slice(),
                    &answer.site,
                    &answer.packet_id,
                    &version,
                    &value,
                ],
            )
            .map_err(|e| self.db(e))?;
            tx.commit().map_err(|e| self.db(e))?;
            Ok(true)
        })
    }

    fn answers(&self) -> Result<Vec<PacketAnswer>> {
        self.all("answer", "SELECT value FROM answers ORDER BY digest")
    }

    fn hold_images(&self, images: &[ImageRef]) -> Result<usize> {
        let rows = images
            .iter()
            .map(|i| Ok((i, encode("image", i)?)))
            .collect::<Result<Vec<_>>>()?;
        // The first of a digest given twice, as sled's insert-if-absent keeps.
        let mut seen = HashSet::new();
        let rows: Vec<_> = rows.into_iter().filter(|(i, _)| seen.insert(i.sha256)).collect();
        let shas: Vec<&[u8]> = rows.iter().map(|(i, _)| i.sha256.as_slice()).collect();
        let gone: Vec<bool> = rows.iter().map(|(i, _)| i.deleted.is_some()).collect();
        let values: Vec<&[u8]> = rows.iter().map(|(_, v)| v.as_slice()).collect();
        self.with(|c| {
            let new = c
                .execute(
                    "INSERT INTO images (sha256, deleted, value)
                     SELECT * FROM unnest($1::bytea[], $2::boolean[], $3::bytea[])
                     ON CONFLICT (sha256) DO NOTHING",
                    &[&shas, &gone, &values],
                )
                .map_err(|e| self.db(e))?;
            Ok(usize::try_from(new).unwrap_or(usize::MAX))
        })
    }

    fn images(&self) -> Result<Vec<ImageRef>> {
        self.all("image", "SELECT value FROM images ORDER BY sha256")
    }

    fn images_deleted(&self, sha256: &[[u8; 32]], removal: &Removal) -> Result<()> {
        let shas: Vec<&[u8]> = sha256.iter().map(|s| s.as_slice()).collect();
        self.with(|c| {
            let mut tx = c.transaction().map_err(|e| self.db(e))?;
            let rows = tx
                .query("SELECT value FROM images WHERE sha256 = ANY($1) FOR UPDATE", &[&shas])
                .map_err(|e| self.db(e))?;
            for row in rows {
                let old: ImageRef = decode("image", row.try_get::<_, &[u8]>(0).map_err(|e| self.db(e))?)?;
                let image = deleted(old, removal);
                tx.execute(
                    "UPDATE images SET deleted = true, value = $2 WHERE sha256 = $1",
                    &[&image.sha256.as_slice(), &encode("image", &image)?],
                )
                .map_err(|e| self.db(e))?;
            }
            tx.commit().map_err(|e| self.db(e))
        })
    }

    fn add_hold(&self, hold: NewHold) -> Result<Hold> {
        self.with(|c| {
            let mut tx = c.transaction().map_err(|e| self.db(e))?;
            // Numbers without gaps, as sled's counter gives: one hold at a time.
            tx.batch_execute("LOCK TABLE holds IN EXCLUSIVE MODE")
                .map_err(|e| self.db(e))?;
            let next: i64 = tx
                .query_one("SELECT coalesce(max(id), 0) + 1 FROM holds", &[])
                .map_err(|e| self.db(e))?
                .try_get(0)
                .map_err(|e| self.db(e))?;
            let id = u64::try_from(next).map_err(|_| Error::Corrupt {
                what: "hold",
                message: format!("hold number {next}"),
            })?;
            let hold = hold.numbered(id);
            tx.execute(
                "INSERT INTO holds (id, released, value) VALUES ($1, false, $2)",
                &[&next, &encode("hold", &hold)?],
            )
            .map_err(|e| self.db(e))?;
            tx.commit().map_err(|e| self.db(e))?;
            Ok(hold)
        })
    }

    fn release_hold(&self, id: u64, release: Release) -> Result<Hold> {
        let key = int("hold", id)?;
        self.with(|c| {
            let mut tx = c.transaction().map_err(|e| self.db(e))?;
            let Some(row) = tx
                .query_opt("SELECT value FROM holds WHERE id = $1 FOR UPDATE", &[&key])
                .map_err(|e| self.db(e))?
            else {
                return Err(Error::UnknownHold { id });
            };
            let hold = released(
                decode("hold", row.try_get::<_, &[u8]>(0).map_err(|e| self.db(e))?)?,
                release,
            )?;
            tx.execute(
                "UPDATE holds SET released = true, value = $2 WHERE id = $1",
                &[&key, &encode("hold", &hold)?],
            )
            .map_err(|e| self.db(e))?;
            tx.commit().map_err(|e| self.db(e))?;
            Ok(hold)
        })
    }

    fn holds(&self) -> Result<Vec<Hold>> {
        self.all("hold", "SELECT value FROM holds ORDER BY id")
    }
}

impl PgRecords {
    /// [`Records::put_plan`] in the caller's transaction (a plan and its mirror rows go
    /// together).
    pub(crate) fn put_plan_in(&self, tx: &mut postgres::Transaction<'_>, plan: &DayPlan) -> Result<()> {
        let key = format!("{}/{}", plan.date, plan.exam.code()).into_bytes();
        let value = encode("plan", plan)?;
        tx.execute(
            "INSERT INTO plans (key, date, exam, value) VALUES ($1, $2, $3, $4)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            &[&key, &plan.date.to_string(), &plan.exam.code(), &value],
        )
        .map_err(|e| self.db(e))?;
        Ok(())
    }

    /// [`Records::decide`] in the caller's transaction (closing an exam and its results'
    /// mirror rows go together).
    pub(crate) fn decide_in(
        &self,
        tx: &mut postgres::Transaction<'_>,
        by: &str,
        role: Role,
        at_unix_ms: u64,
        kind: DecisionKind,
    ) -> Result<Decision> {
        // Numbers without gaps, as sled's counter gives: one decision at a time.
        tx.batch_execute("LOCK TABLE decisions IN EXCLUSIVE MODE")
            .map_err(|e| self.db(e))?;
        let next: i64 = tx
            .query_one("SELECT coalesce(max(seq), 0) + 1 FROM decisions", &[])
            .map_err(|e| self.db(e))?
            .try_get(0)
            .map_err(|e| self.db(e))?;
        let decision = Decision {
            seq: u64::try_from(next).map_err(|_| Error::Corrupt {
                what: "decision",
                message: format!("sequence number {next}"),
            })?,
            by: by.to_owned(),
            role,
            at_unix_ms,
            kind,
        };
        let value = encode("decision", &decision)?;
        tx.execute("INSERT INTO decisions (seq, value) VALUES ($1, $2)", &[&next, &value])
            .map_err(|e| self.db(e))?;
        Ok(decision)
    }
}

#[cfg(test)]
#[path = "pg_records_tests.rs"]
mod tests;
