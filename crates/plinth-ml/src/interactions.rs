//! Interaction data: external ids mapped to dense indices, and events.

use std::collections::HashMap;

use crate::csr::Csr;

/// External ids (strings) ↔ dense indices, in order of first appearance.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IdMap {
    ids: Vec<String>,
    index: HashMap<String, u32>,
}

impl IdMap {
    pub fn from_ids(ids: Vec<String>) -> IdMap {
        let index = ids.iter().enumerate().map(|(i, s)| (s.clone(), i as u32)).collect();
        IdMap { ids, index }
    }
    pub fn intern(&mut self, id: &str) -> u32 {
        if let Some(&i) = self.index.get(id) {
            return i;
        }
        let i = self.ids.len() as u32;
        self.ids.push(id.to_string());
        self.index.insert(id.to_string(), i);
        i
    }
    pub fn get(&self, id: &str) -> Option<u32> {
        self.index.get(id).copied()
    }
    pub fn id(&self, i: u32) -> &str {
        &self.ids[i as usize]
    }
    pub fn len(&self) -> usize {
        self.ids.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
    pub fn ids(&self) -> &[String] {
        &self.ids
    }
}

/// One (user, item) interaction. Duplicates are summed when aggregated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Event {
    pub user: u32,
    pub item: u32,
    pub weight: f32,
    pub time: i64,
}

/// Events with their id maps.
#[derive(Debug, Clone, Default)]
pub struct Interactions {
    pub users: IdMap,
    pub items: IdMap,
    pub events: Vec<Event>,
    /// The column read as the weight (its header name, or `column N`);
    /// `None`: every interaction weighs 1.
    pub weight_column: Option<String>,
}

/// What is done to summed interaction weights before training.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub enum WeightTransform {
    /// The weights as read.
    #[default]
    None,
    /// `ln(1 + w)`: tames raw counts (plays, clicks).
    Log1p,
    /// BM25 as `implicit.nearest_neighbours.bm25_weight` applies it to the
    /// user×item matrix: `w (K1+1) / (K1 norm_u + w) · idf_i` with
    /// `idf_i = ln(n_users) − ln(1 + users_i)` and
    /// `norm_u = (1−B) + B · rowsum_u / mean rowsum`.
    Bm25 { k1: f32, b: f32 },
}

impl WeightTransform {
    /// `none`, `log1p`, `bm25` (K1 = 100, B = 0.8, `implicit`'s defaults).
    pub fn parse(s: &str) -> crate::Result<WeightTransform> {
        match s {
            "none" => Ok(WeightTransform::None),
            "log1p" => Ok(WeightTransform::Log1p),
            "bm25" => Ok(WeightTransform::Bm25 { k1: 100.0, b: 0.8 }),
            other => {
                Err(crate::Error::Param(format!("unknown weight transform '{other}': expected none, log1p or bm25")))
            }
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            WeightTransform::None => "none",
            WeightTransform::Log1p => "log1p",
            WeightTransform::Bm25 { .. } => "bm25",
        }
    }

    /// Applies the transform to aggregated events (one per user-item pair)
    /// over `n_users` users.
    pub fn apply(&self, events: &mut [Event], n_users: usize, n_items: usize) {
        match *self {
            WeightTransform::None => {}
            WeightTransform::Log1p => {
                for e in events.iter_mut() {
                    e.weight = e.weight.max(0.0).ln_1p();
                }
            }
            WeightTransform::Bm25 { k1, b } => {
                let mut users_per_item = vec![0u32; n_items];
                let mut row_sums = vec![0f64; n_users];
                for e in events.iter() {
                    users_per_item[e.item as usize] += 1;
                    row_sums[e.user as usize] += e.weight as f64;
                }
                let mean = row_sums.iter().sum::<f64>() / n_users.max(1) as f64;
                let n = n_users.max(1) as f64;
                for e in events.iter_mut() {
                    let idf = n.ln() - (users_per_item[e.item as usize] as f64).ln_1p();
                    let norm = (1.0 - b as f64) + b as f64 * row_sums[e.user as usize] / mean.max(f64::MIN_POSITIVE);
                    let w = e.weight as f64;
                    e.weight = (w * (k1 as f64 + 1.0) / (k1 as f64 * norm + w) * idf) as f32;
                }
            }
        }
    }
}

impl Interactions {
    /// One event per (user, item): weights summed, latest time kept.
    pub fn aggregate(events: &[Event]) -> Vec<Event> {
        let mut sorted = events.to_vec();
        sorted.sort_unstable_by_key(|e| (e.user, e.item));
        let mut out: Vec<Event> = Vec::with_capacity(sorted.len());
        for e in sorted {
            match out.last_mut() {
                Some(last) if last.user == e.user && last.item == e.item => {
                    last.weight += e.weight;
                    last.time = last.time.max(e.time);
                }
                _ => out.push(e),
            }
        }
        out
    }

    /// The user×item matrix of the given events (weights summed).
    pub fn matrix(n_users: usize, n_items: usize, events: &[Event]) -> Csr {
        Csr::from_triples(n_users, n_items, events.iter().map(|e| (e.user, e.item, e.weight)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bm25_matches_implicits_formula() {
        // 3 users, 2 items; item 0 seen by all, item 1 by user 0 only.
        let mut ev = vec![
            Event { user: 0, item: 0, weight: 2.0, time: 0 },
            Event { user: 0, item: 1, weight: 4.0, time: 0 },
            Event { user: 1, item: 0, weight: 1.0, time: 0 },
            Event { user: 2, item: 0, weight: 3.0, time: 0 },
        ];
        WeightTransform::Bm25 { k1: 100.0, b: 0.8 }.apply(&mut ev, 3, 2);
        let (n, mean) = (3f64, (6.0 + 1.0 + 3.0) / 3.0);
        let idf = |users: f64| n.ln() - users.ln_1p();
        let norm = |row: f64| 0.2 + 0.8 * row / mean;
        let want = |w: f64, row: f64, users: f64| w * 101.0 / (100.0 * norm(row) + w) * idf(users);
        for (e, w) in
            ev.iter().zip([want(2.0, 6.0, 3.0), want(4.0, 6.0, 1.0), want(1.0, 1.0, 3.0), want(3.0, 3.0, 3.0)])
        {
            assert!((e.weight as f64 - w).abs() < 1e-5, "{} vs {w}", e.weight);
        }
        let mut ev = vec![Event { user: 0, item: 0, weight: 9.0, time: 0 }];
        WeightTransform::Log1p.apply(&mut ev, 1, 1);
        assert!((ev[0].weight - 10f32.ln()).abs() < 1e-6);
        assert!(WeightTransform::parse("sqrt").is_err());
    }
}
