//! An ONNX deployment as an Open Inference Protocol model: its inputs and
//! outputs are the model's own tensors. A request goes whole to one variant,
//! chosen by the unit (the caller's, else the request id).

use plinth_onnx::OnnxModel;
use serde_json::{Map, json};

use crate::answer::{RequestContext, Task};
use crate::oip::{Describe, InferKind, respond_whole, whole_unit};
use crate::tensor::{Array, InferRequest, Parameters, Signature, TensorMetadata};
use crate::{Error, LoadedModel, Result};
use crate::{answer::Answered, loaded::Kind};

/// Up to this many elements, a request runs on the async worker.
const INLINE_ELEMENTS: usize = 4096;

impl Describe for OnnxModel {
    fn platform(&self) -> &'static str {
        "onnx"
    }

    fn signature(&self) -> Signature {
        let io = |sigs: &[plinth_onnx::Signature]| {
            sigs.iter().map(|s| TensorMetadata::new(s.name.clone(), s.datatype, s.oip_shape())).collect()
        };
        let mut parameters = Map::new();
        parameters.insert("producer".into(), json!(self.producer));
        Signature { inputs: io(&self.inputs), outputs: io(&self.outputs), parameters }
    }
}

/// The request's tensors, run whole.
pub(crate) struct OnnxTask {
    arrays: Vec<Array>,
    units: Vec<String>,
}

impl Task for OnnxTask {
    type Output = (Vec<Array>, Parameters);

    fn units(&self) -> &[String] {
        &self.units
    }

    fn inline(&self) -> bool {
        self.arrays.iter().map(|a| a.values.len()).sum::<usize>() <= INLINE_ELEMENTS
    }

    fn run(&self, loaded: &LoadedModel, _part: usize) -> Result<Self::Output> {
        let Kind::Onnx(model) = &loaded.kind else {
            return Err(Error::Internal(format!("model '{}' version {} is not ONNX", loaded.name, loaded.version)));
        };
        let outputs = model.run(&self.arrays).map_err(|e| match e {
            plinth_onnx::Error::Input(m) => Error::Invalid(m),
            other => Error::Internal(format!("model '{}' version {}: {other}", loaded.name, loaded.version)),
        })?;
        Ok((outputs, Parameters::new()))
    }
}

impl InferKind for OnnxModel {
    type Task = OnnxTask;

    fn decode(&self, req: InferRequest, ctx: &RequestContext) -> Result<OnnxTask> {
        Ok(OnnxTask { arrays: req.inputs, units: whole_unit(ctx) })
    }

    fn respond(answers: Vec<Answered<(Vec<Array>, Parameters)>>) -> Result<(Vec<Array>, Parameters)> {
        respond_whole(answers)
    }
}
