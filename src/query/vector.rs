//! The vector leg: per source, an exact scan of the allowed rows or an HNSW walk (over the
//! int8 copy with exact re-scoring, or over the f32 vectors), merged into one top-k.
//!
//! A filter is first evaluated per source to a bitmap of matching live rows; the planner then
//! picks, per source, an exact scan of those rows or a graph traversal that walks every node
//! but admits only matches (see [`plan_filtered`]). Whenever the graph finds fewer than
//! `min(depth, matches)` rows, the matching rows are scanned exactly instead, so a filtered
//! search returns `k` hits whenever at least `k` records match.

use rayon::prelude::*;
use roaring::RoaringBitmap;

use super::response::{PlanKind, SourcePlan};
use super::source::{Source, View};
use super::topk::{Candidate, Loc, TopK};
use crate::error::Result;
use crate::index::hnsw::search::{Links, Scored, search as graph_search, search_by};
use crate::index::hnsw::visited::with_visited;
use crate::vector::quant::{QuantScorer, Quantized};
use crate::vector::{Metric, Vectors};

/// Rows scored per kernel block.
const BLOCK_ROWS: usize = 1024;
/// Rows per parallel task; below twice this a search runs on the calling thread.
const TASK_ROWS: usize = 64 * 1024;

/// The graph-walk cost estimate (distance computations) is divided by this: measured on GloVe
/// 50-d (390k rows), a walk costs about a third of `ef · 2m / selectivity`, and a scored row in
/// a walk costs about as much as one in an exact scan (see `plan_filtered`).
pub(crate) const GRAPH_COST_DIVISOR: f64 = 3.0;

/// A walk over a source's int8 vectors returns this many times the rows asked for, and they
/// are re-scored exactly: on GloVe 50-d, re-scoring 2× already gave the same recall@10 as
/// re-scoring all `ef` rows at ef 40–400; 4× leaves a margin for other data.
const RERANK_FACTOR: usize = 4;

/// A walk over 1-bit RaBitQ codes keeps this many times `ef` candidates: its estimates are
/// coarse (about 0.3 of the score spread at 384-d, see `rabitq.rs`), so the true neighbours
/// are found only in a longer list, which the error bound then re-scores in part. On 48-d
/// uniform data at ef 64, recall@10 went from 0.69 (factor 1) to ≥ 0.85 (factor 4, `tests/codes.rs`).
const RABITQ1_LIST_FACTOR: usize = 4;

/// Sources with fewer rows are walked over the f32 vectors: their vectors stay in cache, and
/// quantizing the query would cost more than it saves (on 16 rows the int8 walk took
/// 5.4 µs a query against 4.3 µs).
const QUANT_MIN_ROWS: usize = 1024;

/// The rows a filter lets through in one source.
pub(crate) struct Allowed {
    /// Rows the indexes matched, dead ones included.
    pub estimated: usize,
    /// Matching live rows.
    pub rows: RoaringBitmap,
}

/// What the vector leg is asked for.
#[derive(Clone, Copy)]
pub(crate) struct VectorQuery<'a> {
    pub q: &'a [f32],
    pub depth: usize,
    pub ef: usize,
    pub exact: bool,
}

/// The graph walk of one source for its best `depth` rows, by exact score. With `qz` (the
/// int8 or RaBitQ copy of the source's vectors) the walk scores the copy, and its best rows
/// are re-scored exactly from `vecs`; otherwise it scores `vecs`. Int8: the best
/// `RERANK_FACTOR · depth`. RaBitQ: every candidate whose upper bound (estimate + bound)
/// reaches the `depth`-th best lower bound (estimate − bound), the rule of the RaBitQ paper:
/// with ε₀ = 1.9 a row of the true top `depth` is missed only when its error exceeds the
/// bound. Coarser codes (1 bit) have wider bounds and so re-score more.
#[allow(clippy::too_many_arguments)]
fn walk<L: Links, V: Vectors>(
    links: &L,
    vecs: &V,
    qz: Option<&Quantized>,
    metric: Metric,
    q: &[f32],
    depth: usize,
    ef: usize,
    accept: impl Fn(u32) -> bool,
) -> Result<Vec<Scored>> {
    let Some(qz) = qz else {
        return with_visited(links.nodes(), |v| {
            graph_search(links, vecs, metric, q, depth, ef, v, accept)
        });
    };
    let sc = QuantScorer::new(qz, metric, q);
    let ef = if qz.rabitq_bits() == 1 {
        ef.saturating_mul(RABITQ1_LIST_FACTOR)
    } else {
        ef
    };
    let mut found = with_visited(links.nodes(), |v| {
        search_by(links, &sc, ef.max(depth), ef, v, accept)
    })?;
    if sc.has_bound() {
        let bounds: Vec<f32> = found
            .iter()
            .map(|f| sc.bound(f.node))
            .collect::<Result<_>>()?;
        let mut lower: Vec<f32> = found
            .iter()
            .zip(&bounds)
            .map(|(f, b)| f.score - b)
            .collect();
        if lower.len() > depth && depth > 0 {
            lower.select_nth_unstable_by(depth - 1, |a, b| b.total_cmp(a));
            let tau = lower[depth - 1];
            let mut i = 0;
            found.retain(|f| {
                let keep = f.score + bounds[i] >= tau;
                i += 1;
                keep
            });
        }
    } else {
        found.truncate(depth.saturating_mul(RERANK_FACTOR));
    }
    for f in found.iter_mut() {
        f.score = metric.score(q, vecs.vector(f.node)?);
    }
    found.sort_unstable_by(|a, b| b.cmp(a));
    found.truncate(depth);
    Ok(found)
}

/// How a filtered source is searched, and with which `ef`.
///
/// A walk that admits a fraction `s` of the nodes expands about `ef / s` nodes before it has
/// `ef` matches, scoring up to `m0` neighbours of each; an exact scan scores each of the
/// `matched` rows once. The cheaper plan wins. The walk's `ef` is raised to `ef / √s` so that,
/// with fewer matches among the nodes it walks, it still reaches enough matching neighbours.
pub(crate) fn plan_filtered(
    matched: usize,
    live: usize,
    ef: usize,
    m0: usize,
) -> (PlanKind, usize) {
    if matched == 0 {
        return (PlanKind::Skip, 0);
    }
    let s = (matched as f64 / live.max(1) as f64).min(1.0);
    let ef = ((ef as f64 / s.sqrt()).ceil() as usize).max(ef);
    let walk = ef as f64 * m0 as f64 / s / GRAPH_COST_DIVISOR;
    if matched as f64 <= walk {
        (PlanKind::Exact, 0)
    } else {
        (PlanKind::Graph, ef)
    }
}

/// The vector leg: the best `depth` candidates over every source, and the plan of each.
pub(crate) fn vector_leg<S: Source, M: Source>(
    view: &View<'_, S, M>,
    vq: VectorQuery<'_>,
    allowed: Option<&[Allowed]>,
) -> Result<(Vec<Candidate>, Vec<SourcePlan>)> {
    if vq.exact && allowed.is_none() {
        return exact_leg(view, vq);
    }
    let ns = view.segments.len();
    let one_seg = |i: usize| search_source(&view.segments[i], i, view, vq, allowed.map(|a| &a[i]));
    let segs: Vec<(TopK, SourcePlan)> = if ns > 1 {
        (0..ns)
            .into_par_iter()
            .map(one_seg)
            .collect::<Result<_>>()?
    } else {
        (0..ns).map(one_seg).collect::<Result<_>>()?
    };
    let mut top = TopK::new(vq.depth);
    let mut plans = Vec::with_capacity(view.len());
    for (t, p) in segs {
        top = top.merge(t);
        plans.push(p);
    }
    for (j, m) in view.memtables.iter().enumerate() {
        let i = ns + j;
        let (t, p) = search_source(m, i, view, vq, allowed.map(|a| &a[i]))?;
        top = top.merge(t);
        plans.push(p);
    }
    Ok((top.into_sorted(), plans))
}

/// Exact search without a filter: every live row of every source.
fn exact_leg<S: Source, M: Source>(
    view: &View<'_, S, M>,
    vq: VectorQuery<'_>,
) -> Result<(Vec<Candidate>, Vec<SourcePlan>)> {
    let top = exact_all(view, view.metric, vq.q, vq.depth)?;
    // Names are filled in by the engine when explain asks for them.
    let exact_plan = |rows: usize, live: usize| SourcePlan {
        source: String::new(),
        rows,
        live,
        estimated: live,
        matched: live,
        plan: if live > 0 {
            PlanKind::Exact
        } else {
            PlanKind::Skip
        },
        ef: None,
        fallback: false,
        returned: 0,
    };
    let mut plans: Vec<SourcePlan> = view
        .segments
        .iter()
        .map(|s| exact_plan(s.rows(), s.live()))
        .collect();
    plans.extend(
        view.memtables
            .iter()
            .map(|m| exact_plan(m.rows(), m.live())),
    );
    let top = top.into_sorted();
    for c in &top {
        plans[c.loc.source as usize].returned += 1;
    }
    Ok((top, plans))
}

/// Searches source number `i`.
fn search_source<T: Source, S: Source, M: Source>(
    src: &T,
    i: usize,
    view: &View<'_, S, M>,
    vq: VectorQuery<'_>,
    allowed: Option<&Allowed>,
) -> Result<(TopK, SourcePlan)> {
    let metric = view.metric;
    let (q, depth) = (vq.q, vq.depth);
    let (rows, live, dead) = (src.rows(), src.live(), src.dead());
    let (estimated, matched) = match allowed {
        Some(a) => (a.estimated, a.rows.len() as usize),
        None => (live, live),
    };
    let (plan, ef) = if vq.exact {
        (
            if matched == 0 {
                PlanKind::Skip
            } else {
                PlanKind::Exact
            },
            0,
        )
    } else if allowed.is_some() {
        plan_filtered(matched, live, vq.ef, view.m0)
    } else if matched == 0 {
        (PlanKind::Skip, 0)
    } else {
        (PlanKind::Graph, vq.ef)
    };
    let mut out = SourcePlan {
        source: String::new(),
        rows,
        live,
        estimated,
        matched,
        plan,
        ef: (plan == PlanKind::Graph).then_some(ef),
        fallback: false,
        returned: 0,
    };
    let loc = |row: u32| Loc {
        source: i as u32,
        row,
    };
    let mut top = TopK::new(depth);
    if plan == PlanKind::Skip {
        return Ok((top, out));
    }
    let mut found = 0;
    if plan == PlanKind::Graph {
        let any_dead = !dead.is_empty();
        let wanted = |r: u32| match allowed {
            Some(a) => a.rows.contains(r),
            None => !(any_dead && dead.contains(r)),
        };
        // A memtable's graph may hold rows appended after this view: walked through, never
        // admitted. Rows of the view not linked yet are scored exactly below.
        let linked = src.linked() as u32;
        let accept = |r: u32| r < linked && wanted(r);
        // Small sources are walked over their f32 vectors (see `QUANT_MIN_ROWS`).
        let qz = if rows >= QUANT_MIN_ROWS {
            src.quantized().filter(|qz| qz.supports(metric))
        } else {
            None
        };
        let hits = if linked > 0 {
            walk(src.graph(), src.vecs(), qz, metric, q, depth, ef, accept)?
        } else {
            Vec::new()
        };
        found = hits.len();
        for s in hits {
            top.push(Candidate {
                score: s.score,
                id: src.id_at(s.node)?,
                loc: loc(s.node),
            });
        }
        // Only the walk's own hits decide on the exact fallback below: a walk of a graph
        // with many nodes past `linked` (linked after this view was taken) admits few, and
        // then the source is scanned exactly.
        for r in (linked..rows as u32).filter(|&r| wanted(r)) {
            let score = metric.score(q, src.vecs().vector(r)?);
            if score >= top.threshold() {
                top.push(Candidate {
                    score,
                    id: src.id_at(r)?,
                    loc: loc(r),
                });
            }
        }
    }
    if plan == PlanKind::Exact || found < depth.min(matched) {
        out.fallback = plan == PlanKind::Graph;
        top = TopK::new(depth);
        // The filter's rows as they are; without a filter, every live row.
        let live_rows;
        let rows_to_scan = match allowed {
            Some(a) => &a.rows,
            None => {
                let mut all = RoaringBitmap::new();
                all.insert_range(0..rows as u32);
                live_rows = all - dead;
                &live_rows
            }
        };
        for r in rows_to_scan {
            let score = metric.score(q, src.vecs().vector(r)?);
            // The id (another cache miss) only for rows that can enter the top k.
            if score >= top.threshold() {
                top.push(Candidate {
                    score,
                    id: src.id_at(r)?,
                    loc: loc(r),
                });
            }
        }
    }
    out.returned = top.len();
    Ok((top, out))
}

/// A range of rows of one source.
#[derive(Clone, Copy)]
struct Task {
    source: usize,
    start: usize,
    end: usize,
}

/// Exact search without a filter: every live row of every source, in blocks, on rayon's pool
/// for large collections.
fn exact_all<S: Source, M: Source>(
    view: &View<'_, S, M>,
    metric: Metric,
    q: &[f32],
    k: usize,
) -> Result<TopK> {
    let tasks = plan_tasks(view);
    let total: usize = tasks.iter().map(|t| t.end - t.start).sum();
    let run = |t: &Task, top: &mut TopK| match view.segments.get(t.source) {
        Some(s) => scan(s, t, metric, q, top),
        None => scan(
            &view.memtables[t.source - view.segments.len()],
            t,
            metric,
            q,
            top,
        ),
    };
    if total < 2 * TASK_ROWS {
        let mut top = TopK::new(k);
        for t in &tasks {
            run(t, &mut top)?;
        }
        Ok(top)
    } else {
        tasks
            .par_iter()
            .map(|t| {
                let mut top = TopK::new(k);
                run(t, &mut top).map(|_| top)
            })
            .try_reduce(|| TopK::new(k), |a, b| Ok(a.merge(b)))
    }
}

fn plan_tasks<S: Source, M: Source>(view: &View<'_, S, M>) -> Vec<Task> {
    let mut tasks = Vec::new();
    for i in 0..view.len() {
        let (rows, live) = view.with(i, |s| (s.rows(), s.live()), |m| (m.rows(), m.live()));
        if live == 0 {
            continue;
        }
        let mut s = 0;
        while s < rows {
            let e = (s + TASK_ROWS).min(rows);
            tasks.push(Task {
                source: i,
                start: s,
                end: e,
            });
            s = e;
        }
    }
    tasks
}

/// Scores rows `t.start..t.end` of `src` block by block into `top`, skipping dead rows.
fn scan<T: Source>(src: &T, t: &Task, metric: Metric, q: &[f32], top: &mut TopK) -> Result<()> {
    let mut scores = vec![0f32; BLOCK_ROWS];
    let dim = q.len();
    let check_dead = !src.dead().is_empty();
    let mut s = t.start;
    while s < t.end {
        let e = (s + BLOCK_ROWS).min(t.end);
        let out = &mut scores[..e - s];
        metric.score_rows(q, src.vectors(s, e)?, dim, out);
        for (i, &score) in out.iter().enumerate() {
            let row = (s + i) as u32;
            if score >= top.threshold() && (!check_dead || src.is_live(row)) {
                top.push(Candidate {
                    score,
                    id: src.id_at(row)?,
                    loc: Loc {
                        source: t.source as u32,
                        row,
                    },
                });
            }
        }
        s = e;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::memtable::{Memtable, MemtableView};
    use crate::model::config::{CollectionConfig, Options};
    use crate::model::record::StoredDoc;
    use crate::query::SearchRequest;
    use crate::query::engine;

    const DIM: usize = 8;

    fn vector(seed: u64) -> Vec<f32> {
        let mut z = seed;
        (0..DIM)
            .map(|_| {
                z = z
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((z >> 40) as f32 / (1u64 << 24) as f32) - 0.5
            })
            .collect()
    }

    /// A memtable of `n` rows of which only `0..linked` are in the graph (as a read-only
    /// handle has it until its linker thread catches up): graph searches must still find
    /// every row, and find it as an exact search does.
    #[test]
    fn rows_not_yet_linked_are_scored_exactly() {
        let cfg = CollectionConfig::new(DIM, Metric::L2);
        let n = 300u32;
        let mt = Arc::new(Memtable::sized(&Options::default(), &cfg, n as usize, 0));
        let vecs: Vec<Vec<u8>> = (0..n)
            .map(|i| {
                vector(u64::from(i) + 1)
                    .iter()
                    .flat_map(|x| x.to_le_bytes())
                    .collect()
            })
            .collect();
        let doc = StoredDoc::encode(None, None, &Default::default()).unwrap();
        let rows: Vec<(u64, &[u8], &[u8])> = (0..n)
            .map(|i| (u64::from(i), vecs[i as usize].as_slice(), doc.as_slice()))
            .collect();
        let staged = mt.stage(1, &rows).unwrap();
        assert_eq!(staged, 0..n);
        let mut linked_so_far = 0;
        for linked in [0, 1, 150, n] {
            mt.link(linked_so_far..linked, Metric::L2).unwrap();
            linked_so_far = linked;
            let mut view = MemtableView::new(Arc::clone(&mt));
            view.rows = n;
            view.linked = linked;
            let views = [view];
            let none: [MemtableView; 0] = [];
            let v = View {
                segments: &none,
                memtables: &views,
                metric: Metric::L2,
                m0: 32,
                analyzer: mt.analyzer(),
                id_type: crate::model::id::IdType::Int,
            };
            for q in 0..20u64 {
                let qv = vector(10_000 + q);
                let ids = |exact: bool| -> Vec<u64> {
                    let req = SearchRequest::new(qv.clone()).k(10).ef(500).exact(exact);
                    engine::run(&v, &req, Some(&qv))
                        .unwrap()
                        .hits
                        .iter()
                        .map(|h| h.id.as_u64().unwrap())
                        .collect()
                };
                let (got, exact) = (ids(false), ids(true));
                // Rows past `linked` are scored exactly, and a walk with `ef` above the row
                // count reaches every linked row: the two find the same rows.
                let (mut g, mut e) = (got.clone(), exact.clone());
                g.sort_unstable();
                e.sort_unstable();
                assert_eq!(g, e, "linked {linked}, query {q}: {got:?} vs {exact:?}");
            }
        }
    }
}
