//! `konvert bench day-cpu`: how much of a core the real `day` process uses while its hot
//! folder is empty (a site laptop between rooms, all day long), and while it takes a
//! room's scans. It runs `day --no-push` as a child process and reads its CPU time from
//! /proc, so nothing of the benchmark itself is counted.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::bench_day::{DaySite, PIN};

/// Linux's USER_HZ: the unit of utime and stime in /proc/<pid>/stat on every platform
/// konvert runs on.
const TICKS_PER_SECOND: f64 = 100.0;

/// What to measure.
#[derive(Debug, Clone)]
pub struct DayCpuBench {
    /// How long to watch the idle day.
    pub idle: Duration,
    /// Participants in the room taken after the idle spell.
    pub participants: usize,
    /// Another `konvert-edge` binary to measure (e.g. an older build) instead of this one.
    pub edge_bin: Option<PathBuf>,
}

/// The figures of one run.
#[derive(Debug, Clone, Copy)]
pub struct DayCpu {
    /// Share of one core while idle (1.0 = a whole core).
    pub idle_core_share: f64,
    /// Share of one core from the first file landing to the room sealed.
    pub taking_core_share: f64,
    /// Share of one core idle again afterwards, the room's files still in the hot folder.
    pub idle_after_core_share: f64,
    /// How long taking the room took.
    pub taking: Duration,
    /// Files and pages taken.
    pub files: usize,
    /// Pages taken.
    pub pages: usize,
}

/// utime + stime of `pid`, in seconds.
fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).context("reading /proc/<pid>/stat")?;
    // The command name (field 2) may hold spaces; the fields after its ')' are plain.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).context("odd /proc/<pid>/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3, so utime (14) and stime (15) are at 11 and 12.
    let tick = |i: usize| -> anyhow::Result<f64> {
        Ok(fields.get(i).context("short /proc/<pid>/stat")?.parse::<u64>()? as f64)
    };
    Ok((tick(11)? + tick(12)?) / TICKS_PER_SECOND)
}

/// The day as a child process; stopped with SIGTERM (and reaped) when dropped.
struct DayProcess(Child);

impl DayProcess {
    fn start(site: &DaySite, edge_bin: Option<&Path>) -> anyhow::Result<DayProcess> {
        let mut cmd = match edge_bin {
            Some(bin) => Command::new(bin),
            None => {
                let mut c = Command::new(std::env::current_exe()?);
                c.arg("edge");
                c
            }
        };
        let child = cmd
            .args(["day", "--no-push", "--pin-env", "KONVERT_BENCH_PIN", "--config"])
            .arg(&site.toml)
            .env("KONVERT_BENCH_PIN", PIN)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting day")?;
        Ok(DayProcess(child))
    }
}

impl Drop for DayProcess {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.0.id().to_string()]).status();
        let waited = Instant::now();
        while waited.elapsed() < Duration::from_secs(5) {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the benchmark.
pub fn measure(b: &DayCpuBench) -> anyhow::Result<DayCpu> {
    let dir = tempfile::Builder::new().prefix("konvert-bench-day-cpu-").tempdir()?;
    // Settle 1.5 s and quiet 0 s, as `bench day`.
    let site = DaySite::new(dir.path(), b.participants, 1500, 0)?;
    let day = DayProcess::start(&site, b.edge_bin.as_deref())?;
    let pid = day.0.id();
    // Unlocking the token (PBKDF2) and opening the journal are start-up, not idling.
    std::thread::sleep(Duration::from_secs(3));
    let (c0, t0) = (cpu_seconds(pid)?, Instant::now());
    std::thread::sleep(b.idle);
    let idle_core_share = (cpu_seconds(pid)? - c0) / t0.elapsed().as_secs_f64();

    let (c1, t1) = (cpu_seconds(pid)?, Instant::now());
    for f in &site.files {
        // A scanner writes a file every few hundred milliseconds at ~40 pages a minute.
        std::thread::sleep(Duration::from_millis(100));
        let name = f.file_name().context("rendered file without a name")?;
        std::fs::rename(f, site.hot.join(name))?;
    }
    while site.sealed() < 2 {
        anyhow::ensure!(
            t1.elapsed() < Duration::from_secs(300),
            "the room was not sealed within 5 minutes"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let taking = t1.elapsed();
    let taking_core_share = (cpu_seconds(pid)? - c1) / taking.as_secs_f64();
    // Sealing's last writes settle, then the day idles with a full hot folder.
    std::thread::sleep(Duration::from_secs(3));
    let (c2, t2) = (cpu_seconds(pid)?, Instant::now());
    std::thread::sleep(b.idle);
    let idle_after_core_share = (cpu_seconds(pid)? - c2) / t2.elapsed().as_secs_f64();
    drop(day);
    Ok(DayCpu {
        idle_core_share,
        taking_core_share,
        idle_after_core_share,
        taking,
        files: site.files.len(),
        pages: site.pages,
    })
}

/// Prints the measurement.
pub fn run(b: &DayCpuBench) -> anyhow::Result<()> {
    let m = measure(b)?;
    println!(
        "konvert bench day-cpu — `day --no-push` as its own process{}",
        b.edge_bin
            .as_ref()
            .map(|p| format!(" ({})", p.display()))
            .unwrap_or_default()
    );
    println!(
        "| day loop, empty hot folder | {:.2} % of a core | over {:.0} s (goal < 1 %) |",
        m.idle_core_share * 100.0,
        b.idle.as_secs_f64()
    );
    println!(
        "| day loop, taking a room | {:.0} % of a core | {} pages in {} files landing every 0.1 s, until sealed: {:.1} s |",
        m.taking_core_share * 100.0,
        m.pages,
        m.files,
        m.taking.as_secs_f64()
    );
    println!(
        "| day loop, idle after the room, its {} files still in the hot folder | {:.2} % of a core | over {:.0} s |",
        m.files,
        m.idle_after_core_share * 100.0,
        b.idle.as_secs_f64()
    );
    Ok(())
}
