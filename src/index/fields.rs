//! Payload field indexes of one source (the memtable, or one sealed segment): for every field,
//! the rows that have it, keyword → rows and bool → rows bitmaps, and a numeric column.
//!
//! Nothing is declared: every path a payload reaches is a field (nested object keys joined with
//! `.`, like `meta.author`; see [`crate::model::filter`] for the semantics), indexed by the type
//! of each value found there. Strings go to the keyword map, booleans to the bool bitmaps,
//! integers and floats (as `f64`; NaN is not indexed and matches no range) to the numeric
//! column, `null` to the null bitmap; a list's elements are indexed under the list's own path,
//! and every path reached (lists and objects too) marks the row in the field's exists bitmap.
//! The memtable appends to its column and scans it for ranges; a segment's column is sorted by
//! value and answers a range with two binary searches.
//!
//! A segment stores the index in its `fields` file: the 64-byte header (kind 9, count = rows,
//! aux = segment id, body checksum crc32c) and a postcard body (see `docs/file-format.md`).
//! It is decoded on the first filtered search, not on open.

use std::collections::HashMap;
use std::path::Path;

use roaring::RoaringBitmap;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::io::header::{FileKind, Header};
use crate::model::filter::Bounds;
use crate::model::record::{Payload, Value};

/// The file name inside a segment directory.
pub(crate) const FIELDS_FILE: &str = "fields";

#[derive(Debug, Default, Clone)]
struct Field {
    exists: RoaringBitmap,
    keywords: HashMap<String, RoaringBitmap>,
    falses: RoaringBitmap,
    trues: RoaringBitmap,
    nulls: RoaringBitmap,
    /// (value, row); sorted by value (then row) when `sorted`.
    numbers: Vec<(f64, u32)>,
    sorted: bool,
    /// When sorted: `prefix[j]` holds the rows of the first `j · block` entries, so a range
    /// is one bitmap difference plus the entries of its two partial blocks.
    prefix: Vec<RoaringBitmap>,
    /// Entries per prefix step.
    block: usize,
}

/// Smallest number of column entries per prefix bitmap. Larger columns use `len / MAX_PREFIXES`
/// so the prefixes take at most `MAX_PREFIXES / 8` bytes per row.
const MIN_BLOCK: usize = 2048;
const MAX_PREFIXES: usize = 128;

/// The prefix bitmaps of a sorted column (see `Field::prefix`); none when a row appears more
/// than once in the column (a list of numbers), as the prefix differences need each row once.
fn prefixes(numbers: &[(f64, u32)]) -> (Vec<RoaringBitmap>, usize) {
    let block = MIN_BLOCK.max(numbers.len().div_ceil(MAX_PREFIXES));
    let mut out = vec![RoaringBitmap::new()];
    let mut acc = RoaringBitmap::new();
    for chunk in numbers.chunks(block) {
        let mut rows: Vec<u32> = chunk.iter().map(|e| e.1).collect();
        rows.sort_unstable();
        acc |= RoaringBitmap::from_sorted_iter(rows).unwrap_or_default();
        out.push(acc.clone());
    }
    if acc.len() != numbers.len() as u64 {
        return (Vec::new(), block);
    }
    (out, block)
}

/// The field indexes of one source.
#[derive(Debug, Default, Clone)]
pub(crate) struct FieldIndex {
    rows: u32,
    fields: HashMap<String, Field>,
}

impl FieldIndex {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Indexes `payload` as row `row`; rows are pushed in increasing order.
    pub(crate) fn push(&mut self, row: u32, payload: &Payload) {
        debug_assert!(row >= self.rows);
        self.rows = row + 1;
        // Paths still to index, with the value found there. Iterative: any depth is safe.
        let mut paths: Vec<(String, &Value)> = payload
            .iter()
            .rev()
            .map(|(name, v)| (name.clone(), v))
            .collect();
        let mut here: Vec<&Value> = Vec::new();
        while let Some((path, value)) = paths.pop() {
            let f = self.fields.entry(path.clone()).or_default();
            f.exists.insert(row);
            here.push(value);
            while let Some(v) = here.pop() {
                match v {
                    Value::Null => {
                        f.nulls.insert(row);
                    }
                    Value::Str(s) => {
                        f.keywords.entry(s.clone()).or_default().insert(row);
                    }
                    Value::Bool(true) => {
                        f.trues.insert(row);
                    }
                    Value::Bool(false) => {
                        f.falses.insert(row);
                    }
                    Value::Int(i) => f.numbers.push((*i as f64, row)),
                    Value::UInt(u) => f.numbers.push((*u as f64, row)),
                    Value::Float(x) if !x.is_nan() => f.numbers.push((*x, row)),
                    Value::Float(_) => {}
                    // Elements stand under the list's own path.
                    Value::List(l) => here.extend(l.iter().rev()),
                    Value::Object(o) => {
                        paths.extend(o.iter().map(|(k, c)| (format!("{path}.{k}"), c)))
                    }
                }
            }
        }
    }

    /// Rows `0..rows` of the source.
    #[cfg(test)]
    pub(crate) fn rows(&self) -> u32 {
        self.rows
    }

    /// Extends the source to `rows` rows (rows without payload fields).
    pub(crate) fn set_rows(&mut self, rows: u32) {
        self.rows = self.rows.max(rows);
    }

    /// Sorts the numeric columns (done once, before a segment is written).
    fn sort(&mut self) {
        for f in self.fields.values_mut() {
            if !f.sorted {
                f.numbers
                    .sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                // A list may repeat a number: the column holds each (value, row) once.
                f.numbers.dedup();
                f.sorted = true;
            }
        }
    }

    /// Rows whose `field` equals `value` (see [`crate::model::filter::Filter::Eq`]).
    pub(crate) fn eq(&self, field: &str, value: &Value) -> RoaringBitmap {
        let Some(f) = self.fields.get(field) else {
            return RoaringBitmap::new();
        };
        match value {
            Value::Null => f.nulls.clone(),
            Value::Str(s) => f.keywords.get(s).cloned().unwrap_or_default(),
            Value::Bool(true) => f.trues.clone(),
            Value::Bool(false) => f.falses.clone(),
            Value::Int(i) => f.range(&Bounds {
                gte: Some(*i as f64),
                lte: Some(*i as f64),
                ..Bounds::default()
            }),
            Value::Float(x) => f.range(&Bounds {
                gte: Some(*x),
                lte: Some(*x),
                ..Bounds::default()
            }),
            Value::UInt(u) => f.range(&Bounds {
                gte: Some(*u as f64),
                lte: Some(*u as f64),
                ..Bounds::default()
            }),
            Value::List(_) | Value::Object(_) => RoaringBitmap::new(),
        }
    }

    /// Rows whose numeric `field` lies within `bounds`.
    pub(crate) fn range(&self, field: &str, bounds: &Bounds) -> RoaringBitmap {
        self.fields
            .get(field)
            .map(|f| f.range(bounds))
            .unwrap_or_default()
    }

    /// Rows that have `field`.
    pub(crate) fn exists(&self, field: &str) -> RoaringBitmap {
        self.fields
            .get(field)
            .map(|f| f.exists.clone())
            .unwrap_or_default()
    }

    /// Approximate heap bytes.
    pub(crate) fn bytes(&self) -> usize {
        self.fields
            .iter()
            .map(|(name, f)| {
                name.len()
                    + f.exists.serialized_size()
                    + f.trues.serialized_size()
                    + f.falses.serialized_size()
                    + f.nulls.serialized_size()
                    + f.numbers.capacity() * 16
                    + f.keywords
                        .iter()
                        .map(|(k, b)| k.len() + 48 + b.serialized_size())
                        .sum::<usize>()
            })
            .sum()
    }

    /// The complete `fields` file of segment `segment_id`.
    pub(crate) fn encode(mut self, segment_id: u64) -> Vec<u8> {
        self.sort();
        let bitmap = |b: &RoaringBitmap| {
            let mut out = Vec::with_capacity(b.serialized_size());
            b.serialize_into(&mut out)
                .expect("writing to a Vec cannot fail");
            out
        };
        let mut names: Vec<&String> = self.fields.keys().collect();
        names.sort();
        let stored = StoredFields {
            rows: self.rows,
            fields: names
                .into_iter()
                .map(|name| {
                    let f = &self.fields[name];
                    let mut keywords: Vec<(&String, &RoaringBitmap)> = f.keywords.iter().collect();
                    keywords.sort_by(|a, b| a.0.cmp(b.0));
                    StoredField {
                        name: name.clone(),
                        exists: bitmap(&f.exists),
                        keywords: keywords
                            .into_iter()
                            .map(|(k, b)| (k.clone(), bitmap(b)))
                            .collect(),
                        falses: bitmap(&f.falses),
                        trues: bitmap(&f.trues),
                        numbers: f.numbers.clone(),
                    }
                })
                .collect(),
        };
        let mut body = postcard::to_allocvec(&stored).expect("postcard encodes plain data");
        // The null bitmaps follow as an extension (older builds ignore trailing bytes).
        let nulls: Vec<(&String, Vec<u8>)> = stored
            .fields
            .iter()
            .filter_map(|sf| {
                let f = &self.fields[&sf.name];
                (!f.nulls.is_empty()).then(|| (&sf.name, bitmap(&f.nulls)))
            })
            .collect();
        if !nulls.is_empty() {
            body = postcard::to_extend(&nulls, body).expect("postcard encodes plain data");
        }
        let mut h = Header::new(FileKind::Fields);
        h.count = u64::from(self.rows);
        h.body_len = body.len() as u64;
        h.body_crc = crc32c::crc32c(&body);
        h.aux = segment_id;
        let mut out = h.encode().to_vec();
        out.extend_from_slice(&body);
        out
    }

    /// Decodes and checks a `fields` file: header, checksum, every bitmap (well formed, rows
    /// below the row count), the numeric columns (sorted, no NaN, rows in range).
    pub(crate) fn decode(
        bytes: &[u8],
        path: &Path,
        segment_id: u64,
        rows: usize,
    ) -> Result<FieldIndex> {
        let bad = |msg: String| Error::corruption(path, msg);
        let (h, body) = Header::checked_body(bytes, FileKind::Fields, path, segment_id)?;
        if h.count != rows as u64 {
            return Err(bad(format!(
                "holds {} rows, the segment has {rows}",
                h.count
            )));
        }
        let (stored, rest): (StoredFields, &[u8]) =
            postcard::take_from_bytes(body).map_err(|e| bad(format!("undecodable body: {e}")))?;
        let null_maps: Vec<(String, Vec<u8>)> = if rest.is_empty() {
            Vec::new()
        } else {
            match postcard::take_from_bytes(rest) {
                Ok((nulls, [])) => nulls,
                Ok(_) => return Err(bad("bytes after the null bitmaps".into())),
                Err(e) => return Err(bad(format!("undecodable null bitmaps: {e}"))),
            }
        };
        if stored.rows as usize != rows {
            return Err(bad(format!("body says {} rows", stored.rows)));
        }
        let bitmap = |name: &str, b: &[u8]| -> Result<RoaringBitmap> {
            let bm = RoaringBitmap::deserialize_from(b)
                .map_err(|e| bad(format!("field `{name}`: bad bitmap: {e}")))?;
            if bm.max().is_some_and(|m| m >= stored.rows) {
                return Err(bad(format!("field `{name}`: row beyond the segment")));
            }
            Ok(bm)
        };
        let mut fields = HashMap::with_capacity(stored.fields.len());
        for sf in stored.fields {
            let mut keywords = HashMap::with_capacity(sf.keywords.len());
            for (k, b) in &sf.keywords {
                keywords.insert(k.clone(), bitmap(&sf.name, b)?);
            }
            let ordered = sf
                .numbers
                .windows(2)
                .all(|w| w[0].0.total_cmp(&w[1].0).then(w[0].1.cmp(&w[1].1)).is_lt());
            if !ordered
                || sf
                    .numbers
                    .iter()
                    .any(|&(x, r)| x.is_nan() || r >= stored.rows)
            {
                return Err(bad(format!(
                    "field `{}`: numeric column out of order or out of range",
                    sf.name
                )));
            }
            let (prefix, block) = prefixes(&sf.numbers);
            let f = Field {
                exists: bitmap(&sf.name, &sf.exists)?,
                keywords,
                falses: bitmap(&sf.name, &sf.falses)?,
                trues: bitmap(&sf.name, &sf.trues)?,
                nulls: RoaringBitmap::new(),
                prefix,
                block,
                numbers: sf.numbers,
                sorted: true,
            };
            if fields.insert(sf.name.clone(), f).is_some() {
                return Err(bad(format!("field `{}` appears twice", sf.name)));
            }
        }
        for (name, b) in &null_maps {
            let nulls = bitmap(name, b)?;
            match fields.get_mut(name) {
                Some(f) if f.nulls.is_empty() && !nulls.is_empty() => f.nulls = nulls,
                _ => {
                    return Err(bad(format!(
                        "null bitmap of `{name}`: no such field, empty or repeated"
                    )));
                }
            }
        }
        Ok(FieldIndex {
            rows: stored.rows,
            fields,
        })
    }
}

impl Field {
    fn range(&self, b: &Bounds) -> RoaringBitmap {
        if !self.sorted {
            // Appended in row order: the matching rows come out ascending.
            return RoaringBitmap::from_sorted_iter(
                self.numbers
                    .iter()
                    .filter(|(x, _)| b.contains(*x))
                    .map(|&(_, r)| r),
            )
            .unwrap_or_else(|_| {
                self.numbers
                    .iter()
                    .filter(|(x, _)| b.contains(*x))
                    .map(|&(_, r)| r)
                    .collect()
            });
        }
        // First index whose value is inside the lower bounds, first past the upper bounds.
        let lo = self.numbers.partition_point(|&(x, _)| {
            b.gt.is_some_and(|g| x <= g) || b.gte.is_some_and(|g| x < g)
        });
        let hi = self
            .numbers
            .partition_point(|&(x, _)| b.lt.is_none_or(|l| x < l) && b.lte.is_none_or(|l| x <= l));
        if lo >= hi {
            return RoaringBitmap::new();
        }
        if self.prefix.is_empty() {
            return self.numbers[lo..hi].iter().map(|&(_, r)| r).collect();
        }
        // Whole blocks inside [lo, hi) come from two prefixes (a row appears once in a
        // column, so their difference is exactly those blocks' rows); the rest is sorted.
        let b = self.block;
        let (first_full, end_full) = (lo.div_ceil(b), hi / b);
        let mut edge: Vec<u32> = Vec::new();
        let mut acc = RoaringBitmap::new();
        if first_full < end_full {
            edge.extend(self.numbers[lo..first_full * b].iter().map(|e| e.1));
            edge.extend(self.numbers[end_full * b..hi].iter().map(|e| e.1));
            acc = &self.prefix[end_full] - &self.prefix[first_full];
        } else {
            edge.extend(self.numbers[lo..hi].iter().map(|e| e.1));
        }
        edge.sort_unstable();
        edge.dedup();
        acc |= RoaringBitmap::from_sorted_iter(edge).unwrap_or_default();
        acc
    }
}

#[derive(Serialize, Deserialize)]
struct StoredFields {
    rows: u32,
    fields: Vec<StoredField>,
}

#[derive(Serialize, Deserialize)]
struct StoredField {
    name: String,
    exists: Vec<u8>,
    keywords: Vec<(String, Vec<u8>)>,
    falses: Vec<u8>,
    trues: Vec<u8>,
    numbers: Vec<(f64, u32)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A decoded column answers ranges from whole blocks plus sorted edges; it must agree with
    /// a plain scan for ranges that start and end anywhere.
    #[test]
    fn block_ranges_agree_with_a_scan() {
        let mut idx = FieldIndex::new();
        let mut state = 12345u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as u32
        };
        let n = 5 * MIN_BLOCK as u32 + 77;
        for r in 0..n {
            let mut p = Payload::new();
            p.insert("x".into(), Value::Int(i64::from(next() % 1000)));
            idx.push(r, &p);
        }
        let seg =
            FieldIndex::decode(&idx.clone().encode(1), Path::new("f"), 1, n as usize).unwrap();
        for _ in 0..300 {
            let (a, b) = (
                f64::from(next() % 1100) - 50.0,
                f64::from(next() % 1100) - 50.0,
            );
            let bounds = Bounds {
                gte: Some(a.min(b)),
                lt: Some(a.max(b)),
                ..Bounds::default()
            };
            assert_eq!(
                seg.range("x", &bounds),
                idx.range("x", &bounds),
                "{bounds:?}"
            );
        }
    }

    #[test]
    fn decode_rejects_damage_without_panicking() {
        let mut idx = FieldIndex::new();
        for r in 0..50u32 {
            let mut p = Payload::new();
            p.insert(
                "lang".into(),
                Value::from(if r % 2 == 0 { "en" } else { "de" }),
            );
            p.insert("year".into(), Value::Int(2000 + i64::from(r)));
            idx.push(r, &p);
        }
        let bytes = idx.encode(3);
        let path = Path::new("fields");
        assert!(FieldIndex::decode(&bytes, path, 3, 50).is_ok());
        assert!(FieldIndex::decode(&bytes, path, 4, 50).is_err());
        assert!(FieldIndex::decode(&bytes, path, 3, 49).is_err());
        for cut in 0..bytes.len() {
            assert!(FieldIndex::decode(&bytes[..cut], path, 3, 50).is_err());
        }
        for i in 0..bytes.len() {
            for bit in [0, 3, 7] {
                let mut b = bytes.clone();
                b[i] ^= 1 << bit;
                assert!(
                    FieldIndex::decode(&b, path, 3, 50).is_err(),
                    "flip at {i} accepted"
                );
            }
        }
    }

    /// Null bitmaps travel in the extension after `StoredFields`; a file without nulls has no
    /// extension (the layout older builds wrote, still decoded), and older builds reading a file
    /// with one stop before it.
    #[test]
    fn nulls_round_trip_through_the_extension() {
        let mut idx = FieldIndex::new();
        for r in 0..10u32 {
            let mut p = Payload::new();
            let v = if r % 3 == 0 {
                Value::Null
            } else {
                Value::List(vec![
                    Value::Int(r.into()),
                    Value::Int(r.into()),
                    Value::Null,
                ])
            };
            p.insert("a".into(), v);
            idx.push(r, &p);
        }
        let bytes = idx.clone().encode(1);
        let path = Path::new("fields");
        let seg = FieldIndex::decode(&bytes, path, 1, 10).unwrap();
        assert_eq!(seg.eq("a", &Value::Null).len(), 10);
        assert_eq!(seg.eq("a", &Value::Int(4)), idx.eq("a", &Value::Int(4)));
        let body = &bytes[crate::io::header::HEADER_LEN..];
        let (_, rest): (StoredFields, &[u8]) = postcard::take_from_bytes(body).unwrap();
        assert!(!rest.is_empty());
        let old: StoredFields = postcard::from_bytes(body).unwrap();
        assert_eq!(old.rows, 10);
    }
}
