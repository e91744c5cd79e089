//! Graph search, shared by the in-memory graph and the mapped one.
//!
//! Scores are similarities (higher is better), as everywhere in Cairn.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use super::visited::Visited;
use crate::error::Result;
use crate::vector::distance::Metric;
use crate::vector::{Exact, Score, Vectors};

/// How many neighbours ahead of the one being scored have their vectors prefetched.
const PREFETCH_AHEAD: usize = 4;

/// A node and its score against the query.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scored {
    pub score: f32,
    pub node: u32,
}

impl PartialEq for Scored {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Scored {}
impl PartialOrd for Scored {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Scored {
    /// Greater = better: higher score, then lower node.
    fn cmp(&self, o: &Self) -> Ordering {
        self.score
            .total_cmp(&o.score)
            .then_with(|| o.node.cmp(&self.node))
    }
}

/// Read access to a graph's links.
pub(crate) trait Links {
    /// Number of nodes.
    fn nodes(&self) -> usize;
    /// Entry node and top level, `None` for an empty graph.
    fn entry(&self) -> Option<(u32, usize)>;
    /// The top level of `node`.
    fn level(&self, node: u32) -> Result<usize>;
    /// Replaces `out` with the neighbours of `node` on `level`.
    fn neighbors(&self, node: u32, level: usize, out: &mut Vec<u32>) -> Result<()>;
    /// Hint that the level-0 list of `node` will be read soon.
    #[inline]
    fn prefetch(&self, _node: u32) {}
    /// Hint that `node` may be expanded later: fetch what [`Links::prefetch`] must read
    /// before it can locate the list (a graph whose lists are found through a table).
    #[inline]
    fn prefetch_locator(&self, _node: u32) {}
}

/// Greedy descent on one upper level: moves to the best neighbour until none is better.
pub(crate) fn greedy_by<L: Links, S: Score>(
    links: &L,
    sc: &S,
    mut cur: Scored,
    level: usize,
    buf: &mut Vec<u32>,
) -> Result<Scored> {
    loop {
        let mut changed = false;
        links.neighbors(cur.node, level, buf)?;
        for &n in buf.iter() {
            let s = sc.score(n)?;
            if s > cur.score {
                cur = Scored { score: s, node: n };
                changed = true;
            }
        }
        if !changed {
            return Ok(cur);
        }
    }
}

/// Best-first search of one level from `entry` with a candidate list of `ef`. Every node is
/// explored, but only nodes for which `accept` holds enter the results (deleted rows keep the
/// graph connected without being returned). Returns up to `ef` results, best first.
#[allow(clippy::too_many_arguments)]
pub(crate) fn search_level<L: Links, V: Vectors>(
    links: &L,
    vecs: &V,
    metric: Metric,
    q: &[f32],
    entry: &[Scored],
    ef: usize,
    level: usize,
    visited: &mut Visited,
    accept: impl Fn(u32) -> bool,
) -> Result<Vec<Scored>> {
    let sc = Exact { vecs, metric, q };
    search_level_by(links, &sc, entry, ef, level, visited, accept)
}

/// [`search_level`] with any [`Score`].
pub(crate) fn search_level_by<L: Links, S: Score>(
    links: &L,
    sc: &S,
    entry: &[Scored],
    ef: usize,
    level: usize,
    visited: &mut Visited,
    accept: impl Fn(u32) -> bool,
) -> Result<Vec<Scored>> {
    let mut candidates: BinaryHeap<Scored> = BinaryHeap::with_capacity(ef * 2);
    let mut results: BinaryHeap<Reverse<Scored>> = BinaryHeap::with_capacity(ef + 1);
    for &e in entry {
        if visited.insert(e.node) {
            candidates.push(e);
            if accept(e.node) {
                results.push(Reverse(e));
                if results.len() > ef {
                    results.pop();
                }
            }
        }
    }
    let mut buf = Vec::with_capacity(64);
    let mut fresh = Vec::with_capacity(64);
    while let Some(c) = candidates.pop() {
        let worst = results.peek().map_or(f32::NEG_INFINITY, |r| r.0.score);
        if results.len() >= ef && c.score < worst {
            break;
        }
        if level == 0
            && let Some(next) = candidates.peek()
        {
            links.prefetch(next.node);
        }
        links.neighbors(c.node, level, &mut buf)?;
        // Mark the unvisited neighbours first, then score them with the vectors of the next
        // PREFETCH_AHEAD already requested: enough loads in flight to hide memory latency,
        // few enough not to stall on the CPU's line-fill buffers.
        visited.mark_fresh(&buf, &mut fresh);
        for &n in fresh.iter().take(PREFETCH_AHEAD) {
            sc.prefetch(n);
        }
        for (i, &n) in fresh.iter().enumerate() {
            if let Some(&ahead) = fresh.get(i + PREFETCH_AHEAD) {
                sc.prefetch(ahead);
            }
            let s = sc.score(n)?;
            let worst = results.peek().map_or(f32::NEG_INFINITY, |r| r.0.score);
            if results.len() < ef || s > worst {
                let sc = Scored { score: s, node: n };
                if level == 0 {
                    links.prefetch_locator(n);
                }
                candidates.push(sc);
                if accept(n) {
                    results.push(Reverse(sc));
                    if results.len() > ef {
                        results.pop();
                    }
                }
            }
        }
    }
    let mut out: Vec<Scored> = results.into_iter().map(|r| r.0).collect();
    out.sort_unstable_by(|a, b| b.cmp(a));
    Ok(out)
}

/// Full search: greedy descent through the upper levels, then `ef` search on level 0.
#[allow(clippy::too_many_arguments)]
pub(crate) fn search<L: Links, V: Vectors>(
    links: &L,
    vecs: &V,
    metric: Metric,
    q: &[f32],
    k: usize,
    ef: usize,
    visited: &mut Visited,
    accept: impl Fn(u32) -> bool,
) -> Result<Vec<Scored>> {
    search_by(links, &Exact { vecs, metric, q }, k, ef, visited, accept)
}

/// [`search`] with any [`Score`].
pub(crate) fn search_by<L: Links, S: Score>(
    links: &L,
    sc: &S,
    k: usize,
    ef: usize,
    visited: &mut Visited,
    accept: impl Fn(u32) -> bool,
) -> Result<Vec<Scored>> {
    let Some((ep, top)) = links.entry() else {
        return Ok(Vec::new());
    };
    let mut buf = Vec::with_capacity(64);
    let mut cur = Scored {
        score: sc.score(ep)?,
        node: ep,
    };
    for level in (1..=top).rev() {
        cur = greedy_by(links, sc, cur, level, &mut buf)?;
    }
    let mut found = search_level_by(links, sc, &[cur], ef.max(k), 0, visited, accept)?;
    found.truncate(k);
    Ok(found)
}
