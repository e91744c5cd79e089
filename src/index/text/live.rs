//! What a source's dead rows take away from its BM25 statistics, kept between queries.
//!
//! BM25's statistics count live documents only (`bm25` module docs), so a source with dead
//! rows has its documents, total length and every query term's df counted against them. That
//! count is linear in the dead rows and in the query terms' postings: about 150 µs a query on
//! a 100k-document segment with 10 % deleted. A segment's rows and postings never change and
//! its dead set changes only when records are deleted, so the counts are kept here between
//! queries: per source, for the last dead set seen, its documents and length and the dead df
//! of each term asked for so far.
//!
//! The cache is keyed by the dead set's *value*: a query whose dead set equals the kept one
//! (a cheap bitmap compare) uses the kept counts; a query with another set counts for itself
//! and, when its set contains the kept one (deletes only ever add rows), replaces it. Results
//! never depend on the cache: a hit returns exactly what the count would.

use std::collections::HashMap;

use parking_lot::Mutex;
use roaring::RoaringBitmap;

/// Terms kept per dead set before the term counts are dropped and started over (a bound on
/// the cache's memory: a few MiB at worst).
const MAX_TERMS: usize = 1 << 16;

/// The dead-row counts of one source, for the last dead set queried (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct LiveCache {
    kept: Mutex<Option<Kept>>,
}

#[derive(Debug)]
struct Kept {
    dead: RoaringBitmap,
    /// Dead rows with text.
    docs: u64,
    /// Their total length.
    len: u64,
    /// Per term: its postings in dead rows.
    df: HashMap<String, u64>,
}

/// What the cache knows for one query's dead set.
pub(crate) struct Lookup {
    /// Dead documents with text and their total length, if the dead set was the kept one.
    pub docs_len: Option<(u64, u64)>,
    /// Per query term, its dead postings if kept.
    pub df: Vec<Option<u64>>,
}

impl LiveCache {
    /// The kept counts for `dead` and `terms` (all unknown unless `dead` is the kept set).
    pub(crate) fn lookup(&self, dead: &RoaringBitmap, terms: &[String]) -> Lookup {
        let kept = self.kept.lock();
        match kept.as_ref().filter(|k| k.dead == *dead) {
            Some(k) => Lookup {
                docs_len: Some((k.docs, k.len)),
                df: terms.iter().map(|t| k.df.get(t).copied()).collect(),
            },
            None => Lookup {
                docs_len: None,
                df: vec![None; terms.len()],
            },
        }
    }

    /// Keeps what a query counted for `dead`: its documents and length, and the dead df of
    /// `terms`. Kept only if `dead` is the kept set or contains it (a newer state of the same
    /// source); a query over an older state leaves the cache alone.
    pub(crate) fn keep(&self, dead: &RoaringBitmap, docs: u64, len: u64, terms: &[(&str, u64)]) {
        let mut kept = self.kept.lock();
        let same = kept.as_ref().is_some_and(|k| k.dead == *dead);
        if !same {
            if kept.as_ref().is_some_and(|k| !k.dead.is_subset(dead)) {
                return;
            }
            *kept = Some(Kept {
                dead: dead.clone(),
                docs,
                len,
                df: HashMap::new(),
            });
        }
        let k = kept.as_mut().expect("set above");
        if k.df.len() + terms.len() > MAX_TERMS {
            k.df.clear();
        }
        for &(t, df) in terms {
            k.df.insert(t.to_string(), df);
        }
    }
}
