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

use plinth_ml::tabular::prepare::{Feature, Task as Learning};
use plinth_ml::tabular::table::{Column, Table, Values as ColumnValues};
use serde_json::{Map, json};

use crate::answer::{Answered, RequestContext, Task};
use crate::loaded::{Kind, Tabular};
use crate::oip::{Describe, InferKind, respond_whole, whole_unit};
use crate::tensor::{Array, DataType, InferRequest, Parameter, Parameters, Signature, TensorMetadata, Values};
use crate::{Error, LoadedModel, Result};

const MATRIX: &str = "features";
/// Up to this many rows, a request runs on the async worker.
const INLINE_ROWS: usize = 256;

fn all_numeric(m: &Tabular) -> bool {
    m.schema.features.iter().all(|f| matches!(f, Feature::Numeric { .. }))
}

impl Describe for Tabular {
    fn platform(&self) -> &'static str {
        crate::loaded::TABULAR_PLATFORM
    }

    fn signature(&self) -> Signature {
        let m = self;
        let inputs = m
            .schema
            .features
            .iter()
            .map(|f| match f {
                Feature::Numeric { name } => TensorMetadata::new(name.clone(), DataType::F64, vec![-1]),
                Feature::Categorical { name, .. } => TensorMetadata::new(name.clone(), DataType::Bytes, vec![-1]),
            })
            .collect();
        let label = TensorMetadata::new("label", DataType::Bytes, vec![-1]);
        let outputs = match m.schema.task {
            Learning::Regression => vec![TensorMetadata::new("prediction", DataType::F64, vec![-1])],
            Learning::Binary => vec![TensorMetadata::new("probability", DataType::F64, vec![-1]), label],
            Learning::Multiclass => vec![
                TensorMetadata::new("probabilities", DataType::F64, vec![-1, m.schema.classes.len() as i64]),
                label,
            ],
        };
        let mut parameters = Map::new();
        parameters.insert("task".into(), json!(m.schema.task));
        parameters.insert("target".into(), json!(m.schema.target));
        parameters
            .insert("feature_order".into(), json!(m.schema.features.iter().map(|f| f.name()).collect::<Vec<_>>()));
        parameters.insert("classes".into(), json!(m.schema.classes));
        if m.schema.task == Learning::Binary
            && let Some(positive) = m.schema.classes.get(1)
        {
            parameters.insert("positive_class".into(), json!(positive));
        }
        if all_numeric(m) {
            parameters.insert(
                "matrix_input".into(),
                json!({"name": MATRIX, "datatype": "FP64", "shape": [-1, m.schema.features.len()]}),
            );
        }
        Signature { inputs, outputs, parameters }
    }
}

fn numbers(t: &Array) -> Result<Vec<f64>> {
    Ok(match &t.values {
        Values::F64(v) => v.clone(),
        Values::F32(v) => v.iter().map(|&x| x as f64).collect(),
        Values::Int(v) => v.iter().map(|&x| x as f64).collect(),
        Values::UInt(v) => v.iter().map(|&x| x as f64).collect(),
        Values::Bool(v) => v.iter().map(|&x| x as u8 as f64).collect(),
        Values::Bytes(_) => {
            return Err(Error::Invalid(format!("input '{}' must hold numbers, got {}", t.name, t.datatype)));
        }
    })
}

fn rows_of(t: &Array) -> Result<usize> {
    match t.shape.as_slice() {
        [n] | [n, 1] if *n > 0 => Ok(*n),
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
            [n, f] if *f == nf && *n > 0 => *n,
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
                values: ColumnValues::Numeric((0..n).map(|i| x[i * nf + j]).collect()),
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
        let values = match (f, &t.values) {
            (Feature::Numeric { .. }, _) => ColumnValues::Numeric(numbers(t)?),
            (Feature::Categorical { .. }, Values::Bytes(v)) => ColumnValues::Text(
                v.iter()
                    .map(|b| {
                        let s = String::from_utf8_lossy(b).trim().to_string();
                        (!plinth_ml::tabular::table::is_missing(&s)).then_some(s)
                    })
                    .collect(),
            ),
            (Feature::Categorical { .. }, _) => ColumnValues::Numeric(numbers(t)?),
        };
        columns.push(Column { name: f.name().to_string(), values });
    }
    Ok(Table { source: "request".into(), columns, rows: rows.unwrap_or(0) })
}

/// The request as a table with the training columns, run whole.
pub(crate) struct TabularTask {
    table: Table,
    units: Vec<String>,
}

impl Task for TabularTask {
    type Output = (Vec<Array>, Parameters);

    fn units(&self) -> &[String] {
        &self.units
    }

    fn inline(&self) -> bool {
        self.table.rows <= INLINE_ROWS
    }

    fn run(&self, loaded: &LoadedModel, _part: usize) -> Result<Self::Output> {
        let Kind::Tabular(m) = &loaded.kind else {
            return Err(Error::Internal(format!("model '{}' version {} is not tabular", loaded.name, loaded.version)));
        };
        predict(m, &self.table)
    }
}

fn predict(m: &Tabular, table: &Table) -> Result<(Vec<Array>, Parameters)> {
    let encoded = m.schema.encode(table, false).map_err(|e| Error::Invalid(e.to_string()))?;
    let n = encoded.rows;
    let p = m.model.predict(&encoded.x, n);
    let label = |k: usize| m.schema.classes.get(k).cloned().unwrap_or_default().into_bytes();
    let fp64 = |name: &str, shape: Vec<usize>, v: Vec<f64>| Array {
        name: name.into(),
        datatype: DataType::F64,
        shape,
        values: Values::F64(v),
    };
    let labels = |v: Vec<Vec<u8>>| Array {
        name: "label".into(),
        datatype: DataType::Bytes,
        shape: vec![n],
        values: Values::Bytes(v),
    };
    let outputs = match m.schema.task {
        Learning::Regression => vec![fp64("prediction", vec![n], p)],
        Learning::Binary => {
            let l = p.iter().map(|&q| label((q >= 0.5) as usize)).collect();
            vec![fp64("probability", vec![n], p), labels(l)]
        }
        Learning::Multiclass => {
            let k = m.schema.classes.len();
            let l = p
                .chunks(k)
                .map(|r| label(r.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map_or(0, |(c, _)| c)))
                .collect();
            vec![fp64("probabilities", vec![n, k], p), labels(l)]
        }
    };
    let mut parameters = Parameters::new();
    if m.schema.task == Learning::Binary
        && let Some(positive) = m.schema.classes.get(1)
    {
        // Which class `probability` is the probability of.
        parameters.insert("positive_class".into(), Parameter::Str(positive.clone()));
    }
    let unseen: usize = encoded.unseen.iter().map(|u| u.1).sum();
    if unseen > 0 {
        parameters.insert("unseen_categories".into(), Parameter::Int(unseen as i64));
    }
    Ok((outputs, parameters))
}

impl InferKind for Tabular {
    type Task = TabularTask;

    fn decode(&self, req: InferRequest, ctx: &RequestContext) -> Result<TabularTask> {
        Ok(TabularTask { table: table(self, &req)?, units: whole_unit(ctx) })
    }

    fn respond(answers: Vec<Answered<(Vec<Array>, Parameters)>>) -> Result<(Vec<Array>, Parameters)> {
        respond_whole(answers)
    }
}
