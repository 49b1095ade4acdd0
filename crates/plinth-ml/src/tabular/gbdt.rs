//! Gradient-boosted decision trees, histogram-based and grown leaf-wise
//! (best leaf first), for squared error, logistic and softmax objectives.
//!
//! Per tree: gradients and hessians of the current scores (f32); the root's
//! histogram (gradient and hessian sums per feature bin, in f64; rows per
//! bin estimated from the hessian share) built over all rows, column by
//! column; then repeatedly the leaf with the best split is split. Its rows
//! are partitioned in place (each leaf owns a contiguous range of one index
//! array; large ranges chunk by chunk in parallel), the smaller child's
//! histogram is built row by row from the binned rows (one cache line per
//! row) and the larger child's is the parent's minus it. Leaf values are
//! Newton steps, `-G / (H + l2)`, times the learning rate. Rows' scores are
//! updated from the final partition, without walking the tree. Missing
//! values (NaN) are bin 0; each split learns which side they take. Children
//! that can never split (depth limit, last split) get their sums but no
//! histogram.
//!
//! `bench/tabular.sh` compares it with LightGBM on the same data and
//! settings (it drives `examples/gbdt_bench.rs`).

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::binning::Binned;
use crate::{Error, Proceed, Result};

/// Cells per feature in a histogram (bin 0 is missing).
const STRIDE: usize = 256;
/// What counts as zero for `zero_missing` (LightGBM's `kZeroThreshold`).
pub const ZERO: f64 = 1e-35_f32 as f64;
/// A leaf's hessian sum must reach this to be split off.
const MIN_HESSIAN: f64 = 1e-3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Objective {
    Squared,
    Logistic,
    Softmax { classes: usize },
}

impl Objective {
    pub fn outputs(self) -> usize {
        match self {
            Objective::Softmax { classes } => classes,
            _ => 1,
        }
    }

    /// Raw scores (row-major `[rows, outputs]`) into predictions, in place:
    /// values (squared), P(class 1) (logistic), class probabilities (softmax).
    pub fn link(self, raw: &mut [f64]) {
        match self {
            Objective::Squared => {}
            Objective::Logistic => raw.iter_mut().for_each(|v| *v = sigmoid(*v)),
            Objective::Softmax { classes } => raw.chunks_mut(classes).for_each(softmax_in_place),
        }
    }

    /// The loss of raw scores on targets: RMSE, or (classification) log loss.
    pub fn loss(self, y: &[f64], raw: &[f64]) -> f64 {
        use super::metrics;
        let mut p = raw.to_vec();
        self.link(&mut p);
        match self {
            Objective::Squared => metrics::rmse(y, &p),
            Objective::Logistic => metrics::logloss_binary(y, &p),
            Objective::Softmax { classes } => metrics::logloss_multiclass(y, &p, classes),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GbdtParams {
    pub rounds: usize,
    pub learning_rate: f64,
    pub max_leaves: usize,
    /// 0: unlimited.
    pub max_depth: usize,
    /// Rows a leaf must keep.
    pub min_leaf: usize,
    pub l2: f64,
    /// Smallest loss reduction worth a split.
    pub min_gain: f64,
    pub max_bins: usize,
}

impl Default for GbdtParams {
    fn default() -> Self {
        GbdtParams {
            rounds: 100,
            learning_rate: 0.1,
            max_leaves: 31,
            max_depth: 0,
            min_leaf: 20,
            l2: 0.0,
            min_gain: 0.0,
            max_bins: 255,
        }
    }
}

impl GbdtParams {
    pub fn check(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Param(m));
        if self.rounds == 0 {
            return bad("rounds must be at least 1".into());
        }
        if !(self.learning_rate > 0.0 && self.learning_rate <= 1.0) {
            return bad(format!("learning rate must be in (0, 1], got {}", self.learning_rate));
        }
        if self.max_leaves < 2 {
            return bad(format!("max leaves must be at least 2, got {}", self.max_leaves));
        }
        if self.min_leaf == 0 {
            return bad("min leaf must be at least 1".into());
        }
        let non_negative = |v: f64| v.is_finite() && v >= 0.0;
        if !non_negative(self.l2) || !non_negative(self.min_gain) {
            return bad("l2 and min gain must be finite and >= 0".into());
        }
        if !(2..=255).contains(&self.max_bins) {
            return bad(format!("max bins must be in 2..=255, got {}", self.max_bins));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "node", rename_all = "lowercase")]
pub enum Node {
    /// `x[feature] <= threshold` (or missing, if `missing_left`) goes left.
    Split {
        feature: u32,
        threshold: f64,
        missing_left: bool,
        left: u32,
        right: u32,
        gain: f64,
        /// Zero counts as missing too (LightGBM's `missing_type=Zero`, kept
        /// for imported models).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        zero_missing: bool,
    },
    Leaf {
        value: f64,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tree {
    pub nodes: Vec<Node>,
}

impl Tree {
    pub fn predict(&self, row: &[f64]) -> f64 {
        let mut at = 0usize;
        loop {
            match &self.nodes[at] {
                Node::Leaf { value } => return *value,
                Node::Split { feature, threshold, missing_left, left, right, zero_missing, .. } => {
                    let x = row[*feature as usize];
                    let missing = x.is_nan() || (*zero_missing && x.abs() <= ZERO);
                    let go_left = if missing { *missing_left } else { x <= *threshold };
                    at = if go_left { *left } else { *right } as usize;
                }
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gbdt {
    pub objective: Objective,
    pub features: usize,
    /// Initial score per output.
    pub base: Vec<f64>,
    /// Round-major: tree `r * outputs + k` adds to output `k`.
    pub trees: Vec<Tree>,
}

/// Per bin: gradient sum, hessian sum. Rows per bin are estimated from the
/// hessian share (exact for squared error), as LightGBM does.
type Cell = [f64; 2];
/// A leaf's gradient sum, hessian sum and rows.
type Sums = [f64; 3];

struct Leaf {
    start: usize,
    end: usize,
    depth: usize,
    node: usize,
    sums: Sums,
    hist: Vec<Cell>,
    best: Option<Candidate>,
}

#[derive(Debug, Clone, Copy)]
struct Candidate {
    gain: f64,
    feature: usize,
    /// Left takes value bins 1..=bin.
    bin: usize,
    missing_left: bool,
}

fn score(g: f64, h: f64, l2: f64) -> f64 {
    g * g / (h + l2)
}

/// Buffers reused from tree to tree (fresh pages cost page faults).
#[derive(Default)]
struct Workspace {
    /// Row ids; each leaf owns a contiguous range.
    indices: Vec<u32>,
    /// Right-hand rows while partitioning.
    scratch: Vec<u32>,
    /// Histograms no leaf holds any more.
    free: Vec<Vec<Cell>>,
}

struct Grower<'a> {
    data: &'a Binned,
    params: &'a GbdtParams,
    /// Gradient and hessian per row (f32, as LightGBM keeps them).
    gh: &'a [[f32; 2]],
    work: &'a mut Workspace,
}

impl Grower<'_> {
    fn fresh_histogram(&mut self) -> Vec<Cell> {
        let size = self.data.features * STRIDE;
        match self.work.free.pop() {
            Some(mut h) => {
                h.clear();
                h.resize(size, [0.0; 2]);
                h
            }
            None => vec![[0.0; 2]; size],
        }
    }

    fn histogram(&mut self, start: usize, end: usize) -> (Vec<Cell>, Sums) {
        let mut hist = self.fresh_histogram();
        let features = self.data.features;
        let threads = if (end - start) * features >= 50_000 { rayon::current_num_threads() } else { 1 };
        let shares = if threads > 1 { threads * 2 } else { 1 };
        if end - start == self.data.rows {
            fill_by_column(self.data, self.gh, &mut hist, threads);
            return (hist, sums_of(self.gh));
        }
        // Each thread fills a histogram of its own share of the rows; the
        // shares are added up.
        let mut extra: Vec<Vec<Cell>> = (1..shares).map(|_| self.fresh_histogram()).collect();
        let rows = &self.work.indices[start..end];
        let share = rows.len().div_ceil(shares);
        let mut outs: Vec<&mut Vec<Cell>> = std::iter::once(&mut hist).chain(extra.iter_mut()).collect();
        let (data, gh) = (self.data, self.gh);
        let sums = outs
            .par_iter_mut()
            .zip(rows.par_chunks(share))
            .map(|(out, rows)| fill_by_row(data, rows, gh, out))
            .reduce(|| [0.0; 3], |a, b| [a[0] + b[0], a[1] + b[1], a[2] + b[2]]);
        for e in extra {
            for (c, x) in hist.iter_mut().zip(&e) {
                *c = [c[0] + x[0], c[1] + x[1]];
            }
            self.work.free.push(e);
        }
        (hist, sums)
    }

    fn best_split(&self, hist: &[Cell], sums: Sums, depth: usize) -> Option<Candidate> {
        let p = self.params;
        if (p.max_depth > 0 && depth >= p.max_depth) || sums[2] < 2.0 * p.min_leaf as f64 {
            return None;
        }
        let parent = score(sums[0], sums[1], p.l2);
        let min_leaf = p.min_leaf as f64;
        (0..self.data.features)
            .into_par_iter()
            .filter_map(|f| {
                let cells = &hist[f * STRIDE..f * STRIDE + self.data.bounds[f].bins()];
                let rows_per_hessian = sums[2] / sums[1];
                let with_rows = |c: &Cell| [c[0], c[1], (c[1] * rows_per_hessian + 0.5) as u64 as f64];
                let missing = with_rows(&cells[0]);
                let mut best: Option<Candidate> = None;
                for missing_left in [false, true] {
                    if missing_left && missing[2] == 0.0 {
                        break;
                    }
                    let mut left = if missing_left { missing } else { [0.0; 3] };
                    for (b, c) in cells.iter().enumerate().take(cells.len() - 1).skip(1) {
                        let c = with_rows(c);
                        left = [left[0] + c[0], left[1] + c[1], left[2] + c[2]];
                        let right = [sums[0] - left[0], sums[1] - left[1], sums[2] - left[2]];
                        if left[2] < min_leaf || left[1] < MIN_HESSIAN {
                            continue;
                        }
                        if right[2] < min_leaf || right[1] < MIN_HESSIAN {
                            break;
                        }
                        let gain = score(left[0], left[1], p.l2) + score(right[0], right[1], p.l2) - parent;
                        if gain > p.min_gain && best.is_none_or(|c| gain > c.gain) {
                            best = Some(Candidate { gain, feature: f, bin: b, missing_left });
                        }
                    }
                }
                best
            })
            .max_by(|a, b| a.gain.total_cmp(&b.gain).then(b.feature.cmp(&a.feature)))
    }

    /// Grows one tree; returns it and, per leaf, its row range and value.
    fn grow(mut self, scores: &mut [f64], outputs: usize, output: usize) -> Tree {
        let p = self.params;
        let n = self.data.rows;
        self.work.indices.clear();
        self.work.indices.extend(0..n as u32);
        let (hist, sums) = self.histogram(0, n);
        let best = self.best_split(&hist, sums, 0);
        let mut nodes = vec![Node::Leaf { value: 0.0 }];
        let mut leaves = vec![Leaf { start: 0, end: n, depth: 0, node: 0, sums, hist, best }];
        while leaves.len() < p.max_leaves {
            let Some((at, split)) = leaves
                .iter()
                .enumerate()
                .filter_map(|(i, l)| l.best.map(|b| (i, b)))
                .max_by(|a, b| a.1.gain.total_cmp(&b.1.gain))
            else {
                break;
            };
            let parent = leaves.swap_remove(at);
            // Partition the parent's rows: left first, order kept.
            let col = self.data.column(split.feature);
            let goes_left = |i: u32| {
                let b = col[i as usize] as usize;
                if b == 0 { split.missing_left } else { b <= split.bin }
            };
            let work = &mut *self.work;
            let kept = partition(&mut work.indices[parent.start..parent.end], &mut work.scratch, goes_left);
            let mid = parent.start + kept;
            let (small, large) = if mid - parent.start <= parent.end - mid {
                ((parent.start, mid), (mid, parent.end))
            } else {
                ((mid, parent.end), (parent.start, mid))
            };
            let depth = parent.depth + 1;
            // Children that can never be split (depth limit, or the last
            // split of the tree) need their sums but no histograms.
            let final_split = (p.max_depth > 0 && depth >= p.max_depth) || leaves.len() + 2 >= p.max_leaves;
            let (small_hist, small_sums, large_hist) = if final_split {
                let gh = self.gh;
                let add = |s: Sums, c: Sums| [s[0] + c[0], s[1] + c[1], s[2] + c[2]];
                let sums = self.work.indices[small.0..small.1]
                    .par_iter()
                    .with_min_len(16_384)
                    .map(|&i| {
                        let c = gh[i as usize];
                        [c[0] as f64, c[1] as f64, 1.0]
                    })
                    .reduce(|| [0.0; 3], add);
                self.work.free.push(parent.hist);
                (Vec::new(), sums, Vec::new())
            } else {
                let (small_hist, small_sums) = self.histogram(small.0, small.1);
                let mut large_hist = parent.hist;
                for (l, s) in large_hist.iter_mut().zip(&small_hist) {
                    *l = [l[0] - s[0], l[1] - s[1]];
                }
                (small_hist, small_sums, large_hist)
            };
            let large_sums =
                [parent.sums[0] - small_sums[0], parent.sums[1] - small_sums[1], parent.sums[2] - small_sums[2]];
            let (left_node, right_node) = (nodes.len(), nodes.len() + 1);
            nodes.push(Node::Leaf { value: 0.0 });
            nodes.push(Node::Leaf { value: 0.0 });
            nodes[parent.node] = Node::Split {
                feature: split.feature as u32,
                threshold: self.data.bounds[split.feature].upper[split.bin - 1],
                missing_left: split.missing_left,
                left: left_node as u32,
                right: right_node as u32,
                gain: split.gain,
                zero_missing: false,
            };
            for ((start, end), hist, sums) in [(small, small_hist, small_sums), (large, large_hist, large_sums)] {
                let node = if start == parent.start { left_node } else { right_node };
                let best = if final_split { None } else { self.best_split(&hist, sums, depth) };
                leaves.push(Leaf { start, end, depth, node, sums, hist, best });
            }
        }
        for leaf in leaves {
            let value = -leaf.sums[0] / (leaf.sums[1] + p.l2) * p.learning_rate;
            nodes[leaf.node] = Node::Leaf { value };
            // A scatter, sequential: walking the tree per row in parallel
            // instead was slower here (a mispredicted branch per level).
            for &i in &self.work.indices[leaf.start..leaf.end] {
                scores[i as usize * outputs + output] += value;
            }
            if !leaf.hist.is_empty() {
                self.work.free.push(leaf.hist);
            }
        }
        Tree { nodes }
    }
}

fn sums_of(gh: &[[f32; 2]]) -> Sums {
    gh.iter().fold([0.0, 0.0, 0.0], |s, c| [s[0] + c[0] as f64, s[1] + c[1] as f64, s[2] + 1.0])
}

/// Every row's histogram, column by column: each thread takes a group of
/// features and walks the rows in blocks, so a block's gradient pairs stay
/// in the L1 cache while the group's columns pass over them. Each feature
/// sums a block into two f32 partial histograms (consecutive rows in one
/// bin do not wait on each other's read-modify-write; half the bytes of
/// f64) that are then added into its f64 cells, keeping f64 precision.
fn fill_by_column(data: &Binned, gh: &[[f32; 2]], hist: &mut [Cell], threads: usize) {
    const BLOCK: usize = 4096;
    // Several groups per thread, so a late or slow thread does not hold up the rest.
    let per_group = data.features.div_ceil(threads * 4) * STRIDE;
    hist.par_chunks_mut(per_group).enumerate().for_each(|(g, cells)| {
        let first = g * per_group / STRIDE;
        let mut part = [[[0f32; 2]; STRIDE]; 2];
        for block_start in (0..gh.len()).step_by(BLOCK) {
            let block_end = (block_start + BLOCK).min(gh.len());
            let gh = &gh[block_start..block_end];
            for (j, cells) in cells.chunks_mut(STRIDE).enumerate() {
                let col = &data.column(first + j)[block_start..block_end];
                let mut pairs = col.chunks_exact(2).zip(gh.chunks_exact(2));
                for (b, g) in &mut pairs {
                    let p0 = &mut part[0][b[0] as usize];
                    p0[0] += g[0][0];
                    p0[1] += g[0][1];
                    let p1 = &mut part[1][b[1] as usize];
                    p1[0] += g[1][0];
                    p1[1] += g[1][1];
                }
                if col.len() % 2 == 1 {
                    let c = &mut part[0][col[col.len() - 1] as usize];
                    let g = gh[gh.len() - 1];
                    c[0] += g[0];
                    c[1] += g[1];
                }
                let [a, b] = &mut part;
                for (c, (a, b)) in cells.iter_mut().zip(a.iter_mut().zip(b.iter_mut())) {
                    c[0] += a[0] as f64 + b[0] as f64;
                    c[1] += a[1] as f64 + b[1] as f64;
                    *a = [0.0; 2];
                    *b = [0.0; 2];
                }
            }
        }
    });
}

/// A leaf's scattered rows into `hist`, row by row: one cache line per row
/// rather than one per row and feature. Rows go in batches: a batch's bins
/// are first touched together (their cache misses overlap instead of
/// stalling one by one), then each group of features takes the batch into
/// f32 partial histograms small enough for the L1 cache, added into the
/// f64 cells every few thousand rows.
fn fill_by_row(data: &Binned, rows: &[u32], gh: &[[f32; 2]], hist: &mut [Cell]) -> Sums {
    const BATCH: usize = 64;
    const FLUSH: usize = 4096;
    /// Features per group: 16 x 256 x 8 bytes = 32 KiB of partials.
    const GROUP: usize = 16;
    let features = data.features;
    let (cells, _) = hist.as_chunks_mut::<STRIDE>();
    let mut part = vec![[[0f32; 2]; STRIDE]; features];
    let mut pairs = [[0f32; 2]; BATCH];
    let mut sums = [0.0; 3];
    for flush_rows in rows.chunks(FLUSH) {
        for batch in flush_rows.chunks(BATCH) {
            let mut touched = 0u8;
            for (&i, pair) in batch.iter().zip(pairs.iter_mut()) {
                let row = data.row(i as usize);
                touched ^= row[0] ^ row[features - 1];
                *pair = gh[i as usize];
                sums = [sums[0] + pair[0] as f64, sums[1] + pair[1] as f64, sums[2] + 1.0];
            }
            std::hint::black_box(touched);
            for (g, part) in part.chunks_mut(GROUP).enumerate() {
                let first = g * GROUP;
                for (&i, &pair) in batch.iter().zip(&pairs) {
                    let bins = &data.row(i as usize)[first..first + part.len()];
                    for (cell, &b) in part.iter_mut().zip(bins) {
                        let c = &mut cell[b as usize];
                        *c = [c[0] + pair[0], c[1] + pair[1]];
                    }
                }
            }
        }
        for (cells, part) in cells.iter_mut().zip(part.iter_mut()) {
            for (c, p) in cells.iter_mut().zip(part.iter_mut()) {
                c[0] += p[0] as f64;
                c[1] += p[1] as f64;
                *p = [0.0; 2];
            }
        }
    }
    sums
}

/// Moves the rows that `goes_left` to the front of `rows`, the rest after
/// them, each side in its old order; returns how many went left. Branch-free
/// (the side is a coin flip the predictor cannot learn) and, for many rows,
/// chunk by chunk in parallel.
fn partition(rows: &mut [u32], scratch: &mut Vec<u32>, goes_left: impl Fn(u32) -> bool + Sync) -> usize {
    fn sequential(rows: &mut [u32], right: &mut [u32], goes_left: &impl Fn(u32) -> bool) -> usize {
        let (mut l, mut r) = (0, 0);
        for k in 0..rows.len() {
            let i = rows[k];
            let left = goes_left(i);
            rows[l] = i;
            right[r] = i;
            l += left as usize;
            r += !left as usize;
        }
        l
    }
    const CHUNK: usize = 65_536;
    scratch.clear();
    scratch.resize(rows.len(), 0);
    if rows.len() < 2 * CHUNK {
        let kept = sequential(rows, scratch, &goes_left);
        let n = rows.len();
        rows[kept..].copy_from_slice(&scratch[..n - kept]);
        return kept;
    }
    let kept: Vec<usize> = rows
        .par_chunks_mut(CHUNK)
        .zip(scratch.par_chunks_mut(CHUNK))
        .map(|(rows, right)| sequential(rows, right, &goes_left))
        .collect();
    // Each chunk's left rows close up to the front (never moving right, so
    // in chunk order nothing is overwritten before it moves), then every
    // chunk's right rows follow.
    let mut to = 0;
    for (c, &l) in kept.iter().enumerate() {
        rows.copy_within(c * CHUNK..c * CHUNK + l, to);
        to += l;
    }
    let total = to;
    for (c, &l) in kept.iter().enumerate() {
        let len = CHUNK.min(rows.len() - c * CHUNK);
        rows[to..to + len - l].copy_from_slice(&scratch[c * CHUNK..c * CHUNK + len - l]);
        to += len - l;
    }
    total
}

pub(crate) fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

pub(crate) fn softmax_in_place(row: &mut [f64]) {
    let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut sum = 0.0;
    for v in row.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    row.iter_mut().for_each(|v| *v /= sum);
}

impl Gbdt {
    /// Trains on a row-major `[rows, features]` matrix (NaN: missing) and
    /// targets (values; 0/1; class indices). `on_round` sees each round end
    /// and may stop training (see [`crate::Proceed`]).
    pub fn train<R: Proceed>(
        x: &[f64],
        rows: usize,
        features: usize,
        y: &[f64],
        objective: Objective,
        params: &GbdtParams,
        on_round: &mut impl FnMut(usize) -> R,
    ) -> Result<Gbdt> {
        Gbdt::train_with_validation(x, rows, features, y, objective, params, None, on_round)
    }

    /// [`Gbdt::train`], and with `early_stopping: Some((valid_x, valid_y,
    /// patience))` training stops once the validation loss has not improved
    /// for `patience` rounds; the model keeps the rounds up to the best one.
    #[allow(clippy::too_many_arguments)]
    pub fn train_with_validation<R: Proceed>(
        x: &[f64],
        rows: usize,
        features: usize,
        y: &[f64],
        objective: Objective,
        params: &GbdtParams,
        early_stopping: Option<(&[f64], &[f64], usize)>,
        on_round: &mut impl FnMut(usize) -> R,
    ) -> Result<Gbdt> {
        params.check()?;
        if let Some((vx, vy, patience)) = early_stopping
            && (patience == 0 || vy.is_empty() || vx.len() != vy.len() * features)
        {
            return Err(Error::Param("early stopping needs validation rows and a patience of at least 1".into()));
        }
        if rows == 0 || features == 0 || x.len() != rows * features || y.len() != rows {
            return Err(Error::Data(format!("{rows} rows of {features} features need as many targets")));
        }
        // Labels the objective can take: finite; 0/1 for logistic; class
        // codes 0..classes for softmax (anything else would index past the
        // class counts below).
        let check_labels = |labels: &[f64], what: &str| -> Result<()> {
            let bad = labels.iter().position(|&v| match objective {
                Objective::Squared => !v.is_finite(),
                Objective::Logistic => v != 0.0 && v != 1.0,
                Objective::Softmax { classes } => !(v >= 0.0 && v.fract() == 0.0 && (v as usize) < classes),
            });
            match bad {
                None => Ok(()),
                Some(i) => Err(Error::Data(format!(
                    "{what} {i}: target {} is not valid for {objective:?} (binary: 0 or 1; multiclass: a class code \
                     0..classes; regression: finite)",
                    labels[i]
                ))),
            }
        };
        check_labels(y, "row")?;
        if let Some((_, vy, _)) = early_stopping {
            check_labels(vy, "validation row")?;
        }
        let k = objective.outputs();
        let base: Vec<f64> = match objective {
            Objective::Squared => vec![y.iter().sum::<f64>() / rows as f64],
            Objective::Logistic => {
                let p = (y.iter().sum::<f64>() / rows as f64).clamp(1e-6, 1.0 - 1e-6);
                vec![(p / (1.0 - p)).ln()]
            }
            Objective::Softmax { classes } => {
                let mut counts = vec![0.0; classes];
                for &c in y {
                    counts[c as usize] += 1.0;
                }
                counts.iter().map(|c| ((c + 1.0) / (rows as f64 + classes as f64)).ln()).collect()
            }
        };
        let data = Binned::fit(x, rows, features, params.max_bins);
        let mut scores: Vec<f64> = (0..rows).flat_map(|_| base.iter().copied()).collect();
        let mut trees = Vec::with_capacity(params.rounds * k);
        let valid_rows = early_stopping.map_or(0, |(_, vy, _)| vy.len());
        let mut valid_scores: Vec<f64> = (0..valid_rows).flat_map(|_| base.iter().copied()).collect();
        // (best loss, rounds it took)
        let mut best = (f64::INFINITY, 0usize);
        let mut gh = vec![[0f32; 2]; rows];
        let mut work = Workspace::default();
        let mut probs = vec![0.0; rows * k];
        for round in 0..params.rounds {
            if let Objective::Softmax { .. } = objective {
                probs.copy_from_slice(&scores);
                probs.par_chunks_mut(k).for_each(softmax_in_place);
            }
            for output in 0..k {
                let pairs = gh.par_iter_mut().enumerate();
                match objective {
                    Objective::Squared => pairs.for_each(|(i, c)| {
                        let r = i * k;
                        *c = [(scores[r] - y[i]) as f32, 1.0];
                    }),
                    Objective::Logistic => pairs.for_each(|(i, c)| {
                        let p = sigmoid(scores[i]);
                        *c = [(p - y[i]) as f32, (p * (1.0 - p)).max(1e-16) as f32];
                    }),
                    Objective::Softmax { classes } => {
                        let factor = classes as f64 / (classes as f64 - 1.0);
                        pairs.for_each(|(i, c)| {
                            let p = probs[i * k + output];
                            let g = p - if y[i] as usize == output { 1.0 } else { 0.0 };
                            *c = [g as f32, (factor * p * (1.0 - p)).max(1e-16) as f32];
                        })
                    }
                }
                let grower = Grower { data: &data, params, gh: &gh, work: &mut work };
                trees.push(grower.grow(&mut scores, k, output));
            }
            if on_round(round + 1).stop() {
                return Err(Error::Cancelled);
            }
            if let Some((vx, vy, patience)) = early_stopping {
                let new_trees = &trees[round * k..];
                for (i, row) in vx.chunks(features).enumerate() {
                    for (j, tree) in new_trees.iter().enumerate() {
                        valid_scores[i * k + j] += tree.predict(row);
                    }
                }
                let loss = objective.loss(vy, &valid_scores);
                if loss < best.0 {
                    best = (loss, round + 1);
                } else if round + 1 - best.1 >= patience {
                    trees.truncate(best.1 * k);
                    break;
                }
            }
        }
        Ok(Gbdt { objective, features, base, trees })
    }

    /// Raw scores, row-major `[rows, outputs]`.
    pub fn predict_raw(&self, x: &[f64], rows: usize) -> Vec<f64> {
        let k = self.objective.outputs();
        let mut out = vec![0.0; rows * k];
        out.par_chunks_mut(k).zip(x.par_chunks(self.features)).for_each(|(o, row)| {
            o.copy_from_slice(&self.base);
            for (t, tree) in self.trees.iter().enumerate() {
                o[t % k] += tree.predict(row);
            }
        });
        out
    }

    /// Values (squared), P(class 1) (logistic), or class probabilities
    /// `[rows, classes]` (softmax).
    pub fn predict(&self, x: &[f64], rows: usize) -> Vec<f64> {
        let mut raw = self.predict_raw(x, rows);
        self.objective.link(&mut raw);
        raw
    }

    /// Total split gain per feature.
    pub fn importance_gain(&self) -> Vec<f64> {
        let mut gain = vec![0.0; self.features];
        for tree in &self.trees {
            for node in &tree.nodes {
                if let Node::Split { feature, gain: g, .. } = node {
                    gain[*feature as usize] += g;
                }
            }
        }
        gain
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tabular::metrics;
    use crate::tabular::testing::uniform;

    #[test]
    fn regression_learns_a_nonlinear_function_and_handles_missing_values() {
        let (rows, f) = (4000, 3);
        let mut x = uniform(rows * f, 1);
        let y: Vec<f64> = (0..rows)
            .map(|i| {
                let r = &x[i * f..i * f + f];
                10.0 * (r[0] > 0.5) as u8 as f64 + 5.0 * r[1] * r[1]
            })
            .collect();
        // A tenth of x1 missing.
        for i in (0..rows).step_by(10) {
            x[i * f + 1] = f64::NAN;
        }
        let params = GbdtParams { rounds: 200, max_leaves: 15, ..Default::default() };
        let mut rounds = 0;
        let model = Gbdt::train(&x, rows, f, &y, Objective::Squared, &params, &mut |r| rounds = r).unwrap();
        assert_eq!(rounds, 200);
        let p = model.predict(&x, rows);
        let rmse = metrics::rmse(&y, &p);
        assert!(rmse < 0.6, "rmse {rmse}");
        let imp = model.importance_gain();
        assert!(imp[0] > imp[2] && imp[1] > imp[2], "x2 is noise: {imp:?}");
        let json = serde_json::to_string(&model).unwrap();
        let again = serde_json::from_str::<Gbdt>(&json).unwrap().predict(&x, rows);
        assert!(again.iter().zip(&p).all(|(a, b)| (a - b).abs() < 1e-9), "the model file keeps the model");
    }

    #[test]
    fn logistic_and_softmax_separate_classes() {
        let (rows, f) = (3000, 2);
        let x = uniform(rows * f, 2);
        let binary: Vec<f64> = (0..rows).map(|i| (x[i * f] + x[i * f + 1] > 1.0) as u8 as f64).collect();
        let params = GbdtParams { rounds: 60, ..Default::default() };
        let m = Gbdt::train(&x, rows, f, &binary, Objective::Logistic, &params, &mut |_| {}).unwrap();
        let p = m.predict(&x, rows);
        assert!(metrics::auc(&binary, &p).unwrap() > 0.99);
        let three: Vec<f64> = (0..rows).map(|i| (x[i * f] * 3.0).floor().min(2.0)).collect();
        let m = Gbdt::train(&x, rows, f, &three, Objective::Softmax { classes: 3 }, &params, &mut |_| {}).unwrap();
        let probs = m.predict(&x, rows);
        assert!(probs.chunks(3).all(|r| (r.iter().sum::<f64>() - 1.0).abs() < 1e-9));
        let labels: Vec<f64> = probs
            .chunks(3)
            .map(|r| r.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map_or(0.0, |(c, _)| c as f64))
            .collect();
        assert!(metrics::accuracy(&three, &labels) > 0.97);
    }

    #[test]
    fn early_stopping_keeps_the_best_round() {
        let (rows, f) = (2000, 2);
        let x = uniform(rows * f, 3);
        // Pure noise: validation loss stops improving almost at once.
        let y: Vec<f64> = uniform(rows, 4).iter().map(|v| (*v > 0.5) as u8 as f64).collect();
        let (vx, vy) =
            (uniform(400 * f, 5), uniform(400, 6).iter().map(|v| (*v > 0.5) as u8 as f64).collect::<Vec<_>>());
        let params = GbdtParams { rounds: 300, ..Default::default() };
        let mut seen = 0;
        let m = Gbdt::train_with_validation(
            &x,
            rows,
            f,
            &y,
            Objective::Logistic,
            &params,
            Some((&vx, &vy, 10)),
            &mut |r| seen = r,
        )
        .unwrap();
        assert!(seen < 300, "stopped early, after {seen} rounds");
        assert_eq!(m.trees.len(), seen - 10, "kept the rounds up to the best one");
        let bad = Gbdt::train_with_validation(
            &x,
            rows,
            f,
            &y,
            Objective::Logistic,
            &params,
            Some((&vx, &[], 10)),
            &mut |_| {},
        );
        assert!(bad.is_err());
    }

    #[test]
    fn partition_keeps_each_side_in_order_in_parallel_too() {
        for n in [0usize, 1, 1000, 300_000] {
            let mut rows: Vec<u32> = (0..n as u32).collect();
            let flags = uniform(n, 7);
            let goes_left = |i: u32| flags[i as usize] < 0.3;
            let kept = partition(&mut rows, &mut Vec::new(), goes_left);
            let (left, right): (Vec<u32>, Vec<u32>) = (0..n as u32).partition(|&i| goes_left(i));
            assert_eq!(kept, left.len());
            assert_eq!(rows[..kept], left[..]);
            assert_eq!(rows[kept..], right[..]);
        }
    }

    #[test]
    fn row_and_column_histograms_agree() {
        let (rows, f) = (20_000, 5);
        let mut x = uniform(rows * f, 8);
        x.iter_mut().step_by(7).for_each(|v| *v = f64::NAN);
        let data = Binned::fit(&x, rows, f, 255);
        let gh: Vec<[f32; 2]> = uniform(rows * 2, 9).chunks(2).map(|c| [c[0] as f32 - 0.5, c[1] as f32]).collect();
        let mut by_column = vec![[0.0; 2]; f * STRIDE];
        fill_by_column(&data, &gh, &mut by_column, 3);
        let mut by_row = vec![[0.0; 2]; f * STRIDE];
        let all: Vec<u32> = (0..rows as u32).collect();
        let sums = fill_by_row(&data, &all, &gh, &mut by_row);
        for (a, b) in by_column.iter().zip(&by_row) {
            assert!((a[0] - b[0]).abs() < 1e-3 && (a[1] - b[1]).abs() < 1e-3, "{a:?} {b:?}");
        }
        let expected = sums_of(&gh);
        assert!((sums[0] - expected[0]).abs() < 1e-6 && (sums[1] - expected[1]).abs() < 1e-6);
        assert_eq!(sums[2], rows as f64);
        assert!(by_row[0][1] > 0.0, "bin 0 of feature 0 counts its missing values");
    }

    #[test]
    fn bad_parameters_and_shapes_are_refused() {
        let x = [0.0, 1.0];
        let bad = |p: GbdtParams| Gbdt::train(&x, 2, 1, &[0.0, 1.0], Objective::Squared, &p, &mut |_| {}).is_err();
        assert!(bad(GbdtParams { rounds: 0, ..Default::default() }));
        // Out-of-range labels are an error, not a panic.
        let x = vec![0.0, 1.0, 2.0, 3.0];
        let softmax = Objective::Softmax { classes: 2 };
        let err = Gbdt::train(&x, 4, 1, &[0.0, 1.0, 2.0, 1.0], softmax, &GbdtParams::default(), &mut |_| {});
        assert!(matches!(err, Err(Error::Data(m)) if m.contains("row 2")));
        assert!(
            Gbdt::train(&x, 4, 1, &[0.0, 0.5, 1.0, 1.0], Objective::Logistic, &GbdtParams::default(), &mut |_| {})
                .is_err()
        );
        assert!(
            Gbdt::train(&x, 4, 1, &[0.0, f64::NAN, 1.0, 1.0], Objective::Squared, &GbdtParams::default(), &mut |_| {})
                .is_err()
        );
        assert!(bad(GbdtParams { learning_rate: 0.0, ..Default::default() }));
        assert!(bad(GbdtParams { max_leaves: 1, ..Default::default() }));
        assert!(bad(GbdtParams { max_bins: 256, ..Default::default() }));
        assert!(Gbdt::train(&x, 2, 1, &[0.0], Objective::Squared, &GbdtParams::default(), &mut |_| {}).is_err());
    }
}
