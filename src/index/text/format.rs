//! The segment `text` file: a [`TextIndex`] on disk.
//!
//! ```text
//! header (kind Text, version 2, count = rows, aux = segment id, body crc32c)
//! meta        terms u64 | doc-length bytes u64 | dictionary bytes u64 | postings bytes u64
//!             | block-bound bytes u64                                    (version 2 only)
//! doc lengths varint × rows
//! dictionary  per term, sorted by bytes: varint len, term (UTF-8), varint df, varint postings bytes
//! postings    per term, in dictionary order: df × (varint row delta, varint tf)
//! block bounds (version 2) per term with df ≥ BLOCK_LEN, in dictionary order, per block of
//!             BLOCK_LEN postings: varint n (1..=MAX_POINTS), n × (varint tf, varint dl)
//! ```
//!
//! The first row delta of a list is the row itself, later ones are the gap to the previous row
//! (≥ 1). Varints are LEB128 (7 bits a byte, low first). Byte table: `docs/file-format.md`.
//!
//! A block's points bound the BM25 contribution of its postings for any collection statistics
//! (see [`BlockMax`]); decoding checks that every posting is dominated by a point of its block
//! (a wrong bound would silently drop results). Lists shorter than a block, and every list of a
//! version-1 file (which has no block-bound section), get their bounds computed on load.
//!
//! Decoding checks everything before trusting it, so a damaged file gives
//! `Error::Corruption`, never a panic or an allocation larger than the file justifies.

use std::collections::HashMap;
use std::path::Path;

use super::index::{
    BLOCK_LEN, BlockMax, MAX_POINTS, TextIndex, block_bounds, block_count, dominates,
};
use crate::error::{Error, Result};
use crate::io::header::{FileKind, HEADER_LEN, Header, u64_at};

/// Size of the fixed meta block at the start of the body: four lengths in version 1, five in
/// version 2.
fn meta_len(version: u16) -> usize {
    if version >= 2 { 40 } else { 32 }
}
/// The smallest dictionary entry: a length byte, an empty term, a df byte, a length byte.
const MIN_DICT_ENTRY: u64 = 3;
/// The smallest posting: a delta byte and a tf byte.
const MIN_POSTING: usize = 2;

/// Appends `v` as a LEB128 varint.
pub(super) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

impl TextIndex {
    /// The complete `text` file of segment `segment_id`: header and body.
    pub fn encode(&self, segment_id: u64) -> Vec<u8> {
        self.encode_version(segment_id, FileKind::Text.version())
    }

    /// [`encode`](Self::encode) in format `version` (1 or 2; tests write version-1 files).
    pub(super) fn encode_version(&self, segment_id: u64, version: u16) -> Vec<u8> {
        let mut terms: Vec<(&String, &super::index::Plist)> = self.postings.iter().collect();
        terms.sort_unstable_by(|a, b| a.0.cmp(b.0));

        let mut doc_lens = Vec::with_capacity(self.doc_lens.len());
        for &len in &self.doc_lens {
            put_varint(&mut doc_lens, u64::from(len));
        }
        let mut dict = Vec::new();
        let mut postings = Vec::new();
        let mut bounds = Vec::new();
        for (term, p) in &terms {
            let list = &p.rows;
            if version >= 2 && list.len() >= BLOCK_LEN {
                let computed;
                let blocks: &[BlockMax] = if p.blocks.len() == block_count(list.len()) {
                    &p.blocks
                } else {
                    computed = block_bounds(list, &self.doc_lens);
                    &computed
                };
                for b in blocks {
                    let used: Vec<&(u32, u32)> = b.iter().filter(|pt| pt.0 > 0).collect();
                    put_varint(&mut bounds, used.len() as u64);
                    for &&(tf, dl) in &used {
                        put_varint(&mut bounds, u64::from(tf));
                        put_varint(&mut bounds, u64::from(dl));
                    }
                }
            }
            let start = postings.len();
            let mut prev = 0u32;
            for (i, &(row, tf)) in list.iter().enumerate() {
                put_varint(
                    &mut postings,
                    u64::from(if i == 0 { row } else { row - prev }),
                );
                put_varint(&mut postings, u64::from(tf));
                prev = row;
            }
            put_varint(&mut dict, term.len() as u64);
            dict.extend_from_slice(term.as_bytes());
            put_varint(&mut dict, list.len() as u64);
            put_varint(&mut dict, (postings.len() - start) as u64);
        }

        let body_len =
            meta_len(version) + doc_lens.len() + dict.len() + postings.len() + bounds.len();
        let mut body = Vec::with_capacity(body_len);
        let mut meta = vec![terms.len(), doc_lens.len(), dict.len(), postings.len()];
        if version >= 2 {
            meta.push(bounds.len());
        }
        for n in meta {
            body.extend_from_slice(&(n as u64).to_le_bytes());
        }
        body.extend_from_slice(&doc_lens);
        body.extend_from_slice(&dict);
        body.extend_from_slice(&postings);
        if version >= 2 {
            body.extend_from_slice(&bounds);
        }

        let mut h = Header::new(FileKind::Text);
        h.version = version;
        h.count = u64::from(self.rows());
        h.body_len = body.len() as u64;
        h.body_crc = crc32c::crc32c(&body);
        h.aux = segment_id;
        let mut out = Vec::with_capacity(HEADER_LEN + body.len());
        out.extend_from_slice(&h.encode());
        out.extend_from_slice(&body);
        out
    }

    /// Decodes and checks a file written by [`encode`](Self::encode) for segment `segment_id`.
    /// `path` names the file in errors.
    pub fn decode(bytes: &[u8], path: &Path, segment_id: u64) -> Result<TextIndex> {
        let bad = |what: String| Error::corruption(path, what);
        let (h, body) = Header::checked_body(bytes, FileKind::Text, path, segment_id)?;
        let rows = u32::try_from(h.count)
            .map_err(|_| bad(format!("row count {} exceeds u32", h.count)))?;
        let meta = meta_len(h.version);
        if body.len() < meta {
            return Err(bad(format!(
                "body of {} bytes is shorter than its {meta}-byte meta block",
                body.len()
            )));
        }
        let [n_terms, lens_len, dict_len, post_len] = [0, 8, 16, 24].map(|off| u64_at(body, off));
        let bounds_len = if h.version >= 2 { u64_at(body, 32) } else { 0 };
        let sections = [lens_len, dict_len, post_len, bounds_len]
            .iter()
            .try_fold(meta as u64, |acc, &n| acc.checked_add(n));
        if sections != Some(body.len() as u64) {
            return Err(bad(format!(
                "sections of {lens_len} + {dict_len} + {post_len} + {bounds_len} bytes do not \
                 fill the {}-byte body",
                body.len() - meta
            )));
        }
        // All four fit in the body, so these conversions and slices are in bounds.
        let (lens_len, dict_len, post_len) =
            (lens_len as usize, dict_len as usize, post_len as usize);
        let lens_bytes = &body[meta..meta + lens_len];
        let dict_bytes = &body[meta + lens_len..meta + lens_len + dict_len];
        let post_start = meta + lens_len + dict_len;
        let post_bytes = &body[post_start..post_start + post_len];
        let bound_bytes = &body[post_start + post_len..];

        // Document lengths: one varint (≥ 1 byte) per row bounds the allocation.
        if u64::from(rows) > lens_len as u64 {
            return Err(bad(format!(
                "{rows} rows cannot have lengths in {lens_len} bytes"
            )));
        }
        let mut r = Reader::new(lens_bytes, "document lengths", path);
        let mut doc_lens = Vec::with_capacity(rows as usize);
        let (mut docs_with_text, mut total_len) = (0u64, 0u64);
        for _ in 0..rows {
            let len = r.varint_u32()?;
            docs_with_text += u64::from(len > 0);
            total_len += u64::from(len);
            doc_lens.push(len);
        }
        r.finish()?;

        // Dictionary and postings.
        if n_terms > dict_len as u64 / MIN_DICT_ENTRY {
            return Err(bad(format!(
                "{n_terms} terms cannot fit a {dict_len}-byte dictionary"
            )));
        }
        let mut postings = HashMap::with_capacity(n_terms as usize);
        let mut tf_sums = vec![0u64; rows as usize];
        let mut d = Reader::new(dict_bytes, "dictionary", path);
        let mut p = Reader::new(post_bytes, "postings", path);
        let mut bb = Reader::new(bound_bytes, "block bounds", path);
        let mut prev_term: Option<&str> = None;
        let mut heap_bytes = rows as usize * 4;
        for t in 0..n_terms {
            let term_len = d.varint_usize()?;
            let term = std::str::from_utf8(d.bytes(term_len)?)
                .map_err(|_| bad(format!("term {t} is not UTF-8")))?;
            if prev_term.is_some_and(|prev| prev >= term) {
                return Err(bad(format!("dictionary not strictly sorted at term {t}")));
            }
            prev_term = Some(term);
            let df = d.varint()?;
            // `p.bytes` checks it against the postings left.
            let list_len = usize::try_from(d.varint()?).unwrap_or(usize::MAX);
            if df == 0 || df > u64::from(rows) || df > (list_len / MIN_POSTING) as u64 {
                return Err(bad(format!(
                    "term {t}: {df} postings in {list_len} bytes for {rows} rows"
                )));
            }
            let mut l = Reader::new(p.bytes(list_len)?, "postings", path);
            let mut list = Vec::with_capacity(df as usize);
            let mut row = 0u64;
            for i in 0..df {
                let delta = u64::from(l.varint_u32()?);
                if i > 0 && delta == 0 {
                    return Err(bad(format!("term {t}: rows not strictly increasing")));
                }
                row += delta;
                let tf = l.varint_u32()?;
                if row >= u64::from(rows) {
                    return Err(bad(format!("term {t}: row {row} of {rows} rows")));
                }
                if tf == 0 {
                    return Err(bad(format!("term {t}: zero frequency in row {row}")));
                }
                tf_sums[row as usize] = tf_sums[row as usize].saturating_add(u64::from(tf));
                list.push((row as u32, tf));
            }
            l.finish()?;
            let blocks = if h.version >= 2 && list.len() >= BLOCK_LEN {
                read_blocks(&mut bb, &list, &doc_lens, t)?
            } else {
                block_bounds(&list, &doc_lens)
            };
            heap_bytes += term.len()
                + super::index::ENTRY_OVERHEAD
                + 8 * list.len()
                + std::mem::size_of::<BlockMax>() * blocks.len();
            let mut plist = super::index::Plist::new(list);
            plist.blocks = blocks;
            postings.insert(term.to_owned(), plist);
        }
        d.finish()?;
        p.finish()?;
        bb.finish()?;
        if let Some(row) = (0..rows as usize).find(|&r| tf_sums[r] != u64::from(doc_lens[r])) {
            return Err(bad(format!(
                "row {row}: length {} but its terms occur {} times",
                doc_lens[row], tf_sums[row]
            )));
        }
        Ok(TextIndex {
            postings,
            doc_lens,
            docs_with_text,
            total_len,
            heap_bytes,
        })
    }
}

/// The stored bound data of the blocks of `list` (term number `t`), checked: each block has 1
/// to [`MAX_POINTS`] points, and every posting is dominated by one of its block's points.
fn read_blocks(
    r: &mut Reader<'_>,
    list: &[(u32, u32)],
    doc_lens: &[u32],
    t: u64,
) -> Result<Vec<BlockMax>> {
    let mut blocks = Vec::with_capacity(block_count(list.len()));
    for (b, chunk) in list.chunks(BLOCK_LEN).enumerate() {
        let n = r.varint()?;
        if n == 0 || n > MAX_POINTS as u64 {
            return Err(r.err(&format!(
                "term {t} block {b}: {n} points, not 1 to {MAX_POINTS}"
            )));
        }
        let mut pts: BlockMax = [(0, 0); MAX_POINTS];
        for pt in pts.iter_mut().take(n as usize) {
            *pt = (r.varint_u32()?, r.varint_u32()?);
        }
        if !dominates(&pts, chunk, doc_lens) {
            return Err(r.err(&format!(
                "term {t} block {b}: the bound points do not cover the block's postings"
            )));
        }
        blocks.push(pts);
    }
    Ok(blocks)
}

/// A bounds-checked cursor over one section.
struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
    section: &'static str,
    path: &'a Path,
}

impl<'a> Reader<'a> {
    fn new(b: &'a [u8], section: &'static str, path: &'a Path) -> Self {
        Reader {
            b,
            pos: 0,
            section,
            path,
        }
    }

    fn err(&self, what: &str) -> Error {
        Error::corruption(
            self.path,
            format!("{} at byte {}: {what}", self.section, self.pos),
        )
    }

    fn varint(&mut self) -> Result<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let Some(&byte) = self.b.get(self.pos) else {
                return Err(self.err("truncated varint"));
            };
            self.pos += 1;
            let bits = u64::from(byte & 0x7f);
            if shift == 63 && bits > 1 {
                return Err(self.err("varint overflows u64"));
            }
            v |= bits << shift;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.err("varint longer than 10 bytes"))
    }

    fn varint_u32(&mut self) -> Result<u32> {
        let v = self.varint()?;
        u32::try_from(v).map_err(|_| self.err(&format!("{v} exceeds u32")))
    }

    /// A length, which must fit in what is left of the section.
    fn varint_usize(&mut self) -> Result<usize> {
        let v = self.varint()?;
        match usize::try_from(v) {
            Ok(n) if n <= self.b.len() - self.pos => Ok(n),
            _ => Err(self.err(&format!("length {v} runs past the section"))),
        }
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.b.len() - self.pos {
            return Err(self.err(&format!("{n} bytes run past the section")));
        }
        let s = &self.b[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn finish(&self) -> Result<()> {
        if self.pos != self.b.len() {
            return Err(self.err(&format!("{} bytes left over", self.b.len() - self.pos)));
        }
        Ok(())
    }
}
