//! Compressed sparse rows: the user×item matrix and its transpose.

/// A CSR matrix of `f32` with `u32` column indices, columns sorted per row.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Csr {
    pub n_rows: usize,
    pub n_cols: usize,
    pub indptr: Vec<usize>,
    pub indices: Vec<u32>,
    pub data: Vec<f32>,
}

impl Csr {
    /// Builds from (row, col, value) triples; duplicates are summed.
    pub fn from_triples(n_rows: usize, n_cols: usize, mut triples: Vec<(u32, u32, f32)>) -> Csr {
        triples.sort_unstable_by_key(|t| (t.0, t.1));
        let mut indptr = vec![0usize; n_rows + 1];
        let mut indices = Vec::with_capacity(triples.len());
        let mut data = Vec::with_capacity(triples.len());
        let mut last: Option<(u32, u32)> = None;
        for (r, c, v) in triples {
            if last == Some((r, c)) {
                if let Some(d) = data.last_mut() {
                    *d += v;
                }
                continue;
            }
            last = Some((r, c));
            indptr[r as usize + 1] += 1;
            indices.push(c);
            data.push(v);
        }
        for i in 0..n_rows {
            indptr[i + 1] += indptr[i];
        }
        Csr { n_rows, n_cols, indptr, indices, data }
    }

    pub fn nnz(&self) -> usize {
        self.indices.len()
    }

    pub fn row(&self, r: usize) -> (&[u32], &[f32]) {
        let (a, b) = (self.indptr[r], self.indptr[r + 1]);
        (&self.indices[a..b], &self.data[a..b])
    }

    pub fn transpose(&self) -> Csr {
        self.transpose_into(|_, _| {})
    }

    /// The transpose, and for each of its entries the index of the same entry
    /// in `self`'s `indices`/`data`.
    pub fn transpose_with_origins(&self) -> (Csr, Vec<usize>) {
        let mut origins = vec![0usize; self.nnz()];
        let t = self.transpose_into(|slot, k| origins[slot] = k);
        (t, origins)
    }

    /// The transpose; `placed(slot, k)` learns that entry `k` of `self` went
    /// to entry `slot` of the transpose.
    fn transpose_into(&self, mut placed: impl FnMut(usize, usize)) -> Csr {
        let mut counts = vec![0usize; self.n_cols + 1];
        for &c in &self.indices {
            counts[c as usize + 1] += 1;
        }
        for i in 0..self.n_cols {
            counts[i + 1] += counts[i];
        }
        let indptr = counts.clone();
        let mut next = counts;
        let mut indices = vec![0u32; self.nnz()];
        let mut data = vec![0f32; self.nnz()];
        for r in 0..self.n_rows {
            for k in self.indptr[r]..self.indptr[r + 1] {
                let c = self.indices[k] as usize;
                let slot = next[c];
                indices[slot] = r as u32;
                data[slot] = self.data[k];
                placed(slot, k);
                next[c] += 1;
            }
        }
        Csr { n_rows: self.n_cols, n_cols: self.n_rows, indptr, indices, data }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_sums_and_transposes() {
        let m = Csr::from_triples(2, 3, vec![(1, 2, 1.0), (0, 1, 2.0), (1, 2, 3.0), (1, 0, 1.0)]);
        assert_eq!(m.indptr, vec![0, 1, 3]);
        assert_eq!(m.row(1), (&[0u32, 2][..], &[1.0f32, 4.0][..]));
        let t = m.transpose();
        assert_eq!(t.n_rows, 3);
        assert_eq!(t.row(2), (&[1u32][..], &[4.0f32][..]));
        assert_eq!(t.transpose(), m);
        let (with, origins) = m.transpose_with_origins();
        assert_eq!(with, t);
        for (slot, &k) in origins.iter().enumerate() {
            assert_eq!(m.data[k], t.data[slot]);
        }
    }
}
