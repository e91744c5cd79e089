//! A bounded heap that keeps the k best candidates.
//!
//! "Better" means a higher score; equal scores are ordered by lower id, so results are
//! deterministic and independent of how records are spread over segments.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// Where a candidate lives: its source (numbered as in the search's view) and its row there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Loc {
    pub source: u32,
    pub row: u32,
}

/// One scored candidate.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Candidate {
    pub score: f32,
    pub id: u64,
    pub loc: Loc,
}

impl Candidate {
    /// `Less` when `self` ranks before `other`.
    fn rank_cmp(&self, other: &Self) -> Ordering {
        other
            .score
            .total_cmp(&self.score)
            .then(self.id.cmp(&other.id))
    }
}

/// Heap order: the worst candidate on top.
struct Worst(Candidate);

impl PartialEq for Worst {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Worst {}
impl PartialOrd for Worst {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Worst {
    fn cmp(&self, o: &Self) -> Ordering {
        self.0.rank_cmp(&o.0)
    }
}

/// Keeps the `k` best candidates pushed into it.
pub(crate) struct TopK {
    k: usize,
    heap: BinaryHeap<Worst>,
}

impl TopK {
    pub(crate) fn new(k: usize) -> Self {
        TopK {
            k,
            heap: BinaryHeap::with_capacity(k.min(4096) + 1),
        }
    }

    /// The score a candidate must beat (or tie with a lower id) once the heap is full.
    #[inline]
    pub(crate) fn threshold(&self) -> f32 {
        if self.heap.len() < self.k {
            f32::NEG_INFINITY
        } else {
            self.heap.peek().map_or(f32::NEG_INFINITY, |w| w.0.score)
        }
    }

    #[inline]
    pub(crate) fn push(&mut self, c: Candidate) {
        if self.k == 0 {
            return;
        }
        if self.heap.len() < self.k {
            self.heap.push(Worst(c));
        } else if let Some(mut top) = self.heap.peek_mut()
            && c.rank_cmp(&top.0) == Ordering::Less
        {
            *top = Worst(c);
        }
    }

    /// Candidates held.
    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }

    pub(crate) fn merge(mut self, other: TopK) -> TopK {
        for w in other.heap {
            self.push(w.0);
        }
        self
    }

    /// The candidates, best first.
    pub(crate) fn into_sorted(self) -> Vec<Candidate> {
        let mut v: Vec<Candidate> = self.heap.into_iter().map(|w| w.0).collect();
        v.sort_by(Candidate::rank_cmp);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn keeps_the_best(scores in prop::collection::vec((-4i32..4, 0u64..50), 0..200), k in 0usize..20) {
            let mut t = TopK::new(k);
            for (s, id) in &scores {
                t.push(Candidate { score: *s as f32, id: *id, loc: Loc { source: 0, row: 0 } });
            }
            let got: Vec<(i32, u64)> = t.into_sorted().iter().map(|c| (c.score as i32, c.id)).collect();
            let mut want = scores.clone();
            want.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
            want.truncate(k);
            prop_assert_eq!(got, want);
        }
    }
}
