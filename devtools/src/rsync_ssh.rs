//! The reference konvert is compared with: `rsync` over `ssh` to a throwaway `sshd` on
//! loopback, started by the benchmark with its own config, host key and user key in a
//! temporary folder, and killed when done. The machine's own sshd (if any) is untouched.

use std::ffi::OsStr;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

/// The binaries needed and the Debian package of each.
pub const NEEDED: [(&str, &str); 4] = [
    ("sshd", "openssh-server"),
    ("ssh", "openssh-client"),
    ("ssh-keygen", "openssh-client"),
    ("rsync", "rsync"),
];

/// The oldest rsync with `--fsync`.
pub const RSYNC_WITH_FSYNC: (u32, u32, u32) = (3, 2, 4);

/// Where the needed binaries are.
#[derive(Debug, Clone)]
pub struct Tools {
    /// The ssh daemon.
    pub sshd: PathBuf,
    /// The ssh client.
    pub ssh: PathBuf,
    /// Key generator.
    pub ssh_keygen: PathBuf,
    /// rsync.
    pub rsync: PathBuf,
}

/// Binaries that are not installed: (binary, Debian package).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing(pub Vec<(&'static str, &'static str)>);

impl std::fmt::Display for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let bins: Vec<&str> = self.0.iter().map(|(b, _)| *b).collect();
        let mut pkgs: Vec<&str> = self.0.iter().map(|(_, p)| *p).collect();
        pkgs.dedup();
        write!(
            f,
            "{} not found; install them with `apt-get install {}`",
            bins.join(", "),
            pkgs.join(" ")
        )
    }
}

impl std::error::Error for Missing {}

/// Looks for the needed binaries in `path_var` (a PATH value) and then in `extra_dirs`
/// (sshd lives in /usr/sbin, which a non-root PATH often lacks).
pub fn find_in(path_var: &OsStr, extra_dirs: &[&Path]) -> Result<Tools, Missing> {
    let dirs: Vec<PathBuf> = std::env::split_paths(path_var)
        .chain(extra_dirs.iter().map(|d| d.to_path_buf()))
        .collect();
    let find = |name: &str| dirs.iter().map(|d| d.join(name)).find(|p| p.is_file());
    let mut missing = Vec::new();
    let mut found = Vec::new();
    for (bin, pkg) in NEEDED {
        match find(bin) {
            Some(p) => found.push(p),
            None => missing.push((bin, pkg)),
        }
    }
    if !missing.is_empty() {
        return Err(Missing(missing));
    }
    let [sshd, ssh, ssh_keygen, rsync]: [PathBuf; 4] = found.try_into().map_err(|_| Missing(vec![]))?;
    Ok(Tools {
        sshd,
        ssh,
        ssh_keygen,
        rsync,
    })
}

fn find_here() -> Result<Tools, Missing> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    find_in(&path, &[Path::new("/usr/sbin"), Path::new("/sbin")])
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(str::to_owned))
        .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
        .unwrap_or(false)
}

/// Finds the binaries, installing the missing packages with apt-get when running as
/// root on a Debian-like system; otherwise says what to install.
pub fn ensure_tools() -> anyhow::Result<Tools> {
    let missing = match find_here() {
        Ok(t) => return Ok(t),
        Err(m) => m,
    };
    let apt = Path::new("/usr/bin/apt-get");
    if !is_root() || !apt.is_file() {
        anyhow::bail!("{missing} (not root or no apt-get here, so the benchmark cannot install them itself)");
    }
    let mut pkgs: Vec<&str> = missing.0.iter().map(|(_, p)| *p).collect();
    pkgs.dedup();
    let install = || {
        Command::new(apt)
            .args(["install", "-y", "-q"])
            .args(&pkgs)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !install() {
        let _ = Command::new(apt)
            .args(["update", "-q"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if !install() {
            anyhow::bail!("{missing}; `apt-get install -y {}` failed", pkgs.join(" "));
        }
    }
    find_here().map_err(|m| anyhow::anyhow!("{m} (still, after apt-get install)"))
}

/// The version in `rsync --version`'s first line ("rsync  version 3.2.7  protocol version 31").
pub fn parse_rsync_version(text: &str) -> Option<(u32, u32, u32)> {
    let line = text.lines().next()?;
    let mut words = line.split_whitespace();
    words.find(|w| *w == "version")?;
    let v = words.next()?;
    let mut parts = v.split(['.', 'p', '-']).map(|p| p.parse::<u32>().ok());
    let major = parts.next()??;
    let minor = parts.next().flatten().unwrap_or(0);
    let patch = parts.next().flatten().unwrap_or(0);
    Some((major, minor, patch))
}

/// The installed rsync's version.
pub fn rsync_version(tools: &Tools) -> anyhow::Result<(u32, u32, u32)> {
    let out = Command::new(&tools.rsync)
        .arg("--version")
        .output()
        .with_context(|| format!("running {} --version", tools.rsync.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    parse_rsync_version(&text).with_context(|| format!("cannot read rsync's version from {text:?}"))
}

fn run(cmd: &mut Command, what: &str) -> anyhow::Result<()> {
    let out = cmd.output().with_context(|| format!("running {what}"))?;
    anyhow::ensure!(
        out.status.success(),
        "{what} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

/// An sshd of our own on 127.0.0.1, killed when dropped.
#[derive(Debug)]
pub struct LoopbackSshd {
    child: Child,
    port: u16,
    user_key: PathBuf,
    user: String,
    ssh: PathBuf,
}

impl LoopbackSshd {
    /// Makes keys and a config in `dir` (which must exist and stay until this is dropped),
    /// starts `sshd -D -e` on a free loopback port and checks that a key login works.
    pub fn start(tools: &Tools, dir: &Path) -> anyhow::Result<LoopbackSshd> {
        let dir = std::path::absolute(dir)?;
        let host_key = dir.join("host_ed25519");
        let user_key = dir.join("user_ed25519");
        for key in [&host_key, &user_key] {
            run(
                Command::new(&tools.ssh_keygen)
                    .args(["-q", "-t", "ed25519", "-N", "", "-C", "konvert-bench", "-f"])
                    .arg(key),
                "ssh-keygen",
            )?;
        }
        let authorized = dir.join("authorized_keys");
        std::fs::copy(user_key.with_extension("pub"), &authorized)?;
        // sshd refuses to start without its privilege separation folder.
        let _ = std::fs::create_dir_all("/run/sshd");
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port();
        let config = dir.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nPidFile none\nAuthorizedKeysFile {}\n\
                 PermitRootLogin prohibit-password\nPubkeyAuthentication yes\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nLogLevel ERROR\n",
                host_key.display(),
                authorized.display()
            ),
        )?;
        let log = dir.join("sshd.log");
        let child = Command::new(&tools.sshd)
            .arg("-f")
            .arg(&config)
            .args(["-D", "-e"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .with_context(|| format!("starting {}", tools.sshd.display()))?;
        let user = std::env::var("USER")
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| "root".into());
        let mut sshd = LoopbackSshd {
            child,
            port,
            user_key,
            user,
            ssh: tools.ssh.clone(),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            let exited = sshd.child.try_wait()?;
            if exited.is_some() || Instant::now() > deadline {
                let why = std::fs::read_to_string(&log).unwrap_or_default();
                anyhow::bail!("sshd did not start on 127.0.0.1:{port}: {}", why.trim());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        run(
            Command::new(&sshd.ssh)
                .args(sshd.ssh_args())
                .arg(sshd.target())
                .arg("true"),
            "a key login to the benchmark's sshd",
        )?;
        Ok(sshd)
    }

    fn ssh_args(&self) -> Vec<String> {
        vec![
            "-p".into(),
            self.port.to_string(),
            "-i".into(),
            self.user_key.display().to_string(),
            "-o".into(),
            "BatchMode=yes".into(),
            "-o".into(),
            "StrictHostKeyChecking=no".into(),
            "-o".into(),
            "UserKnownHostsFile=/dev/null".into(),
            "-o".into(),
            "LogLevel=ERROR".into(),
        ]
    }

    fn target(&self) -> String {
        format!("{}@127.0.0.1", self.user)
    }

    /// Copies the contents of `src` into `dest` (created) with `rsync -a` over ssh to
    /// this sshd; with `fsync`, rsync's `--fsync` makes every file durable before it counts.
    pub fn rsync(&self, tools: &Tools, src: &Path, dest: &Path, fsync: bool) -> anyhow::Result<()> {
        let shell = std::iter::once(self.ssh.display().to_string())
            .chain(self.ssh_args())
            .collect::<Vec<_>>()
            .join(" ");
        let mut cmd = Command::new(&tools.rsync);
        cmd.arg("-a").arg("-e").arg(shell);
        if fsync {
            cmd.arg("--fsync");
        }
        cmd.arg(format!("{}/", src.display()))
            .arg(format!("{}:{}/", self.target(), dest.display()));
        run(&mut cmd, "rsync over ssh")
    }
}

impl Drop for LoopbackSshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
#[path = "rsync_ssh_tests.rs"]
mod tests;
