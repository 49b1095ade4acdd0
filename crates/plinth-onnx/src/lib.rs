//! ONNX models run natively in Rust (tract), with no Python in the serving
//! path: [`OnnxModel::load`] parses, types and optimizes a model with a
//! symbolic batch dimension, checks that every input and output has a type
//! the Open Inference Protocol can carry, and runs it once on zeros, so a
//! model that cannot serve fails when it is deployed, not on its first
//! request. [`OnnxModel::run`] checks named inputs against the signature.
//!
//! Beyond tract's operators, `TreeEnsembleRegressor` and `ZipMap` are
//! registered (see [`ops`]), so the regressors and classifiers that
//! skl2onnx and onnxmltools export (GBDT, random forests, linear models,
//! LightGBM) load as exported.

mod forest;
mod ops;
mod types;

use std::collections::HashSet;
use std::sync::Arc;

use tract_onnx::pb;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::DimLike;
pub use types::{Array, DataType, Values};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The model cannot be served (bad file, unsupported operator or type).
    #[error("{0}")]
    Model(String),
    /// A request's inputs do not fit the model's signature.
    #[error("{0}")]
    Input(String),
    /// The model failed on valid inputs.
    #[error("{0}")]
    Run(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A dimension of a declared shape: fixed, or any size (`-1` on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dim {
    Fixed(usize),
    Any,
}

/// A named input or output and its type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    pub name: String,
    pub datatype: DataType,
    pub shape: Vec<Dim>,
}

impl Signature {
    /// The shape as the Open Inference Protocol writes it (`-1`: any).
    pub fn oip_shape(&self) -> Vec<i64> {
        self.shape.iter().map(|d| if let Dim::Fixed(n) = d { *n as i64 } else { -1 }).collect()
    }
}

/// A model ready to run; cheap to share between threads.
pub struct OnnxModel {
    plan: Arc<TypedRunnableModel>,
    pub inputs: Vec<Signature>,
    pub outputs: Vec<Signature>,
    /// Who wrote the file (`producer_name producer_version`), for metadata.
    pub producer: String,
}

impl std::fmt::Debug for OnnxModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxModel").field("inputs", &self.inputs).field("outputs", &self.outputs).finish()
    }
}

/// tract's ONNX front end with Plinth's extra operators.
fn framework() -> tract_onnx::Onnx {
    let mut onnx = tract_onnx::onnx();
    ops::register(&mut onnx.op_register);
    // Declared output types may be sequences or maps (ZipMap), which tract
    // cannot represent; outputs are typed by inference instead.
    onnx.ignore_output_types = true;
    onnx
}

fn model_err(e: impl std::fmt::Display) -> Error {
    Error::Model(e.to_string())
}

/// The full chain of a tract error, which is where the useful part is.
fn chain(e: &TractError) -> String {
    e.chain().map(|c| c.to_string()).collect::<Vec<_>>().join(": ")
}

impl OnnxModel {
    pub fn load(bytes: &[u8]) -> Result<OnnxModel> {
        let onnx = framework();
        let proto = onnx
            .proto_model_for_read(&mut &*bytes)
            .map_err(|e| Error::Model(format!("not an ONNX model: {}", chain(&e))))?;
        let graph = proto.graph.as_ref().ok_or_else(|| model_err("the ONNX file holds no graph"))?;
        let unknown: Vec<&str> = {
            let mut seen = HashSet::new();
            graph
                .node
                .iter()
                .map(|n| n.op_type.as_str())
                .filter(|op| !onnx.op_register.0.contains_key(*op) && seen.insert(*op))
                .collect()
        };
        if !unknown.is_empty() {
            return Err(Error::Model(format!("the model uses operators Plinth cannot run: {}", unknown.join(", "))));
        }
        let producer = format!("{} {}", proto.producer_name, proto.producer_version).trim().to_string();
        let mut model = onnx.model_for_proto_model(&proto).map_err(|e| Error::Model(chain(&e)))?;

        // Inputs as declared, with every unnamed or unknown size symbolic.
        let declared: Vec<&pb::ValueInfoProto> = graph.input.iter().collect();
        let mut inputs = Vec::new();
        for (ix, outlet) in model.input_outlets().map_err(model_err)?.to_vec().iter().enumerate() {
            let name = model.node(outlet.node).name.clone();
            let info = declared
                .iter()
                .find(|v| v.name == name)
                .ok_or_else(|| Error::Model(format!("input '{name}' is not declared by the graph")))?;
            let (datatype, dims) = declared_tensor(info)?;
            let shape: TVec<TDim> = dims
                .iter()
                .enumerate()
                .map(|(axis, d)| match d {
                    DeclaredDim::Value(n) => TDim::from(*n),
                    DeclaredDim::Param(p) => model.sym(p).into(),
                    DeclaredDim::Unknown if axis == 0 => model.sym("batch").into(),
                    DeclaredDim::Unknown => model.sym(&format!("{name}_{axis}")).into(),
                })
                .collect();
            model
                .set_input_fact(ix, InferenceFact::dt_shape(datatype.datum(), shape))
                .map_err(|e| Error::Model(format!("input '{name}': {}", chain(&e))))?;
            inputs.push(Signature {
                name,
                datatype,
                shape: dims
                    .iter()
                    .map(|d| if let DeclaredDim::Value(n) = d { Dim::Fixed(*n) } else { Dim::Any })
                    .collect(),
            });
        }
        let typed =
            model.into_optimized().map_err(|e| Error::Model(format!("cannot prepare the model: {}", chain(&e))))?;
        let mut outputs = Vec::new();
        for (ix, outlet) in typed.output_outlets().map_err(model_err)?.iter().enumerate() {
            let fact = typed.outlet_fact(*outlet).map_err(model_err)?;
            // The graph's own names: an output's outlet may be labelled after
            // the node that computes it (ZipMap passes its input through).
            let name = graph
                .output
                .get(ix)
                .map(|o| o.name.clone())
                .or_else(|| typed.outlet_label(*outlet).map(str::to_string))
                .unwrap_or_else(|| format!("output_{ix}"));
            let datatype = DataType::from_datum(fact.datum_type).ok_or_else(|| {
                Error::Model(format!("output '{name}' has type {:?}, which cannot be served", fact.datum_type))
            })?;
            let shape = fact.shape.iter().map(|d| d.to_usize().map_or(Dim::Any, Dim::Fixed)).collect();
            outputs.push(Signature { name, datatype, shape });
        }
        let plan = typed.into_runnable().map_err(|e| Error::Model(chain(&e)))?;
        let loaded = OnnxModel { plan, inputs, outputs, producer };
        loaded.smoke_test()?;
        Ok(loaded)
    }

    /// One run on a row of zeros (empty strings): a model whose operators
    /// fail at run time fails here, at deploy time.
    fn smoke_test(&self) -> Result<()> {
        let arrays: Vec<Array> = self
            .inputs
            .iter()
            .map(|s| {
                let shape: Vec<usize> = s.shape.iter().map(|d| if let Dim::Fixed(n) = d { *n } else { 1 }).collect();
                let n = shape.iter().product();
                let values = match s.datatype.empty_values(n) {
                    Values::Bool(_) => Values::Bool(vec![false; n]),
                    Values::F32(_) => Values::F32(vec![0.0; n]),
                    Values::F64(_) => Values::F64(vec![0.0; n]),
                    Values::Bytes(_) => Values::Bytes(vec![Vec::new(); n]),
                    Values::UInt(_) => Values::UInt(vec![0; n]),
                    Values::Int(_) => Values::Int(vec![0; n]),
                };
                Array { name: s.name.clone(), datatype: s.datatype, shape, values }
            })
            .collect();
        self.run(&arrays).map(|_| ()).map_err(|e| Error::Model(format!("the model fails on a test input: {e}")))
    }

    /// Runs the model on named inputs (every input exactly once, in any
    /// order) and returns every output in the model's order.
    pub fn run(&self, arrays: &[Array]) -> Result<Vec<Array>> {
        if let Some(a) = arrays.iter().find(|a| !self.inputs.iter().any(|s| s.name == a.name)) {
            return Err(Error::Input(format!("unknown input '{}': the model takes {}", a.name, self.input_names())));
        }
        let mut values = TVec::new();
        for sig in &self.inputs {
            let mut given = arrays.iter().filter(|a| a.name == sig.name);
            let a = given.next().ok_or_else(|| Error::Input(format!("missing input '{}'", sig.name)))?;
            if given.next().is_some() {
                return Err(Error::Input(format!("input '{}' is given twice", sig.name)));
            }
            check_shape(sig, a)?;
            values.push(a.to_tensor(sig.datatype)?.into_tvalue());
        }
        let out = self.plan.run(values).map_err(|e| Error::Run(chain(&e)))?;
        out.iter().zip(&self.outputs).map(|(t, sig)| Array::from_tensor(&sig.name, t)).collect()
    }

    fn input_names(&self) -> String {
        self.inputs.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
    }
}

fn check_shape(sig: &Signature, a: &Array) -> Result<()> {
    let fits = a.shape.len() == sig.shape.len()
        && a.shape.iter().zip(&sig.shape).all(|(n, d)| match d {
            Dim::Fixed(m) => n == m,
            Dim::Any => *n > 0,
        });
    if !fits {
        return Err(Error::Input(format!(
            "input '{}' has shape {:?}, the model takes {:?} (-1: any size)",
            sig.name,
            a.shape,
            sig.oip_shape()
        )));
    }
    let n: usize = a.shape.iter().product();
    if a.values.len() != n {
        return Err(Error::Input(format!(
            "input '{}' has {} elements for shape {:?} ({n} expected)",
            sig.name,
            a.values.len(),
            a.shape
        )));
    }
    Ok(())
}

enum DeclaredDim {
    Value(usize),
    Param(String),
    Unknown,
}

/// The element type and dimensions a graph input declares.
fn declared_tensor(info: &pb::ValueInfoProto) -> Result<(DataType, Vec<DeclaredDim>)> {
    let name = &info.name;
    let Some(pb::type_proto::Value::TensorType(t)) = info.r#type.as_ref().and_then(|t| t.value.as_ref()) else {
        return Err(Error::Model(format!("input '{name}' is not a tensor")));
    };
    use pb::tensor_proto::DataType as P;
    let datatype = match P::try_from(t.elem_type).unwrap_or(P::Undefined) {
        P::Bool => DataType::Bool,
        P::Uint8 => DataType::U8,
        P::Uint16 => DataType::U16,
        P::Uint32 => DataType::U32,
        P::Uint64 => DataType::U64,
        P::Int8 => DataType::I8,
        P::Int16 => DataType::I16,
        P::Int32 => DataType::I32,
        P::Int64 => DataType::I64,
        P::Float => DataType::F32,
        P::Double => DataType::F64,
        P::String => DataType::Bytes,
        other => {
            return Err(Error::Model(format!("input '{name}' has element type {other:?}, which cannot be served")));
        }
    };
    let Some(shape) = &t.shape else {
        return Err(Error::Model(format!("input '{name}' declares no shape")));
    };
    use pb::tensor_shape_proto::dimension::Value as D;
    let dims = shape
        .dim
        .iter()
        .map(|d| match &d.value {
            Some(D::DimValue(n)) if *n > 0 => DeclaredDim::Value(*n as usize),
            Some(D::DimParam(p)) if !p.is_empty() => DeclaredDim::Param(p.clone()),
            _ => DeclaredDim::Unknown,
        })
        .collect();
    Ok((datatype, dims))
}

#[cfg(test)]
mod tests;
