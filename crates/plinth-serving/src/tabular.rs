//! A tabular deployment (a GBDT trained by `plinth train tabular`) as an
//! Open Inference Protocol model. Inputs: one tensor per feature, named as
//! the training column, shape `[n]` or `[n, 1]` (numbers for numeric
//! features; BYTES or numbers for categorical ones), or, when every feature
//! is numeric, one `features` tensor `[n, features]` in the order the
//! metadata lists. Outputs: `prediction` (FP64 `[n]`) for regression;
//! `probability` of the second class (FP64 `[n]`; the class is named by the
//! `positive_class` parameter of the metadata and of each response) and
//! `label` (BYTES `[n]`)
//! for binary; `probabilities` (FP64 `[n, classes]`) and `label` for
//! multiclass. Raw values go in; the encoding kept with the model does the
//! rest. Unseen categories are treated as missing and counted in the
//! response's `unseen_categories` parameter.

use plinth_ml::tabular::prepare::{Feature, Task};
use plinth_ml::tabular::table::{Column, Table, Values};
use serde_json::{Map, Value, json};

use crate::loaded::{Kind, LoadedModel, Tabular};
use crate::oip::InferOutcome;
use crate::onnx::Answered;
use crate::tensor::{Data, InferRequest, Tensor};
use crate::{Error, Live, Result, Serving, Slot};

const MATRIX: &str = "features";

fn all_numeric(m: &Tabular) -> bool {
    m.schema.features.iter().all(|f| matches!(f, Feature::Numeric { .. }))
}

/// `GET /v2/models/{name}` for a tabular deployment.
pub(crate) fn metadata(name: &str, versions: Vec<String>, m: &Tabular) -> Value {
    let inputs: Vec<Value> = m
        .schema
        .features
        .iter()
        .map(|f| match f {
            Feature::Numeric { name } => json!({"name": name, "datatype": "FP64", "shape": [-1]}),
            Feature::Categorical { name, .. } => json!({"name": name, "datatype": "BYTES", "shape": [-1]}),
        })
        .collect();
    let outputs = match m.schema.task {
        Task::Regression => json!([{"name": "prediction", "datatype": "FP64", "shape": [-1]}]),
        Task::Binary => json!([{"name": "probability", "datatype": "FP64", "shape": [-1]},
                                {"name": "label", "datatype": "BYTES", "shape": [-1]}]),
        Task::Multiclass => json!([
            {"name": "probabilities", "datatype": "FP64", "shape": [-1, m.schema.classes.len()]},
            {"name": "label", "datatype": "BYTES", "shape": [-1]}]),
    };
    let mut parameters = json!({
        "task": m.schema.task,
        "target": m.schema.target,
        "feature_order": m.schema.features.iter().map(|f| f.name()).collect::<Vec<_>>(),
        "classes": m.schema.classes,
    });
    if m.schema.task == Task::Binary
        && let Some(positive) = m.schema.classes.get(1)
    {
        parameters["positive_class"] = json!(positive);
    }
    if all_numeric(m) {
        parameters["matrix_input"] =
            json!({"name": MATRIX, "datatype": "FP64", "shape": [-1, m.schema.features.len()]});
    }
    json!({"name": name, "versions": versions, "platform": "plinth-tabular", "inputs": inputs, "outputs": outputs,
           "parameters": parameters})
}

fn numbers(t: &Tensor) -> Result<Vec<f64>> {
    Ok(match &t.data {
        Data::Fp64(v) => v.clone(),
        Data::Fp32(v) => v.iter().map(|&x| x as f64).collect(),
        Data::Int(v) => v.iter().map(|&x| x as f64).collect(),
        Data::Bool(v) => v.iter().map(|&x| x as u8 as f64).collect(),
        Data::Bytes(_) => {
            return Err(Error::Invalid(format!("input '{}' must hold numbers, got {}", t.name, t.datatype)));
        }
    })
}

fn rows_of(t: &Tensor) -> Result<usize> {
    match t.shape.as_slice() {
        [n] | [n, 1] if *n > 0 => Ok(*n as usize),
        other => Err(Error::Invalid(format!("input '{}' must have shape [n] or [n, 1], got {other:?}", t.name))),
    }
}

/// The request's tensors as a table with the training columns.
fn table(m: &Tabular, req: &InferRequest) -> Result<Table> {
    let features = &m.schema.features;
    if let Some(matrix) = req.input(MATRIX).filter(|_| features.iter().all(|f| f.name() != MATRIX)) {
        if !all_numeric(m) {
            return Err(Error::Invalid(format!(
                "input '{MATRIX}' is only for models whose features are all numeric; send one input per feature"
            )));
        }
        let nf = features.len();
        let n = match matrix.shape.as_slice() {
            [n, f] if *f as usize == nf && *n > 0 => *n as usize,
            other => {
                return Err(Error::Invalid(format!("input '{MATRIX}' must have shape [n, {nf}], got {other:?}")));
            }
        };
        if req.inputs.len() > 1 {
            return Err(Error::Invalid(format!("input '{MATRIX}' comes alone")));
        }
        let x = numbers(matrix)?;
        let columns = features
            .iter()
            .enumerate()
            .map(|(j, f)| Column {
                name: f.name().to_string(),
                values: Values::Numeric((0..n).map(|i| x[i * nf + j]).collect()),
            })
            .collect();
        return Ok(Table { source: "request".into(), columns, rows: n });
    }
    if let Some(t) = req.inputs.iter().find(|t| !features.iter().any(|f| f.name() == t.name)) {
        let names: Vec<&str> = features.iter().map(|f| f.name()).collect();
        return Err(Error::Invalid(format!("unknown input '{}': the model takes {}", t.name, names.join(", "))));
    }
    let mut rows = None;
    let mut columns = Vec::with_capacity(features.len());
    for f in features {
        let t = req.input(f.name()).ok_or_else(|| Error::Invalid(format!("missing input '{}'", f.name())))?;
        let n = rows_of(t)?;
        if *rows.get_or_insert(n) != n {
            return Err(Error::Invalid(format!("input '{}' has {n} rows, the others {}", t.name, rows.unwrap_or(0))));
        }
        let values = match (f, &t.data) {
            (Feature::Numeric { .. }, _) => Values::Numeric(numbers(t)?),
            (Feature::Categorical { .. }, Data::Bytes(v)) => Values::Text(
                v.iter()
                    .map(|b| {
                        let s = String::from_utf8_lossy(b).trim().to_string();
                        (!plinth_ml::tabular::table::is_missing(&s)).then_some(s)
                    })
                    .collect(),
            ),
            (Feature::Categorical { .. }, _) => Values::Numeric(numbers(t)?),
        };
        columns.push(Column { name: f.name().to_string(), values });
    }
    Ok(Table { source: "request".into(), columns, rows: rows.unwrap_or(0) })
}

fn run(loaded: &LoadedModel, table: &Table) -> Result<Answered> {
    let Kind::Tabular(m) = &loaded.kind else {
        return Err(Error::Internal(format!("model '{}' version {} is not tabular", loaded.name, loaded.version)));
    };
    let encoded = m.schema.encode(table, false).map_err(|e| Error::Invalid(e.to_string()))?;
    let n = encoded.rows;
    let p = m.model.predict(&encoded.x, n);
    let label = |k: usize| m.schema.classes.get(k).cloned().unwrap_or_default().into_bytes();
    let fp64 = |name: &str, shape: Vec<i64>, v: Vec<f64>| Tensor {
        name: name.into(),
        datatype: "FP64".into(),
        shape,
        data: Data::Fp64(v),
    };
    let labels = |v: Vec<Vec<u8>>| Tensor {
        name: "label".into(),
        datatype: "BYTES".into(),
        shape: vec![n as i64],
        data: Data::Bytes(v),
    };
    let outputs = match m.schema.task {
        Task::Regression => vec![fp64("prediction", vec![n as i64], p)],
        Task::Binary => {
            let l = p.iter().map(|&q| label((q >= 0.5) as usize)).collect();
            vec![fp64("probability", vec![n as i64], p), labels(l)]
        }
        Task::Multiclass => {
            let k = m.schema.classes.len();
            let l = p
                .chunks(k)
                .map(|r| label(r.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map_or(0, |(c, _)| c)))
                .collect();
            vec![fp64("probabilities", vec![n as i64, k as i64], p), labels(l)]
        }
    };
    let mut parameters = Map::new();
    if m.schema.task == Task::Binary
        && let Some(positive) = m.schema.classes.get(1)
    {
        // Which class `probability` is the probability of.
        parameters.insert("positive_class".into(), json!(positive));
    }
    let unseen: usize = encoded.unseen.iter().map(|u| u.1).sum();
    if unseen > 0 {
        parameters.insert("unseen_categories".into(), json!(unseen));
    }
    Ok((outputs, parameters))
}

impl Serving {
    pub(crate) fn infer_tabular(
        &self,
        live: &std::sync::Arc<Live>,
        pinned: Option<&Slot>,
        req: &InferRequest,
        unit: Option<String>,
        request_id: String,
        arrived: std::time::Instant,
    ) -> Result<InferOutcome> {
        let model = live.variants[0].model();
        let Kind::Tabular(m) = &model.kind else {
            return Err(Error::Internal("a tabular deployment holds another kind of model".into()));
        };
        let inputs = table(m, req)?;
        self.infer_whole(live, pinned, req, unit, request_id, arrived, inputs, run)
    }
}
