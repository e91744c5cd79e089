//! A reusable visited set: one generation stamp per node, so clearing it is O(1).
//!
//! Each thread keeps one set and grows it to the largest graph it has searched; a search
//! bumps the generation instead of clearing the array, and only a wrap-around of the 16-bit
//! generation clears it (every 65,535 searches).

use std::cell::RefCell;

pub(crate) struct Visited {
    marks: Vec<u16>,
    generation: u16,
}

impl Visited {
    const fn new() -> Self {
        Visited {
            marks: Vec::new(),
            generation: 0,
        }
    }

    /// Starts a new search over `n` nodes.
    fn reset(&mut self, n: usize) {
        if self.marks.len() < n {
            self.marks.resize(n, 0);
        }
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            self.marks.fill(0);
            self.generation = 1;
        }
    }

    /// Marks every node of `nodes` and leaves in `out` those that were not marked yet, in
    /// order. Branch-free: whether a neighbour was visited is a coin flip to the branch
    /// predictor, and a mispredicted branch per neighbour costs more than the check.
    #[inline]
    pub(crate) fn mark_fresh(&mut self, nodes: &[u32], out: &mut Vec<u32>) {
        out.clear();
        out.resize(nodes.len(), 0);
        let g = self.generation;
        let mut len = 0;
        for &n in nodes {
            let m = &mut self.marks[n as usize];
            let fresh = usize::from(*m != g);
            *m = g;
            out[len] = n;
            len += fresh;
        }
        out.truncate(len);
    }

    /// Marks `node`; returns true when it was not marked yet in this search.
    #[inline]
    pub(crate) fn insert(&mut self, node: u32) -> bool {
        let m = &mut self.marks[node as usize];
        if *m == self.generation {
            false
        } else {
            *m = self.generation;
            true
        }
    }
}

thread_local! {
    static VISITED: RefCell<Visited> = const { RefCell::new(Visited::new()) };
}

/// Runs `f` with this thread's visited set, reset for a graph of `n` nodes. A nested call
/// (which Cairn never makes) gets a fresh set instead of panicking.
pub(crate) fn with_visited<R>(n: usize, f: impl FnOnce(&mut Visited) -> R) -> R {
    VISITED.with(|cell| match cell.try_borrow_mut() {
        Ok(mut v) => {
            v.reset(n);
            f(&mut v)
        }
        Err(_) => {
            let mut v = Visited::new();
            v.reset(n);
            f(&mut v)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generations_isolate_searches() {
        with_visited(10, |v| {
            assert!(v.insert(3));
            assert!(!v.insert(3));
        });
        with_visited(10, |v| assert!(v.insert(3)));
        with_visited(10, |v| {
            assert!(v.insert(2));
            let mut out = Vec::new();
            v.mark_fresh(&[1, 2, 3, 1, 4], &mut out);
            assert_eq!(out, vec![1, 3, 4]);
            v.mark_fresh(&[4, 5], &mut out);
            assert_eq!(out, vec![5]);
        });
        // Wrap-around clears the marks.
        for _ in 0..70_000 {
            with_visited(4, |v| {
                assert!(v.insert(1));
            });
        }
    }
}
