//! Collections: a handle, its shared state, and the read path into the query engine.
//!
//! ```text
//!  upsert/delete ─▶ write.rs: log, stage, link, wait durable, commit in LSN order ─▶ version
//!  memtable full ─▶ seal.rs: freeze (writers go on); the seal thread writes the segment
//!  search/get    ─▶ take the current version (state.rs), release the lock, run the engine
//! ```
//!
//! A reader takes the current [`Version`](state::Version) — an `Arc`, cloned under a lock
//! held for nothing else — and then works without any collection lock: a slow re-ranker,
//! a filter, `verify` and compaction's reading never hold back a writer, and a writer never
//! holds back a reader. See `docs/architecture.md` ("Versions").

pub(crate) mod background;
mod compact;
pub(crate) mod core;
mod scan;
mod seal;
mod search;
pub(crate) mod state;
mod update;
mod write;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use parking_lot::{Condvar, Mutex, RwLock};
use serde::Serialize;

pub use self::compact::CompactionReport;
use self::core::DbCore;
pub use self::scan::{Scan, ScanOptions};
use self::state::{Live, Located, Version};
pub use self::update::{PayloadChange, Update};
use crate::error::{Error, Result};
use crate::model::config::CollectionConfig;
use crate::model::id::Id;
use crate::model::record::{Record, StoredDoc};
use crate::query::source::Source;
use crate::segment::Segment;
use crate::vector::Metric;

/// Batches logged but not yet committed, in LSN order: they commit in that order.
#[derive(Default)]
pub(crate) struct Commits {
    pub pending: VecDeque<u64>,
    /// LSN of the newest committed batch of this collection.
    pub committed: u64,
}

pub(crate) struct CollectionShared {
    pub core: Arc<DbCore>,
    pub id: u64,
    pub name: String,
    pub config: CollectionConfig,
    pub dir: PathBuf,
    /// Held while a batch is logged and staged (and a full memtable frozen): one at a time,
    /// so rows are staged in LSN order.
    pub writer: Mutex<()>,
    /// The current version; held only to read or swap it.
    pub live: RwLock<Live>,
    /// Live records of the current version (readable without a lock).
    pub records: AtomicUsize,
    pub commits: Mutex<Commits>,
    /// Signalled when a batch commits, a memtable is sealed, or the log is poisoned.
    pub progress: Condvar,
    /// Held by a seal, and by a compaction while it publishes: one at a time.
    pub seal: Mutex<()>,
    pub dropped: AtomicBool,
    /// Held by a running compaction: one at a time per collection.
    pub compaction: Mutex<()>,
    /// Being dropped: a running compaction gives up.
    pub dropping: AtomicBool,
}

impl CollectionShared {
    pub(crate) fn new(
        core: Arc<DbCore>,
        id: u64,
        name: &str,
        config: CollectionConfig,
        live: Live,
    ) -> Self {
        let records = live.version.len();
        CollectionShared {
            dir: crate::manifest::collection_dir(&core.path, name),
            core,
            id,
            name: name.to_owned(),
            config,
            writer: Mutex::new(()),
            live: RwLock::new(live),
            records: AtomicUsize::new(records),
            commits: Mutex::new(Commits::default()),
            progress: Condvar::new(),
            seal: Mutex::new(()),
            dropped: AtomicBool::new(false),
            compaction: Mutex::new(()),
            dropping: AtomicBool::new(false),
        }
    }

    /// The current version.
    pub(crate) fn version(&self) -> Arc<Version> {
        Arc::clone(&self.live.read().version)
    }

    /// Replaces the live state's version by `f(live)` and updates the record count.
    pub(crate) fn update<R>(&self, f: impl FnOnce(&mut Live) -> R) -> R {
        let mut live = self.live.write();
        let r = f(&mut live);
        self.records.store(live.version.len(), Ordering::Release);
        r
    }
}

/// A handle to one collection. Cheap to clone; `Send + Sync`.
#[derive(Clone)]
pub struct Collection {
    /// Counts this handle as a user's (`None` for the database's own short-lived handles).
    /// Declared first: it is dropped first, so closing waits for background work before
    /// `inner` lets go of the database.
    pub(crate) _user: Option<crate::collection::background::UserGuard>,
    pub(crate) inner: Arc<CollectionShared>,
}

impl std::fmt::Debug for Collection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collection")
            .field("name", &self.inner.name)
            .field("config", &self.inner.config)
            .finish()
    }
}

/// Counts and sizes of a collection.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CollectionStats {
    /// Collection name.
    pub name: String,
    /// Vector dimension.
    pub dim: usize,
    /// Metric.
    pub metric: Metric,
    /// The kind of record ids.
    pub id_type: crate::IdType,
    /// Live records.
    pub records: usize,
    /// Live rows in the memtables (the active one, and frozen ones being sealed).
    pub memtable_rows: usize,
    /// Approximate heap bytes of the memtables: vectors, documents, graph links, field and
    /// text indexes. A memtable that reaches `Options::memtable_max_bytes` is sealed.
    pub memtable_bytes: usize,
    /// Frozen memtables: full, searched, and being sealed in the background.
    pub frozen_memtables: usize,
    /// Sealed segments, oldest first.
    pub segments: Vec<SegmentStats>,
}

/// Counts and size of one sealed segment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SegmentStats {
    /// Segment id.
    pub id: u64,
    /// Rows written.
    pub rows: usize,
    /// Rows deleted since.
    pub deleted: usize,
    /// Bytes of its files.
    pub bytes: u64,
    /// Bytes of its HNSW graph file (part of `bytes`).
    pub graph_bytes: u64,
    /// Bytes memory-mapped (vectors, codes, ids, payload, graph): paged in by the OS as
    /// searches touch them, and shared with the page cache.
    pub mapped_bytes: u64,
    /// Bytes of its int8 `codes` file (part of `bytes` and `mapped_bytes`); 0 when it has
    /// none (quantization `none`, the L2 metric, or a segment from before codes files).
    pub codes_bytes: u64,
    /// Heap bytes of its field and text indexes, once a filtered or text search has decoded
    /// them (0 before), and of an int8 copy built on the heap (a segment without a codes
    /// file, of a collection that quantizes).
    pub index_heap_bytes: u64,
    /// Bytes of each part in memory when the figures were taken.
    pub resident: crate::segment::ResidentBytes,
}

impl Collection {
    /// The collection's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The collection's configuration.
    pub fn config(&self) -> &CollectionConfig {
        &self.inner.config
    }

    /// Fails when the collection was dropped, or when this process is a fork of the one that
    /// opened the database.
    /// On a read-only handle it first catches up with the writer.
    fn check_live(&self) -> Result<()> {
        self.inner.core.check_process()?;
        self.inner.core.catch_up()?;
        if self.inner.dropped.load(Ordering::Acquire) {
            return Err(Error::CollectionDropped {
                name: self.inner.name.clone(),
            });
        }
        Ok(())
    }

    /// Catches up a read-only handle for a call that returns no `Result`; a failure is
    /// logged, and the call answers from the state it has.
    fn catch_up_quietly(&self) {
        if let Err(e) = self.inner.core.catch_up() {
            log::warn!(
                "{}: catching up with the writer failed: {e}",
                self.inner.name
            );
        }
    }

    /// Stops every write of the database with `cause` (a bug or an I/O failure in the
    /// background): writers get the error instead of waiting for work that will not happen.
    pub(crate) fn poison(&self, cause: String) {
        self.inner.core.wal.poison(cause);
        self.inner.progress.notify_all();
    }

    /// The record with this id, if it exists. Under `Cosine` the vector is the stored,
    /// normalized one. Errors: an id of the other kind than the collection's
    /// [`IdType`](crate::IdType).
    pub fn get(&self, id: impl Into<Id>) -> Result<Option<Record>> {
        let id = id.into();
        self.check_live()?;
        self.key_of(&id)?;
        self.read_current(&id)
    }

    /// The 64-bit key of `id`, once it is checked to fit the collection.
    pub(crate) fn key_of(&self, id: &Id) -> Result<u64> {
        id.check(self.inner.config.id_type, &self.inner.name)?;
        Ok(id.key())
    }

    /// Where `id` is live in the current version, and that version. A string id must equal
    /// the one stored under its key (another string with the same key is not this record).
    pub(crate) fn locate(&self, id: &Id) -> Result<(Arc<Version>, Option<Located>)> {
        let (v, loc) = {
            let live = self.inner.live.read();
            (Arc::clone(&live.version), live.locate(id.key())?)
        };
        let loc = match (loc, id) {
            (Some(l), Id::Str(s)) => (stored_id(&v, l)? == *s).then_some(l),
            (l, _) => l,
        };
        Ok((v, loc))
    }

    /// The record with this (checked) id in the current version.
    pub(crate) fn read_current(&self, id: &Id) -> Result<Option<Record>> {
        let (v, loc) = self.locate(id)?;
        let Some(loc) = loc else {
            return Ok(None);
        };
        let (vector, doc) = match loc {
            Located::Memtable(i, row) => {
                let mt = &v.memtables[i];
                let doc = StoredDoc::decode(mt.mt.doc(row as usize)).ok_or_else(|| {
                    Error::InvalidArgument(format!("record {id} has an undecodable payload"))
                })?;
                (mt.vector(row as usize).to_vec(), doc)
            }
            Located::Segment(s, row) => {
                let seg = &v.segments[s].seg;
                (seg.vectors(row, row + 1)?.to_vec(), seg.doc(row)?)
            }
        };
        Ok(Some(Record {
            id: id.clone(),
            vector,
            text: doc.0,
            payload: doc.1,
        }))
    }

    /// Number of live records. (Takes no lock; in a forked child it is the count the parent
    /// had at the fork, as every other call there fails with [`Error::ForkedProcess`].)
    pub fn len(&self) -> usize {
        self.catch_up_quietly();
        self.inner.records.load(Ordering::Acquire)
    }

    /// Whether the collection holds no records.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Builds now what the first searches would otherwise build in the background: the int8
    /// copy of each segment's vectors that graph walks score with (cosine and dot metrics).
    /// Until it exists, walks score the f32 vectors, which is slower but as accurate. Call it
    /// after opening a large collection when the first searches must be at full speed; it
    /// returns once every segment's copy is built.
    pub fn warm_up(&self) -> Result<()> {
        self.check_live()?;
        if self.inner.config.metric == Metric::L2 {
            return Ok(());
        }
        let segs: Vec<Arc<Segment>> = self
            .inner
            .version()
            .segments
            .iter()
            .map(|s| Arc::clone(&s.seg))
            .collect();
        rayon::iter::ParallelIterator::for_each(
            rayon::iter::IntoParallelRefIterator::par_iter(&segs),
            |s| s.build_quantized(),
        );
        Ok(())
    }

    /// Counts and sizes.
    pub fn stats(&self) -> CollectionStats {
        self.catch_up_quietly();
        let v = self.inner.version();
        CollectionStats {
            name: self.inner.name.clone(),
            dim: self.inner.config.dim,
            metric: self.inner.config.metric,
            id_type: self.inner.config.id_type,
            records: v.len(),
            memtable_rows: v.memtables.iter().map(|m| m.live()).sum(),
            memtable_bytes: v.memtables.iter().map(|m| m.bytes()).sum(),
            frozen_memtables: v.memtables.len() - 1,
            segments: v
                .segments
                .iter()
                .map(|s| SegmentStats {
                    id: s.seg.id,
                    rows: s.seg.rows,
                    deleted: s.deleted.len() as usize,
                    bytes: s.seg.disk_bytes(),
                    graph_bytes: s.seg.graph_bytes(),
                    mapped_bytes: s.seg.mapped_bytes(),
                    codes_bytes: s.seg.codes_file_bytes(),
                    index_heap_bytes: s.seg.index_heap_bytes(),
                    resident: s.seg.resident(),
                })
                .collect(),
        }
    }
}

/// The string id stored at `loc` of `v` (empty for a record without one: an integer id).
pub(crate) fn stored_id(v: &Version, loc: Located) -> Result<String> {
    match loc {
        Located::Memtable(i, row) => v.memtables[i].doc_id(row),
        Located::Segment(s, row) => v.segments[s].doc_id(row as u32),
    }
}
