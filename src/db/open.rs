//! Opening a database: lock, manifest (or a new database), clean-up of what a crash left,
//! segments, and the replay of the log into memtables.
//!
//! ```text
//!  lock LOCK ─▶ read MANIFEST (or create) ─▶ remove unreferenced files
//!  ─▶ open every segment and tombstone file the manifest names
//!  ─▶ replay wal/*.wal oldest first: each frame stages and commits exactly as a live write
//!     does (full memtables are frozen; the seal thread seals them after the open); a damaged
//!     or shortened log fails the open unchanged, unless `accept_log_loss` (log/wal.rs)
//!  ─▶ link the replayed rows into the memtable graphs ─▶ remove log files no memtable needs
//! ```

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::Path;
use std::sync::Arc;

use roaring::RoaringBitmap;

use crate::collection::state::{Live, SegmentSlot, Version};
use crate::error::{Error, IoContext, Result};
use crate::io::faults;
use crate::io::fsutil::{self, sync_dir};
use crate::log::batch;
use crate::log::recover::RecoveryReport;
use crate::log::wal::{Frame, KIND_DELETE, KIND_UPSERT, Wal};
use crate::manifest::{
    CollectionEntry, MANIFEST_FILE, ManifestData, collection_dir, collections_dir,
    segment_dir_name, tombstone_file_name,
};
use crate::memtable::Memtable;
use crate::model::config::{CollectionConfig, Options, validate_name};
use crate::model::record::StoredDoc;
use crate::segment::tombstones;
use crate::segment::{Codes, Segment};

pub(super) const LOCK_FILE: &str = "LOCK";
pub(super) const WAL_DIR: &str = "wal";

/// A collection as opening restores it: its manifest entry, its live state, and the LSN of
/// the newest batch committed to it.
pub(super) struct Restored {
    pub entry: CollectionEntry,
    pub live: Live,
    pub committed: u64,
}

/// Takes the directory (creating it, or a new database in it, as allowed) and reads its
/// manifest, then removes what a crash left. Returns the lock and the manifest.
///
/// Creating a database is crash-safe: the directory (made durable in its parent), then
/// `LOCK`, then `MANIFEST` (atomically), then the `wal` and `collections` directories. A
/// directory holding only `LOCK` and `MANIFEST.tmp` is a creation that a crash interrupted
/// and is created afresh; missing `wal` or `collections` directories are created on open.
pub(super) fn lock_and_load(path: &Path, options: &Options) -> Result<(File, ManifestData)> {
    if !path.is_dir() {
        if !options.create_if_missing {
            return Err(Error::io(
                path,
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "database directory does not exist",
                ),
            ));
        }
        create_dirs(path)?;
    }
    let lock_existed = path.join(LOCK_FILE).exists();
    let lock = acquire_lock_within(path, options.lock_timeout)?;
    let manifest = match ManifestData::load(path)? {
        Some(m) => m,
        None => match init_database(path) {
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
    ensure_dirs(path, &manifest)?;
    remove_unreferenced(path, &manifest)?;
    Ok((lock, manifest))
}

/// Creates `path` and any missing ancestors, each made durable in its parent.
fn create_dirs(path: &Path) -> Result<()> {
    let missing: Vec<&Path> = path.ancestors().take_while(|a| !a.exists()).collect();
    for dir in missing.into_iter().rev() {
        if dir.as_os_str().is_empty() {
            continue;
        }
        match fsutil::create_dir_synced(dir) {
            // Another process made it meanwhile.
            Err(Error::Io { source, .. })
                if source.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => {}
            r => r?,
        }
    }
    Ok(())
}

/// Opens the segments and tombstones of every collection the manifest names, each with an
/// empty memtable.
pub(super) fn load_collections(
    path: &Path,
    manifest: &ManifestData,
    options: &Options,
) -> Result<Vec<Restored>> {
    load_collections_with(path, manifest, options, &mut HashMap::new())
}

/// [`load_collections`], taking segments from `cache` (by id) where it has them and adding
/// those it opens.
pub(super) fn load_collections_with(
    path: &Path,
    manifest: &ManifestData,
    options: &Options,
    cache: &mut HashMap<u64, Arc<Segment>>,
) -> Result<Vec<Restored>> {
    let mut loaded = Vec::new();
    let mut opened = Vec::new();
    for c in &manifest.collections {
        let dir = collection_dir(path, &c.name);
        let mut segments = Vec::new();
        for s in &c.segments {
            let seg = match cache.get(&s.id) {
                Some(seg) => Arc::clone(seg),
                None => {
                    let seg = Arc::new(Segment::open(
                        &dir.join(segment_dir_name(s.id)),
                        s.id,
                        s.rows,
                        c.config.dim,
                        c.config.m,
                        Codes::of(&c.config, s.codes),
                    )?);
                    cache.insert(s.id, Arc::clone(&seg));
                    seg
                }
            };
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
            segments.push(SegmentSlot::new(seg, deleted, generation));
        }
        opened.extend(segments.iter().map(|s| Arc::clone(&s.seg)));
        let active = Arc::new(Memtable::sized(options, &c.config, 0, 0));
        loaded.push(Restored {
            entry: c.clone(),
            live: Live::new(Version::new(segments, active)),
            committed: c.flushed_lsn,
        });
    }
    apply_memory_budget(path, options, &opened);
    Ok(loaded)
}

/// With a memory budget: checks that the segments' codes and graphs fit in it (a warning
/// when they do not), reads them in ahead of use, and locks them when asked to and they fit.
fn apply_memory_budget(path: &Path, options: &Options, segments: &[Arc<Segment>]) {
    let Some(budget) = options.memory_budget else {
        return;
    };
    let pinned: u64 = segments.iter().map(|s| s.pinned_bytes()).sum();
    let fits = pinned <= budget;
    if !fits {
        log::warn!(
            "{}: the quantized codes and graphs that searches walk take {pinned} bytes, more than \
             the memory budget of {budget} bytes: searches will read them from the disk when \
             they are evicted{}",
            path.display(),
            if options.lock_memory {
                "; they are not locked"
            } else {
                ""
            }
        );
    }
    for s in segments {
        crate::segment::keep_resident(s, options.lock_memory && fits);
    }
}

/// Replays the log into the collections' memtables and links the replayed rows into their
/// graphs; returns the log, ready to append, and what the replay found.
pub(super) fn replay(
    path: &Path,
    manifest: &ManifestData,
    options: &Options,
    loaded: &mut [Restored],
) -> Result<(Wal, RecoveryReport)> {
    let by_id: HashMap<u64, usize> = loaded
        .iter()
        .enumerate()
        .map(|(i, r)| (r.entry.id, i))
        .collect();
    let wal_dir = path.join(WAL_DIR);
    let (wal, report) = Wal::open(
        &wal_dir,
        options.wal_file_bytes,
        manifest.log_mark(),
        options.accept_log_loss,
        |f| replay_frame(&wal_dir, f, &by_id, options, loaded),
    )?;
    link_memtables(loaded)?;
    Ok((wal, report))
}

/// Links the replayed rows into the memtable graphs (in parallel within each); every memtable
/// but the active one is frozen.
pub(super) fn link_memtables(loaded: &mut [Restored]) -> Result<()> {
    for r in loaded.iter_mut() {
        let v = Arc::clone(&r.live.version);
        for m in v.memtables.iter() {
            m.link(0..m.staged() as u32, r.entry.config.metric)?;
            r.live.mark_linked(&m.mt, m.rows);
        }
    }
    freeze_memtables(loaded);
    Ok(())
}

/// Freezes every replayed memtable but the active one: their graphs count only the rows
/// staged (a read-only handle links them later, on its linker thread).
pub(super) fn freeze_memtables(loaded: &[Restored]) {
    for r in loaded {
        let v = &r.live.version;
        for m in &v.memtables[..v.memtables.len() - 1] {
            m.graph.freeze(m.staged());
        }
    }
}

/// Stages and commits one log frame in the memtables of the restored collections.
pub(super) fn replay_frame(
    wal_dir: &Path,
    f: Frame<'_>,
    by_id: &HashMap<u64, usize>,
    options: &Options,
    loaded: &mut [Restored],
) -> Result<()> {
    let bad = |what: String| Error::corruption(wal_dir, format!("log record {}: {what}", f.lsn));
    match f.kind {
        KIND_UPSERT => {
            let view =
                batch::decode_upsert(f.body).ok_or_else(|| bad("malformed upsert".into()))?;
            let Some(&i) = by_id.get(&view.collection) else {
                return Ok(()); // the collection was dropped
            };
            let r = &mut loaded[i];
            if f.lsn <= r.entry.flushed_lsn {
                return Ok(());
            }
            let cfg = &r.entry.config;
            if view.dim != cfg.dim {
                return Err(bad(format!(
                    "dimension {} in a collection of {}",
                    view.dim, cfg.dim
                )));
            }
            check_row_ids(&view, cfg).map_err(bad)?;
            let doc_bytes: usize = view.rows.iter().map(|x| x.2.len()).sum();
            let mut active: Arc<Memtable> = Arc::clone(&r.live.version.active().mt);
            let full = active.staged() >= options.memtable_max_rows
                || active.bytes() >= options.memtable_max_bytes;
            if full || !active.fits(view.rows.len(), doc_bytes) {
                active = Arc::new(Memtable::sized(options, cfg, view.rows.len(), doc_bytes));
                if r.live.version.active().staged() == 0 {
                    r.live.replace_empty_active(Arc::clone(&active));
                } else {
                    r.live.freeze(Arc::clone(&active));
                }
            }
            let rows = active
                .stage(f.lsn, &view.rows)
                .ok_or_else(|| bad("a replayed batch did not fit a memtable made for it".into()))?;
            let ids: Vec<u64> = view.rows.iter().map(|x| x.0).collect();
            // Linked after the replay (`link_memtables`), before anyone searches.
            r.live.commit_upsert(&active, &ids, rows, false)?;
            r.committed = f.lsn;
        }
        KIND_DELETE => {
            let (cid, ids) =
                batch::decode_delete(f.body).ok_or_else(|| bad("malformed delete".into()))?;
            let Some(&i) = by_id.get(&cid) else {
                return Ok(());
            };
            let r = &mut loaded[i];
            if f.lsn <= r.entry.flushed_lsn {
                return Ok(());
            }
            r.live.version.active().note_lsn(f.lsn);
            r.live.commit_delete(&ids)?;
            r.committed = f.lsn;
        }
        k => return Err(bad(format!("unknown record kind {k}"))),
    }
    Ok(())
}

/// Checks that every row of a logged upsert carries the id its key says: in a collection of
/// string ids, the string whose key it is (so a search never names a record by an id that
/// `get` does not find); in one of integer ids, no string. A frame's checksum protects its
/// bytes; this, what they mean.
pub(super) fn check_row_ids(
    view: &batch::UpsertView<'_>,
    cfg: &CollectionConfig,
) -> std::result::Result<(), String> {
    for &(key, _, doc) in &view.rows {
        StoredDoc::check_id(cfg.id_type, key, doc)?;
    }
    Ok(())
}

/// Takes the lock, trying again until `timeout` has passed while another process holds it.
fn acquire_lock_within(path: &Path, timeout: std::time::Duration) -> Result<File> {
    // `None`: a timeout too long to add to the clock waits without end.
    let deadline = std::time::Instant::now().checked_add(timeout);
    let mut waited = false;
    loop {
        match acquire_lock(path) {
            Err(Error::Locked { pid, .. })
                if deadline.is_none_or(|d| std::time::Instant::now() < d) =>
            {
                if !waited {
                    waited = true;
                    log::info!(
                        "{}: waiting up to {timeout:?} for the lock (held by {})",
                        path.display(),
                        pid.map_or_else(|| "another process".into(), |p| format!("pid {p}"))
                    );
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            r => return r,
        }
    }
}

/// Takes the advisory lock on `<db>/LOCK` and records our pid in it.
fn acquire_lock(path: &Path) -> Result<File> {
    let lock_path = path.join(LOCK_FILE);
    if !lock_path.exists() {
        faults::check(faults::Op::Create, &lock_path).at(&lock_path)?;
    }
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
            // The holder wrote its pid (see below); it names the process in the error.
            let mut text = String::new();
            let pid = f
                .read_to_string(&mut text)
                .ok()
                .and_then(|_| text.trim().parse::<u32>().ok());
            return Err(Error::Locked {
                path: path.to_owned(),
                pid,
            });
        }
        Err(fs::TryLockError::Error(e)) => return Err(Error::io(&lock_path, e)),
    }
    // The pid is for people and for the error of a second open; the lock itself is what
    // counts. It is written at a fixed width so the file never needs truncating (a metadata
    // write on every open).
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

/// Sets up a new database in `path`, which must hold nothing but our LOCK file and what an
/// interrupted creation leaves: `MANIFEST.tmp`, and (from versions that made them before the
/// manifest) empty `wal` and `collections` directories.
fn init_database(path: &Path) -> Result<ManifestData> {
    let tmp = path.join(MANIFEST_FILE).with_extension("tmp");
    for entry in fs::read_dir(path).at(path)? {
        let entry = entry.at(path)?;
        let p = entry.path();
        let name = entry.file_name();
        let leftover = name == LOCK_FILE
            || p == tmp
            || ((name == WAL_DIR || p == collections_dir(path))
                && p.is_dir()
                && fs::read_dir(&p).at(&p)?.next().is_none());
        if !leftover {
            return Err(Error::InvalidArgument(format!(
                "{} is not a Cairn database (no {MANIFEST_FILE}) and not empty: refusing to create one there",
                path.display()
            )));
        }
    }
    // The manifest first: once it exists the directory is a database, and whatever else is
    // missing is made on open (`ensure_dirs`).
    let m = ManifestData::default();
    m.store(path)?;
    Ok(m)
}

/// Creates the `wal` and `collections` directories and each collection's directory where
/// missing (a crash while creating the database or a collection), durably.
fn ensure_dirs(path: &Path, m: &ManifestData) -> Result<()> {
    let mut made = false;
    for dir in [path.join(WAL_DIR), collections_dir(path)] {
        if !dir.is_dir() {
            faults::check(faults::Op::Create, &dir).at(&dir)?;
            fs::create_dir(&dir).at(&dir)?;
            made = true;
        }
    }
    if made {
        sync_dir(path)?;
    }
    let mut made = false;
    for c in &m.collections {
        let dir = collection_dir(path, &c.name);
        if !dir.is_dir() {
            faults::check(faults::Op::Create, &dir).at(&dir)?;
            fs::create_dir(&dir).at(&dir)?;
            made = true;
        }
    }
    if made {
        sync_dir(&collections_dir(path))?;
    }
    Ok(())
}

/// Removes files a crash can leave behind: segment directories and tombstone files the
/// manifest does not name, directories of dropped collections, and temporary files. Only
/// names Cairn itself creates are touched.
fn remove_unreferenced(path: &Path, m: &ManifestData) -> Result<()> {
    let _ = fs::remove_file(path.join(MANIFEST_FILE).with_extension("tmp"));
    let cdir = collections_dir(path);
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
