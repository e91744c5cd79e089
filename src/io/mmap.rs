//! The only module with `unsafe` code: read-only memory maps of immutable files.
//!
//! (It also holds the one other operation that needs `unsafe`: a cache prefetch hint.)
//!
//! Safety charter: Cairn maps a file only after it was written completely, fsynced, and
//! published (segments and their files are never opened for writing again). Every other
//! module reaches mapped bytes through [`Mmap::bytes`] and validates offsets and lengths
//! before slicing; typed views (`&[f32]`) are made with `bytemuck`, which checks alignment
//! and length itself. What this module cannot rule out is another process truncating or
//! rewriting a mapped file behind Cairn's back; that is outside the contract (the database
//! directory belongs to Cairn, guarded by its LOCK file).
#![allow(unsafe_code)]

use std::fs::File;
use std::path::Path;

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

    /// Advises the kernel that access will be random (HNSW) and that huge pages are welcome
    /// (used where the kernel supports them for read-only file mappings). Hints only.
    pub(crate) fn advise_random(&self) {
        if let Some(m) = &self.map {
            let _ = m.advise(memmap2::Advice::Random);
            #[cfg(target_os = "linux")]
            let _ = m.advise(memmap2::Advice::HugePage);
        }
    }
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

/// Hints the CPU to load the cache lines of `bytes` (at most the first 2, 128 bytes: the
/// hardware prefetcher follows a longer run by itself). A hint only: it never faults and has
/// no effect on program semantics.
#[inline(always)]
pub(crate) fn prefetch(bytes: &[u8]) {
    prefetch_lines(bytes.as_ptr(), bytes.len(), 2);
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
