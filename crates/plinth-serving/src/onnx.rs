//! An ONNX deployment as an Open Inference Protocol model: its inputs and
//! outputs are the model's own tensors. A request goes whole to one variant,
//! chosen by the unit (the `X-Plinth-Unit` header, else the request id); the
//! shadow variant, if any, runs the same tensors off the hot path.

use std::sync::Arc;
use std::time::Instant;

use plinth_onnx::{Array, DataType, OnnxModel, Values};
use serde_json::{Map, Value, json};

use crate::loaded::{Kind, LoadedModel};
use crate::oip::InferOutcome;
use crate::recommend::Answer;
use crate::tensor::{Data, InferRequest, Tensor};
use crate::{Error, Live, Result, Serving, Slot};

/// `GET /v2/models/{name}` for an ONNX deployment.
pub(crate) fn metadata(name: &str, versions: Vec<String>, m: &OnnxModel) -> Value {
    let io = |sigs: &[plinth_onnx::Signature]| {
        sigs.iter()
            .map(|s| json!({"name": s.name, "datatype": s.datatype.oip(), "shape": s.oip_shape()}))
            .collect::<Vec<_>>()
    };
    json!({
        "name": name,
        "versions": versions,
        "platform": "onnx",
        "inputs": io(&m.inputs),
        "outputs": io(&m.outputs),
        "parameters": {"producer": m.producer},
    })
}

fn datatype(name: &str) -> Result<DataType> {
    Ok(match name {
        "BOOL" => DataType::Bool,
        "UINT8" => DataType::U8,
        "UINT16" => DataType::U16,
        "UINT32" => DataType::U32,
        "UINT64" => DataType::U64,
        "INT8" => DataType::I8,
        "INT16" => DataType::I16,
        "INT32" => DataType::I32,
        "INT64" => DataType::I64,
        "FP32" => DataType::F32,
        "FP64" => DataType::F64,
        "BYTES" => DataType::Bytes,
        other => return Err(Error::Invalid(format!("datatype {other} is not supported"))),
    })
}

fn to_array(t: &Tensor) -> Result<Array> {
    let shape = t
        .shape
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| Error::Invalid(format!("input '{}': negative dimension", t.name))))
        .collect::<Result<_>>()?;
    let values = match &t.data {
        Data::Bool(v) => Values::Bool(v.clone()),
        Data::Int(v) => Values::Int(v.clone()),
        Data::Fp32(v) => Values::F32(v.clone()),
        Data::Fp64(v) => Values::F64(v.clone()),
        Data::Bytes(v) => Values::Bytes(v.clone()),
    };
    Ok(Array { name: t.name.clone(), datatype: datatype(&t.datatype)?, shape, values })
}

fn to_tensor(a: Array) -> Tensor {
    let data = match a.values {
        Values::Bool(v) => Data::Bool(v),
        Values::Int(v) => Data::Int(v),
        Values::F32(v) => Data::Fp32(v),
        Values::F64(v) => Data::Fp64(v),
        Values::Bytes(v) => Data::Bytes(v),
    };
    Tensor {
        name: a.name,
        datatype: a.datatype.oip().to_string(),
        shape: a.shape.iter().map(|&d| d as i64).collect(),
        data,
    }
}

#[allow(clippy::ptr_arg)] // its type is `fn(&LoadedModel, &T)` with T = Vec<Array>
fn run(loaded: &LoadedModel, arrays: &Vec<Array>) -> Result<Answered> {
    let Kind::Onnx(model) = &loaded.kind else {
        return Err(Error::Internal(format!("model '{}' version {} is not ONNX", loaded.name, loaded.version)));
    };
    let outputs = model.run(arrays).map_err(|e| match e {
        plinth_onnx::Error::Input(m) => Error::Invalid(m),
        other => Error::Internal(format!("model '{}' version {}: {other}", loaded.name, loaded.version)),
    })?;
    Ok((outputs.into_iter().map(to_tensor).collect(), Map::new()))
}

/// A whole request's outputs and the response parameters they add.
pub(crate) type Answered = (Vec<Tensor>, Map<String, Value>);

fn answer(loaded: &LoadedModel) -> Answer<'_> {
    Answer { model: &loaded.name, model_version: loaded.version, fallback: false }
}

impl Serving {
    pub(crate) fn infer_onnx(
        &self,
        live: &Arc<Live>,
        pinned: Option<&Slot>,
        req: &InferRequest,
        unit: Option<String>,
        request_id: String,
        arrived: Instant,
    ) -> Result<InferOutcome> {
        let arrays: Vec<Array> = req.inputs.iter().map(to_array).collect::<Result<_>>()?;
        self.infer_whole(live, pinned, req, unit, request_id, arrived, arrays, run)
    }

    /// A request answered whole by one variant, chosen by the unit (the
    /// `X-Plinth-Unit` header, else the request id); the shadow variant, if
    /// any, runs the same inputs off the hot path, counted and logged, never
    /// returned.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn infer_whole<T: Send + Sync + 'static>(
        &self,
        live: &Arc<Live>,
        pinned: Option<&Slot>,
        req: &InferRequest,
        unit: Option<String>,
        request_id: String,
        arrived: Instant,
        inputs: T,
        run: fn(&LoadedModel, &T) -> Result<Answered>,
    ) -> Result<InferOutcome> {
        let id = req.id.clone().unwrap_or(request_id);
        let unit = unit.unwrap_or_else(|| id.clone());
        let slot = pinned.unwrap_or_else(|| live.assign(&unit));
        let started = arrived;
        let loaded = slot.model();
        let out = run(&loaded, &inputs);
        self.served(live, "infer", &id).account(
            slot,
            &unit,
            out.as_ref().ok().map(|_| answer(&loaded)),
            started,
            false,
        );
        let (outputs, mut parameters) = out?;
        if live.shadow.is_some() {
            let (this, live, inputs) = (self.clone(), live.clone(), Arc::new(inputs));
            tokio::task::spawn_blocking(move || {
                let Some(shadow) = &live.shadow else { return };
                let started = Instant::now();
                let loaded = shadow.model();
                let out = run(&loaded, &inputs);
                let answered = out.as_ref().ok().map(|_| answer(&loaded));
                this.served(&live, "infer", &id).account(shadow, &unit, answered, started, true);
            });
        }
        parameters.insert("variant".into(), json!(slot.variant.name));
        Ok(InferOutcome { outputs, model_version: loaded.version.to_string(), parameters })
    }
}
