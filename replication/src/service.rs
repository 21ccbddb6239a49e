//! Running as a service: the stop signals, systemd's readiness notification, and the local
//! control socket through which status commands ask a running process (which holds the
//! sled lock) instead of opening its database.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::signal::unix::{signal, Signal, SignalKind};
use tracing::debug;

/// The control socket's name in a data folder.
pub const CONTROL_SOCKET: &str = "konvert.sock";
/// The longest request a control socket reads; requests are one short line.
pub const MAX_REQUEST: usize = 4096;
/// How long a command waits for the running process's answer.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// SIGINT and SIGTERM, installed once: a signal that arrives while the process is busy
/// waits here instead of being lost between two waits.
#[derive(Debug)]
pub struct StopSignals {
    int: Signal,
    term: Signal,
}

impl StopSignals {
    /// Installs the handlers (replacing the default of dying at once).
    pub fn install() -> std::io::Result<Self> {
        Ok(StopSignals {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
        })
    }

    /// Waits for the next stop signal and names it.
    pub async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.int.recv() => "SIGINT",
            _ = self.term.recv() => "SIGTERM",
        }
    }
}

/// Tells systemd (a `Type=notify` unit) something, e.g. `READY=1` or `STOPPING=1`; does
/// nothing when not started by systemd. Errors are logged, never fatal: readiness
/// reporting must not stop a working service.
pub fn sd_notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    if let Err(e) = send_notify(&path, state) {
        debug!("cannot notify systemd ({state}): {e}");
    }
}

fn send_notify(path: &std::ffi::OsStr, state: &str) -> std::io::Result<()> {
    let sock = UnixDatagram::unbound()?;
    let bytes = std::os::unix::ffi::OsStrExt::as_bytes(path);
    match bytes.strip_prefix(b"@") {
        // An abstract socket name (systemd's default in containers and user managers).
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            sock.send_to_addr(state.as_bytes(), &addr)?;
        }
        None => {
            sock.send_to(state.as_bytes(), path)?;
        }
    }
    Ok(())
}

/// Answers one request line with a reply text; runs on the blocking pool.
pub type ControlHandler = Arc<dyn Fn(&str) -> String + Send + Sync>;

/// The control socket of a running process; removed when dropped.
#[derive(Debug)]
pub struct ControlSocket {
    path: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl ControlSocket {
    /// Listens on `data_dir/konvert.sock`, mode 0600 (only this account may ask), and
    /// answers each connection's one request with `handler`. Call it only while holding
    /// the data folder's lock: a socket file left there is then a dead process's, and is
    /// replaced.
    pub fn start(data_dir: &Path, handler: ControlHandler) -> std::io::Result<Self> {
        let path = data_dir.join(CONTROL_SOCKET);
        // Bound under a temporary name and made 0600 before it takes its real name, so no
        // one can connect while it is still open to others.
        let tmp = data_dir.join(format!("{CONTROL_SOCKET}.{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        let listener = std::os::unix::net::UnixListener::bind(&tmp)?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
        std::fs::rename(&tmp, &path)?;
        listener.set_nonblocking(true)?;
        let listener = tokio::net::UnixListener::from_std(listener)?;
        let task = tokio::spawn(async move {
            loop {
                let mut sock = match listener.accept().await {
                    Ok((sock, _)) => sock,
                    Err(e) => {
                        debug!("control socket accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let handler = handler.clone();
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 512];
                    // One line, bounded; a client that sends nothing is dropped after a while.
                    while request.len() < MAX_REQUEST && !request.contains(&b'\n') {
                        match tokio::time::timeout(Duration::from_secs(5), sock.read(&mut buf)).await {
                            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
                            Ok(Ok(n)) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    let line = String::from_utf8_lossy(&request);
                    let line = line.lines().next().unwrap_or("").trim().to_owned();
                    let answer = tokio::task::spawn_blocking(move || handler(&line))
                        .await
                        .unwrap_or_else(|e| format!("error: the request failed: {e}"));
                    if let Err(e) = sock.write_all(answer.as_bytes()).await {
                        debug!("control client went away: {e}");
                    }
                    let _ = sock.shutdown().await;
                });
            }
        });
        Ok(ControlSocket { path, task })
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Asks the process running on `data_dir` (through its control socket) and returns its
/// answer; `None` if no process answers there.
pub fn ask(data_dir: &Path, request: &str) -> Option<std::io::Result<String>> {
    let path = data_dir.join(CONTROL_SOCKET);
    let mut sock = UnixStream::connect(&path).ok()?;
    let mut exchange = || -> std::io::Result<String> {
        sock.set_read_timeout(Some(ANSWER_TIMEOUT))?;
        sock.set_write_timeout(Some(ANSWER_TIMEOUT))?;
        sock.write_all(request.as_bytes())?;
        sock.write_all(b"\n")?;
        let mut answer = String::new();
        sock.read_to_string(&mut answer)?;
        Ok(answer)
    };
    Some(exchange())
}

#[cfg(test)]
#[path = "service_tests.rs"]
mod tests;
