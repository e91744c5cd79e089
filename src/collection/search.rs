//! The read path: the vector leg (HNSW or exact, per source, under an optional filter), the
//! text leg (BM25), fusion, re-ranking, and the hits.
//!
//! A *source* is one sealed segment or the memtable. A filter is first evaluated per source to
//! a bitmap of matching live rows; the planner then picks, per source, an exact scan of those
//! rows or a graph traversal that walks every node but admits only matches (see
//! [`plan_filtered`]). Whenever the graph finds fewer than `min(depth, matches)` rows, the
//! matching rows are scanned exactly instead, so a filtered search returns `k` hits whenever at
//! least `k` records match.

use rayon::prelude::*;
use roaring::RoaringBitmap;

use super::{Collection, State};
use crate::distance::{Metric, VectorProblem, prepare};
use crate::error::{Error, Result};
use crate::filter::{Filter, SourceIndex, TextSource, evaluate};
use crate::index::hnsw::default_ef;
use crate::index::hnsw::search::{Links, Scored, Vectors, search as graph_search, search_by};
use crate::index::hnsw::visited::with_visited;
use crate::index::quant::{QuantScorer, Quantized};
use crate::query::fusion::{Fused, fuse};
use crate::query::topk::{Candidate, Loc, TopK};
use crate::query::{
    Explain, PlanKind, RerankQuery, SearchRequest, SearchResponse, SourcePlan, TextPlan,
};
use crate::record::{Hit, Legs, StoredDoc};
use crate::text::bm25;

/// Rows scored per kernel block.
const BLOCK_ROWS: usize = 1024;
/// Rows per parallel task; below twice this a search runs on the calling thread.
const TASK_ROWS: usize = 64 * 1024;

/// The graph-walk cost estimate (distance computations) is divided by this: measured on GloVe
/// 50-d (390k rows), a walk costs about a third of `ef · 2m / selectivity`, and a scored row in
/// a walk costs about as much as one in an exact scan (see `plan_filtered`).
pub(crate) const GRAPH_COST_DIVISOR: f64 = 3.0;

/// A walk over a segment's int8 vectors returns this many times the rows asked for, and they
/// are re-scored exactly: on GloVe 50-d, re-scoring 2× gave the same recall@10 as re-scoring
/// all `ef` rows at ef 40–400.
const RERANK_FACTOR: usize = 4;

/// Sources with fewer rows are walked over the f32 vectors: their vectors stay in cache, and
/// quantizing the query would cost more than it saves (on 16 rows the int8 walk took
/// 5.4 µs a query against 4.3 µs).
const QUANT_MIN_ROWS: usize = 1024;

/// The graph walk of one source for its best `depth` rows, by exact score. With `qz` (the
/// int8 copy of the source's vectors) the walk scores the copy, and its best
/// `RERANK_FACTOR · depth` rows are re-scored exactly from `vecs`; otherwise it scores `vecs`.
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
    let sc = QuantScorer::new(qz, q);
    let mut found = with_visited(links.nodes(), |v| {
        search_by(links, &sc, ef.max(depth), ef, v, accept)
    })?;
    found.truncate(depth.saturating_mul(RERANK_FACTOR));
    for f in found.iter_mut() {
        f.score = metric.score(q, vecs.vector(f.node)?);
    }
    found.sort_unstable_by(|a, b| b.cmp(a));
    found.truncate(depth);
    Ok(found)
}

/// A range of rows of one source.
#[derive(Clone, Copy)]
struct Task {
    /// `None`: memtable; `Some(i)`: segment `i`.
    source: Option<usize>,
    start: usize,
    end: usize,
}

/// The rows a filter lets through in one source.
struct Allowed {
    /// Rows the indexes matched, dead ones included.
    estimated: usize,
    /// Matching live rows.
    rows: RoaringBitmap,
}

impl Collection {
    /// The `k` records that best answer the request, best first. Ties in score are broken by
    /// lower id. Shorthand for [`query`](Self::query)`(req)?.hits`.
    ///
    /// Errors: the query's dimension differs from the collection's, it holds NaN or an
    /// infinity, or (under cosine) it is all zeros; the filter is invalid; a checksum fails
    /// on a segment read.
    pub fn search(&self, req: &SearchRequest) -> Result<Vec<Hit>> {
        Ok(self.query(req)?.hits)
    }

    /// Runs a request: vector, text or hybrid, with an optional filter, fusion and
    /// re-ranking; returns the hits and, if asked, how they were found.
    pub fn query(&self, req: &SearchRequest) -> Result<SearchResponse> {
        self.check_live()?;
        req.validate()?;
        let cfg = &self.inner.config;
        let q = match &req.vector {
            Some(v) => {
                if v.len() != cfg.dim {
                    return Err(Error::DimensionMismatch {
                        id: None,
                        collection: self.inner.name.clone(),
                        expected: cfg.dim,
                        got: v.len(),
                    });
                }
                let mut q = v.clone();
                prepare(cfg.metric, &mut q).map_err(|p| match p {
                    VectorProblem::NonFinite(index) => Error::NonFiniteQuery { index },
                    VectorProblem::Zero => Error::ZeroQuery,
                })?;
                Some(q)
            }
            None => None,
        };
        let hybrid = q.is_some() && req.text.is_some();
        let rerank_n = req.rerank.as_ref().map_or(0, |r| r.1);
        let depth = if hybrid { req.leg_depth() } else { req.k }.max(rerank_n);
        if req.k == 0 {
            return Ok(SearchResponse {
                hits: Vec::new(),
                explain: None,
            });
        }

        let st = self.inner.state.read();
        let allowed = match &req.filter {
            Some(f) => Some(self.filter_rows(&st, f)?),
            None => None,
        };
        let mut explain = Explain {
            filter: req.filter.as_ref().map(ToString::to_string),
            vector: Vec::new(),
            text: None,
            depth,
            complete: true,
        };

        let vector_leg = match &q {
            Some(q) => {
                let ef = req.ef.unwrap_or_else(|| default_ef(depth)).max(depth);
                let (c, plans) = vector_leg(
                    &st,
                    cfg.metric,
                    2 * cfg.m,
                    q,
                    depth,
                    ef,
                    req.exact,
                    allowed.as_deref(),
                )?;
                let expected: usize = plans.iter().map(|p| p.matched).sum::<usize>().min(depth);
                explain.complete &= c.len() >= expected;
                explain.vector = plans;
                // Plans are built without names (no allocation per query); explain adds them.
                if req.explain {
                    for (i, p) in explain.vector.iter_mut().enumerate() {
                        p.source = match st.segments.get(i) {
                            Some(slot) => format!("segment {}", slot.seg.id),
                            None => "memtable".to_owned(),
                        };
                    }
                }
                Some(c)
            }
            None => None,
        };
        let text_leg = match &req.text {
            Some(text) => {
                let (c, plan) = self.text_leg(&st, text, depth, allowed.as_deref())?;
                explain.text = Some(plan);
                Some(c)
            }
            None => None,
        };

        let fused: Vec<Fused> = match (vector_leg, text_leg) {
            (Some(v), Some(t)) => fuse(req.fusion, &v, &t),
            (Some(only), None) | (None, Some(only)) => only
                .into_iter()
                .map(|c| Fused {
                    cand: c,
                    score: c.score,
                    vector: None,
                    text: None,
                })
                .collect(),
            (None, None) => Vec::new(),
        };

        let mut hits: Vec<Hit> = match &req.rerank {
            Some((reranker, top_n)) => {
                let pool: Vec<Hit> = fused
                    .iter()
                    .take((*top_n).max(req.k))
                    .map(|f| hit(&st, f, hybrid, true, true))
                    .collect::<Result<_>>()?;
                let scores = reranker.rerank(
                    &RerankQuery {
                        text: req.text.as_deref(),
                        vector: q.as_deref(),
                    },
                    &pool,
                )?;
                if scores.len() != pool.len() || scores.iter().any(|s| s.is_nan()) {
                    return Err(Error::InvalidArgument(format!(
                        "the re-ranker returned {} scores for {} candidates (or a NaN)",
                        scores.len(),
                        pool.len()
                    )));
                }
                let mut pool: Vec<Hit> = pool
                    .into_iter()
                    .zip(scores)
                    .map(|(mut h, s)| {
                        h.score = s;
                        if !req.with_text {
                            h.text = None;
                        }
                        if !req.with_payload {
                            h.payload = None;
                        }
                        h
                    })
                    .collect();
                pool.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.id.cmp(&b.id)));
                pool.truncate(req.k);
                pool
            }
            None => fused
                .iter()
                .take(req.k)
                .map(|f| hit(&st, f, hybrid, req.with_text, req.with_payload))
                .collect::<Result<_>>()?,
        };
        hits.truncate(req.k);
        Ok(SearchResponse {
            hits,
            explain: req.explain.then_some(explain),
        })
    }

    /// Evaluates the filter in every source: matching live rows, per source (segments in
    /// order, then the memtable).
    fn filter_rows(&self, st: &State, f: &Filter) -> Result<Vec<Allowed>> {
        let analyzer = st.memtable.analyzer();
        let mut out = Vec::with_capacity(st.segments.len() + 1);
        for slot in &st.segments {
            let seg = &*slot.seg;
            let idx = SourceIndex {
                rows: seg.rows as u32,
                fields: seg.fields()?,
                text: TextSource::Segment(seg),
                analyzer,
            };
            let m = evaluate(f, &idx)?;
            let estimated = m.len() as usize;
            out.push(Allowed {
                estimated,
                rows: m - &slot.deleted,
            });
        }
        let mt = &st.memtable;
        let idx = SourceIndex {
            rows: mt.rows() as u32,
            fields: mt.fields(),
            text: TextSource::Index(mt.text()),
            analyzer,
        };
        let m = evaluate(f, &idx)?;
        out.push(Allowed {
            estimated: m.len() as usize,
            rows: m - mt.dead(),
        });
        Ok(out)
    }

    /// The text leg: BM25 over every source with collection-wide statistics (N, df and the
    /// average length over live documents), restricted to the filter's rows if there is one.
    fn text_leg(
        &self,
        st: &State,
        text: &str,
        depth: usize,
        allowed: Option<&[Allowed]>,
    ) -> Result<(Vec<Candidate>, TextPlan)> {
        let mut terms = st.memtable.analyzer().terms(text);
        let mut seen = std::collections::HashSet::new();
        terms.retain(|t| seen.insert(t.clone()));
        let mut sources = Vec::with_capacity(st.segments.len() + 1);
        for (i, slot) in st.segments.iter().enumerate() {
            sources.push(bm25::Source {
                index: slot.seg.text()?,
                dead: (!slot.deleted.is_empty()).then_some(&slot.deleted),
                allow: allowed.map(|a| &a[i].rows),
            });
        }
        let mt = &st.memtable;
        sources.push(bm25::Source {
            index: mt.text(),
            dead: (!mt.dead().is_empty()).then_some(mt.dead()),
            allow: allowed.map(|a| &a[st.segments.len()].rows),
        });
        let id_at = |src: usize, row: u32| match st.segments.get(src) {
            Some(slot) => slot.seg.id_at(row as usize),
            None => mt.id_at(row as usize),
        };
        let (hits, stats) = bm25::search_keyed_with_stats(&sources, &terms, depth, id_at);
        let cands: Vec<Candidate> = hits
            .iter()
            .map(|h| Candidate {
                score: h.score,
                id: id_at(h.source, h.row),
                loc: if h.source < st.segments.len() {
                    Loc::Segment(h.source as u32, h.row)
                } else {
                    Loc::Memtable(h.row)
                },
            })
            .collect();
        let plan = TextPlan {
            terms,
            df: stats.df,
            documents: stats.n,
            avg_len: stats.avgdl,
            returned: cands.len(),
        };
        Ok((cands, plan))
    }
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

/// The vector leg: the best `depth` candidates over every source.
#[allow(clippy::too_many_arguments)]
fn vector_leg(
    st: &State,
    metric: Metric,
    m0: usize,
    q: &[f32],
    depth: usize,
    ef: usize,
    exact: bool,
    allowed: Option<&[Allowed]>,
) -> Result<(Vec<Candidate>, Vec<SourcePlan>)> {
    if exact && allowed.is_none() {
        let top = exact_all(st, metric, q, depth)?;
        // Names are filled in by `query` when explain asks for them.
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
        let mut plans: Vec<SourcePlan> = st
            .segments
            .iter()
            .map(|slot| exact_plan(slot.seg.rows, slot.live()))
            .collect();
        plans.push(exact_plan(st.memtable.rows(), st.memtable.live_count()));
        let top = top.into_sorted();
        for c in &top {
            let i = match c.loc {
                Loc::Segment(s, _) => s as usize,
                Loc::Memtable(_) => st.segments.len(),
            };
            plans[i].returned += 1;
        }
        return Ok((top, plans));
    }

    let n = st.segments.len() + 1;
    let one = |i: usize| -> Result<(TopK, SourcePlan)> {
        search_source(
            st,
            i,
            metric,
            m0,
            q,
            depth,
            ef,
            exact,
            allowed.map(|a| &a[i]),
        )
    };
    let results: Vec<(TopK, SourcePlan)> = if st.segments.len() > 1 {
        (0..n).into_par_iter().map(one).collect::<Result<_>>()?
    } else {
        (0..n).map(one).collect::<Result<_>>()?
    };
    let mut top = TopK::new(depth);
    let mut plans = Vec::with_capacity(n);
    for (t, p) in results {
        top = top.merge(t);
        plans.push(p);
    }
    Ok((top.into_sorted(), plans))
}

/// Searches one source (segment `i`, or the memtable for `i == segments.len()`).
#[allow(clippy::too_many_arguments)]
fn search_source(
    st: &State,
    i: usize,
    metric: Metric,
    m0: usize,
    q: &[f32],
    depth: usize,
    ef: usize,
    exact: bool,
    allowed: Option<&Allowed>,
) -> Result<(TopK, SourcePlan)> {
    let (rows, live, dead) = match st.segments.get(i) {
        Some(slot) => (slot.seg.rows, slot.live(), &slot.deleted),
        None => (
            st.memtable.rows(),
            st.memtable.live_count(),
            st.memtable.dead(),
        ),
    };
    let (estimated, matched) = match allowed {
        Some(a) => (a.estimated, a.rows.len() as usize),
        None => (live, live),
    };
    let (plan, ef) = if exact {
        (
            if matched == 0 {
                PlanKind::Skip
            } else {
                PlanKind::Exact
            },
            0,
        )
    } else if allowed.is_some() {
        plan_filtered(matched, live, ef, m0)
    } else if matched == 0 {
        (PlanKind::Skip, 0)
    } else {
        (PlanKind::Graph, ef)
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
    let loc = |row: u32| match st.segments.get(i) {
        Some(_) => Loc::Segment(i as u32, row),
        None => Loc::Memtable(row),
    };
    let id_at = |row: u32| match st.segments.get(i) {
        Some(slot) => slot.seg.id_at(row as usize),
        None => st.memtable.id_at(row as usize),
    };
    let mut top = TopK::new(depth);
    match plan {
        PlanKind::Skip => {}
        PlanKind::Exact | PlanKind::Graph => {
            let mut found = 0;
            if plan == PlanKind::Graph {
                let any_dead = !dead.is_empty();
                let accept = |r: u32| match allowed {
                    Some(a) => a.rows.contains(r),
                    None => !(any_dead && dead.contains(r)),
                };
                // Small sources are walked over their f32 vectors (see `QUANT_MIN_ROWS`).
                let quant = |rows: usize| metric != Metric::L2 && rows >= QUANT_MIN_ROWS;
                let hits = match st.segments.get(i) {
                    Some(slot) => {
                        let seg = &slot.seg;
                        let qz = if quant(seg.rows) {
                            seg.quantized()
                        } else {
                            None
                        };
                        walk(seg.graph(), &**seg, qz, metric, q, depth, ef, accept)?
                    }
                    None => {
                        let mt = &st.memtable;
                        let qz = mt.flat.codes.as_ref().filter(|_| quant(mt.rows()));
                        walk(&mt.graph, &mt.flat, qz, metric, q, depth, ef, accept)?
                    }
                };
                found = hits.len();
                // Rows of a batch still being linked into the memtable graph are scanned, so
                // the batch is seen whole (its replaced rows are already dead).
                if st.segments.get(i).is_none() {
                    let mt = &st.memtable;
                    let pending = mt.pending();
                    if !pending.is_empty() {
                        let seen: std::collections::HashSet<u32> =
                            hits.iter().map(|s| s.node).collect();
                        for r in pending {
                            if accept(r) && !seen.contains(&r) {
                                found += 1;
                                top.push(Candidate {
                                    score: metric.score(q, mt.vector(r as usize)),
                                    id: id_at(r),
                                    loc: loc(r),
                                });
                            }
                        }
                    }
                }
                for s in hits {
                    top.push(Candidate {
                        score: s.score,
                        id: id_at(s.node),
                        loc: loc(s.node),
                    });
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
                    let score = match st.segments.get(i) {
                        Some(slot) => metric.score(q, slot.seg.vector(r)?),
                        None => metric.score(q, st.memtable.vector(r as usize)),
                    };
                    // The id (another cache miss) only for rows that can enter the top k.
                    if score >= top.threshold() {
                        top.push(Candidate {
                            score,
                            id: id_at(r),
                            loc: loc(r),
                        });
                    }
                }
            }
        }
    }
    out.returned = top.len();
    Ok((top, out))
}

/// Exact search without a filter: every live row of every source, in blocks, on rayon's pool
/// for large collections.
fn exact_all(st: &State, metric: Metric, q: &[f32], k: usize) -> Result<TopK> {
    let tasks = plan_tasks(st);
    let total: usize = tasks.iter().map(|t| t.end - t.start).sum();
    if total < 2 * TASK_ROWS {
        let mut top = TopK::new(k);
        for t in &tasks {
            scan(st, metric, q, *t, &mut top)?;
        }
        Ok(top)
    } else {
        tasks
            .par_iter()
            .map(|t| {
                let mut top = TopK::new(k);
                scan(st, metric, q, *t, &mut top).map(|_| top)
            })
            .try_reduce(|| TopK::new(k), |a, b| Ok(a.merge(b)))
    }
}

fn plan_tasks(st: &State) -> Vec<Task> {
    let mut tasks = Vec::new();
    let mut split = |source, rows: usize| {
        let mut s = 0;
        while s < rows {
            let e = (s + TASK_ROWS).min(rows);
            tasks.push(Task {
                source,
                start: s,
                end: e,
            });
            s = e;
        }
    };
    for (i, slot) in st.segments.iter().enumerate() {
        if slot.seg.rows > slot.deleted.len() as usize {
            split(Some(i), slot.seg.rows);
        }
    }
    if st.memtable.live_count() > 0 {
        split(None, st.memtable.rows());
    }
    tasks
}

fn scan(st: &State, metric: Metric, q: &[f32], t: Task, top: &mut TopK) -> Result<()> {
    let mut scores = vec![0f32; BLOCK_ROWS];
    let dim = q.len();
    let mut s = t.start;
    while s < t.end {
        let e = (s + BLOCK_ROWS).min(t.end);
        let out = &mut scores[..e - s];
        match t.source {
            None => {
                let mt = &st.memtable;
                metric.score_rows(q, mt.vectors(s, e), dim, out);
                for (i, &score) in out.iter().enumerate() {
                    let row = s + i;
                    if score >= top.threshold() && mt.is_live(row) {
                        top.push(Candidate {
                            score,
                            id: mt.id_at(row),
                            loc: Loc::Memtable(row as u32),
                        });
                    }
                }
            }
            Some(si) => {
                let slot = &st.segments[si];
                metric.score_rows(q, slot.seg.vectors(s, e)?, dim, out);
                let check_deleted = !slot.deleted.is_empty();
                for (i, &score) in out.iter().enumerate() {
                    let row = s + i;
                    if score >= top.threshold()
                        && !(check_deleted && slot.deleted.contains(row as u32))
                    {
                        top.push(Candidate {
                            score,
                            id: slot.seg.id_at(row),
                            loc: Loc::Segment(si as u32, row as u32),
                        });
                    }
                }
            }
        }
        s = e;
    }
    Ok(())
}

/// The text and payload of a candidate's row.
fn doc(st: &State, c: &Candidate) -> Result<(Option<String>, crate::record::Payload)> {
    match c.loc {
        Loc::Memtable(row) => StoredDoc::decode(st.memtable.doc(row as usize)).ok_or_else(|| {
            Error::InvalidArgument(format!("record {} has an undecodable payload", c.id))
        }),
        Loc::Segment(s, row) => st.segments[s as usize].seg.doc(row as usize),
    }
}

fn hit(st: &State, f: &Fused, hybrid: bool, with_text: bool, with_payload: bool) -> Result<Hit> {
    let mut hit = Hit {
        id: f.cand.id,
        score: f.score,
        text: None,
        payload: None,
        legs: hybrid.then_some(Legs {
            vector: f.vector,
            text: f.text,
            fused: f.score,
        }),
    };
    if with_text || with_payload {
        let (text, payload) = doc(st, &f.cand)?;
        if with_text {
            hit.text = text;
        }
        if with_payload {
            hit.payload = Some(payload);
        }
    }
    Ok(hit)
}
