//! SIMD kernels, generic over `pulp::Simd`: callers dispatch once
//! (`pulp::Arch::new().dispatch(...)`) and everything inlined below runs with
//! AVX2+FMA where the CPU has it (pulp's AVX-512 level is not enabled: it
//! measured no faster for ALS on this project's shapes), with a scalar
//! fallback elsewhere. No `unsafe` here.

use pulp::Simd;

/// `a · b`.
#[inline(always)]
pub fn dot<S: Simd>(simd: S, a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (ah, at) = S::as_simd_f32s(&a[..n]);
    let (bh, bt) = S::as_simd_f32s(&b[..n]);
    let (mut acc0, mut acc1) = (simd.splat_f32s(0.0), simd.splat_f32s(0.0));
    let pairs = ah.len() / 2;
    for k in 0..pairs {
        acc0 = simd.mul_add_f32s(ah[2 * k], bh[2 * k], acc0);
        acc1 = simd.mul_add_f32s(ah[2 * k + 1], bh[2 * k + 1], acc1);
    }
    if ah.len() % 2 == 1 {
        acc0 = simd.mul_add_f32s(ah[ah.len() - 1], bh[ah.len() - 1], acc0);
    }
    let mut s = simd.reduce_sum_f32s(simd.add_f32s(acc0, acc1));
    for (x, y) in at.iter().zip(bt) {
        s += x * y;
    }
    s
}

/// `y += alpha · x`.
#[inline(always)]
pub fn axpy<S: Simd>(simd: S, alpha: f32, x: &[f32], y: &mut [f32]) {
    let n = x.len().min(y.len());
    let (xh, xt) = S::as_simd_f32s(&x[..n]);
    let (yh, yt) = S::as_mut_simd_f32s(&mut y[..n]);
    let a = simd.splat_f32s(alpha);
    for (yv, xv) in yh.iter_mut().zip(xh) {
        *yv = simd.mul_add_f32s(a, *xv, *yv);
    }
    for (yv, xv) in yt.iter_mut().zip(xt) {
        *yv += alpha * xv;
    }
}

/// `out[i] = rows[i] · x` for a row-major matrix with `x.len()` columns:
/// every item's score for one user. Dispatched once per call.
pub fn score_rows(rows: &[f32], x: &[f32], out: &mut [f32]) {
    struct Score<'a>(&'a [f32], &'a [f32], &'a mut [f32]);
    impl pulp::WithSimd for Score<'_> {
        type Output = ();
        #[inline(always)]
        fn with_simd<S: Simd>(self, simd: S) {
            let f = self.1.len();
            for (o, row) in self.2.iter_mut().zip(self.0.chunks_exact(f)) {
                *o = dot(simd, row, self.1);
            }
        }
    }
    if x.is_empty() {
        out.iter_mut().for_each(|o| *o = 0.0);
        return;
    }
    pulp::Arch::new().dispatch(Score(rows, x, out));
}

/// `out[u * n + i] = rows[i] · xs[u]` for several users at once, item-major
/// so each item row is read from memory once for all of them.
pub fn score_many(rows: &[f32], xs: &[&[f32]], out: &mut [f32]) {
    struct Score<'a>(&'a [f32], &'a [&'a [f32]], &'a mut [f32]);
    impl pulp::WithSimd for Score<'_> {
        type Output = ();
        #[inline(always)]
        fn with_simd<S: Simd>(self, simd: S) {
            let Some(f) = self.1.first().map(|x| x.len()).filter(|&f| f > 0) else { return };
            let n = self.0.len() / f;
            for (i, row) in self.0.chunks_exact(f).enumerate() {
                for (u, x) in self.1.iter().enumerate() {
                    self.2[u * n + i] = dot(simd, row, x);
                }
            }
        }
    }
    pulp::Arch::new().dispatch(Score(rows, xs, out));
}

/// Items per block of [`ItemBlocks`].
pub const BLOCK: usize = 64;

/// Item factors re-laid for scoring one user against every item: blocks of
/// [`BLOCK`] items, each stored factor-major (`f` runs of 64 floats), so a
/// block's 64 scores stay in registers while the factors stream past:
/// plain FMAs, no horizontal sums. Built once when a model is loaded.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemBlocks {
    factors: usize,
    items: usize,
    data: Vec<f32>,
}

impl ItemBlocks {
    pub fn new(items: &[f32], factors: usize) -> ItemBlocks {
        let n = items.len().checked_div(factors).unwrap_or(0);
        let blocks = n.div_ceil(BLOCK);
        let mut data = vec![0f32; blocks * factors * BLOCK];
        for (i, row) in items.chunks_exact(factors.max(1)).enumerate().take(n) {
            let (b, o) = (i / BLOCK, i % BLOCK);
            for (j, &v) in row.iter().enumerate() {
                data[(b * factors + j) * BLOCK + o] = v;
            }
        }
        ItemBlocks { factors, items: n, data }
    }

    /// `out[i] = item_i · x` for every item.
    pub fn score(&self, x: &[f32], out: &mut [f32]) {
        self.score_many(&[x], &mut [out]);
    }

    /// [`ItemBlocks::score`] for several users in one pass over the items:
    /// each block is read from memory once for all of them (scoring is
    /// memory-bandwidth bound once the factors outgrow the cache).
    pub fn score_many(&self, xs: &[&[f32]], outs: &mut [&mut [f32]]) {
        struct Score<'a, 'b>(&'a ItemBlocks, &'a [&'a [f32]], &'a mut [&'b mut [f32]]);
        impl pulp::WithSimd for Score<'_, '_> {
            type Output = ();
            #[inline(always)]
            fn with_simd<S: Simd>(self, simd: S) {
                let (blocks, xs, outs) = (self.0, self.1, self.2);
                let f = blocks.factors;
                let lanes = std::mem::size_of::<S::f32s>() / std::mem::size_of::<f32>();
                let zero = simd.splat_f32s(0.0);
                let vecs = BLOCK / lanes;
                for (b, chunk) in blocks.data.chunks_exact(f * BLOCK).enumerate() {
                    for (x, out) in xs.iter().zip(outs.iter_mut()) {
                        let mut tmp = [0f32; BLOCK];
                        let (th, _) = S::as_mut_simd_f32s(&mut tmp);
                        if vecs == 8 && th.len() == 8 {
                            // AVX2: eight accumulators, all in registers.
                            let mut a = [zero; 8];
                            for (row, &xj) in chunk.chunks_exact(BLOCK).zip(x.iter()) {
                                let s = simd.splat_f32s(xj);
                                let (r, _) = S::as_simd_f32s(row);
                                let r: &[S::f32s; 8] = match r.try_into() {
                                    Ok(r) => r,
                                    Err(_) => continue,
                                };
                                a[0] = simd.mul_add_f32s(s, r[0], a[0]);
                                a[1] = simd.mul_add_f32s(s, r[1], a[1]);
                                a[2] = simd.mul_add_f32s(s, r[2], a[2]);
                                a[3] = simd.mul_add_f32s(s, r[3], a[3]);
                                a[4] = simd.mul_add_f32s(s, r[4], a[4]);
                                a[5] = simd.mul_add_f32s(s, r[5], a[5]);
                                a[6] = simd.mul_add_f32s(s, r[6], a[6]);
                                a[7] = simd.mul_add_f32s(s, r[7], a[7]);
                            }
                            th.copy_from_slice(&a);
                        } else {
                            for (row, &xj) in chunk.chunks_exact(BLOCK).zip(x.iter()) {
                                let s = simd.splat_f32s(xj);
                                let (r, _) = S::as_simd_f32s(row);
                                for (t, rv) in th.iter_mut().zip(r) {
                                    *t = simd.mul_add_f32s(s, *rv, *t);
                                }
                            }
                        }
                        let start = b * BLOCK;
                        let end = (start + BLOCK).min(blocks.items).min(out.len());
                        if start < end {
                            out[start..end].copy_from_slice(&tmp[..end - start]);
                        }
                    }
                }
            }
        }
        if self.factors == 0 || xs.iter().any(|x| x.len() < self.factors) {
            outs.iter_mut().for_each(|o| o.iter_mut().for_each(|v| *v = 0.0));
            return;
        }
        pulp::Arch::new().dispatch(Score(self, xs, outs));
    }
}

/// For each listed row `y_i` of the row-major `y` (`v.len()` columns), with
/// its weight `c_i`: `out += coef(c_i, y_i · v) · y_i`, in list order. Four
/// rows at a time: `v` and `out` are read once per four rows and the four
/// dot products run side by side (the hot loop of the CG solver, where rows
/// are short, so the loop and the horizontal sums used to dominate).
#[inline(always)]
pub fn rows_update<S: Simd>(
    simd: S,
    y: &[f32],
    rows: &[u32],
    weights: &[f32],
    v: &[f32],
    out: &mut [f32],
    mut coef: impl FnMut(f32, f32) -> f32,
) {
    let f = v.len();
    let row = |i: u32| &y[i as usize * f..(i as usize + 1) * f];
    let (vh, vt) = S::as_simd_f32s(v);
    let n = vh.len();
    let zero = simd.splat_f32s(0.0);
    let (quads, quad_weights) = (rows.chunks_exact(4), weights.chunks_exact(4));
    let (rest, rest_weights) = (quads.remainder(), quad_weights.remainder());
    for (ids, ws) in quads.zip(quad_weights) {
        let ys = [row(ids[0]), row(ids[1]), row(ids[2]), row(ids[3])];
        let split = ys.map(|r| S::as_simd_f32s(r));
        let (y0, y1, y2, y3) = (&split[0].0[..n], &split[1].0[..n], &split[2].0[..n], &split[3].0[..n]);
        let mut acc = [zero; 4];
        for k in 0..n {
            acc[0] = simd.mul_add_f32s(y0[k], vh[k], acc[0]);
            acc[1] = simd.mul_add_f32s(y1[k], vh[k], acc[1]);
            acc[2] = simd.mul_add_f32s(y2[k], vh[k], acc[2]);
            acc[3] = simd.mul_add_f32s(y3[k], vh[k], acc[3]);
        }
        let mut a = [0f32; 4];
        for j in 0..4 {
            let tail: f32 = split[j].1.iter().zip(vt).map(|(x, w)| x * w).sum();
            a[j] = coef(ws[j], simd.reduce_sum_f32s(acc[j]) + tail);
        }
        let s = a.map(|x| simd.splat_f32s(x));
        let (oh, ot) = S::as_mut_simd_f32s(out);
        for (k, o) in oh[..n].iter_mut().enumerate() {
            let mut t = simd.mul_add_f32s(s[0], y0[k], *o);
            t = simd.mul_add_f32s(s[1], y1[k], t);
            t = simd.mul_add_f32s(s[2], y2[k], t);
            *o = simd.mul_add_f32s(s[3], y3[k], t);
        }
        for (t, o) in ot.iter_mut().enumerate() {
            for j in 0..4 {
                *o += a[j] * split[j].1[t];
            }
        }
    }
    for (&i, &w) in rest.iter().zip(rest_weights) {
        let yi = row(i);
        let a = coef(w, dot(simd, yi, v));
        axpy(simd, a, yi, out);
    }
}

/// `out = M v` for a symmetric row-major `M`: a sum of scaled rows, computed
/// in blocks of four SIMD vectors of `out` that stay in registers while the
/// rows stream past (the hot loop of the CG solver).
#[inline(always)]
pub fn sym_matvec<S: Simd>(simd: S, m: &[f32], v: &[f32], out: &mut [f32]) {
    let f = v.len();
    let lanes = std::mem::size_of::<S::f32s>() / std::mem::size_of::<f32>();
    let vecs = f / lanes;
    let zero = simd.splat_f32s(0.0);
    let rows = || m.chunks_exact(f).zip(v).map(|(row, &vj)| (S::as_simd_f32s(row).0, simd.splat_f32s(vj)));
    let (oh, ot) = S::as_mut_simd_f32s(out);
    let mut b = 0;
    while b + 4 <= vecs {
        let mut acc = [zero; 4];
        for (row, s) in rows() {
            let r = &row[b..b + 4];
            acc[0] = simd.mul_add_f32s(s, r[0], acc[0]);
            acc[1] = simd.mul_add_f32s(s, r[1], acc[1]);
            acc[2] = simd.mul_add_f32s(s, r[2], acc[2]);
            acc[3] = simd.mul_add_f32s(s, r[3], acc[3]);
        }
        oh[b..b + 4].copy_from_slice(&acc);
        b += 4;
    }
    while b < vecs {
        let mut acc = zero;
        for (row, s) in rows() {
            acc = simd.mul_add_f32s(s, row[b], acc);
        }
        oh[b] = acc;
        b += 1;
    }
    let done = vecs * lanes;
    for (t, o) in ot.iter_mut().enumerate() {
        *o = m.chunks_exact(f).zip(v).map(|(row, &vj)| row[done + t] * vj).sum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_blocks_score_like_dot_products() {
        for (n, f) in [(1, 1), (3, 2), (64, 8), (65, 64), (200, 17)] {
            let items: Vec<f32> = (0..n * f).map(|k| ((k * 7) % 13) as f32 * 0.1 - 0.5).collect();
            let x: Vec<f32> = (0..f).map(|j| 1.0 - j as f32 * 0.05).collect();
            let mut got = vec![f32::NAN; n];
            ItemBlocks::new(&items, f).score(&x, &mut got);
            for (i, g) in got.iter().enumerate() {
                let want: f32 = items[i * f..(i + 1) * f].iter().zip(&x).map(|(a, b)| a * b).sum();
                assert!((g - want).abs() < 1e-3, "n={n} f={f} i={i}: {g} vs {want}");
            }
        }
    }

    #[test]
    fn rows_update_matches_one_row_at_a_time() {
        struct Update<'a>(&'a [f32], &'a [u32], &'a [f32], &'a [f32], &'a mut [f32], &'a mut Vec<f32>);
        impl pulp::WithSimd for Update<'_> {
            type Output = ();
            fn with_simd<S: Simd>(self, simd: S) {
                let dots = self.5;
                rows_update(simd, self.0, self.1, self.2, self.3, self.4, |c, d| {
                    dots.push(d);
                    c - (c - 1.0) * d
                })
            }
        }
        for f in [1, 5, 8, 16, 64, 67] {
            for n_rows in [0, 1, 3, 4, 9] {
                let y: Vec<f32> = (0..10 * f).map(|k| ((k * 7) % 13) as f32 * 0.1 - 0.5).collect();
                let rows: Vec<u32> = (0..n_rows).map(|r| ((r * 3) % 10) as u32).collect();
                let weights: Vec<f32> = (0..n_rows).map(|r| 1.0 + r as f32).collect();
                let v: Vec<f32> = (0..f).map(|j| 1.0 - j as f32 * 0.05).collect();
                let mut want: Vec<f32> = (0..f).map(|j| j as f32).collect();
                let mut want_dots = Vec::new();
                for (&i, &c) in rows.iter().zip(&weights) {
                    let yi = &y[i as usize * f..(i as usize + 1) * f];
                    let d: f32 = yi.iter().zip(&v).map(|(a, b)| a * b).sum();
                    want_dots.push(d);
                    for (o, x) in want.iter_mut().zip(yi) {
                        *o += (c - (c - 1.0) * d) * x;
                    }
                }
                let mut got: Vec<f32> = (0..f).map(|j| j as f32).collect();
                let mut dots = Vec::new();
                pulp::Arch::new().dispatch(Update(&y, &rows, &weights, &v, &mut got, &mut dots));
                for (g, w) in got.iter().zip(&want).chain(dots.iter().zip(&want_dots)) {
                    assert!((g - w).abs() < 1e-3 * w.abs().max(1.0), "f={f} rows={n_rows}: {g} vs {w}");
                }
            }
        }
    }

    #[test]
    fn kernels_match_scalar() {
        let a: Vec<f32> = (0..67).map(|i| i as f32 * 0.5).collect();
        let b: Vec<f32> = (0..67).map(|i| 1.0 - i as f32 * 0.25).collect();
        let expected: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        let got = pulp::Arch::new().dispatch(|| dot(pulp::Scalar, &a, &b));
        assert!((got - expected).abs() < 1e-2 * expected.abs().max(1.0));
        struct Dot<'a>(&'a [f32], &'a [f32]);
        impl pulp::WithSimd for Dot<'_> {
            type Output = f32;
            fn with_simd<S: Simd>(self, simd: S) -> f32 {
                dot(simd, self.0, self.1)
            }
        }
        let got = pulp::Arch::new().dispatch(Dot(&a, &b));
        assert!((got - expected).abs() < 1e-2 * expected.abs().max(1.0));
        let mut y = b.clone();
        axpy(pulp::Scalar, 2.0, &a, &mut y);
        assert!(y.iter().zip(a.iter().zip(&b)).all(|(y, (a, b))| (y - (b + 2.0 * a)).abs() < 1e-5));
        let m = [2.0f32, 1.0, 1.0, 3.0];
        let mut out = [0.0f32; 2];
        sym_matvec(pulp::Scalar, &m, &[1.0, 2.0], &mut out);
        assert_eq!(out, [4.0, 7.0]);
        struct MatVec<'a>(&'a [f32], &'a [f32], &'a mut [f32]);
        impl pulp::WithSimd for MatVec<'_> {
            type Output = ();
            fn with_simd<S: Simd>(self, simd: S) {
                sym_matvec(simd, self.0, self.1, self.2)
            }
        }
        for f in [1, 3, 8, 17, 32, 64, 100, 128] {
            let m: Vec<f32> = (0..f * f).map(|k| ((k / f) * (k % f)) as f32 * 0.01 + 1.0).collect();
            let v: Vec<f32> = (0..f).map(|i| 1.0 - i as f32 * 0.1).collect();
            let want: Vec<f32> = (0..f).map(|i| (0..f).map(|j| m[j * f + i] * v[j]).sum()).collect();
            let mut got = vec![f32::NAN; f];
            pulp::Arch::new().dispatch(MatVec(&m, &v, &mut got));
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() <= 1e-3 * w.abs().max(1.0), "f={f}: {got:?} vs {want:?}");
            }
        }
    }
}
