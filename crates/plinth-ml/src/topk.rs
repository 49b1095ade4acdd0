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

/// The `k` best (id, score) pairs, best first, skipping ids for which `skip` is true.
pub fn top_k(scores: impl Iterator<Item = (u32, f32)>, k: usize, skip: impl Fn(u32) -> bool) -> Vec<(u32, f32)> {
    if k == 0 {
        return Vec::new();
    }
    let mut heap = BinaryHeap::with_capacity(k + 1);
    for (id, s) in scores {
        if s.is_nan() || skip(id) {
            continue;
        }
        if heap.len() < k {
            heap.push(Entry(s, id));
        } else if let Some(worst) = heap.peek()
            && (s > worst.0 || (s == worst.0 && id < worst.1))
        {
            heap.pop();
            heap.push(Entry(s, id));
        }
    }
    let mut out: Vec<(u32, f32)> = heap.into_iter().map(|e| (e.1, e.0)).collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    out
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
    }
}
