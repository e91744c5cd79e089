//! What string ids cost against integer ids, measured in one run on the same data: two
//! collections of N random vectors (integer ids `i`, string ids `"docs/file-{i/8}.md#{i%8}"`),
//! then interleaved short passes of: upsert throughput (batches of 1,000, buffered log),
//! `get` of random ids, top-10 HNSW search and top-10 exact search (each hit's id read back).
//!
//! ```sh
//! cargo run --release --example id_kinds -- [--rows 200000] [--dim 64] [--passes 5]
//! ```

use std::time::{Duration, Instant};

use cairndb::{
    Collection, CollectionConfig, Database, Durability, Id, IdType, Metric, Options, Record,
    SearchRequest,
};

type BoxError = Box<dyn std::error::Error>;

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn vector(&mut self, dim: usize) -> Vec<f32> {
        (0..dim)
            .map(|_| (self.next() >> 40) as f32 / (1u64 << 24) as f32 - 0.5)
            .collect()
    }
}

fn id(t: IdType, i: u64) -> Id {
    match t {
        IdType::Int => Id::Int(i),
        IdType::Str => Id::Str(format!("docs/file-{}.md#{}", i / 8, i % 8)),
    }
}

/// Upserts rows `from..to` in batches of 1,000; returns the time taken.
fn load(c: &Collection, t: IdType, from: u64, to: u64, dim: usize) -> Result<Duration, BoxError> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ from);
    let start = Instant::now();
    for b in (from..to).step_by(1000) {
        let recs: Vec<Record> = (b..(b + 1000).min(to))
            .map(|i| Record::new(id(t, i), rng.vector(dim)))
            .collect();
        c.upsert(recs)?;
    }
    Ok(start.elapsed())
}

fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().collect();
    let rows: u64 = arg(&args, "--rows", 200_000);
    let dim: usize = arg(&args, "--dim", 64);
    let passes: usize = arg(&args, "--passes", 5);
    let dir = tempfile::tempdir()?;
    let db = Database::open_with(
        dir.path(),
        Options::default().durability(Durability::buffered()),
    )?;
    let kinds = [IdType::Int, IdType::Str];
    let cols: Vec<Collection> = kinds
        .iter()
        .map(|&t| {
            db.create_collection(
                &format!("c_{t}"),
                CollectionConfig::new(dim, Metric::Cosine).with_id_type(t),
            )
        })
        .collect::<Result<_, _>>()?;
    // Ingest in interleaved slices, so that both kinds see the same machine.
    let mut ingest = [Duration::ZERO; 2];
    let slice = (rows / passes as u64).max(1000);
    let mut at = 0;
    while at < rows {
        let to = (at + slice).min(rows);
        for (k, c) in cols.iter().enumerate() {
            ingest[k] += load(c, kinds[k], at, to, dim)?;
        }
        at = to;
    }
    for c in &cols {
        c.flush()?;
        c.warm_up()?;
    }
    let mut get = [Duration::ZERO; 2];
    let mut hnsw = [Duration::ZERO; 2];
    let mut exact = [Duration::ZERO; 2];
    let (gets, searches, exacts) = (20_000, 2_000, 20);
    let mut rng = Rng(7);
    let queries: Vec<Vec<f32>> = (0..searches).map(|_| rng.vector(dim)).collect();
    for _ in 0..passes {
        for (k, c) in cols.iter().enumerate() {
            let mut r = Rng(11);
            let t = Instant::now();
            for _ in 0..gets / passes {
                let i = r.next() % rows;
                let got = c.get(id(kinds[k], i))?;
                assert!(got.is_some_and(|g| g.id == id(kinds[k], i)));
            }
            get[k] += t.elapsed();
            let t = Instant::now();
            for q in queries.iter().take(searches / passes) {
                let hits = c.search(&SearchRequest::new(q.clone()).k(10).ef(64))?;
                assert_eq!(hits.len(), 10);
            }
            hnsw[k] += t.elapsed();
            let t = Instant::now();
            for q in queries.iter().take(exacts / passes) {
                let hits = c.search(&SearchRequest::new(q.clone()).k(10).exact(true))?;
                assert_eq!(hits.len(), 10);
            }
            exact[k] += t.elapsed();
        }
    }
    let us = |d: Duration, n: usize| d.as_secs_f64() * 1e6 / n as f64;
    println!("{rows} rows × {dim}, {passes} interleaved passes");
    println!("| | integer ids | string ids | string / integer |");
    println!("|---|---:|---:|---:|");
    let line = |name: &str, a: f64, b: f64, unit: &str| {
        println!("| {name} | {a:.1} {unit} | {b:.1} {unit} | {:.2} |", b / a);
    };
    let rate = |d: Duration| rows as f64 / d.as_secs_f64() / 1000.0;
    line(
        "upsert (buffered log)",
        rate(ingest[0]),
        rate(ingest[1]),
        "k rows/s",
    );
    let n = gets / passes * passes;
    line("get of a random id", us(get[0], n), us(get[1], n), "µs");
    let n = searches / passes * passes;
    line("search top-10, ef 64", us(hnsw[0], n), us(hnsw[1], n), "µs");
    let n = exacts / passes * passes;
    line(
        "exact search top-10",
        us(exact[0], n),
        us(exact[1], n),
        "µs",
    );
    Ok(())
}
