//! The graph invariant checker (tests and `cairn verify`).
//!
//! A graph is sound when: every list is within its degree bound and names only nodes of the
//! graph, other than the node itself and without repeats; the entry point is on the top level
//! and no node is above it; and every live node can be reached from the entry point on level
//! 0 (walking through dead nodes is allowed: they stay in the graph for that reason).

use super::search::Links;
use crate::error::Result;

/// What the checker found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct GraphReport {
    pub nodes: usize,
    pub edges: usize,
    pub max_level: usize,
    /// Problems found; empty when the graph is sound.
    pub problems: Vec<String>,
    /// Live nodes not reachable from the entry point.
    pub unreachable: Vec<u32>,
}

impl GraphReport {
    pub(crate) fn is_sound(&self) -> bool {
        self.problems.is_empty() && self.unreachable.is_empty()
    }
}

/// Checks `g`; `live(node)` tells which nodes must be reachable.
pub(crate) fn check<L: Links>(g: &L, m: usize, live: impl Fn(u32) -> bool) -> Result<GraphReport> {
    let n = g.nodes();
    let mut r = GraphReport {
        nodes: n,
        ..Default::default()
    };
    let Some((entry, top)) = g.entry() else {
        if (0..n as u32).any(&live) {
            r.problems
                .push("graph has live nodes but no entry point".into());
        }
        return Ok(r);
    };
    r.max_level = top;
    if entry as usize >= n {
        r.problems
            .push(format!("entry point {entry} outside the graph of {n}"));
        return Ok(r);
    }
    if g.level(entry)? != top {
        r.problems
            .push(format!("entry point {entry} is not on the top level {top}"));
    }
    let mut buf = Vec::new();
    for node in 0..n as u32 {
        let level = g.level(node)?;
        if level > top {
            r.problems
                .push(format!("node {node} at level {level} above the top {top}"));
        }
        for l in 0..=level {
            g.neighbors(node, l, &mut buf)?;
            let cap = if l == 0 { 2 * m } else { m };
            if buf.len() > cap {
                r.problems.push(format!(
                    "node {node} has {} links on level {l}, at most {cap}",
                    buf.len()
                ));
            }
            r.edges += buf.len();
            let mut seen = buf.clone();
            seen.sort_unstable();
            seen.dedup();
            if seen.len() != buf.len() {
                r.problems
                    .push(format!("node {node} links a node twice on level {l}"));
            }
            for &nb in &buf {
                if nb as usize >= n || nb == node {
                    r.problems
                        .push(format!("node {node} links {nb} on level {l}"));
                } else if g.level(nb)? < l {
                    r.problems
                        .push(format!("node {node} links {nb}, which is not on level {l}"));
                }
            }
        }
    }
    r.unreachable = unreachable(g, entry, live)?;
    Ok(r)
}

/// Live nodes that a walk over level 0 from `entry` does not reach.
pub(crate) fn unreachable<L: Links>(
    g: &L,
    entry: u32,
    live: impl Fn(u32) -> bool,
) -> Result<Vec<u32>> {
    let n = g.nodes();
    let mut seen = vec![false; n];
    let mut stack = vec![entry];
    seen[entry as usize] = true;
    let mut buf = Vec::new();
    while let Some(x) = stack.pop() {
        g.neighbors(x, 0, &mut buf)?;
        for &nb in &buf {
            if (nb as usize) < n && !seen[nb as usize] {
                seen[nb as usize] = true;
                stack.push(nb);
            }
        }
    }
    Ok((0..n as u32)
        .filter(|&x| !seen[x as usize] && live(x))
        .collect())
}
