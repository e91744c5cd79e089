//! The database: a directory, its lock, its manifest and log, and the collections in it.
//!
//! Opening runs recovery: take the lock, read the manifest, remove files a crash left
//! unreferenced, open the segments, and replay the log into the memtables.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Weak};

use parking_lot::{Mutex, RwLock};
use roaring::RoaringBitmap;
use serde::Serialize;

use crate::collection::background::{Background, UserGuard};
use crate::collection::core::DbCore;
use crate::collection::state::{SegmentSlot, State, apply_delete, apply_upsert};
use crate::collection::{Collection, CollectionShared, CollectionStats, WriterState};
use crate::error::{Error, IoContext, Result};
use crate::index::hnsw::check::check;
use crate::io::fsutil::{self, sync_dir};
use crate::log::batch;
use crate::log::wal::{Frame, KIND_DELETE, KIND_UPSERT, Wal};
use crate::manifest::{
    CollectionEntry, MANIFEST_FILE, ManifestData, collection_dir, collections_dir,
    segment_dir_name, tombstone_file_name,
};
use crate::memtable::Memtable;
use crate::model::config::{CollectionConfig, Durability, Options, validate_name};
use crate::segment::Segment;
use crate::segment::tombstones;

const LOCK_FILE: &str = "LOCK";
const WAL_DIR: &str = "wal";

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
}

impl Database {
    /// Opens (or creates) the database in directory `path` with default [`Options`].
    pub fn open(path: impl AsRef<Path>) -> Result<Database> {
        Database::open_with(path, Options::default())
    }

    /// Opens (or creates) the database in directory `path`.
    ///
    /// Fails with [`Error::Locked`] when another process or handle has it open, and with
    /// [`Error::Corruption`] when a file fails its checks. A torn tail of the log (a crash
    /// during a write) is cut off, never reported as an error.
    pub fn open_with(path: impl AsRef<Path>, options: Options) -> Result<Database> {
        options.validate()?;
        let path = path.as_ref().to_owned();
        if !path.is_dir() {
            if !options.create_if_missing {
                return Err(Error::io(
                    &path,
                    std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "database directory does not exist",
                    ),
                ));
            }
            fs::create_dir_all(&path).at(&path)?;
        }
        let lock_existed = path.join(LOCK_FILE).exists();
        let lock = acquire_lock(&path)?;
        let manifest = match ManifestData::load(&path)? {
            Some(m) => m,
            None => match init_database(&path) {
                Ok(m) => m,
                Err(e) => {
                    // Refusing a foreign directory must leave it as it was.
                    if !lock_existed {
                        drop(lock);
                        let _ = fs::remove_file(path.join(LOCK_FILE));
                    }
                    return Err(e);
                }
            },
        };
        remove_unreferenced(&path, &manifest)?;

        // Collections and their segments, before the log is replayed into them.
        let mut loaded: Vec<(CollectionEntry, State)> = Vec::new();
        for c in &manifest.collections {
            let dir = collection_dir(&path, &c.name);
            let mut segments = Vec::new();
            for s in &c.segments {
                let seg = Segment::open(
                    &dir.join(segment_dir_name(s.id)),
                    s.id,
                    s.rows,
                    c.config.dim,
                    c.config.m,
                )?;
                let (deleted, generation) = match s.tombstones {
                    Some(t) => (
                        tombstones::read(
                            &dir.join(tombstone_file_name(s.id, t.generation)),
                            s.id,
                            s.rows,
                            t.count,
                        )?,
                        t.generation,
                    ),
                    None => (RoaringBitmap::new(), 0),
                };
                segments.push(SegmentSlot::new(Arc::new(seg), deleted, generation));
            }
            loaded.push((
                c.clone(),
                State {
                    segments,
                    memtable: Memtable::new(&c.config),
                },
            ));
        }

        let by_id: HashMap<u64, usize> = loaded
            .iter()
            .enumerate()
            .map(|(i, (c, _))| (c.id, i))
            .collect();
        let mut applied: Vec<u64> = loaded.iter().map(|(c, _)| c.flushed_lsn).collect();
        let wal_dir = path.join(WAL_DIR);
        let (wal, _stats) = Wal::open(&wal_dir, options.wal_file_bytes, manifest.last_lsn, |f| {
            replay_frame(&wal_dir, f, &by_id, &mut loaded, &mut applied)
        })?;

        // Link the replayed rows into the memtable graphs, in parallel.
        for (entry, state) in &mut loaded {
            let rows = state.memtable.reserve_graph();
            state.memtable.index(rows, entry.config.metric)?;
        }

        let (tx, rx) = mpsc::channel::<()>();
        let (ctx, crx) = mpsc::channel::<()>();
        let core = Arc::new(DbCore {
            path: path.clone(),
            options: options.clone(),
            wal: Arc::new(wal),
            manifest: Mutex::new(manifest),
            needed: Mutex::new(HashMap::new()),
            registry: Mutex::new(HashMap::new()),
            _flusher: Mutex::new(Some(tx)),
            compactor: Mutex::new(Some(ctx)),
            bg: Arc::new(Background::default()),
            _lock: lock,
        });
        let mut collections = BTreeMap::new();
        for ((entry, state), applied_lsn) in loaded.into_iter().zip(applied) {
            core.set_needed(entry.id, state.memtable.min_lsn);
            let c = Collection {
                _user: Some(UserGuard::new(&core.bg)),
                inner: Arc::new(CollectionShared {
                    core: Arc::clone(&core),
                    id: entry.id,
                    dir: collection_dir(&path, &entry.name),
                    name: entry.name.clone(),
                    config: entry.config,
                    writer: Mutex::new(WriterState { applied_lsn }),
                    state: RwLock::new(state),
                    dropped: AtomicBool::new(false),
                    dropping: AtomicBool::new(false),
                    compaction: Mutex::new(()),
                }),
            };
            core.register(&c.inner);
            collections.insert(entry.name, c);
        }
        core.wal.remove_below(core.min_needed())?;
        if let Durability::Buffered { interval } = options.durability {
            spawn_flusher(Arc::downgrade(&core.wal), rx, interval);
        }
        if options.background_compaction {
            spawn_compactor(Arc::downgrade(&core), Arc::clone(&core.bg), crx);
            core.kick_compactor();
        }
        Ok(Database {
            _user: UserGuard::new(&core.bg),
            core,
            collections: Arc::new(RwLock::new(collections)),
        })
    }

    /// The database directory.
    pub fn path(&self) -> &Path {
        &self.core.path
    }

    /// Creates a collection. Its name must match `[A-Za-z0-9_-]{1,64}`.
    pub fn create_collection(&self, name: &str, config: CollectionConfig) -> Result<Collection> {
        validate_name(name)?;
        config.validate()?;
        self.core.wal.check_poisoned()?;
        let mut cols = self.collections.write();
        if cols.contains_key(name) {
            return Err(Error::CollectionExists { name: name.into() });
        }
        let mut id = 0;
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
        let memtable = Memtable::new(&config);
        let c = Collection {
            _user: Some(UserGuard::new(&self.core.bg)),
            inner: Arc::new(CollectionShared {
                core: Arc::clone(&self.core),
                id,
                name: name.to_owned(),
                dir: collection_dir(&self.core.path, name),
                config,
                writer: Mutex::new(WriterState { applied_lsn: 0 }),
                state: RwLock::new(State {
                    segments: Vec::new(),
                    memtable,
                }),
                dropped: AtomicBool::new(false),
                dropping: AtomicBool::new(false),
                compaction: Mutex::new(()),
            }),
        };
        self.core.register(&c.inner);
        cols.insert(name.to_owned(), c.clone());
        Ok(c)
    }

    /// A handle to an existing collection.
    pub fn collection(&self, name: &str) -> Result<Collection> {
        self.collections
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| Error::CollectionNotFound { name: name.into() })
    }

    /// Names of all collections, sorted.
    pub fn collections(&self) -> Vec<String> {
        self.collections.read().keys().cloned().collect()
    }

    /// Drops a collection and deletes its files. Handles to it then fail with
    /// [`Error::CollectionDropped`].
    pub fn drop_collection(&self, name: &str) -> Result<()> {
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
        self.core.wal.sync()
    }

    /// Counts and sizes of every collection.
    pub fn stats(&self) -> DbStats {
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

    /// Reads and checks every byte of every segment: vector block checksums and every
    /// document's checksum. (Opening already checked the manifest, the log, headers, ids and
    /// tombstones.)
    pub fn verify(&self) -> Result<VerifyReport> {
        let mut report = VerifyReport::default();
        for c in self.collections.read().values() {
            report.collections += 1;
            let st = c.inner.state.read();
            for slot in &st.segments {
                slot.seg.verify_all()?;
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

fn replay_frame(
    wal_dir: &Path,
    f: Frame<'_>,
    by_id: &HashMap<u64, usize>,
    loaded: &mut [(CollectionEntry, State)],
    applied: &mut [u64],
) -> Result<()> {
    let bad = |what: String| Error::corruption(wal_dir, format!("log record {}: {what}", f.lsn));
    match f.kind {
        KIND_UPSERT => {
            let view =
                batch::decode_upsert(f.body).ok_or_else(|| bad("malformed upsert".into()))?;
            let Some(&i) = by_id.get(&view.collection) else {
                return Ok(()); // the collection was dropped
            };
            let (entry, state) = &mut loaded[i];
            if f.lsn <= entry.flushed_lsn {
                return Ok(());
            }
            if view.dim != entry.config.dim {
                return Err(bad(format!(
                    "dimension {} in a collection of {}",
                    view.dim, entry.config.dim
                )));
            }
            apply_upsert(state, f.lsn, &view);
            applied[i] = f.lsn;
        }
        KIND_DELETE => {
            let (cid, ids) =
                batch::decode_delete(f.body).ok_or_else(|| bad("malformed delete".into()))?;
            let Some(&i) = by_id.get(&cid) else {
                return Ok(());
            };
            let (entry, state) = &mut loaded[i];
            if f.lsn <= entry.flushed_lsn {
                return Ok(());
            }
            apply_delete(state, f.lsn, &ids);
            applied[i] = f.lsn;
        }
        k => return Err(bad(format!("unknown record kind {k}"))),
    }
    Ok(())
}

/// Takes the advisory lock on `<db>/LOCK` and records our pid in it.
fn acquire_lock(path: &Path) -> Result<File> {
    let lock_path = path.join(LOCK_FILE);
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .at(&lock_path)?;
    match f.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            return Err(Error::Locked {
                path: path.to_owned(),
            });
        }
        Err(fs::TryLockError::Error(e)) => return Err(Error::io(&lock_path, e)),
    }
    // The pid is for people reading the file; the lock itself is what counts. It is written
    // at a fixed width so the file never needs truncating (a metadata write on every open).
    let pid = format!("{:<20}\n", std::process::id());
    let mut old = Vec::new();
    let _ = f.read_to_end(&mut old);
    if old != pid.as_bytes() {
        let _ = f.set_len(0);
        let _ = f.rewind();
        let _ = f.write_all(pid.as_bytes());
    }
    Ok(f)
}

/// Sets up a new database in `path`, which must hold nothing but our LOCK file.
fn init_database(path: &Path) -> Result<ManifestData> {
    for entry in fs::read_dir(path).at(path)? {
        let entry = entry.at(path)?;
        if entry.file_name() != LOCK_FILE {
            return Err(Error::InvalidArgument(format!(
                "{} is not a Cairn database (no {MANIFEST_FILE}) and not empty: refusing to create one there",
                path.display()
            )));
        }
    }
    fs::create_dir_all(path.join(WAL_DIR)).at(path)?;
    fs::create_dir_all(collections_dir(path)).at(path)?;
    let m = ManifestData::default();
    m.store(path)?;
    Ok(m)
}

/// Removes files a crash can leave behind: segment directories and tombstone files the
/// manifest does not name, directories of dropped collections, and temporary files. Only
/// names Cairn itself creates are touched.
fn remove_unreferenced(path: &Path, m: &ManifestData) -> Result<()> {
    let _ = fs::remove_file(path.join(MANIFEST_FILE).with_extension("tmp"));
    let cdir = collections_dir(path);
    fs::create_dir_all(&cdir).at(&cdir)?;
    let mut removed = false;
    for entry in fs::read_dir(&cdir).at(&cdir)? {
        let entry = entry.at(&cdir)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if validate_name(&name).is_err() {
            continue;
        }
        let Some(c) = m.collections.iter().find(|c| c.name == name) else {
            fs::remove_dir_all(entry.path()).at(&entry.path())?;
            removed = true;
            continue;
        };
        let dir = entry.path();
        let mut removed_here = false;
        let mut keep: Vec<String> = Vec::new();
        for s in &c.segments {
            keep.push(segment_dir_name(s.id));
            if let Some(t) = s.tombstones {
                keep.push(tombstone_file_name(s.id, t.generation));
            }
        }
        for e in fs::read_dir(&dir).at(&dir)? {
            let e = e.at(&dir)?;
            let n = e.file_name().to_string_lossy().into_owned();
            if !n.starts_with("seg-") || keep.contains(&n) {
                continue;
            }
            let p = e.path();
            if p.is_dir() {
                fs::remove_dir_all(&p).at(&p)?;
            } else {
                fs::remove_file(&p).at(&p)?;
            }
            removed_here = true;
        }
        if removed_here {
            fsutil::sync_dir(&dir)?;
        }
    }
    // Only a removal needs making durable; a clean open writes nothing.
    if removed {
        sync_dir(&cdir)?;
    }
    Ok(())
}

/// The background sync thread of `Durability::Buffered`. It holds only the log, weakly: the
/// database (and its LOCK) is released the moment the last handle is dropped, never later on
/// this thread. (`DbCore::drop` syncs the log first, so a late sync here writes nothing.)
fn spawn_flusher(wal: Weak<Wal>, stop: mpsc::Receiver<()>, interval: std::time::Duration) {
    let _ = std::thread::Builder::new()
        .name("cairn-sync".into())
        .spawn(move || {
            loop {
                match stop.recv_timeout(interval) {
                    Err(RecvTimeoutError::Timeout) => {}
                    _ => return,
                }
                let Some(wal) = wal.upgrade() else { return };
                // A failure poisons the log; writers see it on their next call.
                let _ = wal.sync();
            }
        });
}

/// The background compaction thread. It holds the database weakly and upgrades only to
/// check or compact, so it never keeps a closed database open except to finish a
/// compaction; a compaction notices when every user handle is gone and stops early.
fn spawn_compactor(core: Weak<DbCore>, bg: Arc<Background>, wake: mpsc::Receiver<()>) {
    let _ = std::thread::Builder::new()
        .name("cairn-compact".into())
        .spawn(move || {
            loop {
                match wake.recv_timeout(std::time::Duration::from_secs(10)) {
                    Ok(()) | Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => return,
                }
                while wake.try_recv().is_ok() {}
                if !bg.begin() {
                    return;
                }
                if let Some(core) = core.upgrade() {
                    let collections = core.open_collections();
                    drop(core);
                    for c in collections {
                        // Errors are not lost: a failed write poisons the log and the writer
                        // sees it; anything else is retried at the next check.
                        let _ = c.compact_by_policy();
                    }
                }
                // Every strong reference is gone before closing may proceed.
                bg.end();
            }
        });
}

/// Handles are shared across threads.
const _: () = {
    const fn is<T: Send + Sync + Clone>() {}
    is::<Database>();
    is::<Collection>();
};
