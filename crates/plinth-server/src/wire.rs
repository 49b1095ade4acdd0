//! MLflow's JSON shapes: core types out, request fragments in. Field names
//! follow MLflow's protobuf messages; int64 as numbers, doubles that are not
//! finite as "NaN"/"Infinity"/"-Infinity", enums by name.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use plinth_core::experiments::{Experiment, Tag};
use plinth_core::logged_models::LoggedModel;
use plinth_core::registry::{ModelVersion, RegisteredModel};
use plinth_core::runs::{Dataset, DatasetInput, Metric, ModelIo, Param, Run, RunInfo};
use serde_json::{Map, Value, json};

use crate::args::Args;
use crate::error::ApiError;

pub use plinth_core::mlflow_json::double as f64_json;

fn insert_opt(obj: &mut Map<String, Value>, key: &str, v: Option<impl Into<Value>>) {
    if let Some(v) = v {
        obj.insert(key.into(), v.into());
    }
}

pub fn tags_json(tags: &[Tag]) -> Value {
    Value::Array(tags.iter().map(|t| json!({"key": t.key, "value": t.value})).collect())
}

pub fn experiment_json(e: &Experiment) -> Value {
    json!({
        "experiment_id": e.experiment_id,
        "name": e.name,
        "artifact_location": e.artifact_location,
        "lifecycle_stage": e.lifecycle_stage.as_str(),
        "creation_time": e.creation_time,
        "last_update_time": e.last_update_time,
        "tags": tags_json(&e.tags),
    })
}

pub fn metric_json(m: &Metric) -> Value {
    let mut obj = Map::new();
    obj.insert("key".into(), json!(m.key));
    obj.insert("value".into(), f64_json(m.value));
    obj.insert("timestamp".into(), json!(m.timestamp));
    obj.insert("step".into(), json!(m.step));
    insert_opt(&mut obj, "model_id", m.model_id.clone());
    insert_opt(&mut obj, "dataset_name", m.dataset_name.clone());
    insert_opt(&mut obj, "dataset_digest", m.dataset_digest.clone());
    Value::Object(obj)
}

pub fn run_info_json(i: &RunInfo) -> Value {
    let mut obj = Map::new();
    obj.insert("run_id".into(), json!(i.run_id));
    obj.insert("run_uuid".into(), json!(i.run_id));
    obj.insert("run_name".into(), json!(i.run_name));
    obj.insert("experiment_id".into(), json!(i.experiment_id));
    obj.insert("user_id".into(), json!(i.user_id));
    obj.insert("status".into(), json!(i.status.as_str()));
    obj.insert("start_time".into(), json!(i.start_time));
    insert_opt(&mut obj, "end_time", i.end_time);
    obj.insert("artifact_uri".into(), json!(i.artifact_uri));
    obj.insert("lifecycle_stage".into(), json!(i.lifecycle_stage.as_str()));
    Value::Object(obj)
}

fn dataset_json(d: &Dataset) -> Value {
    let mut obj = Map::new();
    obj.insert("name".into(), json!(d.name));
    obj.insert("digest".into(), json!(d.digest));
    obj.insert("source_type".into(), json!(d.source_type));
    obj.insert("source".into(), json!(d.source));
    insert_opt(&mut obj, "schema", d.schema.clone());
    insert_opt(&mut obj, "profile", d.profile.clone());
    Value::Object(obj)
}

pub fn run_json(r: &Run) -> Value {
    json!({
        "info": run_info_json(&r.info),
        "data": {
            "metrics": r.data.metrics.iter().map(metric_json).collect::<Vec<_>>(),
            "params": r.data.params.iter().map(|p| json!({"key": p.key, "value": p.value})).collect::<Vec<_>>(),
            "tags": tags_json(&r.data.tags),
        },
        "inputs": {
            "dataset_inputs": r.inputs.datasets.iter().map(|d| json!({"tags": tags_json(&d.tags), "dataset": dataset_json(&d.dataset)})).collect::<Vec<_>>(),
            "model_inputs": r.inputs.models.iter().map(|m| json!({"model_id": m.model_id})).collect::<Vec<_>>(),
        },
        "outputs": {
            "model_outputs": r.outputs.iter().map(|m| json!({"model_id": m.model_id, "step": m.step})).collect::<Vec<_>>(),
        },
    })
}

pub fn logged_model_json(m: &LoggedModel) -> Value {
    let mut info = Map::new();
    info.insert("model_id".into(), json!(m.model_id));
    info.insert("experiment_id".into(), json!(m.experiment_id));
    info.insert("name".into(), json!(m.name));
    info.insert("creation_timestamp_ms".into(), json!(m.creation_timestamp_ms));
    info.insert("last_updated_timestamp_ms".into(), json!(m.last_updated_timestamp_ms));
    info.insert("artifact_uri".into(), json!(m.artifact_location));
    info.insert("status".into(), json!(m.status.as_str()));
    insert_opt(&mut info, "model_type", m.model_type.clone());
    insert_opt(&mut info, "source_run_id", m.source_run_id.clone());
    insert_opt(&mut info, "status_message", m.status_message.clone());
    info.insert("tags".into(), tags_json(&m.tags));
    json!({
        "info": info,
        "data": {
            "params": m.params.iter().map(|p| json!({"key": p.key, "value": p.value})).collect::<Vec<_>>(),
            "metrics": m.metrics.iter().map(metric_json).collect::<Vec<_>>(),
        }
    })
}

pub fn model_version_json(v: &ModelVersion) -> Value {
    let mut obj = Map::new();
    obj.insert("name".into(), json!(v.name));
    obj.insert("version".into(), json!(v.version.to_string()));
    obj.insert("creation_timestamp".into(), json!(v.creation_timestamp));
    obj.insert("last_updated_timestamp".into(), json!(v.last_updated_timestamp));
    insert_opt(&mut obj, "user_id", v.user_id.clone());
    obj.insert("current_stage".into(), json!(v.current_stage.as_str()));
    insert_opt(&mut obj, "description", v.description.clone());
    obj.insert("source".into(), json!(v.source));
    insert_opt(&mut obj, "run_id", v.run_id.clone());
    insert_opt(&mut obj, "run_link", v.run_link.clone());
    obj.insert("status".into(), json!(v.status));
    insert_opt(&mut obj, "status_message", v.status_message.clone());
    obj.insert("tags".into(), tags_json(&v.tags));
    obj.insert("aliases".into(), json!(v.aliases));
    insert_opt(&mut obj, "model_id", v.model_id.clone());
    Value::Object(obj)
}

pub fn registered_model_json(m: &RegisteredModel) -> Value {
    let mut obj = Map::new();
    obj.insert("name".into(), json!(m.name));
    obj.insert("creation_timestamp".into(), json!(m.creation_timestamp));
    obj.insert("last_updated_timestamp".into(), json!(m.last_updated_timestamp));
    insert_opt(&mut obj, "description", m.description.clone());
    obj.insert("latest_versions".into(), Value::Array(m.latest_versions.iter().map(model_version_json).collect()));
    obj.insert("tags".into(), tags_json(&m.tags));
    obj.insert(
        "aliases".into(),
        Value::Array(m.aliases.iter().map(|a| json!({"alias": a.alias, "version": a.version.to_string()})).collect()),
    );
    Value::Object(obj)
}

// --- requests ---

pub fn parse_tags(args: &Args, key: &str) -> Result<Vec<Tag>, ApiError> {
    args.objects(key)?
        .iter()
        .map(|t| Ok(Tag { key: t.req_str("key")?, value: t.opt_str("value")?.unwrap_or_default() }))
        .collect()
}

pub fn parse_params(args: &Args, key: &str) -> Result<Vec<Param>, ApiError> {
    args.objects(key)?
        .iter()
        .map(|p| Ok(Param { key: p.req_str("key")?, value: p.req_str_allow_empty("value")? }))
        .collect()
}

/// A metric from a request; `timestamp` is required as in MLflow, `step` defaults to 0.
pub fn parse_metric(m: &Args) -> Result<Metric, ApiError> {
    Ok(Metric {
        key: m.req_str("key")?,
        value: m.req_f64("value")?,
        timestamp: m.req_i64("timestamp")?,
        step: m.opt_i64("step")?.unwrap_or(0),
        model_id: m.opt_str("model_id")?.filter(|s| !s.is_empty()),
        dataset_name: m.opt_str("dataset_name")?.filter(|s| !s.is_empty()),
        dataset_digest: m.opt_str("dataset_digest")?.filter(|s| !s.is_empty()),
    })
}

pub fn parse_dataset_inputs(args: &Args) -> Result<Vec<DatasetInput>, ApiError> {
    args.objects("datasets")?
        .iter()
        .map(|d| {
            let ds = d
                .object("dataset")?
                .ok_or_else(|| ApiError::invalid("Missing value for required parameter 'dataset'."))?;
            Ok(DatasetInput {
                dataset: Dataset {
                    name: ds.req_str("name")?,
                    digest: ds.req_str("digest")?,
                    source_type: ds.req_str("source_type")?,
                    source: ds.req_str_allow_empty("source")?,
                    schema: ds.opt_str("schema")?,
                    profile: ds.opt_str("profile")?,
                },
                tags: parse_tags(d, "tags")?,
            })
        })
        .collect()
}

pub fn parse_model_io(args: &Args, key: &str) -> Result<Vec<ModelIo>, ApiError> {
    args.objects(key)?
        .iter()
        .map(|m| Ok(ModelIo { model_id: m.req_str("model_id")?, step: m.opt_i64("step")?.unwrap_or(0) }))
        .collect()
}

/// Page tokens are opaque to clients: base64 of `{"offset": n}`.
pub fn encode_page_token(offset: Option<i64>) -> Option<String> {
    offset.map(|o| URL_SAFE_NO_PAD.encode(json!({"offset": o}).to_string()))
}

pub fn decode_page_token(token: Option<String>) -> Result<i64, ApiError> {
    let Some(token) = token.filter(|t| !t.is_empty()) else { return Ok(0) };
    let bad = || ApiError::invalid(format!("Invalid page token '{token}'"));
    let bytes = URL_SAFE_NO_PAD.decode(token.trim_end_matches('=')).map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    v.get("offset").and_then(Value::as_i64).filter(|o| *o >= 0).ok_or_else(bad)
}

/// Adds `next_page_token` when there is a next page.
pub fn with_token(mut v: Value, next_offset: Option<i64>) -> Value {
    if let (Some(obj), Some(token)) = (v.as_object_mut(), encode_page_token(next_offset)) {
        obj.insert("next_page_token".into(), json!(token));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_roundtrip() {
        let t = encode_page_token(Some(42));
        assert_eq!(decode_page_token(t).ok(), Some(42));
        assert!(decode_page_token(Some("garbage!".into())).is_err());
        assert_eq!(decode_page_token(None).ok(), Some(0));
    }

    #[test]
    fn non_finite_doubles() {
        assert_eq!(f64_json(f64::NAN), json!("NaN"));
        assert_eq!(f64_json(f64::NEG_INFINITY), json!("-Infinity"));
        assert_eq!(f64_json(1.5), json!(1.5));
    }
}
