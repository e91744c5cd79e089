//! Churn mode: rounds of deletes and re-inserts, then a compaction, measured after each.

use std::time::Instant;

use cairndb::{Collection, Record};
use serde::Serialize;

use crate::BenchArgs;
use crate::input::VectorFile;
use crate::util::CliResult;

use super::filtered::sel_attribute;
use super::measure::{EfRow, measure};
use super::{bar, spinner};

/// Churn mode: the index after rounds of deletes and re-inserts, and after compaction.
#[derive(Serialize, Clone, Debug)]
pub(super) struct ChurnRun {
    pub(super) rounds: usize,
    /// Records deleted and upserted again per round.
    pub(super) per_round: usize,
    pub(super) churn_s: f64,
    pub(super) churned: ChurnState,
    pub(super) compact_s: f64,
    pub(super) compacted: ChurnState,
}

#[derive(Serialize, Clone, Debug)]
pub(super) struct ChurnState {
    pub(super) segments: usize,
    pub(super) index_bytes: u64,
    pub(super) deleted_rows: usize,
    pub(super) results: Vec<EfRow>,
}

fn churn_state(
    coll: &Collection,
    queries: &[Vec<f32>],
    gt: &[Vec<u64>],
    k: usize,
    efs: &[usize],
) -> CliResult<ChurnState> {
    let stats = coll.stats();
    let mut results = Vec::with_capacity(efs.len());
    for &ef in efs {
        results.push(measure(coll, queries, gt, k, ef)?);
    }
    Ok(ChurnState {
        segments: stats.segments.len(),
        index_bytes: stats.segments.iter().map(|s| s.bytes).sum(),
        deleted_rows: stats.segments.iter().map(|s| s.deleted).sum(),
        results,
    })
}

/// Churn rounds: each deletes a seeded random half of the ids and upserts those records again.
#[allow(clippy::too_many_arguments)]
pub(super) fn run_churn(
    a: &BenchArgs,
    coll: &Collection,
    n: usize,
    with_sel: bool,
    queries: &[Vec<f32>],
    gt: &[Vec<u64>],
    efs: &[usize],
) -> CliResult<ChurnRun> {
    let started = Instant::now();
    let mut per_round = 0;
    for round in 1..=a.churn as u64 {
        let chosen: Vec<u64> = (0..n as u64)
            .filter(|&i| sel_attribute(i ^ (round << 40)) % 2 == 0)
            .collect();
        per_round = chosen.len();
        let pb = bar(
            chosen.len() * 2,
            &format!("churn round {round}: delete and re-insert"),
        );
        for chunk in chosen.chunks(10_000) {
            coll.delete(chunk)?;
            pb.inc(chunk.len() as u64);
        }
        let (rows, _) = VectorFile::open(&a.base)?;
        let mut batch = Vec::with_capacity(a.batch);
        let mut next = chosen.iter().peekable();
        for (i, v) in rows.enumerate() {
            let v = v?;
            if next.peek() != Some(&&(i as u64)) {
                continue;
            }
            next.next();
            let mut r = Record::new(i as u64, v);
            if with_sel {
                r = r.with_field("sel", sel_attribute(i as u64));
            }
            batch.push(r);
            if batch.len() >= a.batch {
                pb.inc(batch.len() as u64);
                coll.upsert(std::mem::take(&mut batch))?;
            }
        }
        if !batch.is_empty() {
            coll.upsert(batch)?;
        }
        coll.flush()?;
        pb.finish_and_clear();
    }
    let churn_s = started.elapsed().as_secs_f64();
    let churned = churn_state(coll, queries, gt, a.k, efs)?;
    let sp = spinner("compacting…");
    let started = Instant::now();
    coll.compact()?;
    let compact_s = started.elapsed().as_secs_f64();
    sp.finish_and_clear();
    let compacted = churn_state(coll, queries, gt, a.k, efs)?;
    Ok(ChurnRun {
        rounds: a.churn,
        per_round,
        churn_s,
        churned,
        compact_s,
        compacted,
    })
}
