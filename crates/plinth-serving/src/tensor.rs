//! The Open Inference Protocol's (KServe v2) values as serving takes and
//! gives them: decoded requests, typed responses and metadata. The wire
//! codecs (REST JSON with the binary tensor extension, and gRPC) live in the
//! server; both produce and consume these types. Tensors are
//! [`plinth_onnx::Array`]s, with one [`DataType`] for every layer.

use std::collections::BTreeMap;

pub use plinth_onnx::{Array, DataType, Values};
use serde_json::{Map, Value};

use crate::{Error, Result};

/// Elements a request may carry at most (all inputs together).
pub const MAX_ELEMENTS: usize = 64 << 20;

/// What the client asked for back.
#[derive(Debug, Clone, Default)]
pub struct RequestedOutput {
    pub name: String,
    /// Binary tensor data rather than JSON (REST only; gRPC is always raw).
    pub binary: bool,
}

/// An inference request, decoded from either codec.
#[derive(Debug, Clone, Default)]
pub struct InferRequest {
    pub id: Option<String>,
    pub inputs: Vec<Array>,
    /// Empty: every output, in JSON unless `binary_data_output` was set.
    pub outputs: Vec<RequestedOutput>,
    pub binary_output_default: bool,
}

impl InferRequest {
    pub fn input(&self, name: &str) -> Option<&Array> {
        self.inputs.iter().find(|t| t.name == name)
    }

    /// Elements across every input.
    pub fn elements(&self) -> usize {
        self.inputs.iter().map(|t| t.values.len()).sum()
    }
}

/// A response parameter (OIP's `parameters` map holds scalars).
#[derive(Debug, Clone, PartialEq)]
pub enum Parameter {
    Str(String),
    Int(i64),
    Bool(bool),
}

pub type Parameters = BTreeMap<String, Parameter>;

/// An inference's result, before a codec encodes it.
#[derive(Debug, Clone)]
pub struct InferResponse {
    pub model_name: String,
    /// The version that answered (several, comma-separated, for a batch
    /// split over variants).
    pub model_version: String,
    pub id: Option<String>,
    pub outputs: Vec<Array>,
    pub parameters: Parameters,
}

impl InferResponse {
    /// The outputs the request named, in its order (all, if it named none).
    pub fn chosen(mut self, requested: &[RequestedOutput]) -> Result<Vec<(Array, Option<&RequestedOutput>)>> {
        if requested.is_empty() {
            return Ok(self.outputs.into_iter().map(|t| (t, None)).collect());
        }
        let mut chosen = Vec::with_capacity(requested.len());
        for r in requested {
            let i = self
                .outputs
                .iter()
                .position(|t| t.name == r.name)
                .ok_or_else(|| Error::Invalid(format!("unknown output '{}'", r.name)))?;
            chosen.push((self.outputs.swap_remove(i), Some(r)));
        }
        Ok(chosen)
    }
}

/// A tensor a model takes or gives; `-1` is a dimension of any size.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorMetadata {
    pub name: String,
    pub datatype: DataType,
    pub shape: Vec<i64>,
}

impl TensorMetadata {
    pub fn new(name: impl Into<String>, datatype: DataType, shape: Vec<i64>) -> TensorMetadata {
        TensorMetadata { name: name.into(), datatype, shape }
    }
}

/// What one model kind takes and gives.
#[derive(Debug, Clone)]
pub struct Signature {
    pub inputs: Vec<TensorMetadata>,
    pub outputs: Vec<TensorMetadata>,
    /// Kind-specific facts (a tabular model's classes, an ONNX producer).
    pub parameters: Map<String, Value>,
}

/// `GET /v2/models/{name}`: a deployment as an OIP model.
#[derive(Debug, Clone)]
pub struct ModelMetadata {
    pub name: String,
    pub versions: Vec<String>,
    pub platform: &'static str,
    pub signature: Signature,
}

/// Checks that `values` fill `shape` exactly; gives the shape as `usize`.
pub fn checked_shape(name: &str, shape: &[i64], values: usize) -> Result<Vec<usize>> {
    let dims = elements(name, shape)?;
    if dims.iter().product::<usize>() != values {
        return Err(Error::Invalid(format!(
            "input '{name}': shape {shape:?} needs {} elements, got {values}",
            dims.iter().product::<usize>()
        )));
    }
    Ok(dims)
}

/// The dimensions of `shape`, refused when negative or too large.
pub fn elements(name: &str, shape: &[i64]) -> Result<Vec<usize>> {
    let mut n: usize = 1;
    let mut dims = Vec::with_capacity(shape.len());
    for &d in shape {
        let d = usize::try_from(d)
            .map_err(|_| Error::Invalid(format!("input '{name}': shape {shape:?} has a negative dimension")))?;
        n = n.checked_mul(d).filter(|&n| n <= MAX_ELEMENTS).ok_or_else(|| {
            Error::Invalid(format!("input '{name}': shape {shape:?} holds more than {MAX_ELEMENTS} elements"))
        })?;
        dims.push(d);
    }
    Ok(dims)
}

/// The datatype OIP names `name`, or a message naming what is supported.
pub fn datatype(name: &str) -> Result<DataType> {
    DataType::from_oip(name).ok_or_else(|| match name {
        "FP16" | "BF16" => Error::Invalid(format!("datatype {name} is not supported; send FP32")),
        other => Error::Invalid(format!("unknown datatype '{other}'")),
    })
}

/// Shape as the wire writes it.
pub fn wire_shape(shape: &[usize]) -> Vec<i64> {
    shape.iter().map(|&d| d as i64).collect()
}
