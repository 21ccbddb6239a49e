//! Small statistics for reports.

/// The q-quantile (0..=1) of `values` by nearest rank; `None` if empty.
pub fn quantile(values: &[f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let rank = (q.clamp(0.0, 1.0) * v.len() as f64).ceil() as usize;
    Some(v[rank.saturating_sub(1).min(v.len() - 1)])
}

/// Peak resident set size (VmHWM) of a process, in bytes, from /proc.
pub fn peak_rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The whole machine's CPU counters at one moment (the `cpu` lines of /proc/stat), so a
/// benchmark can say how busy every core was while it ran: a run that keeps every core
/// busy is bound by CPU, not by the disk or the network.
#[derive(Debug, Clone, Copy)]
pub struct MachineCpu {
    busy_ticks: u64,
    total_ticks: u64,
    cores: usize,
    at: std::time::Instant,
}

/// How busy the machine was between two [`MachineCpu`] readings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpuSpan {
    /// Cores the machine has.
    pub cores: usize,
    /// Average busy cores over the span (0..=cores).
    pub busy_cores: f64,
    /// Busy core-seconds in the span.
    pub core_seconds: f64,
}

impl MachineCpu {
    /// Reads /proc/stat; `None` where there is none (not Linux).
    pub fn now() -> Option<MachineCpu> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        Self::parse(&stat, std::time::Instant::now())
    }

    fn parse(stat: &str, at: std::time::Instant) -> Option<MachineCpu> {
        let total_line = stat.lines().find(|l| l.starts_with("cpu "))?;
        let cores = stat
            .lines()
            .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
            .count();
        let ticks: Vec<u64> = total_line
            .split_whitespace()
            .skip(1)
            .map(str::parse)
            .collect::<Result<_, _>>()
            .ok()?;
        // user nice system idle iowait irq softirq steal [guest guest_nice, already in user]
        let field = |i: usize| ticks.get(i).copied().unwrap_or(0);
        let idle = field(3) + field(4);
        let total = (0..8).map(field).sum::<u64>();
        (cores > 0 && total > 0).then_some(MachineCpu {
            busy_ticks: total - idle,
            total_ticks: total,
            cores,
            at,
        })
    }

    /// How busy the machine was from `start` (a reading taken earlier) until now.
    pub fn since(start: Option<MachineCpu>) -> Option<CpuSpan> {
        Some(start?.until(&MachineCpu::now()?))
    }

    /// How busy the machine was from `self` to `later`.
    pub fn until(&self, later: &MachineCpu) -> CpuSpan {
        let total = later.total_ticks.saturating_sub(self.total_ticks).max(1) as f64;
        let busy = later.busy_ticks.saturating_sub(self.busy_ticks) as f64;
        let busy_cores = busy / total * self.cores as f64;
        let wall = later.at.saturating_duration_since(self.at).as_secs_f64();
        CpuSpan {
            cores: self.cores,
            busy_cores,
            core_seconds: busy_cores * wall,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_by_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), Some(50.0));
        assert_eq!(quantile(&v, 0.99), Some(99.0));
        assert_eq!(quantile(&v, 1.0), Some(100.0));
        assert_eq!(quantile(&[], 0.5), None);
        assert!(peak_rss_bytes(std::process::id()).unwrap() > 0);
    }

    #[test]
    fn machine_cpu_counts_busy_cores_between_readings() {
        let t0 = std::time::Instant::now();
        let t1 = t0 + std::time::Duration::from_secs(2);
        let a = MachineCpu::parse("cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2\ncpu1 3 4\nintr 5\n", t0).unwrap();
        // 2 s later on 2 cores: 400 ticks passed, 300 of them busy.
        let b = MachineCpu::parse("cpu  300 0 150 900 50 0 0 0 0 0\ncpu0 1 2\ncpu1 3 4\n", t1).unwrap();
        let span = a.until(&b);
        assert_eq!(span.cores, 2);
        assert!((span.busy_cores - 1.5).abs() < 1e-9, "{span:?}");
        assert!((span.core_seconds - 3.0).abs() < 1e-9, "{span:?}");
        assert!(MachineCpu::parse("intr 5\n", t0).is_none());
        assert!(MachineCpu::now().is_some(), "/proc/stat is readable on Linux");
    }
}
