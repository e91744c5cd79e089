//! The text leg: BM25 over every source with collection-wide statistics (N, df and the
//! average length over live documents), restricted to a filter's rows if there is one.

use super::response::TextPlan;
use super::source::{Source, View};
use super::topk::{Candidate, Loc};
use super::vector::Allowed;
use crate::error::Result;
use crate::index::text::{TextIndex, bm25};

/// The best `depth` rows for `text`, and how they were found.
pub(crate) fn text_leg<S: Source, M: Source>(
    view: &View<'_, S, M>,
    text: &str,
    depth: usize,
    allowed: Option<&[Allowed]>,
) -> Result<(Vec<Candidate>, TextPlan)> {
    let mut terms = view.analyzer.terms(text);
    let mut seen = std::collections::HashSet::new();
    terms.retain(|t| seen.insert(t.clone()));
    // The indexes are borrowed for the whole scoring (a memtable's stay locked meanwhile).
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
        });
    }
    for (j, (t, d)) in mem_text.iter().zip(&mem_dead).enumerate() {
        sources.push(bm25::Source {
            index: t,
            dead: (!d.is_empty()).then_some(d),
            allow: allow(ns + j),
        });
    }
    let id_at = |src: usize, row: u32| view.id_at(src as u32, row);
    let (hits, stats) = bm25::search_keyed_with_stats(&sources, &terms, depth, id_at);
    let cands: Vec<Candidate> = hits
        .iter()
        .map(|h| Candidate {
            score: h.score,
            id: id_at(h.source, h.row),
            loc: Loc {
                source: h.source as u32,
                row: h.row,
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
