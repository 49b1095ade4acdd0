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
        v.sort_unstable_by(f64::total_cmp);
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
        self.lookup().bin(x)
    }

    /// The bounds padded for a fixed-length search.
    fn lookup(&self) -> Lookup {
        let mut upper = [f64::INFINITY; 256];
        upper[..self.upper.len()].copy_from_slice(&self.upper);
        Lookup { upper }
    }
}

/// Bounds padded to 256 with +inf: eight branch-free halvings find a bin
/// (a branching search mispredicts about every other step; `perf` showed it
/// at the top of binning).
struct Lookup {
    upper: [f64; 256],
}

impl Lookup {
    fn bin(&self, x: f64) -> u8 {
        if x.is_nan() {
            return 0;
        }
        // The first bound >= x; the real bounds end with +inf, so it is one.
        let mut base = 0usize;
        for half in [128, 64, 32, 16, 8, 4, 2, 1] {
            base = std::hint::select_unpredictable(self.upper[base + half - 1] < x, base + half, base);
        }
        (base + 1) as u8
    }
}

/// A matrix binned twice: column by column (`column(f)`, read when a
/// histogram covers every row) and row by row (`row(i)`, read when it covers
/// a leaf's scattered rows: one cache line per row instead of one per row
/// and feature).
pub struct Binned {
    pub rows: usize,
    pub features: usize,
    /// `[features, rows]`.
    by_column: Vec<u8>,
    /// `[rows, features]`.
    by_row: Vec<u8>,
    pub bounds: Vec<FeatureBins>,
}

impl Binned {
    /// Bins a row-major `[rows, features]` matrix with bounds fitted on it.
    pub fn fit(x: &[f64], rows: usize, features: usize, max_bins: usize) -> Binned {
        use rayon::prelude::*;
        // The sampled rows, transposed in one pass over them.
        let step = (rows / SAMPLE).max(1);
        let sampled = rows.div_ceil(step);
        let mut sample = vec![0f64; sampled * features];
        for (k, i) in (0..rows).step_by(step).enumerate() {
            for (f, &v) in x[i * features..(i + 1) * features].iter().enumerate() {
                sample[f * sampled + k] = v;
            }
        }
        let bounds: Vec<FeatureBins> =
            sample.par_chunks(sampled.max(1)).map(|column| FeatureBins::fit(column, max_bins)).collect();
        let lookups: Vec<Lookup> = bounds.iter().map(FeatureBins::lookup).collect();
        // Row blocks in parallel; each row's values are read once, in order.
        const BLOCK: usize = 4096;
        let mut by_row = vec![0u8; rows * features];
        by_row.par_chunks_mut(features * BLOCK).zip(x.par_chunks(features * BLOCK)).for_each(|(out, values)| {
            for (o, v) in out.chunks_exact_mut(features).zip(values.chunks_exact(features)) {
                for ((o, &v), l) in o.iter_mut().zip(v).zip(&lookups) {
                    *o = l.bin(v);
                }
            }
        });
        // Transposed block by block, so a block's rows stay in cache.
        let mut by_column = vec![0u8; rows * features];
        let by_row_ref = &by_row;
        let blocks: Vec<Vec<u8>> = by_row_ref
            .par_chunks(features * BLOCK)
            .map(|block| {
                let n = block.len() / features;
                let mut t = vec![0u8; block.len()];
                for (i, row) in block.chunks_exact(features).enumerate() {
                    for (f, &b) in row.iter().enumerate() {
                        t[f * n + i] = b;
                    }
                }
                t
            })
            .collect();
        by_column.par_chunks_mut(rows).enumerate().for_each(|(f, col)| {
            let mut at = 0;
            for t in &blocks {
                let n = t.len() / features;
                col[at..at + n].copy_from_slice(&t[f * n..(f + 1) * n]);
                at += n;
            }
        });
        Binned { rows, features, by_column, by_row, bounds }
    }

    pub fn column(&self, f: usize) -> &[u8] {
        &self.by_column[f * self.rows..(f + 1) * self.rows]
    }

    pub fn row(&self, i: usize) -> &[u8] {
        &self.by_row[i * self.features..(i + 1) * self.features]
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
