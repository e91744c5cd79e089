//! HNSW: hierarchical navigable small-world graphs (Malkov & Yashunin).
//!
//! ```text
//!  build path                                   load path
//!  ──────────                                   ─────────
//!  memtable upsert ─▶ MemGraph::insert          seg-<id>/graph ─mmap─▶ MappedGraph
//!   (rayon over the batch, per-node locks)        (header checked on open, blocks on
//!  seal ─▶ layout::write(MemGraph) ─▶ graph        first touch, ids checked on use)
//!                     both implement search::Links; search.rs runs on either
//! ```
//!
//! | file | role |
//! |---|---|
//! | `search.rs` | best-first level search, greedy descent, the `Links` trait |
//! | `graph.rs` | the in-memory graph (slots in a fixed-capacity arena), concurrent insert, neighbour-selection heuristic, repair before a seal |
//! | `layout.rs` | the `graph` file: breadth-first order, compressed level-0 links, the mapped graph |
//! | `check.rs` | the invariant checker (tests and `verify`) |
//! | `visited.rs` | per-thread generation-stamped visited set |
//! | `tests.rs` | recall and invariant tests of build and search |
//!
//! Parameters: `m` links per node on upper levels, `2m` on level 0, `ef_construction`
//! candidates while building, level multiplier `1 / ln(m)`, each node's level drawn from a
//! hash (SplitMix64) of the seed and the node: levels never depend on thread timing, and a
//! single-threaded build is reproducible.

pub(crate) mod check;
pub(crate) mod graph;
pub(crate) mod layout;
pub(crate) mod search;
pub(crate) mod visited;

use crate::vector::Vectors;

/// Build parameters of a graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HnswParams {
    pub m: usize,
    pub ef_construction: usize,
    pub seed: u64,
}

impl HnswParams {
    /// The parameters of a collection's graphs.
    pub(crate) fn of(config: &crate::model::config::CollectionConfig) -> Self {
        HnswParams {
            m: config.m,
            ef_construction: config.ef_construction,
            seed: 0x5EED_CA12,
        }
    }

    /// Level-0 degree.
    pub(crate) fn m0(&self) -> usize {
        2 * self.m
    }

    /// Level multiplier.
    pub(crate) fn ml(&self) -> f64 {
        1.0 / (self.m as f64).ln()
    }
}

/// Builds a graph over nodes `0..n` of `vecs` in one go, on rayon's pool.
pub(crate) fn build_graph<V: Vectors + Sync>(
    params: HnswParams,
    vecs: &V,
    n: usize,
    metric: crate::vector::distance::Metric,
) -> crate::error::Result<graph::MemGraph> {
    build_graph_until(params, vecs, n, metric, &|| false)
}

/// [`build_graph`] that gives up with [`Error::Cancelled`](crate::Error::Cancelled) as soon
/// as `cancel` returns true (checked before each insert).
pub(crate) fn build_graph_until<V: Vectors + Sync>(
    params: HnswParams,
    vecs: &V,
    n: usize,
    metric: crate::vector::distance::Metric,
    cancel: &(dyn Fn() -> bool + Sync),
) -> crate::error::Result<graph::MemGraph> {
    use rayon::prelude::*;
    let mut g = graph::MemGraph::new(params);
    g.reserve(n);
    (0..n as u32).into_par_iter().try_for_each(|i| {
        if cancel() {
            return Err(crate::error::Error::Cancelled);
        }
        g.insert(i, vecs, metric)
    })?;
    g.repair(vecs, metric, |_| true)?;
    Ok(g)
}

/// Default `ef` for a search asking for `k` hits.
pub(crate) fn default_ef(k: usize) -> usize {
    k.max(64)
}

#[cfg(test)]
mod tests;
