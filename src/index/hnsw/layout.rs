//! The `graph` file of a segment, and the graph mapped from it.
//!
//! Body (after the common 64-byte header, kind Graph, count = nodes, aux = segment id,
//! block size 65,536, body checksum = crc32c of the block table):
//!
//! | part | size |
//! |---|---|
//! | meta: m u32, m0 u32, entry u32, top level u32, upper words u64, ef_construction u32, offset width `w` u32, level-0 list bytes `s` u64, zero | 64 |
//! | level-0 offsets: where each node's list starts in the lists, then `s` | (n + 1) · w (w = 4, or 8: needed when `s` ≥ 2³²) |
//! | level-0 lists, back to back ([`encode_list`]) | s, zero-padded to 4 |
//! | level of each node | n · 1, zero-padded to 4 |
//! | upper offset of each node: first word in the upper table, `u32::MAX` for level-0 nodes | n · 4 |
//! | upper table: per upper node, levels 1..=level, each `count u32` + `m` u32s | words · 4 |
//! | zero padding to 64 | |
//! | block table: crc32c per 65,536-byte block of the body above | 4 · blocks |
//!
//! Level 0 holds nearly all the links. A list is stored sorted, as its first node and then the
//! gaps between neighbours, all gaps of one list in the same width (1 to 4 bytes): about 2.3
//! bytes a link where a fixed-width u32 table spent 4 on each of `m0` slots, used or not.
//! Decoding is a prefix sum over fixed-width loads, with no branch per link; segments are
//! written in breadth-first order, so neighbours are near each other and gaps are small.
//! Opening checks the header, the meta and the sizes; blocks are checked on first touch, and
//! every offset, count, neighbour id and width is checked where it is read.

use std::fs::File;
use std::path::{Path, PathBuf};

use super::graph::{MAX_LEVEL, MemGraph};
use super::search::Links;
use crate::error::{Error, IoContext, Result};
use crate::io::blocks::{BLOCK_SIZE, BlockCheck, block_crcs};
use crate::io::fsutil::write_new_file;
use crate::io::header::{FileKind, HEADER_LEN, Header, u32_at, u64_at};
use crate::io::mmap::Mmap;

/// File name of the graph in a segment directory.
pub(crate) const GRAPH_FILE: &str = "graph";
const META_LEN: usize = 64;
/// Bytes before the first gap of a list: the gap width, then the first node as u32.
const LIST_HEAD: usize = 5;

fn pad64(x: usize) -> usize {
    x.div_ceil(64) * 64
}

/// Width of one level-0 offset the writer picks: 4 bytes while the lists fit in u32
/// offsets, else 8. The meta records it; a reader accepts 8 for any size.
fn offset_width(list_bytes: usize) -> usize {
    if list_bytes <= u32::MAX as usize {
        4
    } else {
        8
    }
}

/// Offsets of the parts of the body.
#[derive(Debug, Clone, Copy)]
struct Parts {
    offsets: usize,
    offset_width: usize,
    lists: usize,
    list_bytes: usize,
    levels: usize,
    upper_offsets: usize,
    upper: usize,
    end: usize,
}

fn parts(n: usize, offset_width: usize, list_bytes: usize, upper_words: usize) -> Option<Parts> {
    let offsets = META_LEN;
    let lists = offsets.checked_add(n.checked_add(1)?.checked_mul(offset_width)?)?;
    let levels = lists.checked_add(list_bytes.checked_next_multiple_of(4)?)?;
    let upper_offsets = levels.checked_add(n.checked_next_multiple_of(4)?)?;
    let upper = upper_offsets.checked_add(n.checked_mul(4)?)?;
    let end = upper.checked_add(upper_words.checked_mul(4)?)?;
    Some(Parts {
        offsets,
        offset_width,
        lists,
        list_bytes,
        levels,
        upper_offsets,
        upper,
        end,
    })
}

/// Appends the level-0 list `links` (sorted here) to `out`: nothing for an empty list, else
/// the gap width `w` (1 to 4) as one byte, the first node as u32, then each gap to the
/// previous node in `w` little-endian bytes. `w` is the fewest bytes that hold the list's
/// largest gap.
pub(crate) fn encode_list(links: &mut [u32], out: &mut Vec<u8>) {
    links.sort_unstable();
    let Some(&first) = links.first() else {
        return;
    };
    let max_gap = links.windows(2).map(|p| p[1] - p[0]).max().unwrap_or(0);
    let w = (4 - max_gap.leading_zeros() as usize / 8).max(1);
    out.push(w as u8);
    out.extend_from_slice(&first.to_le_bytes());
    for p in links.windows(2) {
        out.extend_from_slice(&(p[1] - p[0]).to_le_bytes()[..w]);
    }
}

/// Decodes one list written by [`encode_list`] into `out`, checking its width, its length
/// (at most `cap` links) and that every node is below `n`. The error says what is wrong.
#[inline]
pub(crate) fn decode_list(
    b: &[u8],
    n: usize,
    cap: usize,
    out: &mut Vec<u32>,
) -> std::result::Result<(), String> {
    out.clear();
    if b.is_empty() {
        return Ok(());
    }
    let w = b[0] as usize;
    if b.len() < LIST_HEAD || !(1..=4).contains(&w) || !(b.len() - LIST_HEAD).is_multiple_of(w) {
        return Err(format!(
            "malformed list of {} bytes, gap width {w}",
            b.len()
        ));
    }
    let count = 1 + (b.len() - LIST_HEAD) / w;
    if count > cap {
        return Err(format!("list of {count} links, at most {cap} fit"));
    }
    let mut acc = u64::from(u32_at(b, 1));
    out.push(acc as u32);
    let gaps = &b[LIST_HEAD..];
    // One loop per width, so the loads inside have a fixed size; `extend` over exact-size
    // chunks reserves once and writes without a capacity check per link.
    let mut add = |gap: u32| {
        acc += u64::from(gap);
        acc as u32
    };
    match w {
        1 => out.extend(gaps.iter().map(|&g| add(u32::from(g)))),
        2 => out.extend(
            gaps.chunks_exact(2)
                .map(|g| add(u32::from(u16::from_le_bytes([g[0], g[1]])))),
        ),
        3 => out.extend(
            gaps.chunks_exact(3)
                .map(|g| add(u32::from_le_bytes([g[0], g[1], g[2], 0]))),
        ),
        _ => out.extend(
            gaps.chunks_exact(4)
                .map(|g| add(u32::from_le_bytes([g[0], g[1], g[2], g[3]]))),
        ),
    }
    // Nodes only grow along the list: the last is the largest.
    if acc >= n as u64 {
        out.clear();
        return Err(format!("link to node {acc} of {n}"));
    }
    Ok(())
}

/// Writes the graph of `g` (all its nodes) to `path`, fsynced.
/// `order[new] = old`: node `order[i]` of `g` is written as node `i` (the rows of the
/// segment are written in the same order).
pub(crate) fn write(path: &Path, segment: u64, g: &MemGraph, order: &[u32]) -> Result<()> {
    write_with(path, segment, g, order, None)
}

/// [`write`] with the width of the level-0 offsets forced (tests of the 8-byte form, which
/// real data reaches only past 4 GiB of lists).
pub(crate) fn write_with(
    path: &Path,
    segment: u64,
    g: &MemGraph,
    order: &[u32],
    force_offset_width: Option<usize>,
) -> Result<()> {
    let n = g.nodes();
    let m = g.params.m;
    let m0 = g.params.m0();
    debug_assert_eq!(order.len(), n);
    let mut pos = vec![0u32; n];
    for (new, &old) in order.iter().enumerate() {
        pos[old as usize] = new as u32;
    }
    // Renumbers one upper list: `count` then neighbours (unused slots stay zero).
    let remap = |words: &mut [u32], width: usize| {
        for list in words.chunks_mut(width) {
            let count = (list[0] as usize).min(width - 1);
            for w in &mut list[1..=count] {
                *w = pos[*w as usize];
            }
        }
    };
    let mut upper = Vec::new();
    let mut upper_offsets = Vec::with_capacity(n);
    for &old in order {
        if g.level_of(old) == 0 {
            upper_offsets.push(u32::MAX);
        } else {
            upper_offsets.push(upper.len() as u32);
            let mut words: Vec<u32> = g.upper_words(old).collect();
            remap(&mut words, 1 + m);
            upper.extend(words);
        }
    }
    // Level 0: the lists, renumbered and encoded, and where each starts.
    let mut lists = Vec::with_capacity(n * 64);
    let mut starts = Vec::with_capacity(n + 1);
    let mut links = Vec::with_capacity(m0);
    for &old in order {
        starts.push(lists.len() as u64);
        let mut words = g.level0_words(old);
        let count = (words.next().unwrap_or(0) as usize).min(m0);
        links.clear();
        links.extend(words.take(count).map(|w| pos[w as usize]));
        encode_list(&mut links, &mut lists);
    }
    starts.push(lists.len() as u64);
    let width = force_offset_width.unwrap_or_else(|| offset_width(lists.len()));
    let p = parts(n, width, lists.len(), upper.len())
        .ok_or_else(|| Error::InvalidArgument("graph too large".into()))?;
    let mut body = Vec::with_capacity(pad64(p.end));
    let (entry, top) = g.entry().map_or((0, 0), |(e, t)| (pos[e as usize], t));
    body.extend_from_slice(&(m as u32).to_le_bytes());
    body.extend_from_slice(&(m0 as u32).to_le_bytes());
    body.extend_from_slice(&entry.to_le_bytes());
    body.extend_from_slice(&(top as u32).to_le_bytes());
    body.extend_from_slice(&(upper.len() as u64).to_le_bytes());
    body.extend_from_slice(&(g.params.ef_construction as u32).to_le_bytes());
    body.extend_from_slice(&(width as u32).to_le_bytes());
    body.extend_from_slice(&(lists.len() as u64).to_le_bytes());
    body.resize(META_LEN, 0);
    for &s in &starts {
        body.extend_from_slice(&s.to_le_bytes()[..p.offset_width]);
    }
    debug_assert_eq!(body.len(), p.lists);
    body.extend_from_slice(&lists);
    body.resize(p.levels, 0);
    body.extend(order.iter().map(|&old| g.level_of(old) as u8));
    body.resize(p.upper_offsets, 0);
    for o in &upper_offsets {
        body.extend_from_slice(&o.to_le_bytes());
    }
    for w in &upper {
        body.extend_from_slice(&w.to_le_bytes());
    }
    debug_assert_eq!(body.len(), p.end);
    body.resize(pad64(p.end), 0);
    let table = block_crcs(&body, BLOCK_SIZE);
    let mut h = Header::new(FileKind::Graph);
    h.count = n as u64;
    h.body_len = (body.len() + table.len()) as u64;
    h.body_crc = crc32c::crc32c(&table);
    h.block_size = BLOCK_SIZE as u32;
    h.aux = segment;
    write_new_file(path, &[&h.encode(), &body, &table])
}

/// A graph read from a mapped `graph` file.
#[derive(Debug)]
pub(crate) struct MappedGraph {
    map: Mmap,
    path: PathBuf,
    n: usize,
    m: usize,
    m0: usize,
    entry: Option<(u32, usize)>,
    parts: Parts,
    body_len: usize,
    blocks: BlockCheck,
}

impl MappedGraph {
    /// Opens the graph of a segment with `n` rows built with `m`.
    pub(crate) fn open(path: &Path, segment: u64, n: usize, m: usize) -> Result<MappedGraph> {
        let f = File::open(path).at(path)?;
        let map = Mmap::map(&f, path)?;
        map.advise_walked();
        let b = map.bytes();
        let h = Header::decode(b, FileKind::Graph, path)?;
        let bad = |what: String| Error::corruption(path, what);
        if h.aux != segment || h.count != n as u64 {
            return Err(bad(format!(
                "graph of segment {} with {} nodes, expected {segment} with {n}",
                h.aux, h.count
            )));
        }
        if h.block_size as usize != BLOCK_SIZE {
            return Err(bad(format!("invalid block size {}", h.block_size)));
        }
        if b.len() < HEADER_LEN + META_LEN || b.len() as u64 != HEADER_LEN as u64 + h.body_len {
            return Err(bad(format!(
                "file is {} bytes, header says body of {}",
                b.len(),
                h.body_len
            )));
        }
        let meta = &b[HEADER_LEN..HEADER_LEN + META_LEN];
        let fm = u32_at(meta, 0) as usize;
        let m0 = u32_at(meta, 4) as usize;
        let entry = u32_at(meta, 8);
        let top = u32_at(meta, 12) as usize;
        let too_large = || bad("sizes overflow".into());
        let upper_words = usize::try_from(u64_at(meta, 16)).map_err(|_| too_large())?;
        let list_bytes = usize::try_from(u64_at(meta, 32)).map_err(|_| too_large())?;
        let width = u32_at(meta, 28) as usize;
        if !(width == 8 || width == 4 && list_bytes <= u32::MAX as usize) {
            return Err(bad(format!(
                "level-0 offsets of {width} bytes for {list_bytes} bytes of lists"
            )));
        }
        if fm != m || m0 != 2 * m {
            return Err(bad(format!(
                "graph built with m = {fm}, m0 = {m0}; collection has m = {m}"
            )));
        }
        let p = parts(n, width, list_bytes, upper_words).ok_or_else(too_large)?;
        let body_len = p.end.checked_next_multiple_of(64).ok_or_else(too_large)?;
        let blocks = BlockCheck::block_count(BLOCK_SIZE, body_len);
        let expected = body_len.checked_add(blocks * 4).ok_or_else(too_large)?;
        if h.body_len != expected as u64 {
            return Err(bad(format!(
                "body is {} bytes, expected {expected}",
                h.body_len
            )));
        }
        let table = &b[HEADER_LEN + body_len..];
        if crc32c::crc32c(table) != h.body_crc {
            return Err(bad("block checksum table mismatch".into()));
        }
        let g = MappedGraph {
            path: path.to_owned(),
            n,
            m,
            m0,
            entry: None,
            parts: p,
            body_len,
            blocks: BlockCheck::new(BLOCK_SIZE, body_len),
            map,
        };
        // The meta block is read right here: check it now.
        g.ensure(0, META_LEN)?;
        let entry = if n == 0 {
            None
        } else {
            if entry as usize >= n || top > MAX_LEVEL {
                return Err(bad(format!(
                    "entry point {entry} at level {top} is out of range"
                )));
            }
            if g.level(entry)? != top {
                return Err(bad("entry point is not on the top level".into()));
            }
            Some((entry, top))
        };
        Ok(MappedGraph { entry, ..g })
    }

    fn body(&self) -> &[u8] {
        &self.map.bytes()[HEADER_LEN..HEADER_LEN + self.body_len]
    }

    #[inline]
    fn ensure(&self, start: usize, end: usize) -> Result<()> {
        let b = self.map.bytes();
        self.blocks.ensure(
            &b[HEADER_LEN..HEADER_LEN + self.body_len],
            &b[HEADER_LEN + self.body_len..],
            start,
            end,
            &self.path,
        )
    }

    fn node_level(&self, node: u32) -> Result<usize> {
        let off = self.parts.levels + node as usize;
        self.ensure(off, off + 1)?;
        Ok(self.body()[off] as usize)
    }

    /// The level-0 offsets `off[i]` and `off[i + 1]` of node `i < n`, unchecked (body bytes).
    #[inline]
    fn list_bounds(&self, body: &[u8], node: usize) -> (u64, u64) {
        let w = self.parts.offset_width;
        let at = self.parts.offsets + node * w;
        if w == 4 {
            (u64::from(u32_at(body, at)), u64::from(u32_at(body, at + 4)))
        } else {
            (u64_at(body, at), u64_at(body, at + 8))
        }
    }

    /// The byte range of the level-0 list of `node < n` in the body, its offsets checked.
    #[inline]
    fn list_range(&self, node: usize) -> Result<(usize, usize)> {
        let w = self.parts.offset_width;
        let at = self.parts.offsets + node * w;
        self.ensure(at, at + 2 * w)?;
        let (s, e) = self.list_bounds(self.body(), node);
        if s > e || e > self.parts.list_bytes as u64 {
            return Err(Error::corruption(
                &self.path,
                format!(
                    "level-0 list of node {node} at {s}..{e} lies outside the {} bytes of lists",
                    self.parts.list_bytes
                ),
            ));
        }
        Ok((self.parts.lists + s as usize, self.parts.lists + e as usize))
    }

    /// Reads one upper-level list (`count` then `cap` slots) at byte offset `off`.
    fn read_upper(&self, off: usize, cap: usize, out: &mut Vec<u32>) -> Result<()> {
        let end = off + 4 * (1 + cap);
        self.ensure(off, end)?;
        let b = &self.body()[off..end];
        let count = u32_at(b, 0) as usize;
        if count > cap {
            return Err(Error::corruption(
                &self.path,
                format!("list at {off} claims {count} links, at most {cap} fit"),
            ));
        }
        out.clear();
        for i in 0..count {
            let nb = u32_at(b, 4 + 4 * i);
            if nb as usize >= self.n {
                return Err(Error::corruption(
                    &self.path,
                    format!("link to node {nb} of {}", self.n),
                ));
            }
            out.push(nb);
        }
        Ok(())
    }

    /// Checks every block and every list: used by `verify`.
    pub(crate) fn verify_all(&self) -> Result<()> {
        self.ensure(0, self.body_len)?;
        let mut buf = Vec::new();
        for node in 0..self.n as u32 {
            for level in 0..=self.node_level(node)? {
                self.neighbors(node, level, &mut buf)?;
            }
        }
        Ok(())
    }

    /// Bytes of the file.
    /// The mapped file (for residency hints and figures).
    pub(crate) fn map(&self) -> &Mmap {
        &self.map
    }

    pub(crate) fn disk_bytes(&self) -> u64 {
        self.map.bytes().len() as u64
    }
}

impl Links for MappedGraph {
    fn nodes(&self) -> usize {
        self.n
    }

    fn entry(&self) -> Option<(u32, usize)> {
        self.entry
    }

    fn level(&self, node: u32) -> Result<usize> {
        if node as usize >= self.n {
            return Err(Error::corruption(
                &self.path,
                format!("node {node} of {}", self.n),
            ));
        }
        self.node_level(node)
    }

    #[inline]
    fn prefetch(&self, node: u32) {
        // A hint only: the offsets are read unchecked and a bad one prefetches nothing.
        let body = self.body();
        if (node as usize) < self.n {
            let (s, e) = self.list_bounds(body, node as usize);
            let start = self.parts.lists.saturating_add(s as usize);
            let end = self.parts.lists.saturating_add(e as usize);
            if let Some(b) = body.get(start..end) {
                crate::io::mmap::prefetch(b);
            }
        }
    }

    #[inline]
    fn prefetch_locator(&self, node: u32) {
        let at = self.parts.offsets + node as usize * self.parts.offset_width;
        if let Some(b) = self.body().get(at..at + 2 * self.parts.offset_width) {
            crate::io::mmap::prefetch(b);
        }
    }

    #[inline]
    fn neighbors(&self, node: u32, level: usize, out: &mut Vec<u32>) -> Result<()> {
        if node as usize >= self.n {
            return Err(Error::corruption(
                &self.path,
                format!("node {node} of {}", self.n),
            ));
        }
        if level == 0 {
            let (s, e) = self.list_range(node as usize)?;
            self.ensure(s, e)?;
            return decode_list(&self.body()[s..e], self.n, self.m0, out).map_err(|what| {
                Error::corruption(&self.path, format!("level-0 list of node {node}: {what}"))
            });
        }
        let lv = self.node_level(node)?;
        if level > lv {
            out.clear();
            return Ok(());
        }
        let oo = self.parts.upper_offsets + node as usize * 4;
        self.ensure(oo, oo + 4)?;
        let word = u32_at(self.body(), oo) as usize;
        let off = word
            .checked_add((level - 1) * (1 + self.m))
            .and_then(|w| w.checked_mul(4))
            .and_then(|b| b.checked_add(self.parts.upper))
            .filter(|&o| o + 4 * (1 + self.m) <= self.parts.end)
            .ok_or_else(|| {
                Error::corruption(
                    &self.path,
                    format!("upper links of node {node} lie outside the table"),
                )
            })?;
        self.read_upper(off, self.m, out)
    }
}

/// A breadth-first order of the nodes over level 0 from the entry point (unreached nodes
/// last, in their old order): `order[new] = old`. Writing a segment in this order puts
/// neighbours near each other on disk and in memory, so a search touches fewer pages.
pub(crate) fn bfs_order(g: &MemGraph) -> Vec<u32> {
    let n = g.nodes();
    let mut seen = vec![false; n];
    let mut order = Vec::with_capacity(n);
    if let Some((entry, _)) = g.entry() {
        seen[entry as usize] = true;
        order.push(entry);
        let mut buf = Vec::new();
        let mut i = 0;
        while i < order.len() {
            let _ = g.neighbors(order[i], 0, &mut buf);
            for &nb in &buf {
                if (nb as usize) < n && !seen[nb as usize] {
                    seen[nb as usize] = true;
                    order.push(nb);
                }
            }
            i += 1;
        }
    }
    order.extend((0..n as u32).filter(|&x| !seen[x as usize]));
    order
}
