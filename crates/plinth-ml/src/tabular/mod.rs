//! Tabular data for the content-analytics models: reading CSV/Parquet into
//! typed columns, splitting, fitting the encoding kept with a model, and the
//! metrics each task reports. The training engines build on this.

pub mod binning;
pub mod gbdt;
pub mod lightgbm;
pub mod linear;
pub mod metrics;
pub mod model;
pub mod prepare;
pub mod split;
pub mod table;

/// Shared by the engines' tests.
#[cfg(test)]
pub(crate) mod testing {
    /// Deterministic pseudo-random numbers in [0, 1).
    pub fn uniform(n: usize, seed: u64) -> Vec<f64> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 11) as f64 / (1u64 << 53) as f64
            })
            .collect()
    }
}
