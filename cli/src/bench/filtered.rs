//! Filtered mode: a seeded attribute, and per selectivity the exact-scan baseline and each ef.

use super::int_id;
use cairndb::{Collection, Filter, PlanKind, SearchRequest};
use rayon::prelude::*;
use serde::Serialize;

use crate::util::{CliResult, fail};

use super::bar;
use super::measure::{EfRow, measure_with};

/// The measurements of one filter selectivity.
#[derive(Serialize, Clone, Debug)]
pub(super) struct FilteredRun {
    /// Requested fraction of the base set.
    pub(super) selectivity: f64,
    /// Records that match.
    pub(super) matched: usize,
    /// An exact scan of the matching rows (`exact: true` with the filter), the baseline.
    pub(super) exact: EfRow,
    pub(super) results: Vec<EfRow>,
    /// The plan the planner chose for the segment at each ef (on the first query), and the
    /// ef of a graph walk.
    pub(super) plans: Vec<String>,
}

/// The attribute `sel` of base row `row`: a seeded pseudo-random number in [0, 1,000,000).
pub(super) fn sel_attribute(row: u64) -> i64 {
    // splitmix64
    let mut z = row.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((z ^ (z >> 31)) % 1_000_000) as i64
}

pub(super) fn parse_selectivities(list: &str) -> CliResult<Vec<f64>> {
    let mut out = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let s: f64 = part.parse().map_err(|_| {
            fail(format_args!(
                "--filter-selectivity: {part:?} is not a number"
            ))
        })?;
        if !(s > 0.0 && s <= 1.0) {
            return Err(fail(format_args!(
                "--filter-selectivity: {part} is not a fraction in (0, 1]"
            )));
        }
        out.push(s);
    }
    if out.is_empty() {
        return Err(fail("--filter-selectivity needs at least one fraction"));
    }
    Ok(out)
}

fn sel_filter(s: f64) -> Filter {
    Filter::range("sel").lt((s * 1_000_000.0).round())
}

/// Filtered mode for one selectivity: exact filtered ground truth, the exact-scan baseline,
/// then every ef.
pub(super) fn measure_filtered(
    coll: &Collection,
    queries: &[Vec<f32>],
    k: usize,
    efs: &[usize],
    s: f64,
) -> CliResult<FilteredRun> {
    let f = sel_filter(s);
    let gt = filtered_truth(coll, queries, k, &f, s)?;
    let (matched, plans) = plans(coll, &queries[0], k, efs, &f)?;
    let exact = measure_with(
        coll,
        queries,
        &gt,
        0,
        &format!("exact scan, selectivity {s}"),
        |q| {
            SearchRequest::new(q.to_vec())
                .k(k)
                .exact(true)
                .filter(f.clone())
        },
    )?;
    let mut results = Vec::with_capacity(efs.len());
    for &ef in efs {
        results.push(measure_with(
            coll,
            queries,
            &gt,
            ef,
            &format!("filtered queries, selectivity {s}, ef {ef}"),
            |q| SearchRequest::new(q.to_vec()).k(k).ef(ef).filter(f.clone()),
        )?);
    }
    Ok(FilteredRun {
        selectivity: s,
        matched,
        exact,
        results,
        plans,
    })
}

/// The exact filtered top k of each query (on rayon's pool), each row sorted.
fn filtered_truth(
    coll: &Collection,
    queries: &[Vec<f32>],
    k: usize,
    f: &Filter,
    s: f64,
) -> CliResult<Vec<Vec<u64>>> {
    let pb = bar(
        queries.len(),
        &format!("exact filtered top k, selectivity {s}"),
    );
    let mut gt = queries
        .par_iter()
        .enumerate()
        .map(|(i, q)| {
            let hits = coll
                .search(
                    &SearchRequest::new(q.clone())
                        .k(k)
                        .exact(true)
                        .filter(f.clone()),
                )
                .map_err(|e| fail(format_args!("exact filtered search for query {i}: {e}")))?;
            pb.inc(1);
            Ok(hits.into_iter().map(|h| int_id(&h.id)).collect())
        })
        .collect::<CliResult<Vec<Vec<u64>>>>()?;
    pb.finish_and_clear();
    for row in &mut gt {
        row.sort_unstable();
    }
    Ok(gt)
}

/// The records that match, and the plan the planner chooses at each ef for the largest
/// segment, from `query` with `explain`.
fn plans(
    coll: &Collection,
    query: &[f32],
    k: usize,
    efs: &[usize],
    f: &Filter,
) -> CliResult<(usize, Vec<String>)> {
    let mut matched = 0;
    let mut plans = Vec::with_capacity(efs.len());
    for &ef in efs {
        let probe = coll.query(
            &SearchRequest::new(query.to_vec())
                .k(k)
                .ef(ef)
                .filter(f.clone())
                .explain(true),
        )?;
        let explain = probe
            .explain
            .unwrap_or_else(|| unreachable!("explain was requested"));
        matched = explain.vector.iter().map(|p| p.matched).sum();
        plans.push(
            explain
                .vector
                .iter()
                .max_by_key(|p| p.rows)
                .map(|p| match p.plan {
                    PlanKind::Graph => format!("graph, ef {}", p.ef.unwrap_or(0)),
                    PlanKind::Exact => "exact".to_owned(),
                    PlanKind::Skip => "skip".to_owned(),
                })
                .unwrap_or_default(),
        );
    }
    Ok((matched, plans))
}
