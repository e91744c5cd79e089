//! The 64-byte header that starts every file Cairn writes.
//!
//! | offset | size | field |
//! |---:|---:|---|
//! | 0 | 8 | magic `89 43 41 49 52 4E 0D 0A` (`\x89CAIRN\r\n`) |
//! | 8 | 2 | format version (u16 LE): 2 for WAL, payload, ids and text files, 1 or 2 for manifests, 1 for the others |
//! | 10 | 1 | file kind ([`FileKind`]) |
//! | 11 | 1 | checksum algorithm: 1 = crc32c |
//! | 12 | 4 | dim (u32 LE; 0 where it has no meaning) |
//! | 16 | 8 | count (u64 LE: rows, ids, entries) |
//! | 24 | 8 | body length in bytes (u64 LE) |
//! | 32 | 4 | body checksum (u32 LE), see each kind |
//! | 36 | 4 | block size (u32 LE) for block-checksummed bodies, else 0 |
//! | 40 | 8 | aux (u64 LE): WAL first LSN; segment id for segment files; else 0 |
//! | 48 | 12 | reserved, zero |
//! | 60 | 4 | header checksum: crc32c of bytes 0..60 |
//!
//! The body starts at offset 64, so it is 64-byte aligned in a page-aligned mapping.

use std::path::Path;

use crate::error::{Error, Result};

/// Size of the header; bodies start here.
pub(crate) const HEADER_LEN: usize = 64;
/// Magic bytes: a non-ASCII first byte and a CR LF catch text-mode mangling, like PNG.
pub(crate) const MAGIC: [u8; 8] = *b"\x89CAIRN\r\n";
/// The format version of the files whose layout never changed; this build reads and writes it.
pub(crate) const FORMAT_VERSION: u16 = 1;
/// The version of WAL and payload files: 2 since payload values are JSON (new stored value
/// tags). Version 1 files (scalars and string lists only) are still read; an older build
/// refuses version 2 with "format version 2 is not supported".
pub(crate) const PAYLOAD_FORMAT_VERSION: u16 = 2;
/// The newest manifest version: 2 when a collection has string ids (older builds must not
/// open such a database: they would read its documents as corrupt), else 1.
pub(crate) const MANIFEST_FORMAT_VERSION: u16 = 2;
/// The version of `ids` files: 2 since they carry a crc32c per 4 KiB block (checked on first
/// touch, so opening a segment reads none of its ids). Version 1 files (one checksum over
/// the whole body, checked at open) are still read.
pub(crate) const IDS_FORMAT_VERSION: u16 = 2;
/// The version of segment `text` files: 2 since they store per-block score bounds (a
/// block-bound section after the postings). Version 1 files are still read (their bounds are
/// computed on load); an older build refuses version 2.
pub(crate) const TEXT_FORMAT_VERSION: u16 = 2;
const CHECKSUM_CRC32C: u8 = 1;

/// What a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum FileKind {
    Wal = 1,
    Manifest = 2,
    Vectors = 3,
    Ids = 4,
    Payload = 5,
    Tombstones = 6,
    Graph = 7,
    Text = 8,
    Fields = 9,
    Codes = 10,
    /// RaBitQ codes (a segment's `codes` file when the collection's quantization is
    /// `rabitq4` or `rabitq1`).
    RaBitQCodes = 11,
}

impl TryFrom<u8> for FileKind {
    type Error = u8;
    fn try_from(v: u8) -> std::result::Result<Self, u8> {
        Ok(match v {
            1 => FileKind::Wal,
            2 => FileKind::Manifest,
            3 => FileKind::Vectors,
            4 => FileKind::Ids,
            5 => FileKind::Payload,
            6 => FileKind::Tombstones,
            7 => FileKind::Graph,
            8 => FileKind::Text,
            9 => FileKind::Fields,
            10 => FileKind::Codes,
            11 => FileKind::RaBitQCodes,
            other => return Err(other),
        })
    }
}

impl FileKind {
    /// The version this build writes for the kind (and the newest it reads; every older one
    /// from 1 is read too).
    pub(crate) fn version(self) -> u16 {
        match self {
            FileKind::Wal | FileKind::Payload => PAYLOAD_FORMAT_VERSION,
            FileKind::Manifest => MANIFEST_FORMAT_VERSION,
            FileKind::Ids => IDS_FORMAT_VERSION,
            FileKind::Text => TEXT_FORMAT_VERSION,
            _ => FORMAT_VERSION,
        }
    }
}

/// A decoded header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub kind: FileKind,
    /// The format version read (or to write: the kind's current one).
    pub version: u16,
    pub dim: u32,
    pub count: u64,
    pub body_len: u64,
    pub body_crc: u32,
    pub block_size: u32,
    pub aux: u64,
}

impl Header {
    pub(crate) fn new(kind: FileKind) -> Self {
        Header {
            kind,
            version: kind.version(),
            dim: 0,
            count: 0,
            body_len: 0,
            body_crc: 0,
            block_size: 0,
            aux: 0,
        }
    }

    pub(crate) fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..8].copy_from_slice(&MAGIC);
        b[8..10].copy_from_slice(&self.version.to_le_bytes());
        b[10] = self.kind as u8;
        b[11] = CHECKSUM_CRC32C;
        b[12..16].copy_from_slice(&self.dim.to_le_bytes());
        b[16..24].copy_from_slice(&self.count.to_le_bytes());
        b[24..32].copy_from_slice(&self.body_len.to_le_bytes());
        b[32..36].copy_from_slice(&self.body_crc.to_le_bytes());
        b[36..40].copy_from_slice(&self.block_size.to_le_bytes());
        b[40..48].copy_from_slice(&self.aux.to_le_bytes());
        let crc = crc32c::crc32c(&b[..60]);
        b[60..64].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes the header of a whole-body-checksummed file of a segment and checks the rest of
    /// the file against it: the body is exactly `body_len` bytes, matches `body_crc`, and the
    /// file belongs to `segment` (aux). Returns the header and the body.
    pub(crate) fn checked_body<'a>(
        bytes: &'a [u8],
        expect: FileKind,
        path: &Path,
        segment: u64,
    ) -> Result<(Header, &'a [u8])> {
        let bad = |what: String| Error::corruption(path, what);
        let h = Header::decode(bytes, expect, path)?;
        let body = &bytes[HEADER_LEN..];
        if body.len() as u64 != h.body_len {
            return Err(bad(format!(
                "body is {} bytes, header says {}",
                body.len(),
                h.body_len
            )));
        }
        if crc32c::crc32c(body) != h.body_crc {
            return Err(bad("body checksum mismatch".into()));
        }
        if h.aux != segment {
            return Err(bad(format!(
                "belongs to segment {}, expected {segment}",
                h.aux
            )));
        }
        Ok((h, body))
    }

    /// Decodes and checks a header: length, magic, header checksum, version, kind.
    pub(crate) fn decode(bytes: &[u8], expect: FileKind, path: &Path) -> Result<Header> {
        let bad = |what: String| Error::corruption(path, what);
        if bytes.len() < HEADER_LEN {
            return Err(bad(format!(
                "file is {} bytes, shorter than its {HEADER_LEN}-byte header",
                bytes.len()
            )));
        }
        let b = &bytes[..HEADER_LEN];
        if b[0..8] != MAGIC {
            return Err(bad("bad magic bytes: not a Cairn file".into()));
        }
        let stored = u32_at(b, 60);
        let actual = crc32c::crc32c(&b[..60]);
        if stored != actual {
            return Err(bad(format!(
                "header checksum mismatch (stored {stored:#010x}, computed {actual:#010x})"
            )));
        }
        let version = u16::from_le_bytes([b[8], b[9]]);
        let kind = FileKind::try_from(b[10]).map_err(|k| bad(format!("unknown file kind {k}")))?;
        if !(1..=expect.version()).contains(&version) {
            return Err(bad(format!(
                "format version {version} is not supported (this build reads {expect:?} files of versions 1 to {}): written by a newer Cairn",
                expect.version()
            )));
        }
        if kind != expect {
            return Err(bad(format!("file kind is {kind:?}, expected {expect:?}")));
        }
        if b[11] != CHECKSUM_CRC32C {
            return Err(bad(format!("unknown checksum algorithm {}", b[11])));
        }
        Ok(Header {
            kind,
            version,
            dim: u32_at(b, 12),
            count: u64_at(b, 16),
            body_len: u64_at(b, 24),
            body_crc: u32_at(b, 32),
            block_size: u32_at(b, 36),
            aux: u64_at(b, 40),
        })
    }
}

/// Reads a little-endian u32 at `off`; the caller has checked the bounds.
pub(crate) fn u32_at(b: &[u8], off: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[off..off + 4]);
    u32::from_le_bytes(a)
}

/// Reads a little-endian u64 at `off`; the caller has checked the bounds.
pub(crate) fn u64_at(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_every_flip_is_caught() {
        let mut h = Header::new(FileKind::Vectors);
        h.dim = 384;
        h.count = 12345;
        h.body_len = 999;
        h.body_crc = 0xdead_beef;
        h.block_size = 65536;
        h.aux = 42;
        let bytes = h.encode();
        let p = Path::new("x");
        assert_eq!(Header::decode(&bytes, FileKind::Vectors, p).unwrap(), h);
        assert!(Header::decode(&bytes, FileKind::Ids, p).is_err());
        assert!(Header::decode(&bytes[..63], FileKind::Vectors, p).is_err());
        for i in 0..HEADER_LEN {
            let mut c = bytes;
            c[i] ^= 0x01;
            assert!(
                matches!(
                    Header::decode(&c, FileKind::Vectors, p),
                    Err(Error::Corruption { .. })
                ),
                "flip at {i} not detected"
            );
        }
    }
}
