//! Lazily verified block checksums for large mapped bodies.
//!
//! A segment's vector body can be gigabytes; reading all of it to check one crc would make
//! opening a database cost a full read. Instead the body carries a crc32c per block (64 KiB by
//! default) and a bit per block records whether it has been checked in this process. Every
//! read goes through [`BlockCheck::ensure`], which checks each block it touches once: the
//! first read of a block pays ~5 µs, later reads one relaxed atomic load. `cairn verify` checks
//! all blocks.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};
use crate::io::header::u32_at;

/// Default block size of block-checksummed bodies.
pub(crate) const BLOCK_SIZE: usize = 64 << 10;

/// The check block of the `vectors` file: one page. A re-scored row is read from a cold page
/// cache with its own page or two, not with the 64 KiB around it that a larger block would
/// need to be checked (the table costs 4 bytes per 4 KiB: 0.1 %). Readers take the block size
/// from the file's header (segments written before this used [`BLOCK_SIZE`]).
pub(crate) const VECTOR_BLOCK_SIZE: usize = 4 << 10;

/// Checks blocks of `data` against a table of crc32c values, each at most once.
#[derive(Debug)]
pub(crate) struct BlockCheck {
    block_size: usize,
    /// log2 of `block_size`: the hot path shifts instead of dividing.
    shift: u32,
    data_len: usize,
    verified: Box<[AtomicU64]>,
}

impl BlockCheck {
    /// `block_size` must be a power of two (callers validate it).
    pub(crate) fn new(block_size: usize, data_len: usize) -> Self {
        debug_assert!(block_size.is_power_of_two());
        let blocks = Self::block_count(block_size, data_len);
        BlockCheck {
            block_size,
            shift: block_size.trailing_zeros(),
            data_len,
            verified: (0..blocks.div_ceil(64))
                .map(|_| AtomicU64::new(0))
                .collect(),
        }
    }

    /// Number of blocks covering `data_len` bytes.
    pub(crate) fn block_count(block_size: usize, data_len: usize) -> usize {
        data_len.div_ceil(block_size)
    }

    /// Checks every block overlapping `data[start..end]` that has not been checked yet.
    /// `table` holds one little-endian crc32c per block.
    #[inline]
    pub(crate) fn ensure(
        &self,
        data: &[u8],
        table: &[u8],
        start: usize,
        end: usize,
        path: &Path,
    ) -> Result<()> {
        if start >= end {
            return Ok(());
        }
        let first = start >> self.shift;
        let last = (end - 1) >> self.shift;
        for b in first..=last {
            let word = &self.verified[b / 64];
            let bit = 1u64 << (b % 64);
            if word.load(Ordering::Relaxed) & bit != 0 {
                continue;
            }
            self.check_block(data, table, b, path)?;
            word.fetch_or(bit, Ordering::Relaxed);
        }
        Ok(())
    }

    #[cold]
    fn check_block(&self, data: &[u8], table: &[u8], b: usize, path: &Path) -> Result<()> {
        let s = b * self.block_size;
        let e = (s + self.block_size).min(self.data_len);
        let stored = u32_at(table, b * 4);
        let actual = crc32c::crc32c(&data[s..e]);
        if stored != actual {
            return Err(Error::corruption(
                path,
                format!("checksum mismatch in block {b} (bytes {s}..{e} of the body)"),
            ));
        }
        Ok(())
    }

    /// Checks all blocks.
    pub(crate) fn ensure_all(&self, data: &[u8], table: &[u8], path: &Path) -> Result<()> {
        self.ensure(data, table, 0, self.data_len, path)
    }
}

/// Computes the block checksum table of `data`.
pub(crate) fn block_crcs(data: &[u8], block_size: usize) -> Vec<u8> {
    let mut t = BlockCrcs::new(block_size);
    t.update(data);
    t.finish()
}

/// The table [`block_crcs`] gives, computed over a body written piece by piece (a writer that
/// streams does not hold the body).
pub(crate) struct BlockCrcs {
    block_size: usize,
    /// Bytes of the current block seen so far.
    filled: usize,
    crc: u32,
    table: Vec<u8>,
}

impl BlockCrcs {
    pub(crate) fn new(block_size: usize) -> Self {
        BlockCrcs {
            block_size,
            filled: 0,
            crc: 0,
            table: Vec::new(),
        }
    }

    /// Adds the next bytes of the body.
    pub(crate) fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let take = (self.block_size - self.filled).min(data.len());
            self.crc = crc32c::crc32c_append(self.crc, &data[..take]);
            self.filled += take;
            data = &data[take..];
            if self.filled == self.block_size {
                self.table.extend_from_slice(&self.crc.to_le_bytes());
                (self.filled, self.crc) = (0, 0);
            }
        }
    }

    /// The table: one crc32c (LE) per block, the last block possibly short.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        if self.filled > 0 {
            self.table.extend_from_slice(&self.crc.to_le_bytes());
        }
        self.table
    }
}

#[cfg(test)]
mod stream_tests {
    use super::*;

    #[test]
    fn streamed_table_equals_the_whole_body_table() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
        for bs in [4096usize, 65536] {
            let want: Vec<u8> = data
                .chunks(bs)
                .flat_map(|c| crc32c::crc32c(c).to_le_bytes())
                .collect();
            for piece in [1usize, 63, 4096, 70_000, 300_000] {
                let mut t = BlockCrcs::new(bs);
                for c in data.chunks(piece) {
                    t.update(c);
                }
                assert_eq!(t.finish(), want, "block {bs}, pieces of {piece}");
            }
        }
        assert!(BlockCrcs::new(4096).finish().is_empty());
    }
}
