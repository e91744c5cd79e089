//! The query engine: runs a [`SearchRequest`] over a [`View`] of sources — filter, vector leg,
//! text leg, fusion, re-ranking, hits.
//!
//! ```text
//!  filter ─▶ per source: bitmap of matching live rows (filter.rs)
//!  vector leg ─▶ per source: plan (graph walk / exact scan / skip), merged top-depth (vector.rs)
//!  text leg   ─▶ BM25 with collection-wide statistics, top-depth (text.rs)
//!  fuse (fusion.rs) ─▶ re-rank the best top_n (rerank.rs) ─▶ k hits with text and payload
//! ```

use super::filter::evaluate;
use super::fusion::{Fused, fuse};
use super::request::SearchRequest;
use super::rerank::RerankQuery;
use super::response::{Explain, SearchResponse};
use super::source::{Source, View};
use super::text::text_leg;
use super::topk::Candidate;
use super::vector::{Allowed, VectorQuery, vector_leg};
use crate::error::{Error, Result};
use crate::index::hnsw::default_ef;
use crate::model::filter::Filter;
use crate::model::record::{Hit, Legs};

/// Runs `req` over `view`. `q` is the request's vector, already checked and prepared for the
/// metric (normalized under cosine).
pub(crate) fn run<S: Source, M: Source>(
    view: &View<'_, S, M>,
    req: &SearchRequest,
    q: Option<&[f32]>,
) -> Result<SearchResponse> {
    let hybrid = q.is_some() && req.text.is_some();
    let rerank_n = req.rerank.as_ref().map_or(0, |r| r.1);
    let depth = if hybrid { req.leg_depth() } else { req.k }.max(rerank_n);
    if req.k == 0 {
        return Ok(SearchResponse {
            hits: Vec::new(),
            explain: None,
        });
    }

    let allowed = match &req.filter {
        Some(f) => Some(filter_rows(view, f)?),
        None => None,
    };
    let mut explain = Explain {
        // Printed only when asked for: a filter is not formatted on every query.
        filter: req
            .filter
            .as_ref()
            .filter(|_| req.explain)
            .map(ToString::to_string),
        unknown_fields: match &req.filter {
            Some(f) if req.explain => unknown_fields(view, f)?,
            _ => Vec::new(),
        },
        vector: Vec::new(),
        text: None,
        depth,
        complete: true,
    };

    let vector_leg = match q {
        Some(q) => {
            let ef = req.ef.unwrap_or_else(|| default_ef(depth)).max(depth);
            let vq = VectorQuery {
                q,
                depth,
                ef,
                exact: req.exact,
            };
            let (c, plans) = vector_leg(view, vq, allowed.as_deref())?;
            let expected: usize = plans.iter().map(|p| p.matched).sum::<usize>().min(depth);
            explain.complete &= c.len() >= expected;
            explain.vector = plans;
            // Plans are built without names (no allocation per query); explain adds them.
            if req.explain {
                for (i, p) in explain.vector.iter_mut().enumerate() {
                    p.source = view.with(i, Source::describe, Source::describe);
                }
            }
            Some(c)
        }
        None => None,
    };
    let text_leg = match &req.text {
        Some(text) => {
            let (c, plan) = text_leg(
                view,
                text,
                depth,
                allowed.as_deref(),
                req.text_stats.as_ref(),
            )?;
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

    let mut hits = match &req.rerank {
        Some(_) => rerank(view, req, q, &fused, hybrid)?,
        None => fused
            .iter()
            .take(req.k)
            .map(|f| hit(view, f, hybrid, req.with_text, req.with_payload))
            .collect::<Result<_>>()?,
    };
    hits.truncate(req.k);
    Ok(SearchResponse {
        hits,
        explain: req.explain.then_some(explain),
    })
}

/// Hands the best `top_n` fused candidates, with text and payload, to the request's
/// re-ranker and orders them by its scores.
fn rerank<S: Source, M: Source>(
    view: &View<'_, S, M>,
    req: &SearchRequest,
    q: Option<&[f32]>,
    fused: &[Fused],
    hybrid: bool,
) -> Result<Vec<Hit>> {
    let Some((reranker, top_n)) = &req.rerank else {
        return Ok(Vec::new());
    };
    let pool: Vec<Hit> = fused
        .iter()
        .take((*top_n).max(req.k))
        .map(|f| hit(view, f, hybrid, true, true))
        .collect::<Result<_>>()?;
    let scores = reranker.rerank(
        &RerankQuery {
            text: req.text.as_deref(),
            vector: q,
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
    Ok(pool)
}

/// Evaluates the filter in every source: matching live rows, per source, in view order.
pub(crate) fn filter_rows<S: Source, M: Source>(
    view: &View<'_, S, M>,
    f: &Filter,
) -> Result<Vec<Allowed>> {
    fn one<T: Source>(
        src: &T,
        f: &Filter,
        view_analyzer: &crate::index::text::Analyzer,
    ) -> Result<Allowed> {
        let mut m = evaluate(f, src, view_analyzer)?;
        // A memtable's indexes may hold rows staged after this view: they do not exist here.
        m.remove_range(src.rows() as u32..);
        Ok(Allowed {
            estimated: m.len() as usize,
            rows: m - src.dead(),
        })
    }
    let mut out = Vec::with_capacity(view.len());
    for s in view.segments {
        out.push(one(s, f, view.analyzer)?);
    }
    for m in view.memtables {
        out.push(one(m, f, view.analyzer)?);
    }
    Ok(out)
}

/// The fields `f` names that no live row of any source in `view` has (for `explain`).
fn unknown_fields<S: Source, M: Source>(view: &View<'_, S, M>, f: &Filter) -> Result<Vec<String>> {
    fn has<T: Source>(src: &T, field: &str) -> Result<bool> {
        let mut rows = src.fields()?.exists(field);
        rows.remove_range(src.rows() as u32..);
        rows -= src.dead();
        Ok(!rows.is_empty())
    }
    let mut out = Vec::new();
    'fields: for field in f.fields() {
        for s in view.segments {
            if has(s, field)? {
                continue 'fields;
            }
        }
        for m in view.memtables {
            if has(m, field)? {
                continue 'fields;
            }
        }
        out.push(field.to_owned());
    }
    Ok(out)
}

fn hit<S: Source, M: Source>(
    view: &View<'_, S, M>,
    f: &Fused,
    hybrid: bool,
    with_text: bool,
    with_payload: bool,
) -> Result<Hit> {
    let c: &Candidate = &f.cand;
    let mut hit = Hit {
        id: view.record_id(c.loc.source, c.loc.row)?,
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
        let (text, payload) = view.doc(c.loc.source, c.loc.row)?;
        if with_text {
            hit.text = text;
        }
        if with_payload {
            hit.payload = Some(payload);
        }
    }
    Ok(hit)
}
