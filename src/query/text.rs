//! The text leg: BM25 over every source with collection-wide statistics (N, df and the
//! average length over live documents), restricted to a filter's rows if there is one.

use super::response::TextPlan;
use super::source::{Source, View};
use super::topk::{Candidate, Loc};
use super::vector::Allowed;
use crate::error::Result;
use crate::index::text::bm25;

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
    let mut sources = Vec::with_capacity(view.len());
    fn source<'a, T: Source>(
        src: &'a T,
        allow: Option<&'a roaring::RoaringBitmap>,
    ) -> Result<bm25::Source<'a>> {
        let dead = src.dead();
        Ok(bm25::Source {
            index: src.text()?,
            dead: (!dead.is_empty()).then_some(dead),
            allow,
        })
    }
    let allow = |i: usize| allowed.map(|a| &a[i].rows);
    for (i, s) in view.segments.iter().enumerate() {
        sources.push(source(s, allow(i))?);
    }
    for (j, m) in view.memtables.iter().enumerate() {
        sources.push(source(*m, allow(view.segments.len() + j))?);
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
