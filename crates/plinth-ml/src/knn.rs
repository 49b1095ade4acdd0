//! Item-item cosine kNN: similarities between item columns, keeping the top
//! N neighbours per item; a user's score for item j is Σ w_ui · sim(i, j).
//!
//! Cosine is symmetric, so each pair of items is scored once, from its lower
//! item: item i sums, over its users, the items that come after i in each
//! user's (sorted) row, and offers each score to both items' neighbour lists.
//! The lists are shared between threads; a list's floor (the score an offer
//! must reach) is read without its lock, so most offers never take it. What a
//! list keeps is the best N under a total order (score, then the lower id), so
//! the result does not depend on the threads' timing, and each score is the
//! same sum, in the same order of users, as scoring the pair from either side.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, PoisonError};

use rayon::prelude::*;

use crate::csr::Csr;
use crate::topk::TopK;
use crate::{Error, Result};

/// Row i holds item i's neighbours and their cosine similarity.
pub fn train(user_items: &Csr, neighbours: usize) -> Result<Csr> {
    if neighbours == 0 {
        return Err(Error::Param("neighbors must be at least 1".into()));
    }
    let (item_users, at) = user_items.transpose_with_origins();
    let n_items = item_users.n_rows;
    let norms: Vec<f32> = (0..n_items).map(|i| item_users.row(i).1.iter().map(|v| v * v).sum::<f32>().sqrt()).collect();
    let lists: Vec<Mutex<TopK>> = (0..n_items).map(|_| Mutex::new(TopK::new(neighbours))).collect();
    let floors: Vec<AtomicU32> = (0..n_items).map(|_| AtomicU32::new(f32::NEG_INFINITY.to_bits())).collect();
    let offer = |to: usize, id: u32, score: f32| {
        let mut list = lists[to].lock().unwrap_or_else(PoisonError::into_inner);
        list.offer(id, score);
        // Under the lock: a list's floor only rises, so a stale read is lower
        // than the truth and merely takes the lock for nothing.
        floors[to].store(list.floor().to_bits(), Ordering::Relaxed);
    };
    // Highest items first: an item's list already holds its best later items
    // when lower items offer to it, so its floor turns most of them away
    // (ascending order fills the lists from their worst end and locks more).
    (0..n_items).into_par_iter().rev().for_each_init(
        // Per task: the sums, which item last touched each sum, the touched ones.
        || (vec![0f32; n_items], vec![u32::MAX; n_items], Vec::<u32>::new()),
        |(acc, owner, touched), i| {
            let (first, last) = (item_users.indptr[i], item_users.indptr[i + 1]);
            let (users, wi) = item_users.row(i);
            for ((&u, &w), &origin) in users.iter().zip(wi).zip(&at[first..last]) {
                // The user's items after i: from just past (u, i) to the row's end.
                let (after, end) = (origin + 1, user_items.indptr[u as usize + 1]);
                for (&j, &v) in user_items.indices[after..end].iter().zip(&user_items.data[after..end]) {
                    let j = j as usize;
                    if owner[j] != i as u32 {
                        owner[j] = i as u32;
                        acc[j] = 0.0;
                        touched.push(j as u32);
                    }
                    acc[j] += w * v;
                }
            }
            let ni = norms[i];
            let mut own = TopK::new(neighbours);
            for &j in touched.iter() {
                let d = ni * norms[j as usize];
                let s = if d > 0.0 { acc[j as usize] / d } else { 0.0 };
                own.offer(j, s);
                if s >= f32::from_bits(floors[j as usize].load(Ordering::Relaxed)) {
                    offer(j as usize, i as u32, s);
                }
            }
            touched.clear();
            for (j, s) in own.into_sorted() {
                offer(i, j, s);
            }
        },
    );
    let triples = lists
        .into_iter()
        .enumerate()
        .flat_map(|(i, list)| {
            let list = list.into_inner().unwrap_or_else(PoisonError::into_inner);
            list.into_sorted().into_iter().map(move |(j, s)| (i as u32, j, s))
        })
        .collect();
    Ok(Csr::from_triples(n_items, n_items, triples))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_neighbours() {
        // Items 0 and 1 are liked by the same users; item 2 by others.
        let m = Csr::from_triples(
            4,
            3,
            vec![(0, 0, 1.0), (0, 1, 1.0), (1, 0, 1.0), (1, 1, 1.0), (2, 2, 1.0), (3, 2, 1.0), (3, 0, 1.0)],
        );
        let sim = train(&m, 1).unwrap();
        assert_eq!(sim.row(1).0, &[0]);
        let (cols, vals) = sim.row(0);
        assert_eq!(cols, &[1]);
        let expected = 2.0 / (3f32.sqrt() * 2f32.sqrt());
        assert!((vals[0] - expected).abs() < 1e-6);
        assert!(train(&m, 0).is_err());
    }

    /// Every pair scored from both sides with dense columns, the best N kept
    /// by (score, lower id): what the symmetric, shared-list version must give.
    fn brute_force(m: &Csr, n: usize) -> Vec<Vec<(u32, f32)>> {
        let t = m.transpose();
        let dense: Vec<Vec<f32>> = (0..t.n_rows)
            .map(|i| {
                let mut col = vec![0f32; m.n_rows];
                for (&u, &w) in t.row(i).0.iter().zip(t.row(i).1) {
                    col[u as usize] = w;
                }
                col
            })
            .collect();
        let norm = |i: usize| dense[i].iter().map(|v| v * v).sum::<f32>().sqrt();
        (0..t.n_rows)
            .map(|i| {
                let scored = (0..t.n_rows).filter(|&j| j != i).filter_map(|j| {
                    let shared = (0..m.n_rows).any(|u| dense[i][u] != 0.0 && dense[j][u] != 0.0);
                    let dot: f32 = (0..m.n_rows).map(|u| dense[i][u] * dense[j][u]).sum();
                    let d = norm(i) * norm(j);
                    shared.then_some((j as u32, if d > 0.0 { dot / d } else { 0.0 }))
                });
                crate::topk::top_k(scored, n, |_| false)
            })
            .collect()
    }

    #[test]
    fn equals_scoring_every_pair_from_both_sides() {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        // Negative weights (BM25 can give them) and ties (equal weights) included.
        let mut triples = Vec::new();
        for u in 0..60u32 {
            for i in 0..40u32 {
                if rng.random::<f32>() < 0.2 {
                    let w = [1.0, 2.0, -0.5, 0.25][rng.random_range(0..4)];
                    triples.push((u, i, w));
                }
            }
        }
        let m = Csr::from_triples(60, 40, triples);
        for n in [1, 3, 50] {
            let want = brute_force(&m, n);
            for threads in [1, 3] {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                let sim = pool.install(|| train(&m, n)).unwrap();
                for (i, best) in want.iter().enumerate() {
                    let (cols, vals) = sim.row(i);
                    let mut got: Vec<(u32, f32)> = cols.iter().copied().zip(vals.iter().copied()).collect();
                    got.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                    assert_eq!(got.len(), best.len(), "item {i}, n {n}");
                    for (g, b) in got.iter().zip(best) {
                        assert_eq!(g.0, b.0, "item {i}, n {n}: {got:?} vs {best:?}");
                        assert!((g.1 - b.1).abs() < 1e-5, "item {i}: {got:?} vs {best:?}");
                    }
                }
            }
        }
    }
}
