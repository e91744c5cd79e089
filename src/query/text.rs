//! The text leg: BM25 over every source with collection-wide statistics (N, df and the
//! average length over live documents), restricted to a filter's rows if there is one — or
//! with statistics the caller supplies ([`TextStats`], for scatter-gather over shards).

use super::response::TextPlan;
use super::scatter::TextStats;
use super::source::{Source, View};
use super::topk::{Candidate, Loc};
use super::vector::Allowed;
use crate::error::{Error, Result};
use crate::index::text::{TextIndex, bm25};

/// The query's analyzed terms, each once, in first-occurrence order.
fn distinct_terms<S: Source, M: Source>(view: &View<'_, S, M>, text: &str) -> Vec<String> {
    let mut terms = view.analyzer.terms(text);
    let mut seen = std::collections::HashSet::new();
    terms.retain(|t| seen.insert(t.clone()));
    terms
}

/// Runs `f` over the BM25 sources of `view` (segments, then memtables), each restricted to
/// `allowed`'s rows if given. The indexes stay borrowed while `f` runs (a memtable's stay
/// locked meanwhile).
fn with_sources<S: Source, M: Source, R>(
    view: &View<'_, S, M>,
    allowed: Option<&[Allowed]>,
    f: impl FnOnce(&[bm25::Source<'_>]) -> R,
) -> Result<R> {
    let seg_text = view
        .segments
        .iter()
        .map(Source::text)
        .collect::<Result<Vec<_>>>()?;
    let mem_text = view
        .memtables
        .iter()
        .map(Source::text)
        .collect::<Result<Vec<_>>>()?;
    // Rows a memtable's index holds past the view (appended since) count as dead.
    let dead_in = |rows: usize, dead: &roaring::RoaringBitmap, index: &TextIndex| {
        let mut d = dead.clone();
        if (index.rows() as usize) > rows {
            d.insert_range(rows as u32..index.rows());
        }
        d
    };
    let mem_dead: Vec<roaring::RoaringBitmap> = view
        .memtables
        .iter()
        .zip(&mem_text)
        .map(|(m, t)| dead_in(m.rows(), m.dead(), t))
        .collect();
    let ns = view.segments.len();
    let allow = |i: usize| allowed.map(|a| &a[i].rows);
    let mut sources = Vec::with_capacity(view.len());
    for (i, (s, t)) in view.segments.iter().zip(&seg_text).enumerate() {
        sources.push(bm25::Source {
            index: t,
            dead: (!s.dead().is_empty()).then_some(s.dead()),
            allow: allow(i),
            live: s.text_live(),
        });
    }
    for (j, (t, d)) in mem_text.iter().zip(&mem_dead).enumerate() {
        sources.push(bm25::Source {
            index: t,
            dead: (!d.is_empty()).then_some(d),
            allow: allow(ns + j),
            live: None,
        });
    }
    Ok(f(&sources))
}

/// The statistics BM25 would score `text` with over `view`: live documents with text, their
/// total length, and the df of each distinct analyzed term of the query.
pub(crate) fn text_stats<S: Source, M: Source>(
    view: &View<'_, S, M>,
    text: &str,
) -> Result<TextStats> {
    let terms = distinct_terms(view, text);
    with_sources(view, None, |sources| {
        let (st, total_len) = bm25::stats_with_total(sources, &terms);
        TextStats {
            documents: st.n,
            total_len,
            df: terms.into_iter().zip(st.df).collect(),
        }
    })
}

/// The best `depth` rows for `text`, and how they were found. With `external`, BM25 scores
/// with those statistics instead of the view's own.
pub(crate) fn text_leg<S: Source, M: Source>(
    view: &View<'_, S, M>,
    text: &str,
    depth: usize,
    allowed: Option<&[Allowed]>,
    external: Option<&TextStats>,
) -> Result<(Vec<Candidate>, TextPlan)> {
    let terms = distinct_terms(view, text);
    let external = match external {
        Some(ts) => Some(bm25::Stats {
            n: ts.documents,
            avgdl: ts.avg_len(),
            df: terms
                .iter()
                .map(|t| {
                    ts.df.get(t).copied().ok_or_else(|| {
                        Error::InvalidArgument(format!(
                            "the text statistics give no df for the query term {t:?} \
                             (gather them with Collection::text_stats for the same query)"
                        ))
                    })
                })
                .collect::<Result<_>>()?,
        }),
        None => None,
    };
    // The scorer breaks ties by id and cannot fail: the first id that could not be read
    // (a damaged block of a segment's ids file) is kept here and fails the search after.
    let id_error = std::sync::Mutex::new(None);
    let id_at = |src: usize, row: u32| match view.id_at(src as u32, row) {
        Ok(id) => id,
        Err(e) => {
            let mut slot = id_error.lock().unwrap_or_else(|p| p.into_inner());
            slot.get_or_insert(e);
            0
        }
    };
    let (hits, stats) = with_sources(view, allowed, |sources| {
        bm25::search_keyed_with_stats(sources, &terms, depth, id_at, external)
    })?;
    if let Some(e) = id_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    let cands: Vec<Candidate> = hits
        .iter()
        .map(|h| {
            Ok(Candidate {
                score: h.score,
                id: view.id_at(h.source as u32, h.row)?,
                loc: Loc {
                    source: h.source as u32,
                    row: h.row,
                },
            })
        })
        .collect::<Result<_>>()?;
    let plan = TextPlan {
        terms,
        df: stats.df,
        documents: stats.n,
        avg_len: stats.avgdl,
        returned: cands.len(),
    };
    Ok((cands, plan))
}
