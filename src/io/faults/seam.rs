//! The armed seam: counting, failing and power-loss copies (feature `fault-injection`).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;

use super::Op;

static ARMED: AtomicBool = AtomicBool::new(false);
static SEEN: AtomicU64 = AtomicU64::new(0);
static FAIL_AT: AtomicU64 = AtomicU64::new(u64::MAX);
static FAILED: Mutex<Option<(Op, String)>> = Mutex::new(None);

/// Power-loss model: what is durable.
struct Durable {
    /// The directory to copy at the crash point, and where to.
    root: PathBuf,
    dest: PathBuf,
    crash_at: u64,
    /// Length of each touched file at its last fsync (files untouched since tracking began are
    /// durable as they are).
    synced: HashMap<PathBuf, u64>,
    /// Entries created since tracking began whose directory has not been fsynced since.
    pending: HashSet<PathBuf>,
    taken: bool,
}

static POWER: Mutex<Option<Durable>> = Mutex::new(None);

/// Counts operations from now on, failing none.
pub fn count() {
    arm(u64::MAX);
}

/// Fails the `n`-th operation from now on (0-based); counts every operation.
pub fn arm(n: u64) {
    SEEN.store(0, Ordering::SeqCst);
    FAIL_AT.store(n, Ordering::SeqCst);
    *FAILED.lock() = None;
    ARMED.store(true, Ordering::SeqCst);
}

/// Tracks durability under `root` from now on and, when the `n`-th operation from now is
/// reached (before it runs), writes the directory as it would be after a power cut to `dest`.
/// Fails nothing. [`power_loss_taken`] tells whether the point was reached.
pub fn power_loss_at(n: u64, root: &Path, dest: &Path) {
    *POWER.lock() = Some(Durable {
        root: root.to_owned(),
        dest: dest.to_owned(),
        crash_at: n,
        synced: HashMap::new(),
        pending: HashSet::new(),
        taken: false,
    });
    arm(u64::MAX);
}

/// Whether the power-loss copy was written.
pub fn power_loss_taken() -> bool {
    POWER.lock().as_ref().is_some_and(|d| d.taken)
}

/// Stops counting, failing and tracking; returns how many operations were seen.
pub fn disarm() -> u64 {
    ARMED.store(false, Ordering::SeqCst);
    if let Some(d) = POWER.lock().as_mut() {
        d.crash_at = u64::MAX;
    }
    SEEN.load(Ordering::SeqCst)
}

fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).map_or(0, |m| m.len())
}

impl Durable {
    fn note(&mut self, op: Op, path: &Path) {
        match op {
            Op::Create => {
                self.pending.insert(path.to_owned());
                self.synced.insert(path.to_owned(), 0);
            }
            Op::Write => {
                // First touch of a file that existed before tracking: durable as it is now.
                let len = file_len(path);
                self.synced.entry(path.to_owned()).or_insert(len);
            }
            Op::Sync => {
                if path.is_dir() {
                    self.pending.retain(|p| p.parent() != Some(path));
                } else {
                    self.synced.insert(path.to_owned(), file_len(path));
                }
            }
            Op::Rename => {}
        }
    }

    /// Copies `root` to `dest` as it would be after a power cut now.
    fn copy(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(to)?;
        for e in std::fs::read_dir(from)? {
            let e = e?;
            let p = e.path();
            if self.lost(&p) {
                continue;
            }
            let target = to.join(e.file_name());
            if e.file_type()?.is_dir() {
                self.copy(&p, &target)?;
            } else {
                let mut bytes = std::fs::read(&p)?;
                if let Some(&len) = self.synced.get(&p) {
                    bytes.truncate(len as usize);
                }
                std::fs::write(&target, bytes)?;
            }
        }
        Ok(())
    }

    /// A path whose entry, or an ancestor's, is not yet durable.
    fn lost(&self, p: &Path) -> bool {
        p.ancestors().any(|a| self.pending.contains(a))
    }
}

/// Operations seen since arming.
pub fn seen() -> u64 {
    SEEN.load(Ordering::SeqCst)
}

/// The operation that was failed, if one was.
pub fn failed() -> Option<(Op, String)> {
    FAILED.lock().clone()
}

/// Called before each file operation of the write path.
pub(crate) fn check(op: Op, path: &Path) -> std::io::Result<()> {
    if !ARMED.load(Ordering::Relaxed) {
        return Ok(());
    }
    let n = SEEN.fetch_add(1, Ordering::SeqCst);
    if let Some(d) = POWER.lock().as_mut() {
        if n == d.crash_at && !d.taken {
            d.copy(&d.root.clone(), &d.dest.clone())?;
            d.taken = true;
        }
        // The operation is about to happen: account for it (a failed one is not undone,
        // which only makes the model stricter about what survives).
        d.note(op, path);
    }
    if n == FAIL_AT.load(Ordering::SeqCst) {
        *FAILED.lock() = Some((op, path.display().to_string()));
        return Err(std::io::Error::other(format!(
            "injected {op:?} failure on {}",
            path.display()
        )));
    }
    Ok(())
}

static ID_KEY_BITS: AtomicU64 = AtomicU64::new(64);

/// Keeps only the low `bits` bits (1 to 64) of every string id's key from now on, so that a
/// test meets key collisions between different strings (which 64 bits make vanishingly
/// rare). Process-wide, like the rest of the seam; 64 restores the real keys.
pub fn set_id_key_bits(bits: u32) {
    assert!((1..=64).contains(&bits), "1 to 64 bits");
    ID_KEY_BITS.store(u64::from(bits), Ordering::SeqCst);
}

pub(crate) fn truncate_id_key(k: u64) -> u64 {
    match ID_KEY_BITS.load(Ordering::Relaxed) {
        64 => k,
        b => k & ((1u64 << b) - 1),
    }
}
