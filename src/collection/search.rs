//! Exact search: every live row of the memtable and of each segment is scored and the best k
//! kept. Rows are scored in blocks (one query against `BLOCK_ROWS` contiguous rows) so the
//! kernel streams memory; large collections are split into tasks that run on rayon's pool.

use rayon::prelude::*;

use super::{Collection, State};
use crate::distance::{Metric, VectorProblem, prepare};
use crate::error::{Error, Result};
use crate::index::hnsw::default_ef;
use crate::index::hnsw::search::{Links, search as graph_search};
use crate::index::hnsw::visited::with_visited;
use crate::query::SearchRequest;
use crate::query::topk::{Candidate, Loc, TopK};
use crate::record::{Hit, StoredDoc};

/// Rows scored per kernel block.
const BLOCK_ROWS: usize = 1024;
/// Rows per parallel task; below twice this a search runs on the calling thread.
const TASK_ROWS: usize = 64 * 1024;

/// A range of rows of one source.
#[derive(Clone, Copy)]
struct Task {
    /// `None`: memtable; `Some(i)`: segment `i`.
    source: Option<usize>,
    start: usize,
    end: usize,
}

impl Collection {
    /// The `k` records most similar to the query, best first. Ties in score are broken by
    /// lower id.
    ///
    /// Errors: the query's dimension differs from the collection's, it holds NaN or an
    /// infinity, or (under cosine) it is all zeros; a checksum fails on a segment block read.
    pub fn search(&self, req: &SearchRequest) -> Result<Vec<Hit>> {
        self.check_live()?;
        req.validate()?;
        let cfg = &self.inner.config;
        if req.vector.len() != cfg.dim {
            return Err(Error::DimensionMismatch {
                id: None,
                collection: self.inner.name.clone(),
                expected: cfg.dim,
                got: req.vector.len(),
            });
        }
        let mut q = req.vector.clone();
        prepare(cfg.metric, &mut q).map_err(|p| match p {
            VectorProblem::NonFinite(index) => Error::NonFiniteQuery { index },
            VectorProblem::Zero => Error::ZeroQuery,
        })?;
        if req.k == 0 {
            return Ok(Vec::new());
        }

        let st = self.inner.state.read();
        if !req.exact {
            let ef = req.ef.unwrap_or_else(|| default_ef(req.k)).max(req.k);
            let top = search_graphs(&st, cfg.metric, &q, req.k, ef)?;
            return top
                .into_sorted()
                .into_iter()
                .map(|c| hit(&st, c, req))
                .collect();
        }
        let tasks = plan(&st);
        let total: usize = tasks.iter().map(|t| t.end - t.start).sum();
        let top = if total < 2 * TASK_ROWS {
            let mut top = TopK::new(req.k);
            for t in &tasks {
                scan(&st, cfg.metric, &q, *t, &mut top)?;
            }
            top
        } else {
            tasks
                .par_iter()
                .map(|t| {
                    let mut top = TopK::new(req.k);
                    scan(&st, cfg.metric, &q, *t, &mut top).map(|_| top)
                })
                .try_reduce(|| TopK::new(req.k), |a, b| Ok(a.merge(b)))?
        };

        top.into_sorted()
            .into_iter()
            .map(|c| hit(&st, c, req))
            .collect()
    }
}

/// Approximate search: the HNSW graph of every segment and of the memtable, merged.
/// Deleted rows are walked through but never returned.
fn search_graphs(st: &State, metric: Metric, q: &[f32], k: usize, ef: usize) -> Result<TopK> {
    let search_segment = |si: usize| -> Result<TopK> {
        let slot = &st.segments[si];
        let seg = &*slot.seg;
        let check = !slot.deleted.is_empty();
        let found = with_visited(seg.rows, |v| {
            graph_search(seg.graph(), seg, metric, q, k, ef, v, |r| {
                !(check && slot.deleted.contains(r))
            })
        })?;
        let mut top = TopK::new(k);
        for s in found {
            top.push(Candidate {
                score: s.score,
                id: seg.id_at(s.node as usize),
                loc: Loc::Segment(si as u32, s.node),
            });
        }
        Ok(top)
    };
    let mut top = if st.segments.len() > 1 {
        (0..st.segments.len())
            .into_par_iter()
            .map(search_segment)
            .try_reduce(|| TopK::new(k), |a, b| Ok(a.merge(b)))?
    } else {
        match st.segments.first() {
            Some(_) => search_segment(0)?,
            None => TopK::new(k),
        }
    };
    let mt = &st.memtable;
    if mt.live_count() > 0 {
        let found = with_visited(mt.graph.nodes(), |v| {
            graph_search(&mt.graph, mt, metric, q, k, ef, v, |r| {
                mt.is_live(r as usize)
            })
        })?;
        for s in found {
            top.push(Candidate {
                score: s.score,
                id: mt.id_at(s.node as usize),
                loc: Loc::Memtable(s.node),
            });
        }
    }
    Ok(top)
}

fn plan(st: &State) -> Vec<Task> {
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

fn hit(st: &State, c: Candidate, req: &SearchRequest) -> Result<Hit> {
    let mut hit = Hit {
        id: c.id,
        score: c.score,
        text: None,
        payload: None,
    };
    if req.with_payload || req.with_text {
        let (text, payload) = match c.loc {
            Loc::Memtable(row) => {
                StoredDoc::decode(st.memtable.doc(row as usize)).ok_or_else(|| {
                    Error::InvalidArgument(format!("record {} has an undecodable payload", c.id))
                })?
            }
            Loc::Segment(s, row) => st.segments[s as usize].seg.doc(row as usize)?,
        };
        if req.with_text {
            hit.text = text;
        }
        if req.with_payload {
            hit.payload = Some(payload);
        }
    }
    Ok(hit)
}
