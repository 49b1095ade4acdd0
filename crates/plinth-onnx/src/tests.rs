//! Models built here as ONNX protobufs, so each operator's arithmetic is
//! checked against values worked out by hand.

use prost::Message;
use tract_onnx::pb::attribute_proto::AttributeType;
use tract_onnx::pb::tensor_shape_proto::{Dimension, dimension};
use tract_onnx::pb::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorShapeProto, TypeProto, ValueInfoProto,
    tensor_proto, type_proto,
};

use super::*;

fn attr(name: &str) -> AttributeProto {
    AttributeProto { name: name.into(), ..Default::default() }
}
fn ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto { r#type: AttributeType::Ints as i32, ints: v.to_vec(), ..attr(name) }
}
fn int(name: &str, v: i64) -> AttributeProto {
    AttributeProto { r#type: AttributeType::Int as i32, i: v, ..attr(name) }
}
fn floats(name: &str, v: &[f32]) -> AttributeProto {
    AttributeProto { r#type: AttributeType::Floats as i32, floats: v.to_vec(), ..attr(name) }
}
fn string(name: &str, v: &str) -> AttributeProto {
    AttributeProto { r#type: AttributeType::String as i32, s: v.as_bytes().to_vec(), ..attr(name) }
}
fn strings(name: &str, v: &[&str]) -> AttributeProto {
    AttributeProto {
        r#type: AttributeType::Strings as i32,
        strings: v.iter().map(|s| s.as_bytes().to_vec()).collect(),
        ..attr(name)
    }
}

fn node(op: &str, domain: &str, inputs: &[&str], outputs: &[&str], attribute: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        op_type: op.into(),
        domain: domain.into(),
        name: format!("{op}_{}", outputs[0]),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        attribute,
        ..Default::default()
    }
}

/// `dims`: `Some(n)` fixed, `None` unnamed (any size).
fn tensor(name: &str, elem: tensor_proto::DataType, dims: &[Option<i64>]) -> ValueInfoProto {
    let dim =
        dims.iter().map(|d| Dimension { value: d.map(dimension::Value::DimValue), ..Default::default() }).collect();
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: elem as i32,
                shape: Some(TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn model(nodes: Vec<NodeProto>, inputs: Vec<ValueInfoProto>, outputs: Vec<ValueInfoProto>) -> Vec<u8> {
    ModelProto {
        ir_version: 8,
        producer_name: "plinth-tests".into(),
        opset_import: vec![
            OperatorSetIdProto { domain: String::new(), version: 17 },
            OperatorSetIdProto { domain: "ai.onnx.ml".into(), version: 3 },
        ],
        graph: Some(GraphProto { name: "g".into(), node: nodes, input: inputs, output: outputs, ..Default::default() }),
        ..Default::default()
    }
    .encode_to_vec()
}

use tensor_proto::DataType as T;

/// Two stumps on two features: tree 0 splits x0 <= 0.5 (1.0 | 2.0), tree 1
/// splits x1 < 10 (-0.5 | 0.25, NaN goes left); base value 100.
fn regressor(post: &str) -> Vec<u8> {
    let attrs = vec![
        int("n_targets", 1),
        ints("nodes_treeids", &[0, 0, 0, 1, 1, 1]),
        ints("nodes_nodeids", &[0, 1, 2, 0, 1, 2]),
        ints("nodes_featureids", &[0, 0, 0, 1, 0, 0]),
        floats("nodes_values", &[0.5, 0.0, 0.0, 10.0, 0.0, 0.0]),
        strings("nodes_modes", &["BRANCH_LEQ", "LEAF", "LEAF", "BRANCH_LT", "LEAF", "LEAF"]),
        ints("nodes_truenodeids", &[1, 0, 0, 1, 0, 0]),
        ints("nodes_falsenodeids", &[2, 0, 0, 2, 0, 0]),
        ints("nodes_missing_value_tracks_true", &[0, 0, 0, 1, 0, 0]),
        ints("target_treeids", &[0, 0, 1, 1]),
        ints("target_nodeids", &[1, 2, 1, 2]),
        ints("target_ids", &[0, 0, 0, 0]),
        floats("target_weights", &[1.0, 2.0, -0.5, 0.25]),
        floats("base_values", &[100.0]),
        string("post_transform", post),
    ];
    model(
        vec![node("TreeEnsembleRegressor", "ai.onnx.ml", &["X"], &["variable"], attrs)],
        vec![tensor("X", T::Float, &[None, Some(2)])],
        vec![tensor("variable", T::Float, &[None, Some(1)])],
    )
}

fn f32s(rows: &[[f32; 2]]) -> Array {
    Array {
        name: "X".into(),
        datatype: DataType::F32,
        shape: vec![rows.len(), 2],
        values: Values::F32(rows.iter().flatten().copied().collect()),
    }
}

fn out_f32(a: &Array) -> &[f32] {
    match &a.values {
        Values::F32(v) => v,
        other => panic!("expected FP32, got {other:?}"),
    }
}

#[test]
fn tree_ensemble_regressor_sums_leaves_and_base_value() {
    let m = OnnxModel::load(&regressor("NONE")).unwrap();
    assert_eq!(m.inputs[0].oip_shape(), vec![-1, 2]);
    assert_eq!(m.outputs[0].datatype, DataType::F32);
    assert_eq!(m.outputs[0].oip_shape(), vec![-1, 1]);
    let out = m.run(&[f32s(&[[0.5, 9.0], [0.6, 10.0], [0.0, f32::NAN], [f32::NAN, 3.0]])]).unwrap();
    assert_eq!(out[0].shape, vec![4, 1]);
    // NaN in x0: the default (false) branch.
    assert_eq!(out_f32(&out[0]), &[100.5, 102.25, 100.5, 101.5]);
}

#[test]
fn tree_ensemble_regressor_applies_the_post_transform() {
    let m = OnnxModel::load(&regressor("LOGISTIC")).unwrap();
    let out = m.run(&[f32s(&[[0.5, 9.0]])]).unwrap();
    let expected = 1.0 / (1.0 + (-100.5f32).exp());
    assert!((out_f32(&out[0])[0] - expected).abs() < 1e-6);
}

#[test]
fn zipmap_serves_the_probability_matrix() {
    let m = OnnxModel::load(&model(
        vec![
            node("Softmax", "", &["X"], &["p"], vec![int("axis", 1)]),
            node("ZipMap", "ai.onnx.ml", &["p"], &["probabilities"], vec![ints("classlabels_int64s", &[0, 1])]),
        ],
        vec![tensor("X", T::Float, &[None, Some(2)])],
        vec![tensor("probabilities", T::Float, &[None, Some(2)])],
    ))
    .unwrap();
    assert_eq!(m.outputs[0].name, "probabilities");
    let out = m.run(&[f32s(&[[0.0, 0.0], [1.0, 0.0]])]).unwrap();
    let p = out_f32(&out[0]);
    assert_eq!(out[0].shape, vec![2, 2]);
    assert!((p[0] - 0.5).abs() < 1e-6 && (p[1] - 0.5).abs() < 1e-6);
    assert!((p[2] - 1.0 / (1.0 + (-1.0f32).exp())).abs() < 1e-6);
}

/// What a PyTorch export of a small MLP looks like: Gemm, Relu, named batch.
#[test]
fn dense_network_with_initializers_and_a_named_batch_dimension() {
    let w = tract_onnx::pb::TensorProto {
        name: "W".into(),
        dims: vec![1, 2],
        data_type: T::Float as i32,
        float_data: vec![2.0, -1.0],
        ..Default::default()
    };
    let mut x = tensor("input", T::Float, &[None, Some(2)]);
    if let Some(type_proto::Value::TensorType(t)) = x.r#type.as_mut().and_then(|t| t.value.as_mut()) {
        t.shape.as_mut().unwrap().dim[0].value = Some(dimension::Value::DimParam("batch_size".into()));
    }
    let mut bytes = ModelProto::decode(
        &model(
            vec![
                node("Gemm", "", &["input", "W"], &["h"], vec![int("transB", 1)]),
                node("Relu", "", &["h"], &["output"], vec![]),
            ],
            vec![x],
            vec![tensor("output", T::Float, &[None, Some(1)])],
        )[..],
    )
    .unwrap();
    bytes.graph.as_mut().unwrap().initializer.push(w);
    let m = OnnxModel::load(&bytes.encode_to_vec()).unwrap();
    let out = m.run(&[Array { name: "input".into(), ..f32s(&[[1.0, 1.0], [0.0, 3.0]]) }]).unwrap();
    assert_eq!(out_f32(&out[0]), &[1.0, 0.0]);
}

#[test]
fn inputs_that_do_not_fit_are_refused_with_a_message() {
    let m = OnnxModel::load(&regressor("NONE")).unwrap();
    let msg = |arrays: &[Array]| match m.run(arrays) {
        Err(Error::Input(m)) => m,
        other => panic!("expected an input error, got {other:?}"),
    };
    assert!(msg(&[]).contains("missing input 'X'"));
    assert!(msg(&[Array { name: "x".into(), ..f32s(&[[0.0, 0.0]]) }]).contains("unknown input 'x'"));
    assert!(msg(&[f32s(&[[0.0, 0.0]]), f32s(&[[0.0, 0.0]])]).contains("given twice"));
    let wrong_type = Array { datatype: DataType::F64, values: Values::F64(vec![0.0, 0.0]), ..f32s(&[[0.0, 0.0]]) };
    assert!(msg(&[wrong_type]).contains("datatype FP64, the model takes FP32"));
    let wrong_shape = Array { shape: vec![1, 3], values: Values::F32(vec![0.0; 3]), ..f32s(&[[0.0, 0.0]]) };
    assert!(msg(&[wrong_shape]).contains("shape [1, 3], the model takes [-1, 2]"));
    let short = Array { shape: vec![2, 2], ..f32s(&[[0.0, 0.0]]) };
    assert!(msg(&[short]).contains("has 2 elements for shape [2, 2]"));
    let empty = Array { shape: vec![0, 2], values: Values::F32(vec![]), ..f32s(&[[0.0, 0.0]]) };
    assert!(msg(&[empty]).contains("shape [0, 2]"));
}

#[test]
fn integer_inputs_are_range_checked() {
    let m = OnnxModel::load(&model(
        vec![node("Cast", "", &["ids"], &["out"], vec![int("to", T::Float as i64)])],
        vec![tensor("ids", T::Int32, &[None])],
        vec![tensor("out", T::Float, &[None])],
    ))
    .unwrap();
    let ids = |v: Vec<i64>| Array {
        name: "ids".into(),
        datatype: DataType::I32,
        shape: vec![v.len()],
        values: Values::Int(v),
    };
    assert_eq!(out_f32(&m.run(&[ids(vec![3, -4])]).unwrap()[0]), &[3.0, -4.0]);
    match m.run(&[ids(vec![1 << 40])]) {
        Err(Error::Input(msg)) => assert!(msg.contains("does not fit INT32"), "{msg}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn models_that_cannot_serve_fail_at_load_with_the_reason() {
    let err = |bytes: &[u8]| OnnxModel::load(bytes).expect_err("must not load").to_string();
    assert!(err(b"not a model at all").contains("not an ONNX model"));
    let unknown_op = model(
        vec![node("FancyOp", "", &["X"], &["y"], vec![])],
        vec![tensor("X", T::Float, &[None, Some(2)])],
        vec![tensor("y", T::Float, &[None, Some(2)])],
    );
    assert!(err(&unknown_op).contains("operators Plinth cannot run: FancyOp"));
    let half = model(
        vec![node("Relu", "", &["X"], &["y"], vec![])],
        vec![tensor("X", T::Float16, &[None, Some(2)])],
        vec![tensor("y", T::Float16, &[None, Some(2)])],
    );
    assert!(err(&half).contains("cannot be served"));
    let broken_tree = {
        let mut p = ModelProto::decode(&regressor("NONE")[..]).unwrap();
        let attrs = &mut p.graph.as_mut().unwrap().node[0].attribute;
        attrs.retain(|a| a.name != "nodes_values");
        p.encode_to_vec()
    };
    assert!(err(&broken_tree).contains("nodes_values"));
}

#[test]
fn classifier_labels_come_out_as_int64() {
    // One stump on x0 <= 0.5: class 0 left, class 1 right (a weight per class).
    let attrs = vec![
        ints("nodes_treeids", &[0, 0, 0]),
        ints("nodes_nodeids", &[0, 1, 2]),
        ints("nodes_featureids", &[0, 0, 0]),
        floats("nodes_values", &[0.5, 0.0, 0.0]),
        strings("nodes_modes", &["BRANCH_LEQ", "LEAF", "LEAF"]),
        ints("nodes_truenodeids", &[1, 0, 0]),
        ints("nodes_falsenodeids", &[2, 0, 0]),
        ints("class_treeids", &[0, 0, 0, 0, 0, 0]),
        ints("class_nodeids", &[1, 1, 1, 2, 2, 2]),
        ints("class_ids", &[0, 1, 2, 0, 1, 2]),
        floats("class_weights", &[0.7, 0.2, 0.1, 0.1, 0.3, 0.6]),
        ints("classlabels_int64s", &[10, 20, 30]),
    ];
    let m = OnnxModel::load(&model(
        vec![node("TreeEnsembleClassifier", "ai.onnx.ml", &["X"], &["label", "probabilities"], attrs)],
        vec![tensor("X", T::Float, &[None, Some(2)])],
        vec![tensor("label", T::Int64, &[None]), tensor("probabilities", T::Float, &[None, Some(3)])],
    ))
    .unwrap();
    assert_eq!(m.outputs[0].datatype, DataType::I64);
    let out = m.run(&[f32s(&[[0.0, 0.0], [1.0, 0.0]])]).unwrap();
    assert_eq!(out[0].values, Values::Int(vec![10, 30]));
    assert_eq!(out_f32(&out[1]), &[0.7, 0.2, 0.1, 0.1, 0.3, 0.6]);
}

/// LightGBM's binary layout: weights on class 0 only are the log-odds of
/// class 1; probabilities `[1 - p, p]` and the label of the likelier class.
#[test]
fn binary_classifier_labels_follow_the_probabilities() {
    let attrs = vec![
        ints("nodes_treeids", &[0, 0, 0]),
        ints("nodes_nodeids", &[0, 1, 2]),
        ints("nodes_featureids", &[0, 0, 0]),
        floats("nodes_values", &[0.5, 0.0, 0.0]),
        strings("nodes_modes", &["BRANCH_LEQ", "LEAF", "LEAF"]),
        ints("nodes_truenodeids", &[1, 0, 0]),
        ints("nodes_falsenodeids", &[2, 0, 0]),
        ints("class_treeids", &[0, 0]),
        ints("class_nodeids", &[1, 2]),
        ints("class_ids", &[0, 0]),
        floats("class_weights", &[-2.0, 1.5]),
        ints("classlabels_int64s", &[0, 1]),
        string("post_transform", "LOGISTIC"),
    ];
    let m = OnnxModel::load(&model(
        vec![node("TreeEnsembleClassifier", "ai.onnx.ml", &["X"], &["label", "probabilities"], attrs)],
        vec![tensor("X", T::Float, &[None, Some(2)])],
        vec![tensor("label", T::Int64, &[None]), tensor("probabilities", T::Float, &[None, Some(2)])],
    ))
    .unwrap();
    let out = m.run(&[f32s(&[[0.0, 0.0], [1.0, 0.0]])]).unwrap();
    assert_eq!(out[0].values, Values::Int(vec![0, 1]));
    let (p0, p1) = (1.0 / (1.0 + 2f32.exp()), 1.0 / (1.0 + (-1.5f32).exp()));
    let got = out_f32(&out[1]);
    for (g, w) in got.iter().zip([1.0 - p0, p0, 1.0 - p1, p1]) {
        assert!((g - w).abs() < 1e-6, "{got:?}");
    }
}
