//! Top-k selection of scores.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

#[derive(PartialEq)]
struct Entry(f32, u32);

impl Eq for Entry {}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Entry {
    // Reversed: the heap's top is the worst kept entry. Ties keep the lower id.
    fn cmp(&self, other: &Self) -> Ordering {
        other.0.total_cmp(&self.0).then(self.1.cmp(&other.1))
    }
}

/// A bounded collection of the `k` best (id, score) pairs seen so far; its
/// order is total (higher score first, then the lower id), so what it keeps
/// does not depend on the order of the offers.
pub struct TopK {
    k: usize,
    heap: BinaryHeap<Entry>,
}

impl TopK {
    /// Room for `k` is not reserved up front: `k` comes from the caller's
    /// input (`--neighbors`, a request's `k`) and may be far above what is
    /// ever offered; the heap grows with what it keeps.
    pub fn new(k: usize) -> TopK {
        TopK { k, heap: BinaryHeap::with_capacity(k.saturating_add(1).min(64)) }
    }

    /// Keeps (id, score) if it is among the `k` best so far; NaN is never kept.
    pub fn offer(&mut self, id: u32, score: f32) {
        if self.k == 0 || score.is_nan() {
            return;
        }
        if self.heap.len() < self.k {
            self.heap.push(Entry(score, id));
        } else if let Some(worst) = self.heap.peek()
            && (score > worst.0 || (score == worst.0 && id < worst.1))
        {
            self.heap.pop();
            self.heap.push(Entry(score, id));
        }
    }

    /// The lowest score an offer needs to be kept: minus infinity until `k`
    /// are kept (an offer equal to it may still be kept, on a lower id).
    pub fn floor(&self) -> f32 {
        match self.heap.peek() {
            Some(worst) if self.heap.len() == self.k => worst.0,
            _ => f32::NEG_INFINITY,
        }
    }

    /// What is kept, best first.
    pub fn into_sorted(self) -> Vec<(u32, f32)> {
        let mut out: Vec<(u32, f32)> = self.heap.into_iter().map(|e| (e.1, e.0)).collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        out
    }
}

/// The `k` best (id, score) pairs, best first, skipping ids for which `skip` is true.
pub fn top_k(scores: impl Iterator<Item = (u32, f32)>, k: usize, skip: impl Fn(u32) -> bool) -> Vec<(u32, f32)> {
    let mut best = TopK::new(k);
    for (id, s) in scores {
        if !skip(id) {
            best.offer(id, s);
        }
    }
    best.into_sorted()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_best_first_with_stable_ties() {
        let scores = [(0u32, 1.0f32), (1, 5.0), (2, 3.0), (3, 5.0), (4, 0.5)];
        assert_eq!(top_k(scores.into_iter(), 3, |_| false), vec![(1, 5.0), (3, 5.0), (2, 3.0)]);
        assert_eq!(top_k(scores.into_iter(), 2, |id| id == 1), vec![(3, 5.0), (2, 3.0)]);
        assert!(top_k(scores.into_iter(), 0, |_| false).is_empty());
        // A k far above what is offered keeps everything, without reserving room for k.
        assert_eq!(top_k(scores.into_iter(), usize::MAX, |_| false).len(), scores.len());
    }

    #[test]
    fn keeps_the_same_best_whatever_the_order() {
        let scores = [(0u32, 1.0f32), (1, 5.0), (2, 3.0), (3, 5.0), (4, 0.5), (5, 3.0), (6, f32::NAN)];
        let mut forward = TopK::new(3);
        let mut backward = TopK::new(3);
        assert_eq!(forward.floor(), f32::NEG_INFINITY);
        for &(id, s) in &scores {
            forward.offer(id, s);
        }
        for &(id, s) in scores.iter().rev() {
            backward.offer(id, s);
        }
        assert_eq!(forward.floor(), 3.0);
        let want = vec![(1, 5.0), (3, 5.0), (2, 3.0)];
        assert_eq!(forward.into_sorted(), want);
        assert_eq!(backward.into_sorted(), want);
    }
}
