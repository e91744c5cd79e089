//! Evaluating a filter against one source's indexes (the memtable's or one segment's): the
//! result is the bitmap of rows that match, dead rows included (the caller removes them).

use roaring::RoaringBitmap;

use super::{Bounds, Filter};
use crate::error::Result;
use crate::record::Value;

/// The row sets a source can answer for.
#[allow(dead_code)]
pub(crate) trait FilterIndex {
    /// Rows `0..n` of the source.
    fn universe(&self) -> RoaringBitmap;
    /// Rows whose `field` matches `value` under `eq`.
    fn eq(&self, field: &str, value: &Value) -> RoaringBitmap;
    /// Rows whose numeric `field` lies within `bounds`.
    fn range(&self, field: &str, bounds: &Bounds) -> RoaringBitmap;
    /// Rows that have `field`.
    fn exists(&self, field: &str) -> RoaringBitmap;
    /// Rows whose text contains `term` (the term not yet analyzed).
    fn has_term(&self, term: &str) -> Result<RoaringBitmap>;
}

/// The rows of the source that `f` matches.
#[allow(dead_code)]
pub(crate) fn evaluate(f: &Filter, idx: &dyn FilterIndex) -> Result<RoaringBitmap> {
    Ok(match f {
        Filter::And(v) => {
            let mut it = v.iter();
            let Some(first) = it.next() else {
                return Ok(idx.universe());
            };
            let mut acc = evaluate(first, idx)?;
            for g in it {
                if acc.is_empty() {
                    break;
                }
                acc &= evaluate(g, idx)?;
            }
            acc
        }
        Filter::Or(v) => {
            let mut acc = RoaringBitmap::new();
            for g in v {
                acc |= evaluate(g, idx)?;
            }
            acc
        }
        Filter::Not(g) => idx.universe() - evaluate(g, idx)?,
        Filter::Eq { field, value } => idx.eq(field, value),
        Filter::In { field, values } => {
            let mut acc = RoaringBitmap::new();
            for v in values {
                acc |= idx.eq(field, v);
            }
            acc
        }
        Filter::Range { field, bounds } => idx.range(field, bounds),
        Filter::Exists { field } => idx.exists(field),
        Filter::HasTerm { term } => idx.has_term(term)?,
    })
}
