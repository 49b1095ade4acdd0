//! Feature binning for histogram GBDT: each feature's values map to at most
//! 255 bins by quantile upper bounds (bin 0 is "missing"), so a split is a
//! bin boundary and a histogram has at most 256 cells per feature.

use serde::{Deserialize, Serialize};

/// Bins of value: 1..=MAX_VALUE_BINS; 0 is missing.
pub const MAX_VALUE_BINS: usize = 255;
/// Rows looked at to place the bin bounds.
const SAMPLE: usize = 200_000;

/// One feature's bounds: bin `b` (1-based) holds values `<= upper[b - 1]`
/// and above the previous bound; the last bound is +inf.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureBins {
    pub upper: Vec<f64>,
}

impl FeatureBins {
    /// Bounds from a column's values (NaN is missing).
    pub fn fit(values: &[f64], max_bins: usize) -> FeatureBins {
        let max_bins = max_bins.clamp(2, MAX_VALUE_BINS);
        let step = (values.len() / SAMPLE).max(1);
        let mut v: Vec<f64> = values.iter().step_by(step).copied().filter(|x| !x.is_nan()).collect();
        v.sort_by(f64::total_cmp);
        let mut distinct: Vec<(f64, usize)> = Vec::new();
        for x in v {
            match distinct.last_mut() {
                Some((last, n)) if *last == x => *n += 1,
                _ => distinct.push((x, 1)),
            }
        }
        let mut upper = Vec::new();
        if distinct.len() <= max_bins {
            // A bin per value, bounded halfway to the next.
            for w in distinct.windows(2) {
                upper.push((w[0].0 + w[1].0) / 2.0);
            }
        } else {
            // Quantile bounds over the sample, never splitting a value.
            let total: usize = distinct.iter().map(|d| d.1).sum();
            let per_bin = total as f64 / max_bins as f64;
            let mut seen = 0usize;
            let mut next = per_bin;
            for w in distinct.windows(2) {
                seen += w[0].1;
                if seen as f64 >= next && upper.len() + 1 < max_bins {
                    upper.push((w[0].0 + w[1].0) / 2.0);
                    while next <= seen as f64 {
                        next += per_bin;
                    }
                }
            }
        }
        upper.push(f64::INFINITY);
        FeatureBins { upper }
    }

    pub fn bins(&self) -> usize {
        self.upper.len() + 1
    }

    pub fn bin(&self, x: f64) -> u8 {
        if x.is_nan() {
            return 0;
        }
        (self.upper.partition_point(|&u| u < x).min(self.upper.len() - 1) + 1) as u8
    }
}

/// A matrix binned column by column: `bins[f * rows + i]`.
pub struct Binned {
    pub rows: usize,
    pub features: usize,
    pub bins: Vec<u8>,
    pub bounds: Vec<FeatureBins>,
}

impl Binned {
    /// Bins a row-major `[rows, features]` matrix with bounds fitted on it.
    pub fn fit(x: &[f64], rows: usize, features: usize, max_bins: usize) -> Binned {
        use rayon::prelude::*;
        let columns: Vec<(FeatureBins, Vec<u8>)> = (0..features)
            .into_par_iter()
            .map(|f| {
                let col: Vec<f64> = (0..rows).map(|i| x[i * features + f]).collect();
                let b = FeatureBins::fit(&col, max_bins);
                let binned = col.iter().map(|&v| b.bin(v)).collect();
                (b, binned)
            })
            .collect();
        let mut bins = Vec::with_capacity(rows * features);
        let mut bounds = Vec::with_capacity(features);
        for (b, col) in columns {
            bins.extend(col);
            bounds.push(b);
        }
        Binned { rows, features, bins, bounds }
    }

    pub fn column(&self, f: usize) -> &[u8] {
        &self.bins[f * self.rows..(f + 1) * self.rows]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn few_values_get_a_bin_each_and_missing_is_bin_zero() {
        let b = FeatureBins::fit(&[3.0, 1.0, 2.0, 1.0, f64::NAN], 255);
        assert_eq!(b.upper, vec![1.5, 2.5, f64::INFINITY]);
        assert_eq!([1.0, 2.0, 3.0, 99.0, f64::NAN].map(|x| b.bin(x)), [1, 2, 3, 3, 0]);
    }

    #[test]
    fn many_values_are_cut_at_quantiles() {
        let v: Vec<f64> = (0..10_000).map(f64::from).collect();
        let b = FeatureBins::fit(&v, 16);
        assert_eq!(b.bins(), 17);
        let mut counts = [0usize; 17];
        v.iter().for_each(|&x| counts[b.bin(x) as usize] += 1);
        assert!(counts[1..].iter().all(|&c| (500..=750).contains(&c)), "{counts:?}");
    }
}
