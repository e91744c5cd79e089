//! The in-memory graph: built incrementally (the memtable) or in one go (bulk), with
//! concurrent inserts.
//!
//! Links are `AtomicU32`s: inserts lock the node whose list they rewrite (one small mutex per
//! node), while searches — concurrent inserts' searches included — read lists without locks.
//! Relaxed loads compile to plain loads; a search that races with a rewrite may see a mix of
//! the old and new list, every entry of which is a valid node, which is harmless for a
//! best-first search. Every node's vector is stored before the node is inserted.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

use parking_lot::Mutex;

use super::HnswParams;
use super::search::{Links, Scored, greedy_by, search_level_by};
use super::visited::with_visited;
use crate::error::Result;
use crate::vector::distance::Metric;
use crate::vector::quant::QuantScorer;
use crate::vector::{Exact, Score, Vectors};

/// Highest level a node can get.
pub(crate) const MAX_LEVEL: usize = 15;

/// Packed entry point: bit 63 set = present; bits 32..40 level; low 32 bits node.
const NO_ENTRY: u64 = 0;

pub(crate) struct MemGraph {
    pub params: HnswParams,
    /// Per node `1 + m0` words: count, then neighbours.
    level0: Vec<AtomicU32>,
    /// Per node, levels 1..=level, each `1 + m` words.
    upper: Vec<Box<[AtomicU32]>>,
    levels: Vec<u8>,
    locks: Vec<Mutex<()>>,
    entry: AtomicU64,
    entry_lock: Mutex<()>,
    /// Nodes a walk may meet: all reserved ones, until [`freeze`](Self::freeze) says how
    /// many were ever inserted.
    limit: AtomicUsize,
}

fn pack(node: u32, level: usize) -> u64 {
    (1 << 63) | ((level as u64) << 32) | u64::from(node)
}

fn unpack(e: u64) -> Option<(u32, usize)> {
    (e != NO_ENTRY).then_some((e as u32, ((e >> 32) & 0xff) as usize))
}

impl MemGraph {
    pub(crate) fn new(params: HnswParams) -> Self {
        MemGraph {
            params,
            level0: Vec::new(),
            upper: Vec::new(),
            levels: Vec::new(),
            locks: Vec::new(),
            entry: AtomicU64::new(NO_ENTRY),
            entry_lock: Mutex::new(()),
            limit: AtomicUsize::new(usize::MAX),
        }
    }

    /// The level of a new node, drawn from a hash of (seed, node): reproducible, and the same
    /// whichever thread inserts the node.
    fn draw_level(&self, node: u32) -> usize {
        let x = splitmix64(self.params.seed ^ (u64::from(node) << 1 | 1));
        // 53 random bits → [0, 1), then (0, 1].
        let u = 1.0 - (x >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
        ((-u.ln() * self.params.ml()) as usize).min(MAX_LEVEL)
    }

    /// A graph with room for nodes `0..n`, their levels drawn. Its link lists are allocated
    /// zeroed, so the pages of nodes never inserted cost no memory.
    pub(crate) fn with_capacity(params: HnswParams, n: usize) -> Self {
        let mut g = MemGraph::new(params);
        g.level0 = crate::io::mmap::zeroed_atomics(n * (1 + params.m0())).into_vec();
        g.reserve(n);
        g
    }

    /// Makes room for nodes up to `n` (exclusive), drawing their levels.
    pub(crate) fn reserve(&mut self, n: usize) {
        let old = self.levels.len();
        if n <= old {
            return;
        }
        let w0 = 1 + self.params.m0();
        let wu = 1 + self.params.m;
        if self.level0.len() < n * w0 {
            let cap = self.level0.capacity();
            self.level0.resize_with(n * w0, || AtomicU32::new(0));
            if self.level0.capacity() != cap {
                crate::io::mmap::advise_huge_pages(&self.level0);
            }
        }
        for node in old..n {
            let level = self.draw_level(node as u32);
            self.levels.push(level as u8);
            self.upper
                .push((0..level * wu).map(|_| AtomicU32::new(0)).collect());
            self.locks.push(Mutex::new(()));
        }
    }

    /// Says that only nodes `0..n` were, or will ever be, inserted: the graph counts `n` nodes
    /// from now on (walks size their visited sets by it; a segment writes that many).
    pub(crate) fn freeze(&self, n: usize) {
        self.limit.store(n, Ordering::Release);
    }

    pub(crate) fn level_of(&self, node: u32) -> usize {
        self.levels[node as usize] as usize
    }

    #[inline]
    fn list(&self, node: u32, level: usize) -> &[AtomicU32] {
        if level == 0 {
            let w = 1 + self.params.m0();
            &self.level0[node as usize * w..(node as usize + 1) * w]
        } else {
            let w = 1 + self.params.m;
            &self.upper[node as usize][(level - 1) * w..level * w]
        }
    }

    fn set_list(&self, node: u32, level: usize, nodes: &[u32]) {
        debug_assert!(!nodes.contains(&node), "self loop at {node} level {level}");
        let l = self.list(node, level);
        for (slot, &n) in l[1..].iter().zip(nodes) {
            slot.store(n, Ordering::Relaxed);
        }
        l[0].store(nodes.len() as u32, Ordering::Release);
    }

    /// Inserts `node` (reserved, vector stored). Safe to call from several threads at once.
    pub(crate) fn insert<V: Vectors>(&self, node: u32, vecs: &V, metric: Metric) -> Result<()> {
        let level = self.level_of(node);
        let q = vecs.vector(node)?;
        // A node above the current top holds the entry lock for its whole insert, so that two
        // such nodes do not race to become the entry point.
        let mut top_guard = None;
        let mut entry = unpack(self.entry.load(Ordering::Acquire));
        if entry.is_none_or(|(_, top)| level > top) {
            top_guard = Some(self.entry_lock.lock());
            entry = unpack(self.entry.load(Ordering::Acquire));
        }
        let Some((ep, top)) = entry else {
            self.entry.store(pack(node, level), Ordering::Release);
            return Ok(());
        };

        // Walk over the int8 copies when the store keeps them (cosine and dot): the candidates
        // found are then re-scored exactly, so the heuristic below sees f32 scores.
        if metric != Metric::L2
            && let Some(qz) = vecs.quantized()
            && qz.is_int8()
        {
            let sc = QuantScorer::new(qz, metric, q);
            return self.link_in(node, level, ep, top, top_guard, &sc, vecs, metric);
        }
        let sc = Exact { vecs, metric, q };
        self.link_in(node, level, ep, top, top_guard, &sc, vecs, metric)
    }

    /// The search-and-link part of [`insert`](Self::insert), walking with `sc`.
    #[allow(clippy::too_many_arguments)]
    fn link_in<V: Vectors, S: Score>(
        &self,
        node: u32,
        level: usize,
        ep: u32,
        top: usize,
        top_guard: Option<parking_lot::MutexGuard<'_, ()>>,
        sc: &S,
        vecs: &V,
        metric: Metric,
    ) -> Result<()> {
        let q = vecs.vector(node)?;
        let mut buf = Vec::with_capacity(64);
        let mut cur = Scored {
            score: sc.score(ep)?,
            node: ep,
        };
        for l in (level + 1..=top).rev() {
            cur = greedy_by(self, sc, cur, l, &mut buf)?;
        }
        let mut eps = vec![cur];
        for l in (0..=level.min(top)).rev() {
            let mut found = with_visited(self.nodes(), |v| {
                // A concurrent insert that found this node through its upper levels may have
                // linked it on this level already: never take the node as its own neighbour.
                search_level_by(self, sc, &eps, self.params.ef_construction, l, v, |x| {
                    x != node
                })
            })?;
            if !S::EXACT {
                for f in found.iter_mut() {
                    f.score = metric.score(q, vecs.vector(f.node)?);
                }
                found.sort_unstable_by(|a, b| b.cmp(a));
            }
            let max = if l == 0 {
                self.params.m0()
            } else {
                self.params.m
            };
            let chosen = select(&found, self.params.m, vecs, metric)?;
            self.set_own_list(node, l, &chosen, max, vecs, metric)?;
            for &nb in &chosen {
                self.link(nb, node, l, max, vecs, metric)?;
            }
            eps = found;
        }
        if let Some(_g) = top_guard
            && level > top
        {
            self.entry.store(pack(node, level), Ordering::Release);
        }
        Ok(())
    }

    /// Sets the list of the node being inserted on `level` to `chosen`, keeping the links that
    /// concurrent inserts added meanwhile: one that found `node` through its upper levels may
    /// have linked itself here already, and overwriting that link could leave it with no
    /// incoming link at all (never found by any walk). Over `max`, the heuristic picks.
    fn set_own_list<V: Vectors>(
        &self,
        node: u32,
        level: usize,
        chosen: &[u32],
        max: usize,
        vecs: &V,
        metric: Metric,
    ) -> Result<()> {
        let _g = self.locks[node as usize].lock();
        let list = self.list(node, level);
        let count = list[0].load(Ordering::Relaxed) as usize;
        if count == 0 {
            self.set_list(node, level, chosen);
            return Ok(());
        }
        let mut all = chosen.to_vec();
        for a in &list[1..=count] {
            let n = a.load(Ordering::Relaxed);
            if !all.contains(&n) {
                all.push(n);
            }
        }
        if all.len() <= max {
            self.set_list(node, level, &all);
            return Ok(());
        }
        let base = vecs.vector(node)?;
        let mut cands = Vec::with_capacity(all.len());
        for n in all {
            cands.push(Scored {
                score: metric.score(base, vecs.vector(n)?),
                node: n,
            });
        }
        cands.sort_unstable_by(|a, b| b.cmp(a));
        let kept = select(&cands, max, vecs, metric)?;
        self.set_list(node, level, &kept);
        Ok(())
    }

    /// Adds `node` to the list of `nb` on `level`, pruning with the heuristic when full.
    fn link<V: Vectors>(
        &self,
        nb: u32,
        node: u32,
        level: usize,
        max: usize,
        vecs: &V,
        metric: Metric,
    ) -> Result<()> {
        debug_assert_ne!(nb, node);
        let _g = self.locks[nb as usize].lock();
        let list = self.list(nb, level);
        let count = list[0].load(Ordering::Relaxed) as usize;
        if list[1..=count]
            .iter()
            .any(|a| a.load(Ordering::Relaxed) == node)
        {
            return Ok(());
        }
        if count < max {
            list[1 + count].store(node, Ordering::Relaxed);
            list[0].store(count as u32 + 1, Ordering::Release);
            return Ok(());
        }
        let base = vecs.vector(nb)?;
        let mut cands = Vec::with_capacity(count + 1);
        for a in &list[1..=count] {
            let n = a.load(Ordering::Relaxed);
            cands.push(Scored {
                score: metric.score(base, vecs.vector(n)?),
                node: n,
            });
        }
        cands.push(Scored {
            score: metric.score(base, vecs.vector(node)?),
            node,
        });
        cands.sort_unstable_by(|a, b| b.cmp(a));
        let chosen = select(&cands, max, vecs, metric)?;
        self.set_list(nb, level, &chosen);
        Ok(())
    }

    /// Reconnects live nodes that a walk from the entry point cannot reach. Pruning by the
    /// heuristic can leave a node with no incoming level-0 link (a handful in 10⁴); such a
    /// node could never be found. Each lost node `u` gets a link from its nearest reachable
    /// node `r`; if `r`'s list is full, the link it gives up (to `w`) moves to `u`'s list, so
    /// `w` stays reachable through `r → u → w` and the reachable set only grows. Returns the
    /// number of nodes reconnected.
    pub(crate) fn repair<V: Vectors>(
        &self,
        vecs: &V,
        metric: Metric,
        live: impl Fn(u32) -> bool,
    ) -> Result<usize> {
        let mut added = 0;
        for _round in 0..32 {
            let Some((entry, _)) = self.entry() else {
                return Ok(added);
            };
            let lost = super::check::unreachable(self, entry, &live)?;
            if lost.is_empty() {
                return Ok(added);
            }

            for &u in &lost {
                let q = vecs.vector(u)?;
                let ef = self.params.ef_construction;
                // A walk over level 0 from the entry: every node it finds is reachable the way the
                // invariant demands (a search descending the upper levels could land on a node
                // that level 0 alone does not reach, and linking from it would not help).
                let start = super::search::Scored {
                    score: metric.score(q, vecs.vector(entry)?),
                    node: entry,
                };
                let found = with_visited(self.nodes(), |v| {
                    super::search::search_level(self, vecs, metric, q, &[start], ef, 0, v, |x| {
                        x != u
                    })
                })?;
                // The nearest reachable node with room takes the link, so nothing is evicted:
                // with many identical vectors, evictions could chase each other round after
                // round. Only when every candidate is full does the nearest give up a link.
                let Some(nearest) = found.first() else {
                    continue;
                };
                let spare = found.iter().find(|r| {
                    (self.list(r.node, 0)[0].load(Ordering::Acquire) as usize) < self.params.m0()
                });
                let r = spare.unwrap_or(nearest);
                if let Some(w) = self.force_link(r.node, u, vecs, metric)?
                    && w != u
                {
                    self.force_link(u, w, vecs, metric)?;
                }
                added += 1;
            }
        }
        Ok(added)
    }

    /// Adds `node` to the level-0 list of `nb`; when the list is full, replaces its farthest
    /// link and returns the node it no longer links.
    fn force_link<V: Vectors>(
        &self,
        nb: u32,
        node: u32,
        vecs: &V,
        metric: Metric,
    ) -> Result<Option<u32>> {
        debug_assert_ne!(nb, node);
        let _g = self.locks[nb as usize].lock();
        let list = self.list(nb, 0);
        let count = list[0].load(Ordering::Relaxed) as usize;
        let links: Vec<u32> = list[1..=count]
            .iter()
            .map(|a| a.load(Ordering::Relaxed))
            .collect();
        if links.contains(&node) {
            return Ok(None);
        }
        if count < self.params.m0() {
            list[1 + count].store(node, Ordering::Relaxed);
            list[0].store(count as u32 + 1, Ordering::Release);
            return Ok(None);
        }
        let base = vecs.vector(nb)?;
        let mut worst = (f32::INFINITY, 0usize);
        for (i, &x) in links.iter().enumerate() {
            let s = metric.score(base, vecs.vector(x)?);
            if s < worst.0 {
                worst = (s, i);
            }
        }
        list[1 + worst.1].store(node, Ordering::Release);
        Ok(Some(links[worst.1]))
    }

    /// Words of the level-0 list of `node`: count then neighbours (for serialization).
    pub(crate) fn level0_words(&self, node: u32) -> impl Iterator<Item = u32> + '_ {
        self.list(node, 0).iter().map(|a| a.load(Ordering::Acquire))
    }

    /// Words of the upper lists of `node`, levels 1..=level.
    pub(crate) fn upper_words(&self, node: u32) -> impl Iterator<Item = u32> + '_ {
        self.upper[node as usize]
            .iter()
            .map(|a| a.load(Ordering::Acquire))
    }
}

impl Links for MemGraph {
    fn nodes(&self) -> usize {
        self.levels.len().min(self.limit.load(Ordering::Acquire))
    }

    fn entry(&self) -> Option<(u32, usize)> {
        unpack(self.entry.load(Ordering::Acquire))
    }

    fn level(&self, node: u32) -> Result<usize> {
        Ok(self.level_of(node))
    }

    #[inline]
    fn prefetch(&self, node: u32) {
        let w = 1 + self.params.m0();
        let s = node as usize * w;
        if let Some(l) = self.level0.get(s..s + w) {
            // AtomicU32 has the layout of u32; only the address matters for a prefetch.
            crate::io::mmap::prefetch_atomic(l);
        }
    }

    #[inline]
    fn neighbors(&self, node: u32, level: usize, out: &mut Vec<u32>) -> Result<()> {
        out.clear();
        let l = self.list(node, level);
        let count = (l[0].load(Ordering::Acquire) as usize).min(l.len() - 1);
        // Acquire: a link replaced in place (no count change) was stored with Release after the
        // new node's vector was published, so its vector is visible here too.
        out.extend(l[1..=count].iter().map(|a| a.load(Ordering::Acquire)));
        Ok(())
    }
}

/// The neighbour-selection heuristic (Malkov & Yashunin, alg. 4): walk candidates from the
/// best, keep one only if it is closer to the base than to every neighbour kept so far. This
/// keeps links pointing in diverse directions, which is what makes the graph navigable.
/// `cands` must be sorted best first.
pub(crate) fn select<V: Vectors>(
    cands: &[Scored],
    m: usize,
    vecs: &V,
    metric: Metric,
) -> Result<Vec<u32>> {
    if cands.len() <= m {
        return Ok(cands.iter().map(|c| c.node).collect());
    }
    let mut kept: Vec<(u32, &[f32])> = Vec::with_capacity(m);
    for c in cands {
        if kept.len() >= m {
            break;
        }
        let v = vecs.vector(c.node)?;
        let diverse = kept.iter().all(|&(_, kv)| metric.score(v, kv) <= c.score);
        if diverse {
            kept.push((c.node, v));
        }
    }
    Ok(kept.into_iter().map(|(n, _)| n).collect())
}

/// SplitMix64 (Steele, Lea & Flood): one well-mixed 64-bit value per input.
fn splitmix64(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
