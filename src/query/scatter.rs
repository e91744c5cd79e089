//! The scatter-gather API: what a caller that splits one collection's records over several
//! collections (shards, often in other processes or on other machines) needs to answer a
//! query exactly as one collection holding every record would.
//!
//! 1. BM25 must score with the whole collection's statistics, not each shard's: gather
//!    [`TextStats`] from every shard ([`Collection::text_stats`](crate::Collection::text_stats)),
//!    add them up ([`TextStats::merge`]), and pass the sum with each shard's request
//!    ([`SearchRequest::text_stats`](crate::SearchRequest::text_stats)).
//! 2. Merge the shards' ranked lists with [`merge_hits`]: best score first, ties to the lower
//!    id key, as one collection ranks.
//! 3. For a hybrid query, run each leg on its own on every shard (a vector request and a text
//!    request with the merged statistics, each for the leg depth `candidates`), merge each
//!    leg, and fuse the two with [`Fusion::fuse_hits`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::fusion::{Fusion, fuse};
use super::topk::{Candidate, Loc};
use crate::error::{Error, Result};
use crate::index::text::bm25;
use crate::model::record::{Hit, Legs};

/// BM25's statistics for one query over a collection: how many live documents have text,
/// their total length in analyzed terms, and for each distinct analyzed term of the query
/// how many of them contain it. Deleted and replaced records do not count, and a filter never
/// changes them.
///
/// Statistics of disjoint collections add up ([`merge`](Self::merge)) to those of their union.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextStats {
    /// Live documents with at least one term (BM25's N).
    pub documents: u64,
    /// The sum of their lengths, in analyzed terms.
    pub total_len: u64,
    /// Document frequency of each distinct analyzed query term (terms no document holds: 0).
    pub df: BTreeMap<String, u64>,
}

impl TextStats {
    /// The average document length, `total_len / documents` (0 without documents).
    pub fn avg_len(&self) -> f64 {
        bm25::avg_len(self.documents, self.total_len)
    }

    /// Adds another collection's statistics for the same query (shards hold disjoint
    /// records): counts and lengths add, and so does each term's df.
    pub fn merge(&mut self, other: &TextStats) {
        self.documents = self.documents.saturating_add(other.documents);
        self.total_len = self.total_len.saturating_add(other.total_len);
        for (term, df) in &other.df {
            let e = self.df.entry(term.clone()).or_insert(0);
            *e = e.saturating_add(*df);
        }
    }

    /// Checks that the numbers could describe a collection: every document has at least one
    /// term, and no term is in more documents than there are.
    pub(crate) fn validate(&self) -> Result<()> {
        if self.documents > 0 && self.total_len < self.documents {
            return Err(Error::InvalidArgument(format!(
                "text statistics: {} documents cannot have a total length of {} terms \
                 (each has at least one)",
                self.documents, self.total_len
            )));
        }
        if let Some((t, df)) = self.df.iter().find(|&(_, &df)| df > self.documents) {
            return Err(Error::InvalidArgument(format!(
                "text statistics: the term {t:?} is in {df} documents, more than the {} there are",
                self.documents
            )));
        }
        Ok(())
    }
}

/// Ranking order of hits: higher score first, then the lower id key (what one collection
/// uses to break ties, [`Id::key`](crate::Id::key)).
fn rank_cmp(a: &Hit, b: &Hit) -> std::cmp::Ordering {
    b.score
        .total_cmp(&a.score)
        .then(a.id.key().cmp(&b.id.key()))
}

/// Merges ranked hit lists of disjoint shards into the best `k`, ranked as one collection
/// holding every record ranks them: by score, ties to the lower id key.
pub fn merge_hits(lists: impl IntoIterator<Item = Vec<Hit>>, k: usize) -> Vec<Hit> {
    let mut all: Vec<Hit> = lists.into_iter().flatten().collect();
    all.sort_by(rank_cmp);
    all.truncate(k);
    all
}

impl Fusion {
    /// Fuses the ranked lists of a hybrid query's two legs — each best first, ids unique
    /// within a list, e.g. each merged from shards with [`merge_hits`] — exactly as a hybrid
    /// search of one collection fuses them. Returns every record of either list, best first,
    /// each with its fused score and its [`Legs`]; the text and payload of a hit are taken
    /// from whichever input carried them.
    ///
    /// To equal one collection's result, each list must hold that leg's best `candidates`
    /// (default `max(2k, 50)`) records, and the text leg must be scored with the collection's
    /// statistics ([`TextStats`]).
    ///
    /// Errors: the fusion's parameters are out of range (RRF `k` < 0 or not finite, `alpha`
    /// outside `[0, 1]`).
    pub fn fuse_hits(&self, vector: &[Hit], text: &[Hit]) -> Result<Vec<Hit>> {
        self.validate()?;
        // Candidates point back at their hit: source 0 = vector, 1 = text; row = position.
        let cands = |hits: &[Hit], leg: u32| -> Vec<Candidate> {
            hits.iter()
                .enumerate()
                .map(|(i, h)| Candidate {
                    score: h.score,
                    id: h.id.key(),
                    loc: Loc {
                        source: leg,
                        row: i as u32,
                    },
                })
                .collect()
        };
        let fused = fuse(*self, &cands(vector, 0), &cands(text, 1));
        Ok(fused
            .into_iter()
            .map(|f| {
                let from = |leg: u32| if leg == 0 { vector } else { text };
                let first = &from(f.cand.loc.source)[f.cand.loc.row as usize];
                let mut hit = Hit {
                    id: first.id.clone(),
                    score: f.score,
                    text: first.text.clone(),
                    payload: first.payload.clone(),
                    legs: Some(Legs {
                        vector: f.vector,
                        text: f.text,
                        fused: f.score,
                    }),
                };
                // The other leg's copy may carry what this one lacks.
                if hit.text.is_none() || hit.payload.is_none() {
                    let other = if f.cand.loc.source == 0 { text } else { vector };
                    if let Some(o) = other.iter().find(|o| o.id == hit.id) {
                        hit.text = hit.text.or_else(|| o.text.clone());
                        hit.payload = hit.payload.or_else(|| o.payload.clone());
                    }
                }
                hit
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::id::Id;

    fn hit(id: u64, score: f32) -> Hit {
        Hit {
            id: Id::Int(id),
            score,
            text: None,
            payload: None,
            legs: None,
        }
    }

    #[test]
    fn merge_ranks_by_score_then_id_key() {
        let a = vec![hit(5, 0.9), hit(1, 0.5)];
        let b = vec![hit(2, 0.9), hit(3, 0.1)];
        let m = merge_hits([a, b], 3);
        let ids: Vec<u64> = m.iter().map(|h| h.id.as_u64().unwrap()).collect();
        assert_eq!(ids, [2, 5, 1]);
    }

    #[test]
    fn stats_merge_adds_and_validate_refuses_impossible_numbers() {
        let mut a = TextStats {
            documents: 2,
            total_len: 5,
            df: [("x".to_string(), 1)].into(),
        };
        let b = TextStats {
            documents: 3,
            total_len: 4,
            df: [("x".to_string(), 2), ("y".to_string(), 3)].into(),
        };
        a.merge(&b);
        assert_eq!(a.documents, 5);
        assert_eq!(a.total_len, 9);
        assert_eq!(a.df["x"], 3);
        assert_eq!(a.df["y"], 3);
        assert!((a.avg_len() - 1.8).abs() < 1e-12);
        a.validate().unwrap();
        let short = TextStats {
            documents: 3,
            total_len: 2,
            df: BTreeMap::new(),
        };
        assert!(short.validate().is_err());
        let many = TextStats {
            documents: 1,
            total_len: 2,
            df: [("x".to_string(), 2)].into(),
        };
        assert!(many.validate().is_err());
        assert_eq!(TextStats::default().avg_len(), 0.0);
    }

    #[test]
    fn fuse_hits_keeps_legs_and_fills_payload_from_the_other_leg() {
        let mut v = vec![hit(1, 0.9), hit(2, 0.8)];
        let mut t = vec![hit(2, 3.0), hit(3, 1.0)];
        t[0].text = Some("two".into());
        v[0].text = Some("one".into());
        // RRF: record 2, ranked in both legs, comes first.
        let f = Fusion::Rrf { k: 60.0 }.fuse_hits(&v, &t).unwrap();
        assert!(Fusion::Weighted { alpha: 2.0 }.fuse_hits(&v, &t).is_err());
        assert_eq!(f[0].id, Id::Int(2));
        assert_eq!(f[0].text.as_deref(), Some("two"));
        let legs = f[0].legs.unwrap();
        assert_eq!(legs.vector.unwrap().rank, 2);
        assert_eq!(legs.text.unwrap().rank, 1);
        assert_eq!(f.len(), 3);
    }
}
