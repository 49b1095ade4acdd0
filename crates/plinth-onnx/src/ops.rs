//! ONNX-ML operators that tract does not ship, registered on top of its own:
//!
//! - `TreeEnsembleRegressor` (what skl2onnx and onnxmltools emit for
//!   gradient-boosted and random-forest regressors), evaluated by tract's
//!   own tree-ensemble kernel (the one its `TreeEnsembleClassifier` uses),
//!   plus `base_values` and the post transform.
//! - `TreeEnsembleClassifier`, over tract's own, whose label is wrong for
//!   binary models (see [`tree_classifier`]).
//! - `ZipMap`, which turns class probabilities into a sequence of maps, a
//!   type the Open Inference Protocol has no tensor for: served as the
//!   probability matrix itself (`[n, classes]`, columns in class order).

use crate::forest::{Aggregate, Forest, ForestOp, Mode, Node};
use tract_onnx::model::{OnnxOpRegister, ParsingContext};
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_core;
use tract_onnx::tract_hir::internal::*;

pub fn register(reg: &mut OnnxOpRegister) {
    reg.insert("TreeEnsembleClassifier", tree_classifier);
    reg.insert("TreeEnsembleRegressor", tree_regressor);
    reg.insert("ZipMap", zipmap);
}

fn zipmap(_ctx: &ParsingContext, _node: &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    Ok((expand(ZipMapAsMatrix), vec![]))
}

#[derive(Debug, Clone, Hash, PartialEq, Eq)]
struct ZipMapAsMatrix;

impl Expansion for ZipMapAsMatrix {
    fn name(&self) -> StaticName {
        "ZipMapAsMatrix".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        check_output_arity(outputs, 1)?;
        s.equals(&outputs[0].datum_type, &inputs[0].datum_type)?;
        s.equals(&outputs[0].shape, &inputs[0].shape)?;
        Ok(())
    }

    fn wire(&self, _prefix: &str, _model: &mut TypedModel, inputs: &[OutletId]) -> TractResult<TVec<OutletId>> {
        Ok(inputs.into())
    }
}

fn mode(s: &str) -> TractResult<Mode> {
    Ok(match s {
        "LEAF" => Mode::Leaf,
        "BRANCH_LEQ" => Mode::Leq,
        "BRANCH_LT" => Mode::Lt,
        "BRANCH_GTE" => Mode::Geq,
        "BRANCH_GT" => Mode::Gt,
        "BRANCH_EQ" => Mode::Eq,
        "BRANCH_NEQ" => Mode::Neq,
        other => bail!("unsupported node mode {other}"),
    })
}

/// One attribute per tree node (or per leaf weight), all of one length.
fn per_node<'a, T: tract_onnx::pb_helpers::AttrTVecType<'a>>(
    node: &'a NodeProto,
    attr: &str,
    n: usize,
) -> TractResult<Vec<T>> {
    let v: Vec<T> = node.get_attr_vec(attr)?;
    node.expect_attr(attr, v.len() == n, || format!("{n} values, got {}", v.len()))?;
    Ok(v)
}

/// The trees of a `TreeEnsemble*` node: each tree's nodes in id order from
/// its root's row on (ids number a tree's nodes 0..n), the weights of each
/// leaf (`{leaf}_*` attributes: `target` or `class`) side by side.
fn ensemble(node: &NodeProto, leaf: &str, n_targets: usize) -> TractResult<Forest> {
    if node.get_attr_opt_vec::<f32>("nodes_values")?.is_none()
        && node.get_attr_opt::<&tract_onnx::pb::TensorProto>("nodes_values_as_tensor")?.is_some()
    {
        bail!("double-precision tree attributes (*_as_tensor) are not supported; export with float inputs");
    }
    let n = node.get_attr_slice::<i64>("nodes_featureids")?.len();
    node.expect_attr("nodes_featureids", n > 0, "at least one node")?;
    let tree_ids: Vec<usize> = per_node(node, "nodes_treeids", n)?;
    let node_ids: Vec<usize> = per_node(node, "nodes_nodeids", n)?;
    let features: Vec<usize> = per_node(node, "nodes_featureids", n)?;
    let trues: Vec<usize> = per_node(node, "nodes_truenodeids", n)?;
    let falses: Vec<usize> = per_node(node, "nodes_falsenodeids", n)?;
    let values: Vec<f32> = per_node(node, "nodes_values", n)?;
    let modes: Vec<&str> = per_node(node, "nodes_modes", n)?;
    let nan_true: Vec<bool> = match node.get_attr_opt_vec::<bool>("nodes_missing_value_tracks_true")? {
        Some(v) if !v.is_empty() => {
            node.expect_attr("nodes_missing_value_tracks_true", v.len() == n, "one per node")?;
            v
        }
        _ => vec![false; n],
    };
    let attr = |name: &str| format!("{leaf}_{name}");
    let m = node.get_attr_slice::<i64>(&attr("ids"))?.len();
    node.expect_attr(&attr("ids"), m > 0, "at least one leaf weight")?;
    let leaf_trees: Vec<usize> = per_node(node, &attr("treeids"), m)?;
    let leaf_nodes: Vec<usize> = per_node(node, &attr("nodeids"), m)?;
    let leaf_targets: Vec<usize> = per_node(node, &attr("ids"), m)?;
    let weights: Vec<f32> = per_node(node, &attr("weights"), m)?;

    let n_trees = tree_ids.iter().max().map_or(0, |m| m + 1);
    // Each tree's first row, from the tree sizes (largest node id + 1).
    let mut size = vec![0usize; n_trees];
    for (&t, &id) in tree_ids.iter().zip(&node_ids) {
        size[t] = size[t].max(id + 1);
    }
    let mut start = Vec::with_capacity(n_trees);
    let mut total = 0usize;
    for s in &size {
        start.push(total);
        total += s;
    }
    if total != n {
        bail!("tree node ids must number each tree's nodes 0..n without gaps");
    }
    let mut weights_of: Vec<Vec<(u32, f32)>> = vec![Vec::new(); n];
    for i in 0..m {
        let (t, id) = (leaf_trees[i], leaf_nodes[i]);
        if t >= n_trees || id >= size[t] {
            bail!("leaf weight {i} names node {id} of tree {t}, which does not exist");
        }
        if leaf_targets[i] >= n_targets {
            bail!("leaf {leaf} id {} is not below the number of {leaf}s, {n_targets}", leaf_targets[i]);
        }
        weights_of[start[t] + id].push((leaf_targets[i] as u32, weights[i]));
    }
    let mut rows: Vec<Option<Node>> = vec![None; n];
    let mut flat = Vec::with_capacity(m);
    for i in 0..n {
        let (t, row) = (tree_ids[i], start[tree_ids[i]] + node_ids[i]);
        if rows[row].is_some() {
            bail!("node {} of tree {t} is defined twice", node_ids[i]);
        }
        let mode = mode(modes[i])?;
        rows[row] = Some(if mode == Mode::Leaf {
            let first = flat.len() as u32;
            flat.extend_from_slice(&weights_of[row]);
            Node { feature: 0, threshold: 0.0, yes: first, no: flat.len() as u32, mode, nan_yes: false }
        } else {
            if trues[i] >= size[t] || falses[i] >= size[t] {
                bail!("node {} of tree {t} branches to a node outside the tree", node_ids[i]);
            }
            Node {
                feature: features[i] as u32,
                threshold: values[i],
                yes: (start[t] + trues[i]) as u32,
                no: (start[t] + falses[i]) as u32,
                mode,
                nan_yes: nan_true[i],
            }
        });
    }
    let aggregate = match node.get_attr_opt::<&str>("aggregate_function")?.unwrap_or("SUM") {
        "SUM" => Aggregate::Sum,
        "AVERAGE" => Aggregate::Average,
        "MIN" => Aggregate::Min,
        "MAX" => Aggregate::Max,
        other => bail!("unsupported aggregate_function {other}"),
    };
    let nodes = rows.into_iter().collect::<Option<Vec<Node>>>().context("a tree node is missing")?;
    let roots = start.iter().map(|&s| s as u32).collect();
    Forest::new(nodes, roots, flat, n_targets, aggregate)
}

fn tree_regressor(_ctx: &ParsingContext, node: &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let n_targets: usize = node.get_attr_opt("n_targets")?.unwrap_or(1);
    node.expect_attr("n_targets", n_targets > 0, "at least one target")?;
    let base_values: Option<Vec<f32>> = node.get_attr_opt_vec("base_values")?.filter(|v: &Vec<f32>| !v.is_empty());
    if let Some(b) = &base_values {
        node.expect_attr("base_values", b.len() == n_targets, "one value per target")?;
    }
    let post_transform = post_transform(node)?;
    Ok((
        expand(TreeEnsembleRegressor {
            ensemble: Arc::new(ensemble(node, "target", n_targets)?),
            base_values,
            post_transform,
        }),
        vec![],
    ))
}

fn post_transform(node: &NodeProto) -> TractResult<PostTransform> {
    Ok(match node.get_attr_opt::<&str>("post_transform")?.unwrap_or("NONE") {
        "NONE" => PostTransform::None,
        "LOGISTIC" => PostTransform::Logistic,
        "SOFTMAX" => PostTransform::Softmax,
        other => bail!("unsupported post_transform {other}"),
    })
}

#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
enum PostTransform {
    None,
    Logistic,
    Softmax,
}

#[derive(Debug, Clone, PartialEq)]
struct TreeEnsembleRegressor {
    ensemble: Arc<Forest>,
    base_values: Option<Vec<f32>>,
    post_transform: PostTransform,
}

impl Expansion for TreeEnsembleRegressor {
    fn name(&self) -> StaticName {
        "TreeEnsembleRegressor".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        check_output_arity(outputs, 1)?;
        s.equals(&outputs[0].datum_type, DatumType::F32)?;
        s.equals(&outputs[0].rank, 2)?;
        s.equals(&outputs[0].shape[0], &inputs[0].shape[0])?;
        s.equals(&outputs[0].shape[1], self.ensemble.n_targets().to_dim())?;
        Ok(())
    }

    fn wire(&self, prefix: &str, model: &mut TypedModel, inputs: &[OutletId]) -> TractResult<TVec<OutletId>> {
        Ok(tvec![scores(prefix, model, inputs[0], &self.ensemble, &self.base_values, self.post_transform)?])
    }
}

/// Summed (or averaged...) leaf weights per target or class, plus the base
/// values, through the post transform: `[n, targets]`.
fn scores(
    prefix: &str,
    model: &mut TypedModel,
    input: OutletId,
    ensemble: &Arc<Forest>,
    base_values: &Option<Vec<f32>>,
    post: PostTransform,
) -> TractResult<OutletId> {
    let mut y = model.wire_node(format!("{prefix}.trees"), ForestOp { forest: ensemble.clone() }, &[input])?;
    if let Some(base) = base_values {
        let base = model.add_const(format!("{prefix}.base"), tensor1(base).into_shape(&[1, base.len()])?)?;
        y = model.wire_node(format!("{prefix}.add_base"), tract_core::ops::math::add(), &[y[0], base])?;
    }
    match post {
        PostTransform::None => {}
        PostTransform::Logistic => {
            y = model.wire_node(format!("{prefix}.logistic"), tract_core::ops::nn::sigmoid(), &y)?;
        }
        PostTransform::Softmax => {
            y = tract_onnx::tract_hir::ops::nn::LayerSoftmax::new(1, false).wire(
                &format!("{prefix}.softmax"),
                model,
                &y,
            )?;
        }
    }
    Ok(y[0])
}

/// `TreeEnsembleClassifier`, registered over tract's own: tract picks the
/// label of a binary model (leaf weights on class 0 only, the layout
/// LightGBM and scikit-learn's boosting export) from the raw one-column
/// score against an implicit zero column, which inverts it; here the label
/// is the argmax of the probabilities as returned, `[1 - p, p]`.
fn tree_classifier(_ctx: &ParsingContext, node: &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let labels: Arc<Tensor> = match (
        node.get_attr_opt_slice::<i64>("classlabels_int64s")?,
        node.get_attr_opt_tvec::<&str>("classlabels_strings")?,
    ) {
        (Some(ints), None) => rctensor1(ints),
        (None, Some(strs)) => rctensor1(&strs.iter().map(|s| s.to_string()).collect::<Vec<_>>()),
        _ => bail!("exactly one of classlabels_int64s and classlabels_strings must be set"),
    };
    let n_classes = labels.len();
    node.expect_attr("classlabels", n_classes > 0, "at least one class")?;
    let ensemble = Arc::new(ensemble(node, "class", n_classes)?);
    let binary = n_classes == 2 && node.get_attr_vec::<i64>("class_ids")?.iter().all(|&c| c == 0);
    let base_values: Option<Vec<f32>> = node.get_attr_opt_vec("base_values")?.filter(|v: &Vec<f32>| !v.is_empty());
    if let Some(b) = &base_values {
        node.expect_attr("base_values", b.len() == n_classes || (binary && b.len() == 1), "one value per class")?;
    }
    let base_values = match base_values {
        // A binary model may give its one base value alone.
        Some(b) if b.len() == 1 && n_classes == 2 => Some(vec![b[0], 0.0]),
        other => other,
    };
    Ok((
        expand(TreeEnsembleClassifier { ensemble, labels, base_values, post_transform: post_transform(node)?, binary }),
        vec![],
    ))
}

#[derive(Debug, Clone, PartialEq)]
struct TreeEnsembleClassifier {
    ensemble: Arc<Forest>,
    labels: Arc<Tensor>,
    base_values: Option<Vec<f32>>,
    post_transform: PostTransform,
    /// Scores in column 0 only: the probability of the second class.
    binary: bool,
}

impl Expansion for TreeEnsembleClassifier {
    fn name(&self) -> StaticName {
        "TreeEnsembleClassifier".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        check_output_arity(outputs, 2)?;
        s.equals(&outputs[0].datum_type, self.labels.datum_type())?;
        s.equals(&outputs[0].rank, 1)?;
        s.equals(&outputs[0].shape[0], &inputs[0].shape[0])?;
        s.equals(&outputs[1].datum_type, DatumType::F32)?;
        s.equals(&outputs[1].rank, 2)?;
        s.equals(&outputs[1].shape[0], &inputs[0].shape[0])?;
        s.equals(&outputs[1].shape[1], self.labels.len().to_dim())?;
        Ok(())
    }

    fn wire(&self, prefix: &str, model: &mut TypedModel, inputs: &[OutletId]) -> TractResult<TVec<OutletId>> {
        use tract_core::ops::array::{Slice, TypedConcat};
        use tract_core::ops::nn::{Reduce, Reducer};
        let mut probs = scores(prefix, model, inputs[0], &self.ensemble, &self.base_values, self.post_transform)?;
        if self.binary {
            let p = model.wire_node(format!("{prefix}.positive"), Slice::new(1, 0, 1), &[probs])?[0];
            let one = model.add_const(format!("{prefix}.one"), rctensor2(&[[1f32]]))?;
            let q = model.wire_node(format!("{prefix}.negative"), tract_core::ops::math::sub(), &[one, p])?[0];
            probs = model.wire_node(format!("{prefix}.both"), TypedConcat::new(1), &[q, p])?[0];
        }
        let best =
            model.wire_node(format!("{prefix}.argmax"), Reduce::new(tvec!(1), Reducer::ArgMax(false)), &[probs])?;
        let best = model.wire_node(format!("{prefix}.squeeze"), tract_core::ops::change_axes::AxisOp::Rm(1), &best)?;
        let best = model.wire_node(format!("{prefix}.index"), tract_core::ops::cast::cast(i32::datum_type()), &best)?;
        let fallback = Tensor::zero_dt(self.labels.datum_type(), &[])?.into_arc_tensor();
        let label = model.wire_node(
            format!("{prefix}.label"),
            tract_onnx_opl::ml::DirectLookup::new(self.labels.clone(), fallback)?,
            &best,
        )?[0];
        Ok(tvec![label, probs])
    }

    fn nboutputs(&self) -> TractResult<usize> {
        Ok(2)
    }
}
