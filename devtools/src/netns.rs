//! A real bad link without `tc netem` (not available here): two network namespaces, one
//! for the center and one for the edge, joined by a veth pair shaped with `tc tbf` in both
//! directions. Used by the shaped-link test and `konvert bench network`.
//!
//! Nothing touches the host's own network: both veth ends are created directly inside
//! their namespaces, so the fixed addresses cannot clash with anything, and dropping the
//! [`ShapedLink`] (also while unwinding from a panic) deletes both namespaces, which
//! destroys the veth pair with them. Namespaces left by a process killed outright are
//! recognised by the pid in their name and removed by the next [`ShapedLink::create`].
//!
//! Where namespaces are not permitted (not root, no `CAP_NET_ADMIN`/`CAP_SYS_ADMIN`, no
//! `ip` or `tc`, a kernel without `tbf`), `create` returns [`Skipped`] with the reason, so
//! callers can say they did not run instead of failing or passing silently.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::Context;

/// The center's address on the veth.
pub const CENTER_IP: Ipv4Addr = Ipv4Addr::new(10, 203, 0, 1);
/// The edge's address on the veth.
pub const EDGE_IP: Ipv4Addr = Ipv4Addr::new(10, 203, 0, 2);
/// Prefix of every namespace this module makes: `konvert-<pid>-<n>-center|edge`.
const PREFIX: &str = "konvert-";
/// The veth ends' names (each lives alone in its namespace, so fixed names are unique).
const VETH_CENTER: &str = "konvert-c";
const VETH_EDGE: &str = "konvert-e";

/// Namespace pairs made by this process so far (tests may make several at once).
static SERIAL: AtomicU32 = AtomicU32::new(0);

/// How the link is shaped (the same in both directions).
#[derive(Debug, Clone, Copy)]
pub struct LinkSpec {
    /// Rate in bits per second.
    pub rate_bps: u64,
    /// Token bucket size in bytes: how far ahead of the rate a burst may run.
    pub burst_bytes: u32,
    /// Longest a packet may wait in the tbf queue (bounds the queue: rate × latency + burst);
    /// later packets are tail-dropped, as at a real bottleneck.
    pub latency: Duration,
}

impl LinkSpec {
    /// A link of `rate_bps` with the defaults argued for below.
    ///
    /// Burst 32 KiB: at least one full frame (1514 B) and at least rate/HZ even for
    /// HZ = 100 at 20 Mbit/s (25 KB), so timer granularity never holds the link below its
    /// rate; small enough (13 ms at 20 Mbit/s) not to hide the shaping in short transfers.
    /// Latency 50 ms: a queue of about 125 KB at 20 Mbit/s, a modest router buffer — BBR
    /// keeps about one BDP queued, and a bigger buffer would only hide a sender that
    /// overruns the link.
    pub fn at_rate(rate_bps: u64) -> Self {
        LinkSpec {
            rate_bps,
            burst_bytes: 32 * 1024,
            latency: Duration::from_millis(50),
        }
    }
}

/// Why the link could not be made on this machine (not a failure of the code under test).
#[derive(Debug, Clone)]
pub struct Skipped(pub String);

impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "skipped: {}", self.0)
    }
}

/// Which end of the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The center's namespace.
    Center,
    /// The edge's namespace.
    Edge,
}

/// What one end's tbf did (from `tc -s qdisc show`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QdiscStats {
    /// Bytes sent out of the qdisc (frames, Ethernet header included).
    pub sent_bytes: u64,
    /// Packets sent.
    pub sent_packets: u64,
    /// Packets dropped (queue full).
    pub dropped: u64,
    /// Times a packet had to wait for tokens: non-zero means the shaping held traffic back.
    pub overlimits: u64,
}

/// Two namespaces joined by a tbf-shaped veth; dropped, both are deleted.
#[derive(Debug)]
pub struct ShapedLink {
    center_ns: String,
    edge_ns: String,
    spec: LinkSpec,
}

/// Runs `ip`/`tc` with `args`; the error carries their stderr.
fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run `{program}`: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{program} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Whether `ip`/`tc`'s complaint means "not allowed or not supported here" (a sandbox or
/// a kernel without veth or tbf) rather than a mistake in how they were called.
fn is_permission_problem(stderr: &str) -> bool {
    let s = stderr.to_ascii_lowercase();
    [
        "operation not permitted",
        "permission denied",
        "read-only file system",
        "not supported",
        "unknown qdisc",
        "specified qdisc kind is unknown",
        "cannot open netlink socket",
        "unknown device type",
    ]
    .iter()
    .any(|p| s.contains(p))
}

/// Checks what can be checked before touching anything: tools and capabilities.
fn preflight() -> Result<(), Skipped> {
    for tool in ["ip", "tc"] {
        let found = Command::new(tool)
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        if !found {
            return Err(Skipped(format!("`{tool}` (iproute2) is not installed")));
        }
    }
    capabilities()
}

#[cfg(target_os = "linux")]
fn capabilities() -> Result<(), Skipped> {
    use rustix::thread::CapabilitySet;
    let caps = rustix::thread::capabilities(None)
        .map_err(|e| Skipped(format!("cannot read this process's capabilities: {e}")))?;
    for (cap, name) in [
        (CapabilitySet::NET_ADMIN, "CAP_NET_ADMIN"),
        (CapabilitySet::SYS_ADMIN, "CAP_SYS_ADMIN"),
    ] {
        if !caps.effective.contains(cap) {
            return Err(Skipped(format!(
                "network namespaces need {name} (run as root); this process lacks it"
            )));
        }
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn capabilities() -> Result<(), Skipped> {
    Err(Skipped("network namespaces exist only on Linux".into()))
}

/// Deletes namespaces left by konvert processes that no longer run (killed mid-test).
fn remove_stale() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = run("ip", &["netns", "del", name]);
        }
    }
}

impl ShapedLink {
    /// Makes the namespaces, the veth pair and the shaping; `Ok(Err(Skipped))` where this
    /// machine does not allow it, `Err` if it should have worked and did not.
    pub fn create(spec: LinkSpec) -> anyhow::Result<Result<ShapedLink, Skipped>> {
        if let Err(skip) = preflight() {
            return Ok(Err(skip));
        }
        remove_stale();
        let n = SERIAL.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let link = ShapedLink {
            center_ns: format!("{PREFIX}{pid}-{n}-center"),
            edge_ns: format!("{PREFIX}{pid}-{n}-edge"),
            spec,
        };
        // The first namespace is where an unprivileged sandbox says no.
        if let Err(e) = run("ip", &["netns", "add", &link.center_ns]) {
            if is_permission_problem(&e) {
                return Ok(Err(Skipped(e)));
            }
            anyhow::bail!(e);
        }
        // From here on `link` is dropped on every error path, deleting what exists.
        match link.build() {
            Ok(()) => Ok(Ok(link)),
            Err(e) if is_permission_problem(&e) => Ok(Err(Skipped(e))),
            Err(e) => Err(anyhow::anyhow!(e)),
        }
    }

    fn build(&self) -> Result<(), String> {
        let (c, e) = (self.center_ns.as_str(), self.edge_ns.as_str());
        run("ip", &["netns", "add", e])?;
        run(
            "ip",
            &[
                "-n",
                c,
                "link",
                "add",
                VETH_CENTER,
                "type",
                "veth",
                "peer",
                "name",
                VETH_EDGE,
                "netns",
                e,
            ],
        )?;
        for (ns, dev, ip) in [(c, VETH_CENTER, CENTER_IP), (e, VETH_EDGE, EDGE_IP)] {
            run("ip", &["-n", ns, "addr", "add", &format!("{ip}/30"), "dev", dev])?;
            run("ip", &["-n", ns, "link", "set", dev, "up"])?;
            // Loopback too: the center's metrics listener binds 127.0.0.1.
            run("ip", &["-n", ns, "link", "set", "lo", "up"])?;
            let (rate, burst, latency) = (
                self.spec.rate_bps.to_string(),
                self.spec.burst_bytes.to_string(),
                format!("{}us", self.spec.latency.as_micros()),
            );
            // `rate` in bare numbers is bits per second to tc; `burst` is bytes.
            run(
                "tc",
                &[
                    "-n", ns, "qdisc", "add", "dev", dev, "root", "tbf", "rate", &rate, "burst", &burst, "latency",
                    &latency,
                ],
            )?;
        }
        Ok(())
    }

    /// The shaping in force.
    pub fn spec(&self) -> LinkSpec {
        self.spec
    }

    /// The namespace of `side`.
    pub fn namespace(&self, side: Side) -> &str {
        match side {
            Side::Center => &self.center_ns,
            Side::Edge => &self.edge_ns,
        }
    }

    /// The center's address on the link at `port`.
    pub fn center_addr(&self, port: u16) -> SocketAddr {
        SocketAddr::from((CENTER_IP, port))
    }

    /// A command running `program` inside `side`'s namespace (`ip netns exec`, which
    /// execs the program in place, so the child's pid is the program's).
    pub fn command(&self, side: Side, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", self.namespace(side)]).arg(program);
        cmd
    }

    /// Starts a center process (`program args…`) in the center's namespace and waits for
    /// its "listening" line; the process is killed when the returned guard is dropped.
    pub fn spawn_center<I, S>(&self, program: impl AsRef<OsStr>, args: I) -> anyhow::Result<NsChild>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut child = self
            .command(Side::Center, program)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("starting the center in its namespace")?;
        let stdout = child.stdout.take().context("the center's stdout")?;
        let mut guard = NsChild {
            child,
            stdout: Some(BufReader::new(stdout)),
        };
        let mut line = String::new();
        if let Some(out) = guard.stdout.as_mut() {
            out.read_line(&mut line)?;
        }
        anyhow::ensure!(
            line.contains("listening"),
            "the center did not start in namespace {}: {line:?} (run the command under `ip netns exec` by hand to see why)",
            self.center_ns
        );
        Ok(guard)
    }

    /// Runs `f` on a thread of its own that has entered `side`'s namespace, on a
    /// single-threaded tokio runtime there: every socket it opens (a quinn endpoint) lives
    /// in that namespace. A panic in `f` is resumed in the caller.
    pub async fn run_in<F, Fut, T>(&self, side: Side, f: F) -> anyhow::Result<T>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = T>,
        T: Send + 'static,
    {
        let path = format!("/run/netns/{}", self.namespace(side));
        let thread = std::thread::Builder::new()
            .name(format!("netns-{side:?}").to_lowercase())
            .spawn(move || -> anyhow::Result<T> {
                enter(&path)?;
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                Ok(rt.block_on(f()))
            })?;
        match tokio::task::spawn_blocking(move || thread.join()).await? {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }

    /// What `side`'s tbf has done so far.
    pub fn qdisc_stats(&self, side: Side) -> anyhow::Result<QdiscStats> {
        let dev = match side {
            Side::Center => VETH_CENTER,
            Side::Edge => VETH_EDGE,
        };
        let out = Command::new("tc")
            .args(["-n", self.namespace(side), "-s", "qdisc", "show", "dev", dev])
            .output()
            .context("running tc")?;
        anyhow::ensure!(out.status.success(), "tc -s qdisc show failed");
        parse_qdisc_stats(&String::from_utf8_lossy(&out.stdout)).context("reading tc's statistics")
    }
}

/// Moves the calling thread into the network namespace bound at `path`.
#[cfg(target_os = "linux")]
fn enter(path: &str) -> anyhow::Result<()> {
    use std::os::fd::AsFd;
    let ns = std::fs::File::open(path).with_context(|| format!("opening {path}"))?;
    rustix::thread::move_into_link_name_space(ns.as_fd(), Some(rustix::thread::LinkNameSpaceType::Network))
        .with_context(|| format!("entering the network namespace {path}"))
}

#[cfg(not(target_os = "linux"))]
fn enter(_path: &str) -> anyhow::Result<()> {
    anyhow::bail!("network namespaces exist only on Linux")
}

/// Reads ` Sent 123 bytes 4 pkt (dropped 0, overlimits 5 requeues 0)` from `tc -s`.
fn parse_qdisc_stats(text: &str) -> Option<QdiscStats> {
    let line = text.lines().find(|l| l.trim_start().starts_with("Sent "))?;
    let words: Vec<&str> = line
        .split(|c: char| c.is_whitespace() || c == ',' || c == '(' || c == ')')
        .filter(|w| !w.is_empty())
        .collect();
    let after = |key: &str| -> Option<u64> {
        let i = words.iter().position(|w| *w == key)?;
        words.get(i + 1)?.parse().ok()
    };
    let before = |key: &str| -> Option<u64> {
        let i = words.iter().position(|w| *w == key)?;
        words.get(i.checked_sub(1)?)?.parse().ok()
    };
    Some(QdiscStats {
        sent_bytes: before("bytes")?,
        sent_packets: before("pkt")?,
        dropped: after("dropped")?,
        overlimits: after("overlimits")?,
    })
}

impl Drop for ShapedLink {
    fn drop(&mut self) {
        for ns in [&self.edge_ns, &self.center_ns] {
            if let Err(e) = run("ip", &["netns", "del", ns]) {
                tracing::warn!("removing a test network namespace: {e}");
            }
        }
    }
}

/// A process running in a namespace; dropped, it is killed and reaped.
#[derive(Debug)]
pub struct NsChild {
    child: Child,
    /// Kept open: a process printing to a closed pipe fails (Rust's `println!` panics).
    stdout: Option<BufReader<ChildStdout>>,
}

impl NsChild {
    /// Its process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for NsChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
#[path = "netns_tests.rs"]
mod tests;
