//! One measured pass of the queries: recall, latency, and the scheduler's figures.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use cairndb::{Collection, SearchRequest};
use serde::{Deserialize, Serialize};

use crate::util::{CliResult, fail};

use super::bar;

/// The measurements of one ef.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct EfRow {
    pub ef: usize,
    /// Mean over the queries of |returned ∩ true top k| / k.
    pub recall: f64,
    /// Queries per second on one thread: queries / total search time.
    pub qps: f64,
    pub mean_us: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    /// Mean time the searching thread was on a CPU per query, in µs (Linux schedstat).
    pub cpu_us: Option<f64>,
    /// Share of the pass the searching thread was ready to run but waited for a CPU, in %.
    pub wait_pct: Option<f64>,
}

/// The process's peak resident set size (VmHWM), where the system reports it.
pub(super) fn peak_rss() -> Option<u64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line["VmHWM:".len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// Time on a CPU and time waiting in a run queue.
#[derive(Clone, Copy, Default)]
pub(super) struct Sched {
    pub(super) run: Duration,
    pub(super) wait: Duration,
}

impl Sched {
    /// Reads a Linux `schedstat` file: nanoseconds on a CPU, nanoseconds waiting, slices.
    fn read(path: &Path) -> Option<Sched> {
        let text = fs::read_to_string(path).ok()?;
        let mut it = text.split_whitespace().map(str::parse::<u64>);
        Some(Sched {
            run: Duration::from_nanos(it.next()?.ok()?),
            wait: Duration::from_nanos(it.next()?.ok()?),
        })
    }

    /// The calling thread's.
    fn thread() -> Option<Sched> {
        Sched::read(Path::new("/proc/thread-self/schedstat"))
    }

    /// Every live thread's of this process, summed.
    pub(super) fn process() -> Option<Sched> {
        let mut total = Sched::default();
        for task in fs::read_dir("/proc/self/task").ok()? {
            let t = Sched::read(&task.ok()?.path().join("schedstat"))?;
            total.run += t.run;
            total.wait += t.wait;
        }
        Some(total)
    }

    /// What was spent between `start` and `end`.
    pub(super) fn since(start: Option<Sched>, end: Option<Sched>) -> Option<Sched> {
        let (a, b) = (start?, end?);
        Some(Sched {
            run: b.run.saturating_sub(a.run),
            wait: b.wait.saturating_sub(a.wait),
        })
    }
}

/// The one-minute load average.
pub(super) fn loadavg() -> Option<f64> {
    fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Percentile (nearest rank) of sorted latencies, in µs.
fn percentile_us(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1e6
}

/// Runs every query once at `ef`, one at a time on this thread, and measures each.
pub(super) fn measure(
    coll: &Collection,
    queries: &[Vec<f32>],
    gt: &[Vec<u64>],
    k: usize,
    ef: usize,
) -> CliResult<EfRow> {
    measure_with(coll, queries, gt, ef, &format!("queries, ef {ef}"), |q| {
        SearchRequest::new(q.to_vec()).k(k).ef(ef)
    })
}

/// Runs every query once with the request `make` builds, one at a time on this thread.
pub(super) fn measure_with(
    coll: &Collection,
    queries: &[Vec<f32>],
    gt: &[Vec<u64>],
    ef: usize,
    what: &str,
    make: impl Fn(&[f32]) -> SearchRequest,
) -> CliResult<EfRow> {
    let pb = bar(queries.len(), what);
    let mut lat = Vec::with_capacity(queries.len());
    let mut recall_sum = 0.0;
    let sched_start = Sched::thread();
    let pass_start = Instant::now();
    for (i, (q, truth)) in queries.iter().zip(gt).enumerate() {
        let req = make(q);
        let started = Instant::now();
        let hits = coll.search(&req);
        let took = started.elapsed();
        let hits = hits.map_err(|e| fail(format_args!("query {i} at ef {ef}: {e}")))?;
        lat.push(took);
        let found = hits
            .iter()
            // `truth` in any order: the memory pass's input lists it best first.
            .filter(|h| truth.contains(&super::int_id(&h.id)))
            .count();
        recall_sum += found as f64 / truth.len().max(1) as f64;
        if i % 256 == 255 {
            pb.set_position(i as u64 + 1);
        }
    }
    let pass = pass_start.elapsed();
    let sched = Sched::since(sched_start, Sched::thread());
    pb.finish_and_clear();
    let total: Duration = lat.iter().sum();
    lat.sort_unstable();
    let n = queries.len().max(1) as f64;
    Ok(EfRow {
        ef,
        recall: recall_sum / n,
        qps: n / total.as_secs_f64().max(1e-9),
        mean_us: total.as_secs_f64() * 1e6 / n,
        p50_us: percentile_us(&lat, 0.50),
        p99_us: percentile_us(&lat, 0.99),
        cpu_us: sched.map(|s| s.run.as_secs_f64() * 1e6 / n),
        wait_pct: sched.map(|s| 100.0 * s.wait.as_secs_f64() / pass.as_secs_f64().max(1e-9)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let d: Vec<Duration> = (1..=100).map(Duration::from_micros).collect();
        assert_eq!(percentile_us(&d, 0.5), 50.0);
        assert_eq!(percentile_us(&d, 0.99), 99.0);
        assert_eq!(percentile_us(&d[..1], 0.99), 1.0);
    }
}
