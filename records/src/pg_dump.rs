//! A consistent copy of the records on PostgreSQL, with PostgreSQL's own tools: `pg_dump`
//! (one snapshot of the whole database, so consistent by itself, in its custom format)
//! and `pg_restore` into an empty database.
//!
//! The tools get the connection as libpq settings built from the records' URL, with the
//! same TLS rule konvert's own client keeps (plain only to this machine unless the URL
//! says `sslmode=disable`; elsewhere TLS verifying the server against `sslrootcert`). The
//! password goes to them in their environment (`PGPASSWORD`), never on a command line
//! (which every user of the machine can read) nor in a message.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use postgres::config::{Host, SslMode};

use crate::pg_records::outside_runtime;
use crate::{Error, PgRecords, Result};

/// Where Debian's postgresql-15 puts its tools (not on PATH unless postgresql-client is
/// installed too).
const DEBIAN_BIN: &str = "/usr/lib/postgresql/15/bin";

/// The most of a tool's own error output kept in a message.
const MAX_TOOL_OUTPUT: usize = 4096;

/// What [`dump`] wrote.
#[derive(Debug, Clone)]
pub struct RecordsDump {
    /// Where the records were: hosts, ports, database and user (never the password).
    pub target: String,
    /// The dump file's size.
    pub bytes: u64,
    /// The `pg_dump` that made it.
    pub tool: PathBuf,
}

/// Finds PostgreSQL's tool `name`: in `KONVERT_PG_BIN` if set, else on PATH, else in
/// Debian's PostgreSQL 15 folder.
pub fn find_tool(name: &'static str) -> Result<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(dir) = std::env::var_os("KONVERT_PG_BIN") {
        dirs.push(PathBuf::from(dir));
    }
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    dirs.push(PathBuf::from(DEBIAN_BIN));
    dirs.into_iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| Error::Tool {
            tool: name,
            target: String::new(),
            message: format!(
                "{name} is not on PATH nor in {DEBIAN_BIN}; install PostgreSQL's client tools (Debian: apt install \
                 postgresql-client-15) — nothing was written"
            ),
        })
}

/// One libpq `key=value` setting, the value quoted as libpq reads it.
fn setting(key: &str, value: &str) -> String {
    format!("{key}='{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// The libpq connection settings of `records` (without the password) and the password.
fn libpq(records: &PgRecords) -> Result<(String, Option<OsString>)> {
    let config = records.config();
    let mut out = Vec::new();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|h| match h {
            Host::Tcp(name) => name.clone(),
            Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    if !hosts.is_empty() {
        out.push(setting("host", &hosts.join(",")));
    }
    if !config.get_hostaddrs().is_empty() {
        let addrs: Vec<String> = config.get_hostaddrs().iter().map(|a| a.to_string()).collect();
        out.push(setting("hostaddr", &addrs.join(",")));
    }
    if !config.get_ports().is_empty() {
        let ports: Vec<String> = config.get_ports().iter().map(|p| p.to_string()).collect();
        out.push(setting("port", &ports.join(",")));
    }
    if let Some(user) = config.get_user() {
        out.push(setting("user", user));
    }
    if let Some(db) = config.get_dbname() {
        out.push(setting("dbname", db));
    }
    if let Some(options) = config.get_options() {
        out.push(setting("options", options));
    }
    let timeout = config.get_connect_timeout().copied().unwrap_or(Duration::from_secs(10));
    out.push(setting("connect_timeout", &timeout.as_secs().max(1).to_string()));
    match config.get_ssl_mode() {
        SslMode::Disable => out.push(setting("sslmode", "disable")),
        // konvert's client verifies the server's chain and name (rustls): libpq's verify-full.
        _ => {
            out.push(setting("sslmode", "verify-full"));
            if let Some(ca) = records.root_cert() {
                out.push(setting("sslrootcert", ca));
            }
        }
    }
    let password = config
        .get_password()
        .map(|p| OsString::from(String::from_utf8_lossy(p).into_owned()));
    Ok((out.join(" "), password))
}

/// Runs a PostgreSQL tool with the records' connection; its own error output, bounded,
/// goes into the error.
fn run_tool(
    tool: &'static str,
    path: &Path,
    records: &PgRecords,
    args: &[OsString],
    password: Option<OsString>,
) -> Result<()> {
    let mut cmd = Command::new(path);
    cmd.args(args)
        .env_remove("PGPASSWORD")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(p) = password {
        cmd.env("PGPASSWORD", p);
    }
    let out = cmd.output().map_err(|e| Error::Tool {
        tool,
        target: records.target().to_owned(),
        message: format!("cannot run {}: {e}", path.display()),
    })?;
    if out.status.success() {
        return Ok(());
    }
    let mut said = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    if let Some((cut, _)) = said.char_indices().nth(MAX_TOOL_OUTPUT) {
        said.truncate(cut);
    }
    Err(Error::Tool {
        tool,
        target: records.target().to_owned(),
        message: format!("{} failed ({}): {said}", path.display(), out.status),
    })
}

/// Dumps the records at `url` into the new file `file` with `pg_dump` (custom format, one
/// snapshot of the whole database). A failed dump leaves no file behind.
pub fn dump(url: &str, file: &Path) -> Result<RecordsDump> {
    let tool = find_tool("pg_dump")?;
    let records = PgRecords::configure(url)?;
    let (conninfo, password) = libpq(&records)?;
    let args: Vec<OsString> = vec![
        "--format=custom".into(),
        "--no-password".into(),
        "--file".into(),
        file.as_os_str().to_owned(),
        "--dbname".into(),
        conninfo.into(),
    ];
    if let Err(e) = run_tool("pg_dump", &tool, &records, &args, password) {
        let _ = std::fs::remove_file(file);
        return Err(e);
    }
    let bytes = std::fs::metadata(file)
        .map_err(|e| Error::Tool {
            tool: "pg_dump",
            target: records.target().to_owned(),
            message: format!("it wrote no {}: {e}", file.display()),
        })?
        .len();
    Ok(RecordsDump {
        target: records.target().to_owned(),
        bytes,
        tool,
    })
}

/// The tables, views and sequences in `records`' database outside PostgreSQL's own
/// schemas: how many, and a few names.
fn user_relations(records: &PgRecords) -> Result<(i64, Vec<String>)> {
    outside_runtime(|| {
        let mut client = records.open()?;
        let db = |e| records.db(e);
        let rows = client
            .query(
                "SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'
                   AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
                 ORDER BY 1",
                &[],
            )
            .map_err(db)?;
        let names = rows
            .iter()
            .map(|r| r.try_get::<_, String>(0).map_err(db))
            .collect::<Result<Vec<_>>>()?;
        Ok((names.len() as i64, names.into_iter().take(3).collect()))
    })
}

/// Restores the dump `file` into the database at `url`, which must be empty (made with
/// `createdb` and nothing in it): refused untouched otherwise. One transaction: restored
/// whole or not at all. Returns where (no password).
pub fn restore_into_empty(url: &str, file: &Path) -> Result<String> {
    let tool = find_tool("pg_restore")?;
    let records = PgRecords::configure(url)?;
    check_empty(&records)?;
    let (conninfo, password) = libpq(&records)?;
    let args: Vec<OsString> = vec![
        "--no-password".into(),
        // The restoring center's user owns what it restores; the dumping side's roles and
        // grants need not exist here.
        "--no-owner".into(),
        "--no-privileges".into(),
        "--exit-on-error".into(),
        "--single-transaction".into(),
        "--dbname".into(),
        conninfo.into(),
        file.as_os_str().to_owned(),
    ];
    run_tool("pg_restore", &tool, &records, &args, password)?;
    Ok(records.target().to_owned())
}

/// Refuses (with what is there) a database that holds any table, view or sequence.
pub fn check_empty_database(url: &str) -> Result<()> {
    check_empty(&PgRecords::configure(url)?)
}

fn check_empty(records: &PgRecords) -> Result<()> {
    let (count, some) = user_relations(records)?;
    if count > 0 {
        return Err(Error::NotEmpty {
            target: records.target().to_owned(),
            count,
            some: some.join(", "),
        });
    }
    Ok(())
}
