//! Log record bodies: how an upsert or delete batch is encoded in a WAL frame.
//!
//! ```text
//! upsert: collection u64 | dim u32 | count u32 | count × (id u64 | dim × f32 | doc_len u32 | doc)
//! delete: collection u64 | count u32 | count × id u64
//! ```
//! All integers and floats little-endian; `doc` is the postcard-encoded text and payload.
//! The live write path applies the very bytes it logged, so replay and live writes cannot
//! diverge.

use crate::io::header::{u32_at, u64_at};

/// An encoded upsert batch, borrowed from a frame body.
#[derive(Debug)]
pub struct UpsertView<'a> {
    /// Collection id.
    pub collection: u64,
    /// Vector dimension.
    pub dim: usize,
    /// Rows: id, vector bytes (dim × 4), encoded document.
    pub rows: Vec<(u64, &'a [u8], &'a [u8])>,
}

/// Builds an upsert body.
pub(crate) struct UpsertBuilder {
    buf: Vec<u8>,
    count: u32,
}

impl UpsertBuilder {
    pub(crate) fn new(collection: u64, dim: usize, capacity: usize) -> Self {
        let mut buf = Vec::with_capacity(16 + capacity);
        buf.extend_from_slice(&collection.to_le_bytes());
        buf.extend_from_slice(&(dim as u32).to_le_bytes());
        buf.extend_from_slice(&0u32.to_le_bytes());
        UpsertBuilder { buf, count: 0 }
    }

    pub(crate) fn push(&mut self, id: u64, vector: &[f32], doc: &[u8]) {
        self.buf.extend_from_slice(&id.to_le_bytes());
        for x in vector {
            self.buf.extend_from_slice(&x.to_le_bytes());
        }
        self.buf
            .extend_from_slice(&(doc.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(doc);
        self.count += 1;
    }

    pub(crate) fn finish(mut self) -> Vec<u8> {
        self.buf[12..16].copy_from_slice(&self.count.to_le_bytes());
        self.buf
    }
}

/// Decodes an upsert body; `None` when it is malformed.
pub fn decode_upsert(b: &[u8]) -> Option<UpsertView<'_>> {
    if b.len() < 16 {
        return None;
    }
    let collection = u64_at(b, 0);
    let dim = u32_at(b, 8) as usize;
    let count = u32_at(b, 12) as usize;
    let vbytes = dim.checked_mul(4)?;
    let mut pos = 16usize;
    // Each row takes at least 12 bytes plus its vector: reject absurd counts before allocating.
    if count > (b.len() - pos) / (12 + vbytes).max(1) {
        return None;
    }
    let mut rows = Vec::with_capacity(count);
    for _ in 0..count {
        if b.len() - pos < 8 + vbytes + 4 {
            return None;
        }
        let id = u64_at(b, pos);
        pos += 8;
        let v = &b[pos..pos + vbytes];
        pos += vbytes;
        let dl = u32_at(b, pos) as usize;
        pos += 4;
        if b.len() - pos < dl {
            return None;
        }
        let doc = &b[pos..pos + dl];
        pos += dl;
        rows.push((id, v, doc));
    }
    (pos == b.len()).then_some(UpsertView {
        collection,
        dim,
        rows,
    })
}

/// Encodes a delete body.
pub(crate) fn encode_delete(collection: u64, ids: &[u64]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(12 + ids.len() * 8);
    buf.extend_from_slice(&collection.to_le_bytes());
    buf.extend_from_slice(&(ids.len() as u32).to_le_bytes());
    for id in ids {
        buf.extend_from_slice(&id.to_le_bytes());
    }
    buf
}

/// Decodes a delete body: collection id and ids; `None` when malformed.
pub fn decode_delete(b: &[u8]) -> Option<(u64, Vec<u64>)> {
    if b.len() < 12 {
        return None;
    }
    let collection = u64_at(b, 0);
    let count = u32_at(b, 8) as usize;
    if b.len() != 12 + count.checked_mul(8)? {
        return None;
    }
    Some((
        collection,
        (0..count).map(|i| u64_at(b, 12 + i * 8)).collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vector::extend_f32;

    #[test]
    fn round_trips() {
        let mut b = UpsertBuilder::new(9, 2, 0);
        b.push(1, &[1.0, -2.5], b"doc");
        b.push(u64::MAX, &[0.0, 3.0], b"");
        let body = b.finish();
        let v = decode_upsert(&body).unwrap();
        assert_eq!(v.collection, 9);
        assert_eq!(v.rows.len(), 2);
        assert_eq!(v.rows[1].0, u64::MAX);
        let mut f = Vec::new();
        extend_f32(&mut f, v.rows[0].1);
        assert_eq!(f, vec![1.0, -2.5]);
        assert_eq!(v.rows[0].2, b"doc");
        for cut in 0..body.len() {
            assert!(decode_upsert(&body[..cut]).is_none(), "cut {cut}");
        }
        let d = encode_delete(3, &[5, 6]);
        assert_eq!(decode_delete(&d), Some((3, vec![5, 6])));
        assert!(decode_delete(&d[..d.len() - 1]).is_none());
    }
}
