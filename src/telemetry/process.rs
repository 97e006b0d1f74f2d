//! Process metrics as floats. The `metrics` crate's counters are integers, so CPU seconds would move
//! in whole-second steps; this collector reads `/proc/self` at scrape time and appends its lines to
//! the exporter's output. The metrics themselves are declared in the catalogue like every other.

use crate::telemetry::catalogue;
use std::fmt::Write as _;

use crate::telemetry::catalogue::{find, Kind};

/// Fields of `/proc/self/stat` after the command name (1-based as in proc(5), minus 2).
struct Stat {
    utime_ticks: f64,
    stime_ticks: f64,
    threads: f64,
    start_ticks: f64,
    vsize: f64,
    rss_pages: f64,
}

fn read_stat() -> Option<Stat> {
    let text = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name may hold spaces; everything after its closing parenthesis is fields 3…
    let rest = text.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let num = |i: usize| f.get(i - 3).and_then(|v| v.parse::<f64>().ok());
    Some(Stat {
        utime_ticks: num(14)?,
        stime_ticks: num(15)?,
        threads: num(20)?,
        start_ticks: num(22)?,
        vsize: num(23)?,
        rss_pages: num(24)?,
    })
}

fn boot_time_seconds() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    text.lines().find_map(|l| l.strip_prefix("btime ")).and_then(|v| v.trim().parse().ok())
}

fn max_fds() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

fn open_fds() -> Option<f64> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count() as f64)
}

fn system_value(name: libc::c_int) -> f64 {
    // SAFETY: sysconf only reads a system constant.
    let v = unsafe { libc::sysconf(name) };
    if v > 0 {
        v as f64
    } else {
        0.0
    }
}

/// The process metrics in Prometheus text format (empty where `/proc` is not available).
pub fn render() -> String {
    let mut values: Vec<(&str, f64)> = Vec::new();
    if let Some(stat) = read_stat() {
        let ticks = system_value(libc::_SC_CLK_TCK).max(1.0);
        let page = system_value(libc::_SC_PAGESIZE);
        let (user, system) = (stat.utime_ticks / ticks, stat.stime_ticks / ticks);
        values.push((catalogue::PROCESS_CPU_SECONDS, user + system));
        values.push((catalogue::PROCESS_CPU_USER_SECONDS, user));
        values.push((catalogue::PROCESS_CPU_SYSTEM_SECONDS, system));
        values.push((catalogue::PROCESS_RESIDENT_MEMORY, stat.rss_pages * page));
        values.push((catalogue::PROCESS_VIRTUAL_MEMORY, stat.vsize));
        values.push((catalogue::PROCESS_THREADS, stat.threads));
        if let Some(boot) = boot_time_seconds() {
            values.push((catalogue::PROCESS_START_TIME, boot + stat.start_ticks / ticks));
        }
    }
    if let Some(n) = open_fds() {
        values.push((catalogue::PROCESS_OPEN_FDS, n));
    }
    if let Some(n) = max_fds() {
        values.push((catalogue::PROCESS_MAX_FDS, n));
    }
    let mut out = String::new();
    for (name, value) in values {
        let Some(def) = find(name) else { continue };
        let kind = match def.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => continue,
        };
        let _ = writeln!(out, "# HELP {name} {}\n# TYPE {name} {kind}\n{name} {value}", def.help);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_seconds_are_floats_and_memory_is_reported() {
        // Burn a little CPU so the counters are not zero.
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        assert!(x > 0);
        let text = render();
        let value = |name: &str| -> f64 {
            text.lines()
                .find(|l| l.starts_with(&format!("{name} ")))
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{name} missing in {text}"))
        };
        assert!(value(catalogue::PROCESS_RESIDENT_MEMORY) > 1_000_000.0);
        assert!(value(catalogue::PROCESS_OPEN_FDS) >= 3.0);
        assert!(value(catalogue::PROCESS_MAX_FDS) >= value(catalogue::PROCESS_OPEN_FDS));
        assert!(value(catalogue::PROCESS_THREADS) >= 1.0);
        assert!(value(catalogue::PROCESS_START_TIME) > 1_700_000_000.0);
        let cpu = value(catalogue::PROCESS_CPU_SECONDS);
        assert!(
            (cpu - value(catalogue::PROCESS_CPU_USER_SECONDS) - value(catalogue::PROCESS_CPU_SYSTEM_SECONDS)).abs()
                < 1e-9
        );
        assert!(text.contains("# TYPE ges_process_cpu_seconds_total counter"));
    }
}
