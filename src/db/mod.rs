//! The database: a directory, its lock, its manifest and log, and the collections in it.
//!
//! Opening (`open.rs`) runs recovery: take the lock, read the manifest, remove files a crash
//! left unreferenced, open the segments, and replay the log into the memtables. The
//! background threads (log sync, seals, compactions) are in `threads.rs`.

mod follow;
mod open;
mod threads;

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc;

use parking_lot::{Mutex, RwLock};
use serde::Serialize;

use crate::collection::background::{Background, UserGuard};
use crate::collection::core::DbCore;
use crate::collection::state::{Live, Version};
use crate::collection::{Collection, CollectionShared, CollectionStats};
use crate::error::{Error, Result};
use crate::index::hnsw::check::check;
use crate::io::beacon::{Beacon, BeaconWatch};
use crate::io::fsutil;
use crate::log::recover::RecoveryReport;
use crate::log::wal::Wal;
use crate::manifest::{CollectionEntry, ManifestData, collection_dir};
use crate::memtable::Memtable;
use crate::model::config::{CollectionConfig, Durability, Options, validate_name};

/// An open database. Cheap to clone; `Send + Sync`. The directory stays locked until this
/// and every [`Collection`] handle from it are dropped.
#[derive(Clone)]
pub struct Database {
    /// Counts this handle as a user's; dropped first (see `background.rs`).
    _user: UserGuard,
    core: Arc<DbCore>,
    collections: Arc<RwLock<BTreeMap<String, Collection>>>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("path", &self.core.path)
            .finish()
    }
}

/// Counts and sizes of a database.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DbStats {
    /// Bytes of write-ahead log files.
    pub wal_bytes: u64,
    /// Every collection, by name.
    pub collections: Vec<CollectionStats>,
}

/// Memory figures of an open database: what a
/// [`memory_budget`](crate::Options#structfield.memory_budget) covers, and what is in memory.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct MemoryReport {
    /// The budget the database was opened with.
    pub budget: Option<u64>,
    /// Bytes of every segment's quantized codes and graph: what the budget keeps resident.
    pub pinned_bytes: u64,
    /// The pinned bytes fit in the budget (true without one).
    pub fits: bool,
    /// Bytes of the segments' parts in memory now, summed over the collections.
    pub resident: crate::ResidentBytes,
    /// Heap bytes of the memtables (always in memory).
    pub memtable_bytes: u64,
}

/// What [`Database::verify`] checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct VerifyReport {
    /// Collections checked.
    pub collections: usize,
    /// Segments checked.
    pub segments: usize,
    /// Segment rows whose vector and document were checked.
    pub rows: usize,
    /// Bytes of segment files checked.
    pub bytes: u64,
    /// Graph links checked (degree bounds, targets, levels, reachability).
    pub graph_edges: u64,
    /// Log files checked.
    pub log_files: usize,
    /// Log frames checked (length, checksum, LSN sequence).
    pub log_frames: u64,
    /// Bytes of log files checked.
    pub log_bytes: u64,
}

impl Database {
    /// Opens (or creates) the database in directory `path` with default [`Options`].
    pub fn open(path: impl AsRef<Path>) -> Result<Database> {
        Database::open_with(path, Options::default())
    }

    /// Opens (or creates) the database in directory `path`.
    ///
    /// Creating a database is crash-safe: a crash at any instant leaves nothing, or a database
    /// that opens.
    ///
    /// Fails with [`Error::Locked`] (naming the process that holds it) when another process or
    /// handle has it open, and with
    /// [`Error::Corruption`] when a file fails its checks. A torn tail of the log (a crash
    /// during a write: a bad frame at the end of the newest log file that no intact frame
    /// follows) is cut off, never reported as an error. A damaged frame followed by intact
    /// ones, a missing newest log file, or a log that ends before the LSN the manifest was
    /// published at is [`Error::Corruption`] naming the file (and byte offset), and no file
    /// is changed — unless [`Options::accept_log_loss`] asks to drop the damaged part (see
    /// [`Database::recovery_report`]).
    pub fn open_with(path: impl AsRef<Path>, options: Options) -> Result<Database> {
        options.validate()?;
        let path = path.as_ref().to_owned();
        let started = std::time::Instant::now();
        let (lock, mut manifest) = open::lock_and_load(&path, &options).inspect_err(|e| {
            log::debug!("opening {}: {e}", path.display());
        })?;
        let mut loaded = open::load_collections(&path, &manifest, &options)?;
        let (wal, recovery) = open::replay(&path, &manifest, &options, &mut loaded)?;
        if recovery.lost_data() {
            // The recovery accepted the loss of the newest log files: the manifest names the
            // log as it is now, so the next open does not report the same loss again.
            manifest.log_file = wal.newest_file();
            manifest.store(&path)?;
        }

        // Read-only handles in other processes follow this writer from here on.
        let beacon = Beacon::start(&path, wal.last_lsn())?;
        let (tx, rx) = mpsc::channel::<()>();
        let (ctx, crx) = mpsc::channel::<()>();
        let (stx, srx) = mpsc::channel::<()>();
        let pool = background_pool("cairn-bg")?;
        let core = Arc::new(DbCore {
            path: path.clone(),
            options: options.clone(),
            wal: Arc::new(wal),
            manifest: Mutex::new(manifest),
            needed: Mutex::new(HashMap::new()),
            registry: Mutex::new(HashMap::new()),
            _flusher: Mutex::new(Some(tx)),
            compactor: Mutex::new(Some(ctx)),
            sealer: Mutex::new(Some(stx)),
            pool,
            pid: std::process::id(),
            bg: Arc::new(Background::default()),
            recovery,
            _lock: Some(lock),
            beacon: Some(Arc::new(beacon)),
            follower: None,
            watch: None,
        });
        let mut collections = BTreeMap::new();
        for r in loaded {
            let c = handle(&core, r);
            c.set_needed();
            collections.insert(c.name().to_owned(), c);
        }
        core.wal.remove_below(core.min_needed())?;
        if let Some(b) = &core.beacon {
            core.wal.set_beacon(Arc::clone(b));
        }
        if let Durability::Buffered { interval } = options.durability {
            threads::spawn_flusher(Arc::downgrade(&core.wal), rx, interval);
        }
        threads::spawn_sealer(Arc::downgrade(&core), Arc::clone(&core.bg), srx);
        core.kick_sealer();
        if options.background_compaction {
            threads::spawn_compactor(Arc::downgrade(&core), Arc::clone(&core.bg), crx);
            core.kick_compactor();
        }
        log_opened(&core, &collections, started);
        Ok(Database {
            _user: UserGuard::new(&core.bg),
            core,
            collections: Arc::new(RwLock::new(collections)),
        })
    }

    /// Opens the database in directory `path` read-only, with default [`Options`].
    ///
    /// Any number of read-only handles, in any processes, may be open while one process holds
    /// the database for writing (or none does). A read-only handle takes no lock and never
    /// writes a byte in the directory; every write on it fails with [`Error::ReadOnly`].
    /// Before each call (`collection`, `search`, `get`, `len`, `stats`, …) it catches up with
    /// the writer: it sees every batch the writer has made durable — under
    /// [`Durability::Sync`], every batch whose `upsert` or `delete` returned before the call
    /// started — and never part of a batch. It follows the writer's seals, compactions and
    /// log trimming, keeps serving the last durable state when the writer dies, and follows a
    /// new writer once it has recovered. See `docs/architecture.md` ("Many processes").
    ///
    /// Fails when `path` holds no database, or a file fails its checks.
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Database> {
        Database::open_read_only_with(path, Options::default())
    }

    /// [`open_read_only`](Self::open_read_only) with options: the memtable limits (the
    /// handle's copy of the writer's unsealed rows is split into memtables like the writer's)
    /// apply; those about writing do not.
    pub fn open_read_only_with(path: impl AsRef<Path>, options: Options) -> Result<Database> {
        options.validate()?;
        let path = path.as_ref().to_owned();
        if ManifestData::load(&path)?.is_none() {
            return Err(Error::io(
                &path,
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no Cairn database here (no MANIFEST) to open read-only",
                ),
            ));
        }
        let collections: follow::CollectionMap = Arc::new(RwLock::new(BTreeMap::new()));
        let (ltx, lrx) = mpsc::channel::<()>();
        let watch = Arc::new(BeaconWatch::new(&path));
        let follower =
            follow::Follower::new(&path, &options, &collections, ltx, Arc::clone(&watch));
        let pool = background_pool("cairn-ro")?;
        let core = Arc::new(DbCore {
            path: path.clone(),
            options,
            wal: Arc::new(Wal::read_only(&path.join(open::WAL_DIR))),
            manifest: Mutex::new(ManifestData::default()),
            needed: Mutex::new(HashMap::new()),
            registry: Mutex::new(HashMap::new()),
            _flusher: Mutex::new(None),
            compactor: Mutex::new(None),
            sealer: Mutex::new(None),
            pool,
            pid: std::process::id(),
            bg: Arc::new(Background::default()),
            recovery: RecoveryReport::default(),
            _lock: None,
            beacon: None,
            follower: Some(Mutex::new(Box::new(follower))),
            watch: Some(watch),
        });
        let weak = Arc::downgrade(&core);
        threads::spawn_woken("cairn-link", Arc::clone(&core.bg), lrx, move || {
            if let Some(core) = weak.upgrade() {
                follow::link_pending(&core);
            }
        });
        core.catch_up()?;
        log::info!(
            "opened {} read-only: {} collections",
            path.display(),
            collections.read().len()
        );
        Ok(Database {
            _user: UserGuard::new(&core.bg),
            core,
            collections,
        })
    }

    /// Whether this handle was opened with [`open_read_only`](Self::open_read_only).
    pub fn is_read_only(&self) -> bool {
        self.core.follower.is_some()
    }

    /// The database directory.
    pub fn path(&self) -> &Path {
        &self.core.path
    }

    /// What opening found in the log: frames replayed, a torn tail cut, and what a recovery
    /// under [`Options::accept_log_loss`] dropped.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.core.recovery
    }

    /// Creates a collection. Its name must match `[A-Za-z0-9_-]{1,64}`. Crash-safe: after a
    /// crash the database has either no such collection or the complete, empty one.
    ///
    /// Fails with [`Error::CollectionExists`] when the name is taken; see
    /// [`get_or_create_collection`](Self::get_or_create_collection) for code that runs more
    /// than once.
    pub fn create_collection(&self, name: &str, config: CollectionConfig) -> Result<Collection> {
        self.core.check_process()?;
        self.core.check_writable()?;
        validate_name(name)?;
        config.validate()?;
        self.core.wal.check_poisoned()?;
        let mut cols = self.collections.write();
        if cols.contains_key(name) {
            return Err(Error::CollectionExists { name: name.into() });
        }
        self.create_locked(&mut cols, name, config)
    }

    /// The collection `name`: the existing one when there is one, otherwise a new one created
    /// with `config` (as by [`create_collection`](Self::create_collection)). This is the call
    /// for a program that runs more than once on the same database.
    ///
    /// An existing collection must be compatible with `config`: the same `dim`, `metric` and
    /// `id_type`, the settings that decide what its vectors, scores and ids mean. Otherwise the call
    /// fails with [`Error::CollectionConfigMismatch`], naming the setting (for example
    /// "collection `docs` exists with dim 384, asked for 768") and changing nothing. The
    /// other settings — `m`, `ef_construction` and `text` — are used only when the collection
    /// is created: an existing collection keeps the ones it was created with, whatever
    /// `config` says; read them with [`Collection::config`].
    ///
    /// Checking and creating are one step: threads (or handles of this database) that call
    /// it at once for the same name all get the same collection, created once. On a handle
    /// opened with [`open_read_only`](Self::open_read_only) an existing collection is
    /// returned, and a missing one is [`Error::ReadOnly`].
    pub fn get_or_create_collection(
        &self,
        name: &str,
        config: CollectionConfig,
    ) -> Result<Collection> {
        self.core.check_process()?;
        validate_name(name)?;
        config.validate()?;
        self.core.catch_up()?;
        let mut cols = self.collections.write();
        if let Some(c) = cols.get(name) {
            check_compatible(name, c.config(), &config)?;
            return Ok(c.clone());
        }
        self.core.check_writable()?;
        self.core.wal.check_poisoned()?;
        self.create_locked(&mut cols, name, config)
    }

    /// Creates collection `name` (which `cols`, held locked by the caller, does not hold).
    fn create_locked(
        &self,
        cols: &mut BTreeMap<String, Collection>,
        name: &str,
        config: CollectionConfig,
    ) -> Result<Collection> {
        // The directory first, durable in `collections/`, then the manifest that names it: a
        // crash in between leaves a directory the next open removes as unreferenced. One left
        // by an earlier collection of this name (a drop whose removal failed) goes first.
        let dir = collection_dir(&self.core.path, name);
        if fs::symlink_metadata(&dir).is_ok() {
            fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        }
        fsutil::create_dir_synced(&dir)?;
        let mut id = 0;
        // (Should the manifest write fail, the directory stays for the next open to judge.)
        self.core.update_manifest(|m| {
            id = m.next_collection_id;
            m.next_collection_id += 1;
            m.collections.push(CollectionEntry {
                id,
                name: name.to_owned(),
                config: config.clone(),
                flushed_lsn: 0,
                segments: Vec::new(),
            });
            Ok(())
        })?;
        let active = Arc::new(Memtable::sized(&self.core.options, &config, 0, 0));
        let live = Live::new(Version::new(Vec::new(), active));
        let c = Collection {
            _user: Some(UserGuard::new(&self.core.bg)),
            inner: Arc::new(CollectionShared::new(
                Arc::clone(&self.core),
                id,
                name,
                config,
                live,
            )),
        };
        self.core.register(&c.inner);
        cols.insert(name.to_owned(), c.clone());
        Ok(c)
    }

    /// A handle to an existing collection.
    pub fn collection(&self, name: &str) -> Result<Collection> {
        self.core.check_process()?;
        self.core.catch_up()?;
        self.collections
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| Error::CollectionNotFound { name: name.into() })
    }

    /// Names of all collections, sorted.
    pub fn collections(&self) -> Vec<String> {
        self.catch_up_quietly();
        self.collections.read().keys().cloned().collect()
    }

    /// Drops a collection and deletes its files. Handles to it then fail with
    /// [`Error::CollectionDropped`].
    pub fn drop_collection(&self, name: &str) -> Result<()> {
        self.core.check_process()?;
        self.core.check_writable()?;
        validate_name(name)?;
        self.core.wal.check_poisoned()?;
        let mut cols = self.collections.write();
        let c = cols
            .get(name)
            .cloned()
            .ok_or_else(|| Error::CollectionNotFound { name: name.into() })?;
        // A running compaction gives up at its next check; none starts while we hold its lock.
        c.inner.dropping.store(true, Ordering::Release);
        let _c = c.inner.compaction.lock();
        let _w = c.inner.writer.lock();
        let _s = c.inner.seal.lock();
        if let Err(e) = self.core.update_manifest(|m| {
            m.collections.retain(|e| e.id != c.inner.id);
            Ok(())
        }) {
            c.inner.dropping.store(false, Ordering::Release);
            return Err(e);
        }
        c.inner.dropped.store(true, Ordering::Release);
        cols.remove(name);
        self.core.set_needed(c.inner.id, None);
        self.core.registry.lock().remove(&c.inner.id);
        // The manifest no longer names the files; a failure here leaves them for the
        // clean-up on the next open.
        let _ = fs::remove_dir_all(&c.inner.dir);
        Ok(())
    }

    /// Makes every write so far durable (useful under [`Durability::Buffered`]).
    pub fn sync(&self) -> Result<()> {
        self.core.check_process()?;
        self.core.check_writable()?;
        self.core.wal.sync()
    }

    /// Counts and sizes of every collection.
    pub fn stats(&self) -> DbStats {
        self.catch_up_quietly();
        DbStats {
            wal_bytes: self.core.wal.disk_bytes(),
            collections: self
                .collections
                .read()
                .values()
                .map(Collection::stats)
                .collect(),
        }
    }

    /// Memory figures: the budget, the bytes it should keep resident, and what each part of
    /// the segments has in memory now (from the page tables, `mincore`). See
    /// [`Options::memory_budget`](crate::Options#structfield.memory_budget).
    pub fn memory(&self) -> MemoryReport {
        let stats = self.stats();
        let mut resident = crate::ResidentBytes::default();
        let (mut pinned, mut memtable_bytes) = (0u64, 0u64);
        for c in &stats.collections {
            memtable_bytes += c.memtable_bytes as u64;
            for s in &c.segments {
                pinned += s.codes_bytes + s.graph_bytes;
                resident += s.resident;
            }
        }
        let budget = self.core.options.memory_budget;
        MemoryReport {
            budget,
            pinned_bytes: pinned,
            fits: budget.is_none_or(|b| pinned <= b),
            resident,
            memtable_bytes,
        }
    }

    /// Reads and checks every byte of every segment (vector block checksums and every
    /// document's checksum) and every frame of every log file. (Opening already checked the
    /// manifest, headers, ids and tombstones.)
    pub fn verify(&self) -> Result<VerifyReport> {
        self.core.check_process()?;
        self.core.catch_up()?;
        let mut report = VerifyReport::default();
        (report.log_files, report.log_frames, report.log_bytes) = self.core.wal.verify()?;
        let collections: Vec<Collection> = self.collections.read().values().cloned().collect();
        for c in collections {
            report.collections += 1;
            // A version: no lock is held while the segments are read.
            let v = c.inner.version();
            for slot in &v.segments {
                slot.seg.verify_all(c.inner.config.id_type)?;
                let g = check(slot.seg.graph(), c.inner.config.m, |r| {
                    !slot.deleted.contains(r)
                })?;
                if !g.is_sound() {
                    let mut what = g.problems.clone();
                    if !g.unreachable.is_empty() {
                        what.push(format!(
                            "{} live nodes unreachable from the entry point",
                            g.unreachable.len()
                        ));
                    }
                    what.truncate(5);
                    return Err(Error::corruption(
                        slot.seg.dir.join("graph"),
                        format!("graph invariant violated: {}", what.join("; ")),
                    ));
                }
                report.segments += 1;
                report.rows += slot.seg.rows;
                report.bytes += slot.seg.disk_bytes();
                report.graph_edges += g.edges as u64;
            }
        }
        Ok(report)
    }
}

/// Whether an existing collection's `have` config serves a caller asking for `want` (see
/// [`Database::get_or_create_collection`]): the same dimension, metric and id type.
fn check_compatible(name: &str, have: &CollectionConfig, want: &CollectionConfig) -> Result<()> {
    let mismatch = |setting: &str, existing: String, requested: String| {
        Err(Error::CollectionConfigMismatch {
            name: name.to_owned(),
            setting: setting.to_owned(),
            existing,
            requested,
        })
    };
    if have.dim != want.dim {
        return mismatch("dim", have.dim.to_string(), want.dim.to_string());
    }
    if have.metric != want.metric {
        return mismatch("metric", have.metric.to_string(), want.metric.to_string());
    }
    if have.id_type != want.id_type {
        return mismatch(
            "id_type",
            have.id_type.to_string(),
            want.id_type.to_string(),
        );
    }
    Ok(())
}

/// The database's pool for background work (seals, compactions, a reader's linking), at low
/// priority, apart from rayon's global pool that serves queries.
fn background_pool(prefix: &'static str) -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .thread_name(move |i| format!("{prefix}-{i}"))
        .start_handler(|_| crate::io::mmap::lower_thread_priority())
        .build()
        .map_err(|e| Error::InvalidArgument(format!("no background thread pool: {e}")))
}

/// A handle to a restored collection, registered with the database.
fn handle(core: &Arc<DbCore>, r: open::Restored) -> Collection {
    let c = Collection {
        _user: Some(UserGuard::new(&core.bg)),
        inner: Arc::new(CollectionShared::new(
            Arc::clone(core),
            r.entry.id,
            &r.entry.name,
            r.entry.config,
            r.live,
        )),
    };
    c.inner.commits.lock().committed = r.committed;
    core.register(&c.inner);
    c
}

/// Says what opening found and did.
fn log_opened(
    core: &DbCore,
    collections: &BTreeMap<String, Collection>,
    started: std::time::Instant,
) {
    let r = &core.recovery;
    log::info!(
        "opened {}: {} collections, {} frames ({} memtable rows) replayed from the log, \
         {} bytes of torn tail cut, in {:.1?}",
        core.path.display(),
        collections.len(),
        r.frames_replayed,
        collections
            .values()
            .map(|c| c.stats().memtable_rows)
            .sum::<usize>(),
        r.torn_tail_bytes,
        started.elapsed()
    );
    for problem in &r.problems {
        log::warn!("{}: recovery dropped data: {problem}", core.path.display());
    }
}

impl Database {
    /// Catches up a read-only handle for a call that returns no `Result`; a failure is
    /// logged, and the call answers from the state it has.
    fn catch_up_quietly(&self) {
        if let Err(e) = self.core.catch_up() {
            log::warn!(
                "{}: catching up with the writer failed: {e}",
                self.core.path.display()
            );
        }
    }
}

/// Handles are shared across threads.
const _: () = {
    const fn is<T: Send + Sync + Clone>() {}
    is::<Database>();
    is::<Collection>();
};
