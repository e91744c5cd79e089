//! The only module with `unsafe` code: read-only memory maps of immutable files, and
//! append-only arrays that one writer fills while any number of readers read what was
//! published before.
//!
//! (It also holds the other operations that need `unsafe`: cache prefetch hints, a
//! `madvise`, and zero-initialized arrays of atomics.)
//!
//! Safety charter: Cairn maps a file only after it was written completely, fsynced, and
//! published (segments and their files are never opened for writing again). Every other
//! module reaches mapped bytes through [`Mmap::bytes`] and validates offsets and lengths
//! before slicing; typed views (`&[f32]`) are made with `bytemuck`, which checks alignment
//! and length itself. What this module cannot rule out is another process truncating or
//! rewriting a mapped file behind Cairn's back; that is outside the contract (the database
//! directory belongs to Cairn, guarded by its LOCK file).
#![allow(unsafe_code)]

use std::cell::UnsafeCell;
use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use bytemuck::Pod;
use parking_lot::Mutex;

use crate::error::{IoContext, Result};

/// A read-only mapping of a whole file.
#[derive(Debug)]
pub(crate) struct Mmap {
    map: Option<memmap2::Mmap>,
}

impl Mmap {
    /// Maps `file` read-only. An empty file maps to an empty slice.
    pub(crate) fn map(file: &File, path: &Path) -> Result<Mmap> {
        let len = file.metadata().at(path)?.len();
        if len == 0 {
            return Ok(Mmap { map: None });
        }
        // SAFETY: the file is an immutable, fully written and fsynced Cairn file (see the
        // charter above); no code in Cairn writes to it while it is mapped, and the mapping is
        // read-only, so the bytes behind the returned slice do not change under us.
        let map = unsafe { memmap2::MmapOptions::new().map(file) }.at(path)?;
        Ok(Mmap { map: Some(map) })
    }

    /// The mapped bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        match &self.map {
            Some(m) => m,
            None => &[],
        }
    }

    /// Advises the kernel that access will be random: a page fault reads that page and no
    /// read-ahead around it (`MADV_RANDOM`). For the vectors, ids and payload, whose rows are
    /// read one by one (re-scoring, hits) and which may be far larger than memory.
    pub(crate) fn advise_random(&self) {
        if let Some(m) = &self.map {
            let _ = m.advise(memmap2::Advice::Random);
        }
    }

    /// [`advise_random`](Self::advise_random), and huge pages welcome (where the kernel backs
    /// read-only file mappings with them): for the graph and the codes, which walks touch all
    /// over and which should stay resident. On Linux a fault in such a mapping reads its whole
    /// 2 MiB-aligned range, so this is not for files read only row by row: with it, each
    /// re-scored vector cost a 2 MiB read on a cold page cache.
    pub(crate) fn advise_walked(&self) {
        if let Some(m) = &self.map {
            let _ = m.advise(memmap2::Advice::Random);
            #[cfg(target_os = "linux")]
            let _ = m.advise(memmap2::Advice::HugePage);
        }
    }
}

impl Mmap {
    /// Asks the kernel to read the whole mapping in ahead of use (`MADV_WILLNEED`): for the
    /// parts a memory budget keeps resident (codes, graph). A hint only.
    pub(crate) fn advise_willneed(&self) {
        if let Some(m) = &self.map {
            let _ = m.advise(memmap2::Advice::WillNeed);
        }
    }

    /// Locks the mapping's pages in memory (`mlock`): they are read in now and never evicted
    /// while the map lives. Fails when the process may not lock that much (`RLIMIT_MEMLOCK`).
    pub(crate) fn lock(&self) -> std::io::Result<()> {
        match &self.map {
            Some(m) => m.lock(),
            None => Ok(()),
        }
    }

    /// Bytes of the mapping that are in memory now (`mincore`), whole pages; 0 where the
    /// system cannot tell.
    pub(crate) fn resident_bytes(&self) -> u64 {
        #[cfg(any(target_os = "linux", target_os = "macos"))]
        if let Some(m) = &self.map {
            // SAFETY: sysconf takes a constant and touches no memory of ours.
            let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
            let Ok(page) = usize::try_from(page) else {
                return 0;
            };
            if page == 0 {
                return 0;
            }
            let pages = m.len().div_ceil(page);
            let mut vec = vec![0u8; pages];
            // SAFETY: the range is the live mapping `m` (mmap returned a page-aligned start),
            // and `vec` has one byte per page of it, as mincore writes. mincore only reports
            // residency; it neither reads nor changes the mapped bytes.
            let r = unsafe {
                libc::mincore(
                    m.as_ptr() as *mut libc::c_void,
                    m.len(),
                    vec.as_mut_ptr().cast(),
                )
            };
            if r != 0 {
                return 0;
            }
            let resident = vec.iter().filter(|&&b| b & 1 != 0).count();
            return (resident * page).min(m.len()) as u64;
        }
        0
    }
}

/// Drops the clean pages of the file at `path`, or of every file under the directory at
/// `path`, from the page cache (`posix_fadvise(POSIX_FADV_DONTNEED)`), so that the next reads
/// come from the disk: how a benchmark makes a cold pass. Pages that a process still maps
/// (an open database) stay. Returns the number of files; does nothing on systems without
/// the call.
pub fn evict_page_cache(path: &Path) -> std::io::Result<usize> {
    let meta = std::fs::symlink_metadata(path)?;
    if meta.is_dir() {
        let mut n = 0;
        for e in std::fs::read_dir(path)? {
            n += evict_page_cache(&e?.path())?;
        }
        return Ok(n);
    }
    if !meta.is_file() {
        return Ok(0);
    }
    let f = File::open(path)?;
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: posix_fadvise takes a file descriptor we own (open for the whole call) and
        // plain integers; it touches no memory of ours and only changes the page cache.
        let r = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        if r != 0 {
            return Err(std::io::Error::from_raw_os_error(r));
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = f;
    Ok(1)
}

/// Issues prefetch hints for the first `max_lines` cache lines of the `len` bytes at `base`.
/// The only place Cairn prefetches.
#[inline(always)]
fn prefetch_lines(base: *const u8, len: usize, max_lines: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        for i in 0..len.div_ceil(64).min(max_lines) {
            // SAFETY: `_mm_prefetch` is an SSE instruction, present on every x86_64 CPU; it
            // takes any address (even an invalid one) and only warms the cache. The address is
            // computed with `wrapping_add` and never dereferenced; callers pass a live slice
            // and i * 64 < len keeps it inside that slice anyway.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(base.wrapping_add(i * 64).cast::<i8>()) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (base, len, max_lines);
}

/// Lowers the calling thread's scheduling priority (nice 10) so that queries and writes,
/// which run at the caller's priority, get the CPU first when a background seal or compaction
/// competes with them. Best effort: does nothing where it is not supported or allowed.
pub(crate) fn lower_thread_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority takes plain integers and touches no memory of ours; on Linux,
    // `PRIO_PROCESS` with id 0 applies to the calling thread only. A failure (e.g. not
    // permitted) is returned as -1 and ignored.
    unsafe {
        let _ = libc::setpriority(libc::PRIO_PROCESS, 0, 10);
    }
}

/// Hints the CPU to load the cache lines of `bytes` (at most the first 2, 128 bytes: the
/// hardware prefetcher follows a longer run by itself). A hint only: it never faults and has
/// no effect on program semantics.
#[inline(always)]
pub(crate) fn prefetch(bytes: &[u8]) {
    prefetch_lines(bytes.as_ptr(), bytes.len(), 2);
}

/// Hints the CPU to load up to the first 16 cache lines (1 KiB) of `bytes`: a whole code row
/// of a graph walk (int8 rows of up to 1,020 dimensions, 4-bit RaBitQ rows of up to 2,024),
/// which is scored as soon as it arrives. [`prefetch`]'s 2 lines left the rest of a 384-d
/// int8 row (7 lines) to be missed in turn while the kernel read it.
#[inline(always)]
pub(crate) fn prefetch_row(bytes: &[u8]) {
    prefetch_lines(bytes.as_ptr(), bytes.len(), 16);
}

/// [`prefetch`] for a slice of floats.
#[inline(always)]
pub(crate) fn prefetch_f32(v: &[f32]) {
    prefetch(bytemuck::cast_slice(v));
}

/// Prefetch for a slice of atomics (the memtable graph's link lists; up to 4 lines).
#[inline(always)]
pub(crate) fn prefetch_atomic(v: &[std::sync::atomic::AtomicU32]) {
    prefetch_lines(v.as_ptr().cast::<u8>(), std::mem::size_of_val(v), 4);
}

/// Asks the kernel to back the heap allocation of `v` with transparent huge pages (2 MiB), if
/// the system allows it (`madvise` mode). HNSW reads vectors and links at random across the
/// whole memtable; with 4 KiB pages nearly every read also misses the TLB. Only whole 2 MiB
/// ranges inside the allocation become huge pages; a refusal is harmless and ignored.
pub(crate) fn advise_huge_pages<T>(v: &Vec<T>) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let bytes = v.capacity() * std::mem::size_of::<T>();
        if bytes < 2 * HUGE {
            return;
        }
        let start = v.as_ptr() as usize;
        let aligned = start.next_multiple_of(HUGE);
        let end = (start + bytes) / HUGE * HUGE;
        if end > aligned {
            // SAFETY: madvise(MADV_HUGEPAGE) only changes how the kernel backs the pages of
            // this range — never their contents or validity — and the range lies inside the
            // live allocation of `v` (start..start + bytes). The pointer is not dereferenced.
            unsafe {
                libc::madvise(
                    aligned as *mut libc::c_void,
                    end - aligned,
                    libc::MADV_HUGEPAGE,
                );
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = v;
}

/// A fixed-capacity array of plain values that grows by appending: a writer appends (writers
/// are serialized by an internal mutex) and then publishes the new length; readers see the
/// elements below the length they load, which are never written again. So a snapshot of a
/// growing memtable can be read without a lock while its writer appends rows behind it.
///
/// The storage is allocated zeroed once, at its full capacity: the kernel backs it with
/// pages only as they are written, and it never moves, so slices handed to readers stay
/// valid while the arena grows.
pub(crate) struct Arena<T> {
    /// `cap` elements; those below `len` are published and immutable.
    buf: Box<[UnsafeCell<T>]>,
    len: AtomicUsize,
    /// Held while appending.
    writer: Mutex<()>,
}

// SAFETY: elements below `len` are only read (through shared slices); elements at or above
// `len` are only written, by the one appender that holds `writer`, and become readable only
// after the Release store of the new `len`, which readers load with Acquire. No element is
// ever read and written concurrently, so sharing the arena across threads is sound for any
// `T` that may itself be sent and shared (`Pod` values are plain bytes).
unsafe impl<T: Pod + Send + Sync> Sync for Arena<T> {}

/// An [`Arena`] had no room for what was appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ArenaFull;

impl<T: Pod> Arena<T> {
    /// An empty arena with room for `cap` elements.
    pub(crate) fn with_capacity(cap: usize) -> Arena<T> {
        let zeroed: Box<[T]> = bytemuck::zeroed_slice_box(cap);
        let raw = Box::into_raw(zeroed) as *mut [UnsafeCell<T>];
        // SAFETY: `UnsafeCell<T>` has the same size, alignment and bit validity as `T`
        // (it is `repr(transparent)`), so a `Box<[T]>` of `cap` elements is a valid
        // `Box<[UnsafeCell<T>]>` of `cap` elements; ownership moves from one box to the other.
        let buf = unsafe { Box::from_raw(raw) };
        Arena {
            buf,
            len: AtomicUsize::new(0),
            writer: Mutex::new(()),
        }
    }

    /// Elements published so far.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    /// Room in elements.
    pub(crate) fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// The published elements.
    #[inline]
    pub(crate) fn as_slice(&self) -> &[T] {
        let len = self.len();
        let ptr = UnsafeCell::raw_get(self.buf.as_ptr());
        // SAFETY: the first `len` elements were written before `len` was published (Release
        // store in `push`, Acquire load above) and are never written again; `len` never
        // exceeds the capacity; the buffer lives as long as `self`.
        unsafe { std::slice::from_raw_parts(ptr, len) }
    }

    /// Appends `items` and publishes them; returns the index of the first. Fails, appending
    /// nothing, when they do not fit.
    pub(crate) fn push(&self, items: &[T]) -> Result<usize, ArenaFull> {
        let _w = self.writer.lock();
        let start = self.len.load(Ordering::Relaxed);
        let end = start.checked_add(items.len()).ok_or(ArenaFull)?;
        if end > self.buf.len() {
            return Err(ArenaFull);
        }
        let dst = UnsafeCell::raw_get(self.buf[start..end].as_ptr());
        // SAFETY: `start..end` lies inside the buffer (checked above) and at or above the
        // published length, so no reader has a reference to it; we hold `writer`, so no other
        // appender writes it; `items` is a separate allocation, so the ranges do not overlap.
        unsafe { std::ptr::copy_nonoverlapping(items.as_ptr(), dst, items.len()) };
        self.len.store(end, Ordering::Release);
        Ok(start)
    }
}

/// `n` atomics, all zero, allocated zeroed (the kernel backs them with pages as they are
/// written, so a large, mostly unused array costs little).
pub(crate) fn zeroed_atomics(n: usize) -> Box<[AtomicU32]> {
    let zeroed: Box<[u32]> = bytemuck::zeroed_slice_box(n);
    let raw = Box::into_raw(zeroed) as *mut [AtomicU32];
    // SAFETY: `AtomicU32` has the same size, alignment and bit validity as `u32` (documented
    // in std), and all-zero bits are a valid `AtomicU32` holding 0; ownership moves from one
    // box to the other.
    unsafe { Box::from_raw(raw) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arena_appends_publish_and_stop_at_capacity() {
        let a: Arena<u32> = Arena::with_capacity(10);
        assert_eq!(a.as_slice(), &[] as &[u32]);
        assert_eq!(a.push(&[1, 2, 3]), Ok(0));
        assert_eq!(a.push(&[4]), Ok(3));
        assert_eq!(a.as_slice(), &[1, 2, 3, 4]);
        assert_eq!(a.push(&[0; 7]), Err(ArenaFull));
        assert_eq!(a.push(&[9; 6]), Ok(4));
        assert_eq!(a.len(), 10);
        assert_eq!(a.push(&[]), Ok(10));
        assert_eq!(a.push(&[1]), Err(ArenaFull));
        assert!(
            zeroed_atomics(1000)
                .iter()
                .all(|x| x.load(Ordering::Relaxed) == 0)
        );
    }

    /// Readers on other threads only ever see fully written elements, in order.
    #[test]
    fn arena_readers_see_whole_prefixes() {
        let a: std::sync::Arc<Arena<u64>> = std::sync::Arc::new(Arena::with_capacity(200_000));
        let w = {
            let a = std::sync::Arc::clone(&a);
            std::thread::spawn(move || {
                for i in 0..20_000u64 {
                    let batch: Vec<u64> = (0..(i % 9 + 1)).map(|j| i * 16 + j).collect();
                    a.push(&batch).unwrap();
                }
            })
        };
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let a = std::sync::Arc::clone(&a);
                std::thread::spawn(move || {
                    let mut seen = 0;
                    while seen < a.capacity() / 2 {
                        let s = a.as_slice();
                        assert!(s.len() >= seen);
                        // Batches are whole and consecutive: each element is i*16 + j with
                        // j counting up from 0 within batch i.
                        for w in s.windows(2) {
                            let (x, y) = (w[0], w[1]);
                            assert!(y == x + 1 || (y / 16 == x / 16 + 1 && y % 16 == 0));
                        }
                        seen = s.len();
                        if a.len() == 0 || w_done(&a) {
                            break;
                        }
                    }
                })
            })
            .collect();
        w.join().unwrap();
        for r in readers {
            r.join().unwrap();
        }
        assert_eq!(
            a.len(),
            (0..20_000u64).map(|i| i % 9 + 1).sum::<u64>() as usize
        );

        fn w_done(a: &Arena<u64>) -> bool {
            a.len() == (0..20_000u64).map(|i| i % 9 + 1).sum::<u64>() as usize
        }
    }
}
