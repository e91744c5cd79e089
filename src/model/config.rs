//! Database options and collection configuration.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::id::IdType;
use crate::error::{Error, Result};
use crate::vector::distance::Metric;

/// When a write is on stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Durability {
    /// `upsert` and `delete` return only after their log record is fdatasync'ed. Concurrent
    /// writers share one fsync (group commit). Nothing acknowledged is lost in a crash.
    #[default]
    Sync,
    /// Writes are buffered and synced on [`Collection::flush`](crate::Collection::flush), on
    /// [`Database::sync`](crate::Database::sync), when the database is dropped, and every
    /// `interval` by a background thread. A crash may lose the writes of the last interval,
    /// never a part of a batch.
    Buffered {
        /// How often the background thread syncs the log.
        interval: Duration,
    },
}

impl Durability {
    /// Buffered durability with a one-second background sync.
    pub fn buffered() -> Self {
        Durability::Buffered {
            interval: Duration::from_secs(1),
        }
    }
}

/// Options for [`Database::open_with`](crate::Database::open_with).
#[derive(Debug, Clone)]
pub struct Options {
    /// When writes are durable. Default: [`Durability::Sync`].
    pub durability: Durability,
    /// A collection's memtable is sealed into a segment once it holds this many rows.
    /// Default: 100,000.
    pub memtable_max_rows: usize,
    /// … or once it holds this many bytes (vectors, text, payload). Default: 256 MiB.
    pub memtable_max_bytes: usize,
    /// The write-ahead log moves to a new file once the current one passes this size.
    /// Default: 64 MiB.
    pub wal_file_bytes: u64,
    /// When the log files together pass this size, the collection whose memtable holds the
    /// oldest log record is sealed (in the background), so that one quiet collection cannot
    /// keep the log of a busy one from being trimmed. Past 1.5 × this size a writer seals it
    /// itself before its call returns, so the log stays below about 1.5 × this plus one log
    /// file even when the seal thread falls behind. Default: 512 MiB.
    pub max_wal_bytes: u64,
    /// Create the database directory when it does not exist. Default: true.
    pub create_if_missing: bool,
    /// Compact collections on a background thread (see [`Collection::compact`]) when they
    /// have more than `compaction_max_segments` segments or a segment with more than
    /// `compaction_deleted_ratio` of its rows deleted. Default: true.
    ///
    /// [`Collection::compact`]: crate::Collection::compact
    pub background_compaction: bool,
    /// Segment count above which the smallest segments are merged. Default: 8.
    pub compaction_max_segments: usize,
    /// Fraction of deleted rows above which a segment is rewritten. Default: 0.2.
    pub compaction_deleted_ratio: f64,
    /// A deliberate recovery from a damaged log. Without it (the default) opening fails with
    /// [`Error::Corruption`] on a damaged or shortened log and changes nothing; only a torn
    /// tail (the end of a write a crash interrupted, never acknowledged) is cut. With it,
    /// opening cuts the log at the first bad frame, removes the log files after it, and
    /// succeeds; [`Database::recovery_report`](crate::Database::recovery_report) says what
    /// was dropped. Default: false.
    pub accept_log_loss: bool,
    /// How long opening waits for another process to release the database (its lock) before
    /// it fails with [`Error::Locked`]. A writer that closes cleanly releases it at once, so
    /// a waiting process takes over. A timeout too long for the clock waits without end.
    /// Default: zero (fail at once).
    pub lock_timeout: std::time::Duration,
    /// Bytes of memory the parts that searches walk should stay within: each segment's
    /// quantized codes and HNSW graph. With a budget, those files are read in at open and
    /// kept resident (`madvise(WILLNEED)`; locked with [`lock_memory`](Self::lock_memory)),
    /// while the f32 vectors stay mapped for random access and are read only to re-score the
    /// best candidates. Opening logs a warning (the `log` facade, target `cairndb`) when the
    /// codes and graphs are larger than the budget; [`Database::memory`](crate::Database::memory)
    /// reports the figures. Default: none (the kernel pages everything in as searches touch
    /// it).
    pub memory_budget: Option<u64>,
    /// With a [`memory_budget`](Self::memory_budget) the codes and graphs fit in, lock them in
    /// memory (`mlock`) so that they are never evicted. Needs a large enough
    /// `RLIMIT_MEMLOCK` (`ulimit -l`); when locking fails, opening logs a warning and goes on
    /// unlocked. Default: false.
    pub lock_memory: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            durability: Durability::Sync,
            memtable_max_rows: 100_000,
            memtable_max_bytes: 256 << 20,
            wal_file_bytes: 64 << 20,
            max_wal_bytes: 512 << 20,
            create_if_missing: true,
            background_compaction: true,
            compaction_max_segments: 8,
            compaction_deleted_ratio: 0.2,
            accept_log_loss: false,
            lock_timeout: std::time::Duration::ZERO,
            memory_budget: None,
            lock_memory: false,
        }
    }
}

impl Options {
    /// Sets the durability.
    pub fn durability(mut self, d: Durability) -> Self {
        self.durability = d;
        self
    }
    /// Sets the memtable row limit.
    pub fn memtable_max_rows(mut self, rows: usize) -> Self {
        self.memtable_max_rows = rows;
        self
    }
    /// Sets the memtable byte limit.
    pub fn memtable_max_bytes(mut self, bytes: usize) -> Self {
        self.memtable_max_bytes = bytes;
        self
    }
    /// Sets the WAL file size at which a new file is started.
    pub fn wal_file_bytes(mut self, bytes: u64) -> Self {
        self.wal_file_bytes = bytes;
        self
    }
    /// Sets the log size that triggers sealing the oldest memtable.
    pub fn max_wal_bytes(mut self, bytes: u64) -> Self {
        self.max_wal_bytes = bytes;
        self
    }
    /// Whether to compact in the background.
    pub fn background_compaction(mut self, yes: bool) -> Self {
        self.background_compaction = yes;
        self
    }
    /// Sets the compaction policy: more than `max_segments` segments, or a segment with more
    /// than `deleted_ratio` of its rows deleted, triggers a compaction.
    pub fn compaction_policy(mut self, max_segments: usize, deleted_ratio: f64) -> Self {
        self.compaction_max_segments = max_segments;
        self.compaction_deleted_ratio = deleted_ratio;
        self
    }
    /// Whether to create a missing database directory.
    pub fn create_if_missing(mut self, yes: bool) -> Self {
        self.create_if_missing = yes;
        self
    }
    /// Sets how long opening waits for the lock (see
    /// [`Options::lock_timeout`](Options#structfield.lock_timeout)).
    pub fn lock_timeout(mut self, wait: std::time::Duration) -> Self {
        self.lock_timeout = wait;
        self
    }
    /// Whether opening may drop the log from its first damaged frame on (see
    /// [`Options::accept_log_loss`](Options#structfield.accept_log_loss)).
    pub fn accept_log_loss(mut self, yes: bool) -> Self {
        self.accept_log_loss = yes;
        self
    }

    /// Sets the memory budget in bytes (see
    /// [`Options::memory_budget`](Options#structfield.memory_budget)).
    pub fn memory_budget(mut self, bytes: u64) -> Self {
        self.memory_budget = Some(bytes);
        self
    }
    /// Whether to lock the codes and graphs in memory (see
    /// [`Options::lock_memory`](Options#structfield.lock_memory)).
    pub fn lock_memory(mut self, yes: bool) -> Self {
        self.lock_memory = yes;
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.compaction_max_segments < 2
            || !(self.compaction_deleted_ratio > 0.0 && self.compaction_deleted_ratio <= 1.0)
        {
            return Err(Error::InvalidArgument(
                "compaction policy: at least 2 segments and a deleted ratio in (0, 1]".into(),
            ));
        }
        if self.memtable_max_rows == 0 || self.memtable_max_bytes == 0 {
            return Err(Error::InvalidArgument(
                "memtable limits must be at least 1".into(),
            ));
        }
        if let Durability::Buffered { interval } = self.durability
            && interval.is_zero()
        {
            return Err(Error::InvalidArgument(
                "buffered sync interval must be positive".into(),
            ));
        }
        Ok(())
    }
}

/// Largest dimension a collection may have.
pub const MAX_DIM: usize = 65_536;

/// The fixed settings of a collection, chosen at creation.
///
/// ```
/// use cairndb::{CollectionConfig, Metric};
/// let cfg = CollectionConfig { dim: 384, metric: Metric::Cosine, ..Default::default() };
/// assert_eq!(cfg.m, 16);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectionConfig {
    /// Vector dimension, 1 to 65,536.
    pub dim: usize,
    /// Similarity metric.
    pub metric: Metric,
    /// HNSW: links per node on upper levels (level 0 has `2 * m`). Default 16.
    pub m: usize,
    /// HNSW: candidate list size while building. Default 200.
    pub ef_construction: usize,
    /// How record text is analyzed for full-text search (default: words, lowercased, no
    /// stemming, no stop words). Applies to documents and queries alike.
    #[serde(default)]
    pub text: TextConfig,
    /// The kind of record ids: unsigned integers (the default) or strings.
    #[serde(default, skip_serializing_if = "IdType::is_int_ref")]
    pub id_type: IdType,
    /// The compressed copy of the vectors that graph walks score (int8: cosine and dot, the
    /// L2 metric then walks the f32 vectors; RaBitQ: every metric). Default
    /// [`Quantization::Int8`].
    #[serde(default, skip_serializing_if = "Quantization::is_default_ref")]
    pub quantization: Quantization,
}

/// What graph walks score: a compressed copy of each segment's vectors, written beside them
/// at seal and compaction and mapped at open, or the f32 vectors themselves. Either way the
/// rows a walk finds are re-scored exactly from the f32 vectors before they become hits, so
/// the choice moves recall and speed, never scores. See `docs/tuning.md`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Quantization {
    /// One signed byte per dimension and a scale per row (a quarter of the f32 bytes); walks
    /// score int8 dot products. The default.
    #[default]
    Int8,
    /// No copy: walks score the f32 vectors.
    None,
    /// RaBitQ with 4 bits per dimension (an eighth of the f32 bytes, plus 12 bytes a row):
    /// walks score an unbiased estimate with an error bound, every metric.
    #[serde(rename = "rabitq4")]
    RaBitQ4,
    /// RaBitQ with 1 bit per dimension (a 32nd of the f32 bytes, plus 12 bytes a row): a
    /// coarser estimate, so more candidates are re-scored.
    #[serde(rename = "rabitq1")]
    RaBitQ1,
}

impl Quantization {
    /// `int8`, `rabitq4`, `rabitq1` or `none`.
    pub fn as_str(self) -> &'static str {
        match self {
            Quantization::Int8 => "int8",
            Quantization::None => "none",
            Quantization::RaBitQ4 => "rabitq4",
            Quantization::RaBitQ1 => "rabitq1",
        }
    }

    pub(crate) fn is_default_ref(&self) -> bool {
        *self == Quantization::Int8
    }
}

impl std::fmt::Display for Quantization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Quantization {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "int8" => Ok(Quantization::Int8),
            "none" => Ok(Quantization::None),
            "rabitq4" => Ok(Quantization::RaBitQ4),
            "rabitq1" => Ok(Quantization::RaBitQ1),
            _ => Err(Error::InvalidArgument(format!(
                "quantization must be `int8`, `rabitq4`, `rabitq1` or `none`, got `{s}`"
            ))),
        }
    }
}

impl Default for CollectionConfig {
    fn default() -> Self {
        CollectionConfig {
            dim: 0,
            metric: Metric::Cosine,
            m: 16,
            ef_construction: 200,
            text: TextConfig::default(),
            id_type: IdType::Int,
            quantization: Quantization::Int8,
        }
    }
}

impl CollectionConfig {
    /// A configuration with the given dimension and metric and default index parameters.
    pub fn new(dim: usize, metric: Metric) -> Self {
        CollectionConfig {
            dim,
            metric,
            ..Default::default()
        }
    }

    /// Sets the text analysis.
    pub fn with_text(mut self, text: TextConfig) -> Self {
        self.text = text;
        self
    }

    /// Sets the kind of record ids.
    pub fn with_id_type(mut self, id_type: IdType) -> Self {
        self.id_type = id_type;
        self
    }

    /// Sets what graph walks score.
    pub fn with_quantization(mut self, quantization: Quantization) -> Self {
        self.quantization = quantization;
        self
    }

    /// Whether segments of this configuration carry int8 codes: int8 quantization and a
    /// cosine or dot metric.
    pub(crate) fn int8_codes(&self) -> bool {
        self.quantization == Quantization::Int8 && self.metric != Metric::L2
    }

    /// Whether graph construction walks over int8 copies (built for the build only when the
    /// segments carry RaBitQ codes): any quantization but `none`, cosine and dot.
    pub(crate) fn int8_construction(&self) -> bool {
        self.quantization != Quantization::None && self.metric != Metric::L2
    }

    /// The kind of codes file segments of this configuration carry, if any: int8 for the
    /// cosine and dot metrics, RaBitQ for every metric.
    pub(crate) fn codes(&self) -> Option<Quantization> {
        match self.quantization {
            Quantization::Int8 if self.metric != Metric::L2 => Some(Quantization::Int8),
            q @ (Quantization::RaBitQ4 | Quantization::RaBitQ1) => Some(q),
            _ => None,
        }
    }

    /// Checks the configuration: dimension 1 to 65,536, `m` 2 to 256, `ef_construction`
    /// 1 to 100,000.
    pub fn validate(&self) -> Result<()> {
        if self.dim == 0 || self.dim > MAX_DIM {
            return Err(Error::InvalidArgument(format!(
                "dimension must be between 1 and {MAX_DIM}, got {}",
                self.dim
            )));
        }
        if !(2..=256).contains(&self.m) {
            return Err(Error::InvalidArgument(format!(
                "m must be between 2 and 256, got {}",
                self.m
            )));
        }
        if self.ef_construction == 0 || self.ef_construction > 100_000 {
            return Err(Error::InvalidArgument(format!(
                "ef_construction must be between 1 and 100000, got {}",
                self.ef_construction
            )));
        }
        Ok(())
    }
}

/// Checks a collection name: `[A-Za-z0-9_-]{1,64}`. Such a name is always a single, harmless
/// path component.
pub fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidName {
            name: name.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["a", "docs_v2", "A-b_9", &"x".repeat(64)] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "../x",
            "a/b",
            ".",
            "..",
            "a b",
            "é",
            &"x".repeat(65),
            "a\0",
        ] {
            assert!(
                matches!(validate_name(bad), Err(Error::InvalidName { .. })),
                "{bad:?}"
            );
        }
    }
}

/// How a collection analyzes text for full-text (BM25) search.
///
/// Text is split into words by Unicode word segmentation (UAX #29) and lowercased; the two
/// options below are English-specific and off by default, so the default works for any
/// language. Documents and queries must be analyzed alike: changing the configuration of a
/// collection that already holds text would make old and new terms disagree.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TextConfig {
    /// Reduce words to their stem with the English Snowball (Porter 2) stemmer, so that
    /// "running", "runs" and "run" match each other. Default: false.
    pub stem: bool,
    /// Drop Lucene's 33 English stop words from documents and queries: a, an, and, are, as,
    /// at, be, but, by, for, if, in, into, is, it, no, not, of, on, or, such, that, the, their,
    /// then, there, these, they, this, to, was, will, with. Default: false (BM25's idf already
    /// gives them little weight).
    pub stop_words: bool,
}

impl TextConfig {
    /// Sets English stemming.
    pub fn stem(mut self, on: bool) -> Self {
        self.stem = on;
        self
    }

    /// Sets English stop-word removal.
    pub fn stop_words(mut self, on: bool) -> Self {
        self.stop_words = on;
        self
    }
}
