//! Collections: a handle, its shared state, and the read path into the query engine. The
//! write path is in `write.rs`, sealing in `seal.rs`, compaction in `compact.rs`.
//!
//! ```text
//! upsert/delete ─▶ write.rs (log, apply) ─▶ seal.rs when the memtable is full
//! search/get: read lock on State ─▶ query::engine over a View of segments + memtable
//! ```
//!
//! Concurrency: one writer at a time per collection (the writer mutex, held from log append
//! to apply, so rows are applied in LSN order); readers share a read lock on the state and are
//! held back only while a batch is applied or a sealed segment is swapped in — never while
//! segment files are written or fsynced. A write is visible to searches once applied, which
//! can be a moment before its fsync completes; it is acknowledged (the call returns) after.

pub(crate) mod background;
mod compact;
pub(crate) mod core;
mod seal;
mod search;
pub(crate) mod state;
mod write;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::{Mutex, RwLock};
use serde::Serialize;

pub use self::compact::CompactionReport;
use self::core::DbCore;
use self::state::{Located, SegmentSlot, State, locate};
use crate::error::{Error, Result};
use crate::model::config::CollectionConfig;
use crate::model::record::{Record, StoredDoc};
use crate::segment::Segment;
use crate::vector::Metric;

pub(crate) struct WriterState {
    /// LSN of the newest batch applied to this collection.
    pub applied_lsn: u64,
}

pub(crate) struct CollectionShared {
    pub core: Arc<DbCore>,
    pub id: u64,
    pub name: String,
    pub config: CollectionConfig,
    pub dir: PathBuf,
    pub writer: Mutex<WriterState>,
    pub state: RwLock<State>,
    pub dropped: AtomicBool,
    /// Held by a running compaction: one at a time per collection.
    pub compaction: Mutex<()>,
    /// Being dropped: a running compaction gives up.
    pub dropping: AtomicBool,
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
    /// Live records.
    pub records: usize,
    /// Live rows in the memtable.
    pub memtable_rows: usize,
    /// Approximate heap bytes of the memtable: vectors, documents, graph links, field and
    /// text indexes. Reaching `Options::memtable_max_bytes` seals it.
    pub memtable_bytes: usize,
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
    /// Bytes memory-mapped (vectors, ids, payload, graph): paged in by the OS as searches
    /// touch them, and shared with the page cache.
    pub mapped_bytes: u64,
    /// Heap bytes of its field and text indexes, once a filtered or text search has decoded
    /// them (0 before).
    pub index_heap_bytes: u64,
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

    fn check_live(&self) -> Result<()> {
        if self.inner.dropped.load(Ordering::Acquire) {
            return Err(Error::CollectionDropped {
                name: self.inner.name.clone(),
            });
        }
        Ok(())
    }

    /// The record with this id, if it exists. Under `Cosine` the vector is the stored,
    /// normalized one.
    pub fn get(&self, id: u64) -> Result<Option<Record>> {
        self.check_live()?;
        let st = self.inner.state.read();
        let Some(loc) = locate(&st, id) else {
            return Ok(None);
        };
        let (vector, doc) = match loc {
            Located::Memtable(row) => {
                let doc = StoredDoc::decode(st.memtable.doc(row)).ok_or_else(|| {
                    Error::InvalidArgument(format!("record {id} has an undecodable payload"))
                })?;
                (st.memtable.vector(row).to_vec(), doc)
            }
            Located::Segment(s, row) => {
                let seg = &st.segments[s].seg;
                (seg.vectors(row, row + 1)?.to_vec(), seg.doc(row)?)
            }
        };
        Ok(Some(Record {
            id,
            vector,
            text: doc.0,
            payload: doc.1,
        }))
    }

    /// Number of live records.
    pub fn len(&self) -> usize {
        let st = self.inner.state.read();
        st.memtable.live_count() + st.segments.iter().map(SegmentSlot::live).sum::<usize>()
    }

    /// Whether the collection holds no records.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Seals the memtable into a segment and makes every write so far durable, whatever the
    /// durability setting.
    pub fn flush(&self) -> Result<()> {
        let mut w = self.inner.writer.lock();
        self.check_live()?;
        self.seal_locked(&mut w)?;
        drop(w);
        self.inner.core.wal.sync()
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
        let segs: Vec<Arc<Segment>> = {
            let st = self.inner.state.read();
            st.segments.iter().map(|s| Arc::clone(&s.seg)).collect()
        };
        rayon::iter::ParallelIterator::for_each(
            rayon::iter::IntoParallelRefIterator::par_iter(&segs),
            |s| s.build_quantized(),
        );
        Ok(())
    }

    /// Counts and sizes.
    pub fn stats(&self) -> CollectionStats {
        let st = self.inner.state.read();
        CollectionStats {
            name: self.inner.name.clone(),
            dim: self.inner.config.dim,
            metric: self.inner.config.metric,
            records: st.memtable.live_count()
                + st.segments.iter().map(SegmentSlot::live).sum::<usize>(),
            memtable_rows: st.memtable.live_count(),
            memtable_bytes: st.memtable.bytes(),
            segments: st
                .segments
                .iter()
                .map(|s| SegmentStats {
                    id: s.seg.id,
                    rows: s.seg.rows,
                    deleted: s.deleted.len() as usize,
                    bytes: s.seg.disk_bytes(),
                    graph_bytes: s.seg.graph_bytes(),
                    mapped_bytes: s.seg.mapped_bytes(),
                    index_heap_bytes: s.seg.index_heap_bytes(),
                })
                .collect(),
        }
    }
}
