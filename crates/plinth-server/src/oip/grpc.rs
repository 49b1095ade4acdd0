//! The Open Inference Protocol over gRPC (`inference.GRPCInferenceService`),
//! served on the same port as HTTP (HTTP/2). Converts protobuf tensors to
//! the serving crate's and back; inference itself is shared with REST.

use std::collections::HashMap;

use plinth_serving::RequestContext;
use plinth_serving::tensor::{Array, DataType, InferRequest, Parameter, RequestedOutput, Values, datatype};
use tonic::{Request, Response, Status};

use super::{checked, from_raw, to_raw};
use crate::state::AppState;

#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod proto {
    tonic::include_proto!("inference");
}

use proto::grpc_inference_service_server::{GrpcInferenceService, GrpcInferenceServiceServer};
use proto::model_infer_response::InferOutputTensor;
use proto::{InferParameter, InferTensorContents, infer_parameter::ParameterChoice};

pub fn service(state: AppState) -> GrpcInferenceServiceServer<Oip> {
    let limit = state.config.max_request_bytes;
    GrpcInferenceServiceServer::new(Oip { state })
        .max_decoding_message_size(limit)
        .max_encoding_message_size(usize::MAX)
}

pub struct Oip {
    state: AppState,
}

fn status(e: plinth_serving::Error) -> Status {
    crate::error::Failure::from(e).grpc()
}

/// The typed contents field that carries `dt` (OIP: INT8..INT32 in
/// `int_contents`, UINT8..UINT32 in `uint_contents`).
fn contents_values(dt: DataType, c: InferTensorContents) -> Values {
    match dt {
        DataType::Bool => Values::Bool(c.bool_contents),
        DataType::F32 => Values::F32(c.fp32_contents),
        DataType::F64 => Values::F64(c.fp64_contents),
        DataType::Bytes => Values::Bytes(c.bytes_contents),
        DataType::I64 => Values::Int(c.int64_contents),
        DataType::U64 => Values::UInt(c.uint64_contents),
        DataType::U8 | DataType::U16 | DataType::U32 => {
            Values::UInt(c.uint_contents.into_iter().map(u64::from).collect())
        }
        DataType::I8 | DataType::I16 | DataType::I32 => {
            Values::Int(c.int_contents.into_iter().map(i64::from).collect())
        }
    }
}

/// Integers sent in a field wider than their datatype must still fit it.
fn in_range(a: &Array) -> Result<(), plinth_serving::Error> {
    let Some((lo, hi)) = a.datatype.integer_range() else { return Ok(()) };
    let out = match &a.values {
        Values::Int(v) => v.iter().map(|&x| i128::from(x)).find(|x| *x < lo || *x > hi),
        Values::UInt(v) => v.iter().map(|&x| i128::from(x)).find(|x| *x < lo || *x > hi),
        _ => None,
    };
    match out {
        Some(x) => Err(plinth_serving::Error::Invalid(format!("input '{}': {x} does not fit {}", a.name, a.datatype))),
        None => Ok(()),
    }
}

fn to_request(r: proto::ModelInferRequest) -> Result<InferRequest, plinth_serving::Error> {
    let raw = r.raw_input_contents;
    if !raw.is_empty() && raw.len() != r.inputs.len() {
        return Err(plinth_serving::Error::Invalid(format!(
            "raw_input_contents has {} entries for {} inputs",
            raw.len(),
            r.inputs.len()
        )));
    }
    let mut inputs = Vec::with_capacity(r.inputs.len());
    for (i, t) in r.inputs.into_iter().enumerate() {
        let dt = datatype(&t.datatype)?;
        let array = match (raw.get(i), t.contents) {
            (Some(bytes), _) => from_raw(&t.name, dt, &t.shape, bytes)?,
            (None, Some(c)) => checked(&t.name, dt, &t.shape, contents_values(dt, c))?,
            (None, None) => {
                return Err(plinth_serving::Error::Invalid(format!("input '{}' has no contents", t.name)));
            }
        };
        in_range(&array)?;
        inputs.push(array);
    }
    let outputs = r.outputs.into_iter().map(|o| RequestedOutput { name: o.name, binary: true }).collect();
    Ok(InferRequest { id: Some(r.id).filter(|s| !s.is_empty()), inputs, outputs, binary_output_default: true })
}

fn parameter(p: Parameter) -> InferParameter {
    let choice = match p {
        Parameter::Str(s) => ParameterChoice::StringParam(s),
        Parameter::Int(n) => ParameterChoice::Int64Param(n),
        Parameter::Bool(b) => ParameterChoice::BoolParam(b),
    };
    InferParameter { parameter_choice: Some(choice) }
}

fn tensor_metadata(t: &plinth_serving::tensor::TensorMetadata) -> proto::model_metadata_response::TensorMetadata {
    proto::model_metadata_response::TensorMetadata {
        name: t.name.clone(),
        datatype: t.datatype.oip().into(),
        shape: t.shape.clone(),
    }
}

#[tonic::async_trait]
impl GrpcInferenceService for Oip {
    async fn server_live(
        &self,
        _: Request<proto::ServerLiveRequest>,
    ) -> Result<Response<proto::ServerLiveResponse>, Status> {
        Ok(Response::new(proto::ServerLiveResponse { live: true }))
    }

    async fn server_ready(
        &self,
        _: Request<proto::ServerReadyRequest>,
    ) -> Result<Response<proto::ServerReadyResponse>, Status> {
        Ok(Response::new(proto::ServerReadyResponse { ready: true }))
    }

    async fn model_ready(
        &self,
        r: Request<proto::ModelReadyRequest>,
    ) -> Result<Response<proto::ModelReadyResponse>, Status> {
        crate::auth::serving_scope(r.extensions(), &r.get_ref().name)?;
        crate::auth::may_call(&self.state.platform, r.extensions(), &r.get_ref().name).await.map_err(|f| f.grpc())?;
        let r = r.into_inner();
        let version = Some(r.version.as_str()).filter(|v| !v.is_empty());
        let ready = self.state.serving.model_ready(&r.name, version).await.is_ok();
        Ok(Response::new(proto::ModelReadyResponse { ready }))
    }

    async fn server_metadata(
        &self,
        _: Request<proto::ServerMetadataRequest>,
    ) -> Result<Response<proto::ServerMetadataResponse>, Status> {
        Ok(Response::new(proto::ServerMetadataResponse {
            name: "plinth".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            extensions: vec!["binary_tensor_data".into()],
        }))
    }

    async fn model_metadata(
        &self,
        r: Request<proto::ModelMetadataRequest>,
    ) -> Result<Response<proto::ModelMetadataResponse>, Status> {
        crate::auth::serving_scope(r.extensions(), &r.get_ref().name)?;
        crate::auth::may_call(&self.state.platform, r.extensions(), &r.get_ref().name).await.map_err(|f| f.grpc())?;
        let r = r.into_inner();
        let version = Some(r.version.as_str()).filter(|v| !v.is_empty());
        let m = self.state.serving.model_metadata(&r.name, version).await.map_err(status)?;
        Ok(Response::new(proto::ModelMetadataResponse {
            name: r.name,
            versions: m.versions,
            platform: m.platform.into(),
            inputs: m.signature.inputs.iter().map(tensor_metadata).collect(),
            outputs: m.signature.outputs.iter().map(tensor_metadata).collect(),
        }))
    }

    async fn model_infer(
        &self,
        r: Request<proto::ModelInferRequest>,
    ) -> Result<Response<proto::ModelInferResponse>, Status> {
        crate::auth::serving_scope(r.extensions(), &r.get_ref().model_name)?;
        crate::auth::may_call(&self.state.platform, r.extensions(), &r.get_ref().model_name)
            .await
            .map_err(|f| f.grpc())?;
        let Ok(_permit) = self.state.inference_permits.clone().try_acquire_owned() else {
            return Err(Status::unavailable("Too many concurrent requests; retry shortly"));
        };
        let unit = r.metadata().get("x-plinth-unit").and_then(|v| v.to_str().ok()).map(str::to_string);
        let arrived = crate::conn::Arrived::of(r.extensions());
        let r = r.into_inner();
        let (name, version) = (r.model_name.clone(), r.model_version.clone());
        let version = Some(version.as_str()).filter(|v| !v.is_empty());
        let req = to_request(r).map_err(status)?;
        let requested = req.outputs.clone();
        let request_id = req.id.clone().unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
        let ctx = RequestContext { request_id, unit, arrived };
        let out = self.state.serving.infer(&name, version, req, ctx).await.map_err(status)?;
        let (model_version, id) = (out.model_version.clone(), out.id.clone());
        let parameters = out.parameters.clone().into_iter().map(|(k, v)| (k, parameter(v))).collect();
        let outputs: Vec<Array> = out.chosen(&requested).map_err(status)?.into_iter().map(|(t, _)| t).collect();
        Ok(Response::new(proto::ModelInferResponse {
            model_name: name,
            model_version,
            id: id.unwrap_or_default(),
            parameters,
            raw_output_contents: outputs.iter().map(to_raw).collect(),
            outputs: outputs
                .into_iter()
                .map(|t| InferOutputTensor {
                    name: t.name,
                    datatype: t.datatype.oip().into(),
                    shape: plinth_serving::tensor::wire_shape(&t.shape),
                    parameters: HashMap::new(),
                    contents: None,
                })
                .collect(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(datatype: &str, contents: InferTensorContents) -> proto::ModelInferRequest {
        proto::ModelInferRequest {
            inputs: vec![proto::model_infer_request::InferInputTensor {
                name: "x".into(),
                datatype: datatype.into(),
                shape: vec![1],
                contents: Some(contents),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn typed_contents_decode_by_datatype_and_bad_ones_are_refused() {
        let ok = to_request(request("UINT8", InferTensorContents { uint_contents: vec![200], ..Default::default() }));
        assert_eq!(ok.unwrap().inputs[0].values, Values::UInt(vec![200]));
        let big = InferTensorContents { uint64_contents: vec![u64::MAX], ..Default::default() };
        assert_eq!(to_request(request("UINT64", big)).unwrap().inputs[0].values, Values::UInt(vec![u64::MAX]));
        for (datatype, contents, why) in [
            ("NOPE", InferTensorContents { int_contents: vec![1], ..Default::default() }, "unknown datatype"),
            ("FP16", InferTensorContents { fp32_contents: vec![1.0], ..Default::default() }, "not supported"),
            ("UINT8", InferTensorContents { uint_contents: vec![300], ..Default::default() }, "does not fit"),
            ("INT32", InferTensorContents { fp32_contents: vec![1.0], ..Default::default() }, "needs 1 elements"),
        ] {
            match to_request(request(datatype, contents)) {
                Err(plinth_serving::Error::Invalid(m)) => assert!(m.contains(why), "{datatype}: {m}"),
                other => panic!("{datatype}: {other:?}"),
            }
        }
    }
}
