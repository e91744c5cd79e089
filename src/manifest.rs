//! The manifest: which collections and segments make up the database.
//!
//! One file, `MANIFEST`: the common header (kind Manifest, body length, crc32c of the body)
//! followed by a JSON body. It is replaced atomically (write `MANIFEST.tmp`, fsync, rename,
//! fsync the directory) each time a collection is created or dropped, or a memtable is sealed.
//! JSON keeps it readable with ordinary tools; it is small (a line per segment).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};
use crate::io::fsutil::replace_file;
use crate::io::header::{FileKind, HEADER_LEN, Header};
use crate::log::recover::LogMark;
use crate::model::config::{CollectionConfig, Quantization, validate_name};

/// File name of the manifest in the database directory.
pub(crate) const MANIFEST_FILE: &str = "MANIFEST";

/// The whole manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ManifestData {
    /// Every log frame below this LSN + 1 was durable when the manifest was written; new LSNs
    /// are always above it.
    pub last_lsn: u64,
    /// First LSN of the newest log file when the manifest was written; that file or a newer
    /// one must exist. 0 (manifests written before it was recorded): not checked.
    #[serde(default)]
    pub log_file: u64,
    pub next_collection_id: u64,
    pub next_segment_id: u64,
    pub collections: Vec<CollectionEntry>,
}

/// One collection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct CollectionEntry {
    pub id: u64,
    pub name: String,
    pub config: CollectionConfig,
    /// Log frames of this collection with LSN ≤ this are in its segments and tombstones.
    pub flushed_lsn: u64,
    pub segments: Vec<SegmentEntry>,
}

/// One sealed segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct SegmentEntry {
    pub id: u64,
    pub rows: u64,
    /// The current tombstone file, if any row was deleted.
    pub tombstones: Option<TombstoneRef>,
    /// The kind of the segment's `codes` file; absent when it has none (quantization `none`,
    /// the L2 metric, or a segment written before codes files existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub codes: Option<Quantization>,
}

/// Names a tombstone file generation and how many rows it marks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TombstoneRef {
    pub generation: u64,
    pub count: u64,
}

impl Default for ManifestData {
    fn default() -> Self {
        ManifestData {
            last_lsn: 0,
            log_file: 0,
            next_collection_id: 1,
            next_segment_id: 1,
            collections: Vec::new(),
        }
    }
}

/// Directory that holds all collections.
pub(crate) fn collections_dir(db: &Path) -> PathBuf {
    db.join("collections")
}

/// Directory of one collection. `name` has been validated, so it is one plain path component.
pub(crate) fn collection_dir(db: &Path, name: &str) -> PathBuf {
    collections_dir(db).join(name)
}

/// Directory name of a segment.
pub(crate) fn segment_dir_name(id: u64) -> String {
    format!("seg-{id:08}")
}

/// File name of a segment's tombstone file generation.
pub(crate) fn tombstone_file_name(segment: u64, generation: u64) -> String {
    format!("seg-{segment:08}.{generation}.del")
}

impl ManifestData {
    pub(crate) fn encode(&self) -> Vec<u8> {
        // Serializing plain structs of numbers and strings to JSON cannot fail.
        let body = serde_json::to_vec_pretty(self).unwrap_or_default();
        let mut h = Header::new(FileKind::Manifest);
        // Version 2 only when it matters: a database without string ids stays readable by
        // builds that predate them.
        if self
            .collections
            .iter()
            .all(|c| c.config.id_type.is_int_ref())
        {
            h.version = 1;
        }
        h.body_len = body.len() as u64;
        h.body_crc = crc32c::crc32c(&body);
        h.count = self.collections.len() as u64;
        let mut out = h.encode().to_vec();
        out.extend_from_slice(&body);
        out
    }

    pub(crate) fn decode(bytes: &[u8], path: &Path) -> Result<ManifestData> {
        let h = Header::decode(bytes, FileKind::Manifest, path)?;
        let body = &bytes[HEADER_LEN..];
        if body.len() as u64 != h.body_len {
            return Err(Error::corruption(
                path,
                format!("body is {} bytes, header says {}", body.len(), h.body_len),
            ));
        }
        if crc32c::crc32c(body) != h.body_crc {
            return Err(Error::corruption(path, "body checksum mismatch"));
        }
        let m: ManifestData = serde_json::from_slice(body)
            .map_err(|e| Error::corruption(path, format!("body is not a valid manifest: {e}")))?;
        m.validate(path)?;
        Ok(m)
    }

    /// The log position the manifest was published at.
    pub(crate) fn log_mark(&self) -> LogMark {
        LogMark {
            last_lsn: self.last_lsn,
            log_file: self.log_file,
        }
    }

    /// Checks what a checksum cannot: names, uniqueness and id ranges.
    fn validate(&self, path: &Path) -> Result<()> {
        let bad = |what: String| Err(Error::corruption(path, what));
        let mut names = HashSet::new();
        let mut ids = HashSet::new();
        let mut segs = HashSet::new();
        for c in &self.collections {
            if validate_name(&c.name).is_err() || !names.insert(c.name.as_str()) {
                return bad(format!("invalid or repeated collection name {:?}", c.name));
            }
            if c.id >= self.next_collection_id || !ids.insert(c.id) {
                return bad(format!("invalid or repeated collection id {}", c.id));
            }
            if c.config.validate().is_err() {
                return bad(format!("invalid configuration for collection {:?}", c.name));
            }
            for s in &c.segments {
                if s.id >= self.next_segment_id || !segs.insert(s.id) {
                    return bad(format!("invalid or repeated segment id {}", s.id));
                }
                if let Some(t) = s.tombstones
                    && t.count > s.rows
                {
                    return bad(format!("segment {} has more tombstones than rows", s.id));
                }
            }
        }
        Ok(())
    }

    /// Reads the manifest of the database at `db`; `None` when there is none yet.
    pub(crate) fn load(db: &Path) -> Result<Option<ManifestData>> {
        let path = db.join(MANIFEST_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => ManifestData::decode(&bytes, &path).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).at(&path),
        }
    }

    /// Replaces the manifest of the database at `db` atomically.
    pub(crate) fn store(&self, db: &Path) -> Result<()> {
        replace_file(&db.join(MANIFEST_FILE), &self.encode())
    }

    pub(crate) fn collection_mut(&mut self, id: u64) -> Option<&mut CollectionEntry> {
        self.collections.iter_mut().find(|c| c.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vector::distance::Metric;

    fn sample() -> ManifestData {
        ManifestData {
            last_lsn: 77,
            log_file: 71,
            next_collection_id: 3,
            next_segment_id: 9,
            collections: vec![CollectionEntry {
                id: 2,
                name: "docs".into(),
                config: CollectionConfig::new(4, Metric::L2),
                flushed_lsn: 70,
                segments: vec![SegmentEntry {
                    id: 8,
                    rows: 10,
                    tombstones: Some(TombstoneRef {
                        generation: 1,
                        count: 2,
                    }),
                    codes: Some(Quantization::Int8),
                }],
            }],
        }
    }

    #[test]
    fn round_trip_and_flips() {
        let m = sample();
        let bytes = m.encode();
        let p = Path::new("MANIFEST");
        assert_eq!(ManifestData::decode(&bytes, p).unwrap(), m);
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x20;
            assert!(
                matches!(ManifestData::decode(&b, p), Err(Error::Corruption { .. })),
                "flip at {i}"
            );
        }
        for cut in 0..bytes.len() {
            assert!(ManifestData::decode(&bytes[..cut], p).is_err());
        }
    }

    #[test]
    fn semantic_checks() {
        let mut m = sample();
        m.collections[0].name = "../evil".into();
        let p = Path::new("MANIFEST");
        assert!(matches!(
            ManifestData::decode(&m.encode(), p),
            Err(Error::Corruption { .. })
        ));
        let mut m = sample();
        m.collections[0].segments[0].id = 9;
        assert!(ManifestData::decode(&m.encode(), p).is_err());
    }
}
