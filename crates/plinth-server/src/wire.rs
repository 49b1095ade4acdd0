//! MLflow's request fragments into core types, and page tokens. What the
//! server answers is `plinth_mlflow`'s types, shared with the CLI's client.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use plinth_core::experiments::Tag;
use plinth_core::runs::{Dataset, DatasetInput, Metric, ModelIo, Param};
use serde_json::{Value, json};

use crate::args::Args;
use crate::error::ApiError;

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
}
