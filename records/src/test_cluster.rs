//! A throwaway PostgreSQL cluster for tests: `initdb` and `pg_ctl` in a temporary folder,
//! listening on 127.0.0.1 at a free port, trust authentication, no socket file.
//!
//! initdb refuses to run as root, so when the tests run as root (CI does) the cluster runs
//! as the system's `nobody` user through `runuser -u nobody --`, in a folder that user
//! owns; `nobody` exists on every Debian system and needs no setup, and the cluster holds
//! nothing but test data.
//!
//! Cleanup: a small guardian shell per cluster waits on a pipe from the test process; when
//! the cluster is dropped, or the test process ends however it ends (a shared cluster in a
//! `static` is never dropped), the pipe closes and the guardian stops PostgreSQL and removes
//! the folder.
//!
//! Without PostgreSQL's binaries a test says SKIPPED and passes, unless
//! `KONVERT_REQUIRE_POSTGRES=1` (CI) makes it fail.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Mutex, OnceLock};

/// Where Debian's postgresql-15 puts its binaries (not on PATH).
const DEBIAN_BIN: &str = "/usr/lib/postgresql/15/bin";

/// A running test cluster; stopped and removed when dropped.
#[derive(Debug)]
pub struct TestCluster {
    dir: PathBuf,
    bin: PathBuf,
    port: AtomicU16,
    run_as_nobody: bool,
    extra: Vec<String>,
    guardian: Mutex<Option<(Child, ChildStdin)>>,
}

fn find_bin() -> Option<PathBuf> {
    let has_both = |d: &Path| d.join("initdb").is_file() && d.join("pg_ctl").is_file();
    if let Some(dir) = std::env::var_os("KONVERT_PG_BIN") {
        // Named explicitly: that one or none (so that a test can see the SKIPPED path).
        return Some(PathBuf::from(dir)).filter(|d| has_both(d));
    }
    if has_both(Path::new(DEBIAN_BIN)) {
        return Some(PathBuf::from(DEBIAN_BIN));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).find(|d| has_both(d))
}

fn output(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    if !out.status.success() {
        panic!(
            "{cmd:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port on 127.0.0.1: {e}"))
}

impl TestCluster {
    /// A cluster shared by the whole test binary (each test makes its own database in it);
    /// `None` (after printing SKIPPED) when PostgreSQL is not installed.
    pub fn shared() -> Option<&'static TestCluster> {
        static SHARED: OnceLock<Option<TestCluster>> = OnceLock::new();
        SHARED.get_or_init(|| TestCluster::start_with(&[])).as_ref()
    }

    /// A cluster of its own (for tests that stop it or configure it); `None` (after printing
    /// SKIPPED) when PostgreSQL is not installed.
    pub fn start() -> Option<TestCluster> {
        Self::start_with(&[])
    }

    /// [`start`](Self::start) with extra server settings (`name=value` each), applied at
    /// every start.
    pub fn start_with(settings: &[&str]) -> Option<TestCluster> {
        let cluster = Self::init(settings)?;
        cluster.start_server();
        Some(cluster)
    }

    /// An initialized cluster that is not running yet, so that files can be added to its
    /// data folder ([`Self::write_file`]) before [`Self::start_again`].
    pub fn init(settings: &[&str]) -> Option<TestCluster> {
        let Some(bin) = find_bin() else {
            let why = format!(
                "PostgreSQL 15 is not installed (no initdb and pg_ctl in KONVERT_PG_BIN, {DEBIAN_BIN} \
                 or PATH); install Debian's postgresql-15"
            );
            if std::env::var("KONVERT_REQUIRE_POSTGRES").as_deref() == Ok("1") {
                panic!("{why}; KONVERT_REQUIRE_POSTGRES=1 says the PostgreSQL tests must run");
            }
            eprintln!("SKIPPED: {why}");
            return None;
        };
        let run_as_nobody = output(Command::new("id").arg("-u")) == "0";
        let dir = tempfile::Builder::new()
            .prefix("konvert-pg-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot make a temporary folder: {e}"))
            .keep();
        if run_as_nobody {
            let uid: u32 = output(Command::new("id").args(["-u", "nobody"])).parse().unwrap();
            let gid: u32 = output(Command::new("id").args(["-g", "nobody"])).parse().unwrap();
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
                .unwrap_or_else(|e| panic!("cannot give {} to nobody: {e}", dir.display()));
        }
        // The guardian first, so that even a failing initdb leaves nothing behind.
        let script = r#"trap '' INT TERM HUP
read _ignored
if [ -f "$1/data/postmaster.pid" ]; then $2 "$3/pg_ctl" -D "$1/data" -m immediate -w stop >/dev/null 2>&1; fi
rm -rf "$1""#;
        let run_as = if run_as_nobody { "runuser -u nobody --" } else { "" };
        let mut child = Command::new("sh")
            .args(["-c", script, "konvert-pg-guardian"])
            .arg(&dir)
            .arg(run_as)
            .arg(&bin)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start sh: {e}"));
        let stdin = child.stdin.take().unwrap();
        let cluster = TestCluster {
            dir,
            bin,
            port: AtomicU16::new(0),
            run_as_nobody,
            extra: settings.iter().map(|s| s.to_string()).collect(),
            guardian: Mutex::new(Some((child, stdin))),
        };
        output(cluster.command("initdb").args([
            "-D",
            "data",
            "-U",
            "konvert",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
            "--no-instructions",
        ]));
        Some(cluster)
    }

    /// A command of PostgreSQL's, run as the cluster's owner in the cluster's folder.
    fn command(&self, name: &str) -> Command {
        let program = self.bin.join(name);
        let mut cmd = if self.run_as_nobody {
            let mut c = Command::new("runuser");
            c.args(["-u", "nobody", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        // nobody may not enter the test's working folder; initdb needs a readable one.
        cmd.current_dir(&self.dir);
        cmd
    }

    /// Writes `contents` to `name` in the data folder, owned by the cluster's owner, mode 0600.
    pub fn write_file(&self, name: &str, contents: &[u8]) {
        let path = self.dir.join("data").join(name);
        std::fs::write(&path, contents).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        if self.run_as_nobody {
            let meta = std::fs::metadata(self.dir.join("data")).unwrap();
            use std::os::unix::fs::MetadataExt;
            std::os::unix::fs::chown(&path, Some(meta.uid()), Some(meta.gid())).unwrap();
        }
    }

    fn start_server(&self) {
        // A port found free can be taken before the server binds it: try a few. A restart
        // keeps the port, so that URLs handed out stay valid.
        let fixed = self.port.load(Ordering::SeqCst);
        for _ in 0..5 {
            let port = if fixed == 0 { free_port() } else { fixed };
            let mut options = format!("-c listen_addresses=127.0.0.1 -p {port} -k '' -c fsync=off");
            for s in &self.extra {
                options.push_str(&format!(" -c {s}"));
            }
            let out = self
                .command("pg_ctl")
                .args(["-D", "data", "-l", "log", "-w", "-t", "60", "-o", &options, "start"])
                .output()
                .unwrap_or_else(|e| panic!("cannot run pg_ctl: {e}"));
            if out.status.success() {
                self.port.store(port, Ordering::SeqCst);
                return;
            }
            if fixed != 0 {
                break;
            }
        }
        let log = std::fs::read_to_string(self.dir.join("log")).unwrap_or_default();
        panic!("PostgreSQL did not start in {}:\n{log}", self.dir.display());
    }

    /// Starts the server (again), on the port it had.
    pub fn start_again(&self) {
        self.start_server();
    }

    /// Stops the server at once, as a crash would (`pg_ctl stop -m immediate`).
    pub fn stop_now(&self) {
        output(
            self.command("pg_ctl")
                .args(["-D", "data", "-m", "immediate", "-w", "stop"]),
        );
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port.load(Ordering::SeqCst)
    }

    /// The URL of `database` as the superuser `konvert`.
    pub fn url(&self, database: &str) -> String {
        format!("postgresql://konvert@127.0.0.1:{}/{database}", self.port())
    }

    /// Makes an empty database `name` (dropping one of that name) and returns its URL.
    pub fn database(&self, name: &str) -> String {
        crate::pg_records::outside_runtime(|| self.create_database(name));
        self.url(name)
    }

    fn create_database(&self, name: &str) {
        let mut admin = postgres::Client::connect(&self.url("postgres"), postgres::NoTls)
            .unwrap_or_else(|e| panic!("cannot connect to the test cluster: {e}"));
        // Two statements: CREATE DATABASE cannot run in the implicit transaction of a batch.
        for sql in [
            format!("DROP DATABASE IF EXISTS \"{name}\""),
            format!("CREATE DATABASE \"{name}\""),
        ] {
            admin
                .batch_execute(&sql)
                .unwrap_or_else(|e| panic!("cannot create database {name}: {e:?}"));
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        let guardian = self.guardian.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some((mut child, stdin)) = guardian {
            // Closing the pipe tells the guardian to stop the server and remove the folder.
            drop(stdin);
            let _ = child.wait();
        }
    }
}
