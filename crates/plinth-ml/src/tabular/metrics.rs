//! Metrics of tabular models, named as they are logged (MLflow-safe):
//! binary `auc`, `logloss`, `accuracy`, `f1`; multiclass `accuracy`,
//! `logloss`, `macro_f1`; regression `rmse`, `mae`, `r2`.

/// Probabilities are clipped to [EPS, 1 - EPS] in log losses.
const EPS: f64 = 1e-15;

/// Area under the ROC curve of scores for labels 0/1; tied scores share
/// their average rank. `None` when one class is absent.
pub fn auc(y: &[f64], score: &[f64]) -> Option<f64> {
    let mut order: Vec<usize> = (0..y.len()).collect();
    order.sort_by(|&a, &b| score[a].total_cmp(&score[b]));
    let (mut rank_sum, mut i) = (0.0, 0);
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && score[order[j + 1]] == score[order[i]] {
            j += 1;
        }
        let avg_rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += order[i..=j].iter().filter(|&&k| y[k] > 0.5).count() as f64 * avg_rank;
        i = j + 1;
    }
    let pos = y.iter().filter(|&&v| v > 0.5).count() as f64;
    let neg = y.len() as f64 - pos;
    (pos > 0.0 && neg > 0.0).then(|| (rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg))
}

/// Binary log loss of P(class 1).
pub fn logloss_binary(y: &[f64], p: &[f64]) -> f64 {
    let sum: f64 = y
        .iter()
        .zip(p)
        .map(|(&t, &q)| {
            let q = q.clamp(EPS, 1.0 - EPS);
            -(t * q.ln() + (1.0 - t) * (1.0 - q).ln())
        })
        .sum();
    sum / y.len().max(1) as f64
}

/// Multiclass log loss; `p` row-major `[rows, classes]`.
pub fn logloss_multiclass(y: &[f64], p: &[f64], classes: usize) -> f64 {
    let sum: f64 = y.iter().zip(p.chunks_exact(classes)).map(|(&t, row)| -row[t as usize].clamp(EPS, 1.0).ln()).sum();
    sum / y.len().max(1) as f64
}

pub fn accuracy(y: &[f64], predicted: &[f64]) -> f64 {
    y.iter().zip(predicted).filter(|(a, b)| a == b).count() as f64 / y.len().max(1) as f64
}

/// F1 of class `positive` (0 when it is never predicted nor present).
pub fn f1(y: &[f64], predicted: &[f64], positive: f64) -> f64 {
    let (mut tp, mut fp, mut fn_) = (0.0, 0.0, 0.0);
    for (&t, &p) in y.iter().zip(predicted) {
        match (t == positive, p == positive) {
            (true, true) => tp += 1.0,
            (false, true) => fp += 1.0,
            (true, false) => fn_ += 1.0,
            (false, false) => {}
        }
    }
    if tp == 0.0 { 0.0 } else { 2.0 * tp / (2.0 * tp + fp + fn_) }
}

/// Unweighted mean of the per-class F1 over `classes` classes.
pub fn macro_f1(y: &[f64], predicted: &[f64], classes: usize) -> f64 {
    (0..classes).map(|c| f1(y, predicted, c as f64)).sum::<f64>() / classes.max(1) as f64
}

pub fn rmse(y: &[f64], predicted: &[f64]) -> f64 {
    (y.iter().zip(predicted).map(|(a, b)| (a - b).powi(2)).sum::<f64>() / y.len().max(1) as f64).sqrt()
}

pub fn mae(y: &[f64], predicted: &[f64]) -> f64 {
    y.iter().zip(predicted).map(|(a, b)| (a - b).abs()).sum::<f64>() / y.len().max(1) as f64
}

/// Coefficient of determination; `None` for a constant `y`.
pub fn r2(y: &[f64], predicted: &[f64]) -> Option<f64> {
    let mean = y.iter().sum::<f64>() / y.len().max(1) as f64;
    let total: f64 = y.iter().map(|v| (v - mean).powi(2)).sum();
    let residual: f64 = y.iter().zip(predicted).map(|(a, b)| (a - b).powi(2)).sum();
    (total > 0.0).then(|| 1.0 - residual / total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn auc_counts_ordered_pairs_and_ties_count_half() {
        assert_eq!(auc(&[0.0, 0.0, 1.0, 1.0], &[0.1, 0.4, 0.35, 0.8]), Some(0.75));
        assert_eq!(auc(&[0.0, 1.0], &[0.5, 0.5]), Some(0.5));
        assert_eq!(auc(&[1.0, 1.0], &[0.2, 0.3]), None);
    }

    #[test]
    fn classification_metrics_match_hand_counts() {
        let y = [1.0, 0.0, 1.0, 1.0];
        let p = [0.9, 0.2, 0.4, 0.6];
        let want = -((0.9f64).ln() + (0.8f64).ln() + (0.4f64).ln() + (0.6f64).ln()) / 4.0;
        assert!(close(logloss_binary(&y, &p), want));
        let labels = [1.0, 0.0, 0.0, 1.0];
        assert_eq!(accuracy(&y, &labels), 0.75);
        // tp 2, fp 0, fn 1 -> 4 / 5
        assert!(close(f1(&y, &labels, 1.0), 0.8));
        let y3 = [0.0, 1.0, 2.0, 2.0];
        let pred3 = [0.0, 2.0, 2.0, 1.0];
        // class 0: 1; class 1: 0; class 2: tp 1, fp 1, fn 1 -> 0.5
        assert!(close(macro_f1(&y3, &pred3, 3), 0.5));
        let probs = [0.7, 0.2, 0.1, 0.1, 0.8, 0.1];
        assert!(close(logloss_multiclass(&[0.0, 1.0], &probs, 3), -((0.7f64).ln() + (0.8f64).ln()) / 2.0));
    }

    #[test]
    fn regression_metrics() {
        let y = [1.0, 2.0, 3.0, 4.0];
        let p = [1.0, 2.0, 4.0, 2.0];
        assert!(close(rmse(&y, &p), (5.0f64 / 4.0).sqrt()));
        assert!(close(mae(&y, &p), 0.75));
        assert!(close(r2(&y, &p).unwrap(), 1.0 - 5.0 / 5.0));
        assert_eq!(r2(&[2.0, 2.0], &[1.0, 3.0]), None);
    }
}
