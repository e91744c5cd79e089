//! Scan throughput and memory: builds a collection of N records (vector, text, payload) in
//! one process, then scans it in a fresh one and reports records per second and the scanning
//! process's memory (peak and anonymous RSS, from /proc/self/status).
//!
//! ```sh
//! cargo run --release --example scan -- build DIR --rows 1000000 --dim 32
//! cargo run --release --example scan -- scan DIR [--filter 'bucket < 10'] [--no-vectors]
//! ```

use std::time::Instant;

use cairndb::{
    CollectionConfig, Database, Durability, Filter, Metric, Options, Record, ScanOptions,
};

type BoxError = Box<dyn std::error::Error>;

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A field of /proc/self/status in KiB.
fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn build(dir: &str, rows: u64, dim: usize) -> Result<(), BoxError> {
    let db = Database::open_with(dir, Options::default().durability(Durability::buffered()))?;
    let c = db.create_collection("s", CollectionConfig::new(dim, Metric::Dot))?;
    let t = Instant::now();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for b in (0..rows).step_by(10_000) {
        let recs: Vec<Record> = (b..(b + 10_000).min(rows))
            .map(|i| {
                let v: Vec<f32> = (0..dim)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        (x >> 40) as f32 / (1u64 << 24) as f32 - 0.5
                    })
                    .collect();
                Record::new(i, v)
                    .with_text(format!("record {i} of the scan benchmark"))
                    .with_field("bucket", (i % 100) as i64)
                    .with_field("kind", if i % 2 == 0 { "even" } else { "odd" })
            })
            .collect();
        c.upsert(recs)?;
    }
    c.flush()?;
    println!(
        "{{\"built\": {rows}, \"dim\": {dim}, \"seconds\": {:.1}, \"segments\": {}}}",
        t.elapsed().as_secs_f64(),
        c.stats().segments.len()
    );
    Ok(())
}

fn scan(dir: &str, filter: Option<Filter>, vectors: bool) -> Result<(), BoxError> {
    let db = Database::open_read_only(dir)?;
    let c = db.collection("s")?;
    let (hwm0, anon0) = (status_kib("VmHWM:"), status_kib("RssAnon:"));
    let mut o = ScanOptions::new().vectors(vectors);
    if let Some(f) = filter {
        o = o.filter(f);
    }
    let t = Instant::now();
    let mut scan = c.scan(o)?;
    let (mut n, mut checksum, mut last) = (0u64, 0u64, None);
    loop {
        let batch = scan.next_batch(1000)?;
        if batch.is_empty() {
            break;
        }
        for r in &batch {
            if last.is_some_and(|l| r.id <= l) {
                return Err(format!("ids out of order at {}", r.id).into());
            }
            last = Some(r.id.clone());
            checksum = checksum.wrapping_add(r.id.as_u64().unwrap() ^ r.vector.len() as u64);
        }
        n += batch.len() as u64;
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{{\"records\": {n}, \"seconds\": {secs:.2}, \"records_per_s\": {:.0}, \
         \"vm_hwm_mib_before\": {:.1}, \"vm_hwm_mib_after\": {:.1}, \
         \"rss_anon_mib_before\": {:.1}, \"rss_anon_mib_after\": {:.1}, \"checksum\": {checksum}}}",
        n as f64 / secs,
        hwm0 as f64 / 1024.0,
        status_kib("VmHWM:") as f64 / 1024.0,
        anon0 as f64 / 1024.0,
        status_kib("RssAnon:") as f64 / 1024.0,
    );
    Ok(())
}

fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().collect();
    match (args.get(1).map(String::as_str), args.get(2)) {
        (Some("build"), Some(dir)) => build(
            dir,
            arg(&args, "--rows", 1_000_000u64),
            arg(&args, "--dim", 32usize),
        ),
        (Some("scan"), Some(dir)) => {
            let filter = match args.iter().position(|a| a == "--filter") {
                Some(i) => Some(Filter::parse(args.get(i + 1).ok_or("--filter needs a value")?)?),
                None => None,
            };
            scan(dir, filter, !args.iter().any(|a| a == "--no-vectors"))
        }
        _ => Err("usage: scan build DIR [--rows N] [--dim D] | scan scan DIR [--filter F] [--no-vectors]".into()),
    }
}
