//! Read-only handles: a database opened without the lock, that never writes a byte, and that
//! catches up with the writer process before each call.
//!
//! ```text
//!  each call ─▶ read BEACON (48 bytes): epoch, manifest generation, durable LSN
//!    unchanged            ─▶ nothing to do
//!    durable LSN moved on ─▶ read the log tail up to it; each frame stages, links and
//!                            commits in the memtables exactly as in the writer
//!    new epoch/manifest   ─▶ reload: read MANIFEST, open its segments (those already mapped
//!                            are kept), replay the log from the file holding the oldest
//!                            frame the manifest needs (older files may be being trimmed)
//!                            up to the durable LSN into new memtables, swap every
//!                            collection's state
//! ```
//!
//! A reload is checked before it is used: the log must reach back to the oldest frame the
//! manifest's collections need, or no new manifest may have appeared while it ran (the
//! writer trims log files only after storing the manifest that no longer needs them). A
//! segment or log file removed under a reload, or a log tail that no longer holds the frame
//! it must, starts the reload again.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Weak};

use parking_lot::RwLock;

use super::open::{self, Restored, WAL_DIR};
use crate::collection::core::{CatchUp, DbCore};
use crate::collection::{Collection, CollectionShared};
use crate::error::{Error, Result};
use crate::io::beacon::{BeaconReader, BeaconWatch, Signal};
use crate::log::batch;
use crate::log::tail::{LogTail, TailRead};
use crate::log::wal::{Frame, KIND_DELETE, KIND_UPSERT};
use crate::manifest::ManifestData;
use crate::memtable::Memtable;
use crate::model::config::Options;
use crate::segment::Segment;

/// Reloads tried in a row before a call gives up (each is restarted only when the writer
/// changed the database under it).
const MAX_RELOADS: usize = 100;

/// Why a reload attempt starts again.
struct Retry {
    why: String,
    /// A file was gone (trimmed or replaced by the writer), not damaged.
    gone: bool,
}

impl Retry {
    fn lost(why: String) -> Retry {
        Retry { why, gone: false }
    }
    fn gone(why: String) -> Retry {
        Retry { why, gone: true }
    }
}

/// The collections of a read-only database, by name (the map its handles share).
pub(crate) type CollectionMap = Arc<RwLock<BTreeMap<String, Collection>>>;

/// What a read-only handle knows of the writer, and where it is in the log.
pub(crate) struct Follower {
    path: PathBuf,
    options: Options,
    beacon: BeaconReader,
    /// The signal of the last catch-up (`None`: there was no beacon).
    seen: Option<Signal>,
    /// Whether a state has been loaded.
    loaded: bool,
    tail: Option<LogTail>,
    /// Segments mapped, by id (a segment's files never change once published).
    segments: HashMap<u64, Arc<Segment>>,
    /// Per collection id: log frames up to this LSN are in its segments.
    flushed: HashMap<u64, u64>,
    /// The handles' map of collections, to add the writer's new collections to.
    map: Weak<RwLock<BTreeMap<String, Collection>>>,
    /// Wakes the thread that links new memtable rows into their graphs.
    linker: Sender<()>,
    /// Told what each catch-up caught up with, for the lock-free check of the next call.
    watch: Arc<BeaconWatch>,
}

impl Follower {
    pub(crate) fn new(
        path: &Path,
        options: &Options,
        map: &CollectionMap,
        linker: Sender<()>,
        watch: Arc<BeaconWatch>,
    ) -> Follower {
        Follower {
            path: path.to_owned(),
            options: options.clone(),
            beacon: BeaconReader::new(path),
            seen: None,
            loaded: false,
            tail: None,
            segments: HashMap::new(),
            flushed: HashMap::new(),
            map: Arc::downgrade(map),
            linker,
            watch,
        }
    }
}

impl CatchUp for Follower {
    /// Catches up with the writer: afterwards every batch the writer had made durable when
    /// this was called is visible.
    fn catch_up(&mut self, core: &Arc<DbCore>) -> Result<()> {
        let signal = self.beacon.read();
        let same_state = |a: Option<Signal>, b: Option<Signal>| match (a, b) {
            (Some(a), Some(b)) => a.epoch == b.epoch && a.manifest_gen == b.manifest_gen,
            (None, None) => true,
            _ => false,
        };
        if !self.loaded || !same_state(self.seen, signal) {
            return self.reload(core, signal);
        }
        if signal == self.seen && signal.is_some() {
            return Ok(());
        }
        // The same manifest, more of the log.
        let durable = signal.map(|s| s.durable_lsn);
        let mut tail = self.tail.take().expect("a loaded follower has a tail");
        let read = tail.read(durable, |f| self.apply(core, f));
        match read {
            Ok(TailRead::UpTo) => {
                self.tail = Some(tail);
                self.seen = signal;
                self.watch.mark(signal);
                let _ = self.linker.send(());
                Ok(())
            }
            Ok(TailRead::Lost(why) | TailRead::Gone(why)) => {
                log::debug!("{}: reloading: {why}", self.path.display());
                self.reload(core, signal)
            }
            Err(e) => {
                // The tail is gone with the failed read (and part of a batch may be staged):
                // the next catch-up loads the state anew.
                self.loaded = false;
                Err(e)
            }
        }
    }
}

impl Follower {
    /// Loads the state anew from the manifest and the log, and swaps it in.
    fn reload(&mut self, core: &Arc<DbCore>, mut signal: Option<Signal>) -> Result<()> {
        // Attempts in a row that found a file gone while the beacon stood still.
        let mut gone_still = 0;
        for attempt in 0..MAX_RELOADS {
            match self.try_reload(signal)? {
                Ok((manifest, loaded, tail)) => {
                    self.install(core, manifest, loaded);
                    self.tail = Some(tail);
                    self.seen = signal;
                    self.loaded = true;
                    self.watch.mark(signal);
                    let _ = self.linker.send(());
                    return Ok(());
                }
                Err(Retry { why, gone }) => {
                    let now = self.beacon.read();
                    gone_still = if gone && now == signal {
                        gone_still + 1
                    } else {
                        0
                    };
                    // The writer changed nothing meanwhile: the files are damaged. A file that
                    // is gone may have been trimmed by the writer, which it does after storing
                    // the manifest: the next attempt lists the files anew, so only a file
                    // gone twice under a still beacon is damage.
                    if now == signal && (!gone || gone_still >= 2) {
                        return Err(Error::corruption(
                            self.path.join(WAL_DIR),
                            format!(
                                "a read-only handle cannot load the database: {why}; nothing \
                                 was changed (`cairn repair` drops the damaged frames)"
                            ),
                        ));
                    }
                    log::debug!("{}: reload {attempt} restarts: {why}", self.path.display());
                    signal = now;
                }
            }
        }
        Err(Error::InvalidArgument(format!(
            "{}: the writer changed the database {MAX_RELOADS} times while a read-only handle \
             was loading it",
            self.path.display()
        )))
    }

    /// One attempt at a reload: `Ok(Err(retry))` when the writer changed the database under
    /// it (or the files are damaged: `reload` tells which).
    #[allow(clippy::type_complexity)]
    fn try_reload(
        &mut self,
        signal: Option<Signal>,
    ) -> Result<std::result::Result<(ManifestData, Vec<Restored>, LogTail), Retry>> {
        let manifest = match ManifestData::load(&self.path)? {
            Some(m) => m,
            None => {
                return Err(Error::InvalidArgument(format!(
                    "{} is not a Cairn database (no MANIFEST)",
                    self.path.display()
                )));
            }
        };
        let mut loaded = match open::load_collections_with(
            &self.path,
            &manifest,
            &self.options,
            &mut self.segments,
        ) {
            Ok(l) => l,
            Err(Error::Io { source, path }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Err(Retry::gone(format!("{} was removed", path.display()))));
            }
            Err(e) => return Err(e),
        };
        let wal_dir = self.path.join(WAL_DIR);
        let needed = loaded.iter().map(|r| r.entry.flushed_lsn + 1).min();
        let mut tail = LogTail::covering(
            &wal_dir,
            needed.unwrap_or(manifest.last_lsn + 1),
            manifest.last_lsn + 1,
        )?;
        let first = tail.next_lsn();
        let by_id: HashMap<u64, usize> = loaded
            .iter()
            .enumerate()
            .map(|(i, r)| (r.entry.id, i))
            .collect();
        let durable = signal.map(|s| s.durable_lsn);
        let options = &self.options;
        let read = tail.read(durable, |f| {
            open::replay_frame(&wal_dir, f, &by_id, options, &mut loaded)
        })?;
        match read {
            TailRead::UpTo => {}
            TailRead::Lost(why) => return Ok(Err(Retry::lost(why))),
            TailRead::Gone(why) => return Ok(Err(Retry::gone(why))),
        }
        if tail.next_lsn() <= manifest.last_lsn {
            return Ok(Err(Retry::lost(format!(
                "the log ends before LSN {} but the manifest was published at LSN {}",
                tail.next_lsn(),
                manifest.last_lsn
            ))));
        }
        // The log must reach back to every frame a collection needs — or, if it starts
        // later, the manifest must still be the newest (files are trimmed only after the
        // manifest that no longer needs them was stored).
        if needed.is_some_and(|n| first > n) {
            let now = self.beacon.read();
            let moved = match (signal, now) {
                (Some(a), Some(b)) => a.epoch != b.epoch || a.manifest_gen != b.manifest_gen,
                (a, b) => a.is_some() != b.is_some(),
            };
            if moved {
                return Ok(Err(Retry::lost(
                    "a new manifest was stored during the reload".into(),
                )));
            }
        }
        // Rows replayed here are scored exactly until the linker thread links them.
        open::freeze_memtables(&loaded);
        self.segments.retain(|id, _| {
            manifest
                .collections
                .iter()
                .any(|c| c.segments.iter().any(|s| s.id == *id))
        });
        Ok(Ok((manifest, loaded, tail)))
    }

    /// Swaps the loaded state into the open collections, adds the writer's new collections
    /// and marks the dropped ones.
    fn install(&mut self, core: &Arc<DbCore>, manifest: ManifestData, loaded: Vec<Restored>) {
        let map = self.map.upgrade();
        self.flushed = loaded
            .iter()
            .map(|r| (r.entry.id, r.entry.flushed_lsn))
            .collect();
        let open: HashMap<u64, Arc<CollectionShared>> = core
            .registry
            .lock()
            .iter()
            .filter_map(|(&id, w)| Some((id, w.upgrade()?)))
            .collect();
        for (&id, c) in &open {
            if !loaded.iter().any(|r| r.entry.id == id) {
                c.dropped.store(true, std::sync::atomic::Ordering::Release);
                core.registry.lock().remove(&id);
                if let Some(map) = &map {
                    map.write().retain(|_, h| h.inner.id != id);
                }
            }
        }
        for r in loaded {
            if let Some(c) = open.get(&r.entry.id) {
                c.update(|live| *live = r.live);
                c.commits.lock().committed = r.committed;
                continue;
            }
            let c = super::handle(core, r);
            if let Some(map) = &map {
                map.write().insert(c.name().to_owned(), c);
            }
        }
        *core.manifest.lock() = manifest;
    }

    /// Applies one frame of the log tail to the open collections, as the writer did: stage,
    /// link, commit.
    fn apply(&self, core: &Arc<DbCore>, f: Frame<'_>) -> Result<()> {
        let bad = |what: String| {
            Error::corruption(
                self.path.join(WAL_DIR),
                format!("log record {}: {what}", f.lsn),
            )
        };
        let (collection, upsert) = match f.kind {
            KIND_UPSERT => {
                let view =
                    batch::decode_upsert(f.body).ok_or_else(|| bad("malformed upsert".into()))?;
                (view.collection, Some(view))
            }
            KIND_DELETE => {
                let (cid, _) =
                    batch::decode_delete(f.body).ok_or_else(|| bad("malformed delete".into()))?;
                (cid, None)
            }
            k => return Err(bad(format!("unknown record kind {k}"))),
        };
        if self.flushed.get(&collection).is_none_or(|&l| f.lsn <= l) {
            return Ok(()); // dropped, not ours yet (a reload will see it), or in a segment
        }
        let Some(c) = core
            .registry
            .lock()
            .get(&collection)
            .and_then(Weak::upgrade)
        else {
            return Ok(());
        };
        match upsert {
            Some(view) => {
                let cfg = &c.config;
                if view.dim != cfg.dim {
                    return Err(bad(format!(
                        "dimension {} in a collection of {}",
                        view.dim, cfg.dim
                    )));
                }
                open::check_row_ids(&view, cfg).map_err(bad)?;
                let doc_bytes: usize = view.rows.iter().map(|x| x.2.len()).sum();
                let (mt, rows) = c.update(|live| {
                    let active = Arc::clone(&live.version.active().mt);
                    let o = &self.options;
                    let full = active.staged() >= o.memtable_max_rows
                        || active.bytes() >= o.memtable_max_bytes;
                    let mt = if full || !active.fits(view.rows.len(), doc_bytes) {
                        let mt = Arc::new(Memtable::sized(o, cfg, view.rows.len(), doc_bytes));
                        if active.staged() == 0 {
                            live.replace_empty_active(Arc::clone(&mt));
                        } else {
                            active.graph.freeze(active.staged());
                            live.freeze(Arc::clone(&mt));
                        }
                        mt
                    } else {
                        active
                    };
                    let rows = mt.stage(f.lsn, &view.rows);
                    (mt, rows)
                });
                let rows =
                    rows.ok_or_else(|| bad("a batch did not fit a memtable made for it".into()))?;
                // Visible at once, scored exactly until the linker thread has linked them.
                let ids: Vec<u64> = view.rows.iter().map(|x| x.0).collect();
                c.update(|live| live.commit_upsert(&mt, &ids, rows, false))?;
            }
            None => {
                let (_, ids) =
                    batch::decode_delete(f.body).ok_or_else(|| bad("malformed delete".into()))?;
                c.update(|live| {
                    live.version.active().note_lsn(f.lsn);
                    live.commit_delete(&ids)
                })?;
            }
        }
        c.commits.lock().committed = f.lsn;
        c.progress.notify_all();
        Ok(())
    }
}

/// The linker thread's work: links the memtable rows that read-only handles committed without
/// linking, and publishes versions that say so. Searches score unlinked rows exactly, so this
/// only moves work off the search path.
pub(super) fn link_pending(core: &Arc<DbCore>) {
    for c in core.open_collections() {
        let v = c.inner.version();
        for m in v.memtables.iter().filter(|m| m.linked < m.rows) {
            let (from, to) = (m.linked, m.rows);
            let linked = core
                .pool
                .install(|| m.mt.link(from..to, c.inner.config.metric));
            match linked {
                Ok(()) => c.inner.update(|live| live.mark_linked(&m.mt, to)),
                // Searches go on scoring these rows exactly.
                Err(e) => log::warn!("{}: linking memtable rows failed: {e}", c.name()),
            }
        }
    }
}
