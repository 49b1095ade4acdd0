//! The Open Inference Protocol over gRPC (`inference.GRPCInferenceService`),
//! served on the same port as HTTP (HTTP/2). Converts protobuf tensors to
//! the serving crate's and back; inference itself is shared with REST.

use std::collections::HashMap;

use plinth_serving::tensor::{Data, InferRequest, RequestedOutput, Tensor};
use tonic::{Request, Response, Status};

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
    use plinth_serving::Error as S;
    match e {
        S::NotFound(m) => Status::not_found(m),
        S::Invalid(m) | S::AlreadyExists(m) => Status::invalid_argument(m),
        S::Internal(cause) => {
            tracing::error!(%cause, "internal error");
            Status::internal("Internal error; see the server log")
        }
    }
}

fn contents_data(datatype: &str, c: InferTensorContents) -> Data {
    match datatype {
        "BOOL" => Data::Bool(c.bool_contents),
        "FP32" => Data::Fp32(c.fp32_contents),
        "FP64" => Data::Fp64(c.fp64_contents),
        "BYTES" => Data::Bytes(c.bytes_contents),
        "INT64" => Data::Int(c.int64_contents.into_iter().map(i128::from).collect()),
        "UINT64" => Data::Int(c.uint64_contents.into_iter().map(i128::from).collect()),
        "UINT8" | "UINT16" | "UINT32" => Data::Int(c.uint_contents.into_iter().map(i128::from).collect()),
        _ => Data::Int(c.int_contents.into_iter().map(i128::from).collect()),
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
        let tensor = match (raw.get(i), t.contents) {
            (Some(bytes), _) => Tensor::from_raw(&t.name, &t.datatype, t.shape, bytes)?,
            (None, Some(c)) => {
                let data = contents_data(&t.datatype, c);
                Tensor::checked(&t.name, &t.datatype, t.shape, data)?
            }
            (None, None) => {
                return Err(plinth_serving::Error::Invalid(format!("input '{}' has no contents", t.name)));
            }
        };
        inputs.push(tensor);
    }
    let outputs = r.outputs.into_iter().map(|o| RequestedOutput { name: o.name, binary: true }).collect();
    Ok(InferRequest {
        id: Some(r.id).filter(|s| !s.is_empty()),
        inputs,
        outputs,
        binary_output_default: true,
        parameters: serde_json::Map::new(),
    })
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
        let r = r.into_inner();
        let version = Some(r.version.as_str()).filter(|v| !v.is_empty());
        let ready = self.state.serving.model_ready(&r.name, version).is_ok();
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
        let r = r.into_inner();
        let version = Some(r.version.as_str()).filter(|v| !v.is_empty());
        let m = self.state.serving.model_metadata(&r.name, version).map_err(status)?;
        let tensors = |key: &str| -> Vec<proto::model_metadata_response::TensorMetadata> {
            m[key]
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| proto::model_metadata_response::TensorMetadata {
                    name: t["name"].as_str().unwrap_or_default().into(),
                    datatype: t["datatype"].as_str().unwrap_or_default().into(),
                    shape: t["shape"].as_array().into_iter().flatten().filter_map(|d| d.as_i64()).collect(),
                })
                .collect()
        };
        Ok(Response::new(proto::ModelMetadataResponse {
            name: r.name,
            versions: m["versions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(Into::into))
                .collect(),
            platform: m["platform"].as_str().unwrap_or_default().into(),
            inputs: tensors("inputs"),
            outputs: tensors("outputs"),
        }))
    }

    async fn model_infer(
        &self,
        r: Request<proto::ModelInferRequest>,
    ) -> Result<Response<proto::ModelInferResponse>, Status> {
        let Ok(_permit) = self.state.inference_permits.clone().try_acquire_owned() else {
            return Err(Status::unavailable("Too many concurrent requests; retry shortly"));
        };
        let unit = r.metadata().get("x-plinth-unit").and_then(|v| v.to_str().ok()).map(str::to_string);
        let arrived = crate::conn::Arrived::of(r.extensions());
        let r = r.into_inner();
        let (name, version) = (r.model_name.clone(), r.model_version.clone());
        let version = Some(version.as_str()).filter(|v| !v.is_empty());
        let req = to_request(r).map_err(status)?;
        let request_id = req.id.clone().unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
        let out = self.state.serving.infer_tensors(&name, version, &req, unit, request_id, arrived).map_err(status)?;
        let mut outputs = out.outputs;
        if !req.outputs.is_empty() {
            let mut chosen = Vec::new();
            for o in &req.outputs {
                let i = outputs
                    .iter()
                    .position(|t| t.name == o.name)
                    .ok_or_else(|| Status::invalid_argument(format!("unknown output '{}'", o.name)))?;
                chosen.push(outputs.swap_remove(i));
            }
            outputs = chosen;
        }
        let raw_output_contents = outputs.iter().map(Tensor::to_raw).collect();
        let parameters = out
            .parameters
            .iter()
            .filter_map(|(k, v)| {
                v.as_str().map(|s| {
                    (k.clone(), InferParameter { parameter_choice: Some(ParameterChoice::StringParam(s.to_string())) })
                })
            })
            .collect();
        Ok(Response::new(proto::ModelInferResponse {
            model_name: name,
            model_version: out.model_version,
            id: req.id.unwrap_or_default(),
            parameters,
            outputs: outputs
                .into_iter()
                .map(|t| InferOutputTensor {
                    name: t.name,
                    datatype: t.datatype,
                    shape: t.shape,
                    parameters: HashMap::new(),
                    contents: None,
                })
                .collect(),
            raw_output_contents,
        }))
    }
}
