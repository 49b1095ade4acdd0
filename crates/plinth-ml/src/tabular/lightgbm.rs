//! Imports a model trained by LightGBM from its text format (what
//! `Booster.save_model` writes and `mlflow.lightgbm.log_model` logs as
//! `model.lgb`) into Plinth's own trees, so it serves natively with the
//! same predictions: thresholds and leaf values are kept as the file's
//! doubles, each split keeps LightGBM's missing-value rule, and the trees
//! add up in LightGBM's order.
//!
//! Taken: objectives whose prediction is the raw sum (the `regression`
//! family: l2, l1, huber, fair, quantile, mape), `binary` and
//! `cross_entropy` (sigmoid), `multiclass` (softmax); numerical splits;
//! random-forest mode (averaged trees). Refused, with the reason: other
//! objectives (poisson, gamma, tweedie, multiclassova, ranking), categorical
//! splits and linear trees.

use std::collections::HashMap;

use super::gbdt::{Gbdt, Node, Objective, Tree};
use super::model::{TabularFile, TabularModel};
use super::prepare::{Feature, Schema, Task};
use crate::{Error, Result};

fn bad(m: impl std::fmt::Display) -> Error {
    Error::Data(format!("LightGBM model: {m}"))
}

/// `key=value` lines of one block (the header or a tree).
fn fields(block: &str) -> HashMap<&str, &str> {
    block.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.trim(), v.trim())).collect()
}

fn numbers<T: std::str::FromStr>(f: &HashMap<&str, &str>, key: &str, tree: usize, n: usize) -> Result<Vec<T>> {
    let raw = f.get(key).ok_or_else(|| bad(format!("tree {tree} has no '{key}'")))?;
    let v: Vec<T> = raw
        .split_whitespace()
        .map(|x| x.parse::<T>().map_err(|_| bad(format!("tree {tree}: '{key}' has '{x}', not a number"))))
        .collect::<Result<_>>()?;
    if v.len() != n {
        return Err(bad(format!("tree {tree}: '{key}' has {} values, expected {n}", v.len())));
    }
    Ok(v)
}

/// Parses a LightGBM text model.
pub fn parse(text: &str) -> Result<TabularFile> {
    let text = text.split("end of trees").next().unwrap_or_default();
    let mut blocks = text.split("\nTree=");
    let header = fields(blocks.next().unwrap_or_default());
    if !header.contains_key("max_feature_idx") {
        return Err(bad("not a LightGBM text model (no 'max_feature_idx'; save it with Booster.save_model)"));
    }
    let features: usize = header["max_feature_idx"].parse::<usize>().map_err(|_| bad("bad max_feature_idx"))? + 1;
    let per_round: usize =
        header.get("num_tree_per_iteration").unwrap_or(&"1").parse().map_err(|_| bad("bad num_tree_per_iteration"))?;
    let objective_line = header.get("objective").copied().unwrap_or("regression");
    let mut words = objective_line.split_whitespace();
    let name = words.next().unwrap_or("regression");
    let option = |key: &str| -> Option<f64> {
        objective_line.split_whitespace().find_map(|w| w.strip_prefix(key)?.strip_prefix(':')?.parse().ok())
    };
    let (objective, task, scale) = match name {
        "regression" | "regression_l2" | "l2" | "mean_squared_error" | "mse" | "regression_l1" | "l1" | "huber"
        | "fair" | "quantile" | "mape" => (Objective::Squared, Task::Regression, 1.0),
        // P = 1 / (1 + exp(-sigmoid * raw)): the factor goes into the leaves.
        "binary" => (Objective::Logistic, Task::Binary, option("sigmoid").unwrap_or(1.0)),
        "cross_entropy" | "xentropy" => (Objective::Logistic, Task::Binary, 1.0),
        "multiclass" | "softmax" => {
            let classes = option("num_class").unwrap_or(per_round as f64) as usize;
            if classes < 2 || classes != per_round {
                return Err(bad(format!("multiclass with {classes} classes but {per_round} trees per round")));
            }
            (Objective::Softmax { classes }, Task::Multiclass, 1.0)
        }
        other => {
            return Err(bad(format!(
                "objective '{other}' is not served natively (Plinth takes regression, binary, cross_entropy and \
                 multiclass); export it to ONNX instead"
            )));
        }
    };
    if objective.outputs() != per_round {
        return Err(bad(format!("objective '{name}' with {per_round} trees per round")));
    }
    let names: Vec<String> = match header.get("feature_names") {
        Some(n) => n.split_whitespace().map(str::to_string).collect(),
        None => (0..features).map(|i| format!("Column_{i}")).collect(),
    };
    if names.len() != features {
        return Err(bad(format!("{} feature names for {features} features", names.len())));
    }
    let mut trees = Vec::new();
    for (t, block) in blocks.enumerate() {
        trees.push(tree(t, &fields(block), features, scale)?);
    }
    if trees.is_empty() || trees.len() % per_round != 0 {
        return Err(bad(format!("{} trees for {per_round} outputs per round", trees.len())));
    }
    if header.contains_key("average_output") {
        let rounds = (trees.len() / per_round) as f64;
        for tree in &mut trees {
            for node in &mut tree.nodes {
                if let Node::Leaf { value } = node {
                    *value /= rounds;
                }
            }
        }
    }
    let classes = match task {
        Task::Regression => Vec::new(),
        _ => (0..objective.outputs().max(2)).map(|c| c.to_string()).collect(),
    };
    let schema = Schema {
        task,
        target: "label".into(),
        features: names.into_iter().map(|name| Feature::Numeric { name }).collect(),
        classes,
    };
    let model = Gbdt { objective, features, base: vec![0.0; objective.outputs()], trees };
    Ok(TabularFile { schema, model: TabularModel::Gbdt(model) })
}

/// One tree: LightGBM numbers internal nodes `0..leaves-1` and leaves by
/// `!child`; here leaves follow the internal nodes.
fn tree(t: usize, f: &HashMap<&str, &str>, features: usize, scale: f64) -> Result<Tree> {
    let leaves: usize =
        f.get("num_leaves").and_then(|v| v.parse().ok()).ok_or_else(|| bad(format!("tree {t}: no num_leaves")))?;
    if leaves == 0 {
        return Err(bad(format!("tree {t} has no leaves")));
    }
    if f.get("num_cat").is_some_and(|v| *v != "0") {
        return Err(bad(format!(
            "tree {t} has categorical splits, which Plinth does not import; export to ONNX instead"
        )));
    }
    if f.get("is_linear").is_some_and(|v| *v != "0") {
        return Err(bad(format!("tree {t} is a linear tree, which Plinth does not import")));
    }
    let values: Vec<f64> = numbers(f, "leaf_value", t, leaves)?;
    let internal = leaves - 1;
    let mut nodes = Vec::with_capacity(2 * leaves - 1);
    if internal > 0 {
        let feature: Vec<usize> = numbers(f, "split_feature", t, internal)?;
        let threshold: Vec<f64> = numbers(f, "threshold", t, internal)?;
        let decision: Vec<u8> = numbers(f, "decision_type", t, internal)?;
        let left: Vec<i64> = numbers(f, "left_child", t, internal)?;
        let right: Vec<i64> = numbers(f, "right_child", t, internal)?;
        let gain: Vec<f64> = numbers(f, "split_gain", t, internal).unwrap_or_else(|_| vec![0.0; internal]);
        let node_of = |child: i64| -> Result<u32> {
            let at = if child >= 0 { child as usize } else { internal + (!child) as usize };
            if at >= internal + leaves || at == 0 {
                return Err(bad(format!("tree {t}: child {child} is outside the tree")));
            }
            Ok(at as u32)
        };
        for i in 0..internal {
            if feature[i] >= features {
                return Err(bad(format!("tree {t}: split on feature {} of {features}", feature[i])));
            }
            if decision[i] & 1 == 1 {
                return Err(bad(format!("tree {t} has a categorical split; export to ONNX instead")));
            }
            let default_left = decision[i] & 2 != 0;
            let (missing_left, zero_missing) = match (decision[i] >> 2) & 3 {
                // None: a missing value is compared as 0.
                0 => (0.0 <= threshold[i], false),
                1 => (default_left, true),
                _ => (default_left, false),
            };
            nodes.push(Node::Split {
                feature: feature[i] as u32,
                threshold: threshold[i],
                missing_left,
                left: node_of(left[i])?,
                right: node_of(right[i])?,
                gain: gain[i],
                zero_missing,
            });
        }
    }
    nodes.extend(values.iter().map(|v| Node::Leaf { value: v * scale }));
    // Every node reached once from the root: no cycles, nothing orphaned.
    let mut seen = vec![false; nodes.len()];
    let mut stack = vec![0usize];
    while let Some(at) = stack.pop() {
        if std::mem::replace(&mut seen[at], true) {
            return Err(bad(format!("tree {t}: node {at} is reached twice")));
        }
        if let Node::Split { left, right, .. } = nodes[at] {
            stack.extend([left as usize, right as usize]);
        }
    }
    if seen.iter().any(|s| !s) {
        return Err(bad(format!("tree {t}: some nodes are never reached")));
    }
    Ok(Tree { nodes })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two rounds of a binary model on 2 features: a split with NaN going
    /// right, one with missing_type None, one with Zero.
    const MODEL: &str = "tree\nversion=v4\nnum_class=1\nnum_tree_per_iteration=1\nlabel_index=0\n\
        max_feature_idx=1\nobjective=binary sigmoid:1\nfeature_names=a b\n\n\
        Tree=0\nnum_leaves=3\nnum_cat=0\nsplit_feature=0 1\nsplit_gain=10 5\nthreshold=0.5 1.5\n\
        decision_type=8 0\nleft_child=1 -1\nright_child=-3 -2\nleaf_value=0.1 0.2 -0.3\nshrinkage=1\n\n\n\
        Tree=1\nnum_leaves=2\nnum_cat=0\nsplit_feature=1\nsplit_gain=3\nthreshold=-1\ndecision_type=6\n\
        left_child=-1\nright_child=-2\nleaf_value=0.05 -0.05\nshrinkage=0.1\n\n\nend of trees\n\nparameters:\n";

    #[test]
    fn imports_trees_with_lightgbm_missing_rules() {
        let file = parse(MODEL).unwrap();
        assert_eq!(file.schema.task, Task::Binary);
        assert_eq!(file.schema.features.iter().map(Feature::name).collect::<Vec<_>>(), ["a", "b"]);
        let TabularModel::Gbdt(m) = &file.model else { panic!("trees") };
        let raw = |a: f64, b: f64| m.predict_raw(&[a, b], 1)[0];
        // a <= 0.5 -> node 1: b <= 1.5 -> leaf 0 (0.1), else leaf 1 (0.2); a > 0.5 -> leaf 2.
        // Tree 1: missing type Zero, default left: b = 0 or NaN -> 0.05; b <= -1 -> 0.05; else -0.05.
        assert!((raw(0.0, 1.0) - (0.1 - 0.05)).abs() < 1e-15);
        assert!((raw(0.0, 2.0) - (0.2 - 0.05)).abs() < 1e-15);
        assert!((raw(0.0, 0.0) - (0.1 + 0.05)).abs() < 1e-15, "zero is missing in tree 1");
        // NaN in a: missing type NaN (8 = 2 << 2), default right -> leaf 2.
        assert!((raw(f64::NAN, -2.0) - (-0.3 + 0.05)).abs() < 1e-15);
        // NaN in b, tree 0 node 1 has missing type None: compared as 0 <= 1.5 -> left.
        assert!((raw(0.0, f64::NAN) - (0.1 + 0.05)).abs() < 1e-15);
    }

    #[test]
    fn unsupported_and_broken_models_are_refused() {
        let refused = |text: &str, expected: &str| {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(expected), "{e}");
        };
        refused("hello", "not a LightGBM text model");
        refused(&MODEL.replace("binary sigmoid:1", "poisson"), "objective 'poisson'");
        refused(&MODEL.replace("decision_type=8 0", "decision_type=9 0"), "categorical");
        refused(&MODEL.replace("left_child=1 -1", "left_child=0 -1"), "outside the tree");
        refused(&MODEL.replace("left_child=1 -1", "left_child=-3 -1"), "reached twice");
        refused(&MODEL.replace("leaf_value=0.1 0.2 -0.3", "leaf_value=0.1 0.2"), "expected 3");
        refused(&MODEL.replace("threshold=0.5 1.5", "threshold=0.5 x"), "not a number");
    }
}
