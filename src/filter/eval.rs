//! Evaluating a filter against one source's indexes (the memtable's or one segment's): the
//! result is the bitmap of rows that match, dead rows included (the caller removes them).

use roaring::RoaringBitmap;

use super::Filter;
use crate::error::Result;
use crate::index::fields::FieldIndex;
use crate::storage::segment::Segment;
use crate::text::{Analyzer, TextIndex};

/// Where a source's text index comes from: a segment decodes its file on first use.
pub(crate) enum TextSource<'a> {
    Segment(&'a Segment),
    Index(&'a TextIndex),
}

/// One source's indexes (the memtable's, or one segment's), as a filter sees them.
pub(crate) struct SourceIndex<'a> {
    /// Rows `0..rows` make up the source.
    pub rows: u32,
    pub fields: &'a FieldIndex,
    pub text: TextSource<'a>,
    pub analyzer: &'a Analyzer,
}

impl SourceIndex<'_> {
    fn universe(&self) -> RoaringBitmap {
        let mut b = RoaringBitmap::new();
        b.insert_range(0..self.rows);
        b
    }

    /// Rows containing every term `term` analyzes to (none if it analyzes to nothing).
    fn has_term(&self, term: &str) -> Result<RoaringBitmap> {
        let index = match self.text {
            TextSource::Segment(seg) => seg.text()?,
            TextSource::Index(t) => t,
        };
        let terms = self.analyzer.terms(term);
        let mut it = terms.iter();
        let Some(first) = it.next() else {
            return Ok(RoaringBitmap::new());
        };
        let mut acc = index.term_rows(first);
        for t in it {
            acc &= index.term_rows(t);
        }
        Ok(acc)
    }
}

/// The rows of the source that `f` matches.
pub(crate) fn evaluate(f: &Filter, idx: &SourceIndex<'_>) -> Result<RoaringBitmap> {
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
        Filter::Eq { field, value } => idx.fields.eq(field, value),
        Filter::In { field, values } => {
            let mut acc = RoaringBitmap::new();
            for v in values {
                acc |= idx.fields.eq(field, v);
            }
            acc
        }
        Filter::Range { field, bounds } => idx.fields.range(field, bounds),
        Filter::Exists { field } => idx.fields.exists(field),
        Filter::HasTerm { term } => idx.has_term(term)?,
    })
}
