//! Ranking metrics at K over users with held-out items.
//!
//! Binary relevance. For a user with test set T and ranking R (length K,
//! training items excluded): `precision_at_K` = hits / min(K, |T|) (as the
//! `implicit` library computes it, so figures compare), `recall_at_K` =
//! hits / |T|, `ndcg_at_K` = DCG / IDCG with IDCG over min(K, |T|) positions,
//! `map_at_K` = Σ precision@rank at each hit / min(K, |T|), `hit_rate_at_K` =
//! 1 if any hit, and `coverage_at_K` = distinct recommended items / catalogue.

use std::collections::HashSet;

/// Accumulates per-user metrics; `finish` averages them.
#[derive(Debug, Clone, Default)]
pub struct RankingMetrics {
    k: usize,
    users: usize,
    precision: f64,
    recall: f64,
    ndcg: f64,
    map: f64,
    hit_rate: f64,
    recommended: HashSet<u32>,
}

/// The averages, by name (`ndcg_at_10`...).
pub type MetricValues = Vec<(String, f64)>;

impl RankingMetrics {
    pub fn new(k: usize) -> Self {
        RankingMetrics { k, ..Default::default() }
    }

    /// Adds one user: `ranked` best first (at most K used), `relevant` their test items.
    pub fn add(&mut self, ranked: &[u32], relevant: &HashSet<u32>) {
        if relevant.is_empty() {
            return;
        }
        let k = self.k;
        let ranked = &ranked[..ranked.len().min(k)];
        let denom = k.min(relevant.len()) as f64;
        let (mut hits, mut dcg, mut ap) = (0usize, 0.0, 0.0);
        for (rank, item) in ranked.iter().enumerate() {
            self.recommended.insert(*item);
            if relevant.contains(item) {
                hits += 1;
                dcg += 1.0 / ((rank + 2) as f64).log2();
                ap += hits as f64 / (rank + 1) as f64;
            }
        }
        let idcg: f64 = (0..k.min(relevant.len())).map(|r| 1.0 / ((r + 2) as f64).log2()).sum();
        self.users += 1;
        self.precision += hits as f64 / denom;
        self.recall += hits as f64 / relevant.len() as f64;
        self.ndcg += if idcg > 0.0 { dcg / idcg } else { 0.0 };
        self.map += ap / denom;
        self.hit_rate += if hits > 0 { 1.0 } else { 0.0 };
    }

    pub fn users(&self) -> usize {
        self.users
    }

    pub fn finish(&self, n_items: usize) -> MetricValues {
        let n = self.users.max(1) as f64;
        let k = self.k;
        vec![
            (format!("precision_at_{k}"), self.precision / n),
            (format!("recall_at_{k}"), self.recall / n),
            (format!("ndcg_at_{k}"), self.ndcg / n),
            (format!("map_at_{k}"), self.map / n),
            (format!("hit_rate_at_{k}"), self.hit_rate / n),
            (format!("coverage_at_{k}"), self.recommended.len() as f64 / n_items.max(1) as f64),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(m: &MetricValues, name: &str) -> f64 {
        m.iter().find(|(n, _)| n == name).map(|(_, v)| *v).unwrap()
    }

    #[test]
    fn hand_computed_case() {
        // Ranking [1, 2, 3], relevant {1, 3}, K = 3.
        let mut m = RankingMetrics::new(3);
        m.add(&[1, 2, 3], &HashSet::from([1, 3]));
        let v = m.finish(10);
        assert!((value(&v, "precision_at_3") - 2.0 / 2.0).abs() < 1e-12);
        assert!((value(&v, "recall_at_3") - 1.0).abs() < 1e-12);
        let dcg = 1.0 + 1.0 / 4f64.log2();
        let idcg = 1.0 + 1.0 / 3f64.log2();
        assert!((value(&v, "ndcg_at_3") - dcg / idcg).abs() < 1e-12);
        assert!((value(&v, "map_at_3") - (1.0 + 2.0 / 3.0) / 2.0).abs() < 1e-12);
        assert_eq!(value(&v, "hit_rate_at_3"), 1.0);
        assert!((value(&v, "coverage_at_3") - 0.3).abs() < 1e-12);
    }

    #[test]
    fn averages_over_users_and_misses_count() {
        let mut m = RankingMetrics::new(2);
        m.add(&[5, 6], &HashSet::from([5]));
        m.add(&[7, 8], &HashSet::from([1, 2, 3]));
        m.add(&[7, 8], &HashSet::new()); // no test items: not evaluated
        let v = m.finish(4);
        assert_eq!(m.users(), 2);
        assert!((value(&v, "precision_at_2") - 0.5).abs() < 1e-12);
        assert!((value(&v, "hit_rate_at_2") - 0.5).abs() < 1e-12);
        assert!((value(&v, "ndcg_at_2") - 0.5).abs() < 1e-12);
        assert!((value(&v, "coverage_at_2") - 1.0).abs() < 1e-12);
    }
}
