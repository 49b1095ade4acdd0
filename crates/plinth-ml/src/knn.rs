//! Item-item cosine kNN: similarities between item columns, keeping the top
//! N neighbours per item; a user's score for item j is Σ w_ui · sim(i, j).

use rayon::prelude::*;

use crate::csr::Csr;
use crate::topk::top_k;
use crate::{Error, Result};

/// Row i holds item i's neighbours and their cosine similarity.
pub fn train(user_items: &Csr, neighbours: usize) -> Result<Csr> {
    if neighbours == 0 {
        return Err(Error::Param("neighbors must be at least 1".into()));
    }
    let item_users = user_items.transpose();
    let n_items = item_users.n_rows;
    let norms: Vec<f32> = (0..n_items).map(|i| item_users.row(i).1.iter().map(|v| v * v).sum::<f32>().sqrt()).collect();
    let rows: Vec<Vec<(u32, f32)>> = (0..n_items)
        .into_par_iter()
        .map_init(
            || (vec![0f32; n_items], Vec::<u32>::new()),
            |(acc, touched), i| {
                let (users, wi) = item_users.row(i);
                for (&u, &w) in users.iter().zip(wi) {
                    let (items, wu) = user_items.row(u as usize);
                    for (&j, &v) in items.iter().zip(wu) {
                        if j as usize != i {
                            if acc[j as usize] == 0.0 {
                                touched.push(j);
                            }
                            acc[j as usize] += w * v;
                        }
                    }
                }
                let ni = norms[i];
                let scored = touched.iter().map(|&j| {
                    let d = ni * norms[j as usize];
                    (j, if d > 0.0 { acc[j as usize] / d } else { 0.0 })
                });
                let best = top_k(scored, neighbours, |_| false);
                for &j in touched.iter() {
                    acc[j as usize] = 0.0;
                }
                touched.clear();
                best
            },
        )
        .collect();
    let triples =
        rows.into_iter().enumerate().flat_map(|(i, row)| row.into_iter().map(move |(j, s)| (i as u32, j, s))).collect();
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
}
