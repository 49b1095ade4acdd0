//! The popularity baseline: items scored by how many users interacted.

use crate::csr::Csr;

pub fn train(user_items: &Csr) -> Vec<f32> {
    let mut counts = vec![0f32; user_items.n_cols];
    for &i in &user_items.indices {
        counts[i as usize] += 1.0;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_users_per_item() {
        let m = Csr::from_triples(3, 3, vec![(0, 0, 5.0), (1, 0, 1.0), (2, 1, 1.0)]);
        assert_eq!(train(&m), vec![2.0, 1.0, 0.0]);
    }
}
