//! A deployment as an Open Inference Protocol model: the model name is the
//! deployment's. ONNX deployments take and give their model's tensors (see
//! [`crate::onnx`]). A recommender takes `user` (BYTES or integer ids, shape
//! `[n]` or `[n, 1]`), optionally `k` (integer, `[1]`) and `exclude_seen`
//! (BOOL, `[1]`), and answers `items` (BYTES `[n, k]`), `scores` (FP32
//! `[n, k]`), and per row the `variant` (BYTES `[n]`) and `model_version`
//! (INT64 `[n]`) that answered. Rows shorter than `k` (a catalogue too small
//! after exclusions) are padded with `""` and a score of 0.

use std::time::Instant;

use serde_json::{Map, Value, json};

use crate::loaded::Kind;
use crate::recommend::{MAX_K, RecommendRequest, Recommendation, rank_user};
use crate::tensor::{Data, EncodedResponse, InferRequest, Tensor, decode_request, encode_response};
use crate::{Error, Live, Result, Serving, Slot};

const INPUTS: &[&str] = &["user", "k", "exclude_seen"];

/// What an inference produced, before it is encoded for the wire.
pub struct InferOutcome {
    pub outputs: Vec<Tensor>,
    /// The version that answered (several, comma-separated, for a batch
    /// split over variants).
    pub model_version: String,
    pub parameters: Map<String, Value>,
}

impl Serving {
    /// The slot that serves `version` (a loaded version of one variant).
    fn slot_for_version<'a>(&self, live: &'a Live, version: &str) -> Result<&'a Slot> {
        let v: i64 = version.parse().map_err(|_| Error::Invalid(format!("Invalid model version '{version}'")))?;
        live.variants
            .iter()
            .find(|s| s.model().version == v)
            .ok_or_else(|| Error::NotFound(format!("Version {v} of model '{}' is not being served", live.spec.name)))
    }

    /// `GET /v2/models/{name}[/versions/{v}]`.
    pub fn model_metadata(&self, name: &str, version: Option<&str>) -> Result<Value> {
        let live = self.live(name)?;
        if let Some(v) = version {
            self.slot_for_version(&live, v)?;
        }
        let mut versions: Vec<String> = live.variants.iter().map(|s| s.model().version.to_string()).collect();
        versions.dedup();
        match &live.variants[0].model().kind {
            Kind::Onnx(m) => return Ok(crate::onnx::metadata(name, versions, m)),
            Kind::Tabular(m) => return Ok(crate::tabular::metadata(name, versions, m)),
            Kind::Recommender(_) => {}
        }
        Ok(json!({
            "name": name,
            "versions": versions,
            "platform": "plinth-recommender",
            "inputs": [
                {"name": "user", "datatype": "BYTES", "shape": [-1]},
                {"name": "k", "datatype": "INT32", "shape": [1]},
                {"name": "exclude_seen", "datatype": "BOOL", "shape": [1]},
            ],
            "outputs": [
                {"name": "items", "datatype": "BYTES", "shape": [-1, -1]},
                {"name": "scores", "datatype": "FP32", "shape": [-1, -1]},
                {"name": "variant", "datatype": "BYTES", "shape": [-1]},
                {"name": "model_version", "datatype": "INT64", "shape": [-1]},
            ],
        }))
    }

    /// `GET /v2/models/{name}[/versions/{v}]/ready`.
    pub fn model_ready(&self, name: &str, version: Option<&str>) -> Result<()> {
        let live = self.live(name)?;
        if let Some(v) = version {
            self.slot_for_version(&live, v)?;
        }
        Ok(())
    }

    /// `POST /v2/models/{name}[/versions/{v}]/infer` over REST: the body as
    /// sent, and `Inference-Header-Content-Length` if present.
    #[allow(clippy::too_many_arguments)]
    pub fn infer(
        &self,
        name: &str,
        version: Option<&str>,
        body: &[u8],
        header_len: Option<usize>,
        unit: Option<String>,
        request_id: String,
        arrived: Instant,
    ) -> Result<EncodedResponse> {
        let live = self.live(name)?;
        if let Some(v) = version {
            self.slot_for_version(&live, v)?;
        }
        let req = decode_request(body, header_len)?;
        let out = self.infer_tensors(name, version, &req, unit, request_id, arrived)?;
        encode_response(name, &out.model_version, req.id.as_deref(), out.outputs, &req, out.parameters)
    }

    /// Inference on decoded tensors (REST and gRPC both end here).
    pub fn infer_tensors(
        &self,
        name: &str,
        version: Option<&str>,
        req: &InferRequest,
        unit: Option<String>,
        request_id: String,
        arrived: Instant,
    ) -> Result<InferOutcome> {
        let live = self.live(name)?;
        let pinned = version.map(|v| self.slot_for_version(&live, v)).transpose()?;
        match live.variants[0].model().kind {
            Kind::Onnx(_) => return self.infer_onnx(&live, pinned, req, unit, request_id, arrived),
            Kind::Tabular(_) => return self.infer_tabular(&live, pinned, req, unit, request_id, arrived),
            Kind::Recommender(_) => {}
        }
        if let Some(t) = req.inputs.iter().find(|t| !INPUTS.contains(&t.name.as_str())) {
            return Err(Error::Invalid(format!(
                "unknown input '{}': model '{name}' takes user, k, exclude_seen",
                t.name
            )));
        }
        let users = users(req.input("user").ok_or_else(|| Error::Invalid("missing input 'user'".into()))?)?;
        let k = match req.input("k").map(|t| &t.data) {
            None => 10,
            Some(Data::Int(v)) if v.len() == 1 && (1..=MAX_K as i128).contains(&v[0]) => v[0] as usize,
            Some(_) => return Err(Error::Invalid(format!("input 'k' must be one integer in 1..={MAX_K}"))),
        };
        let exclude_seen = match req.input("exclude_seen").map(|t| &t.data) {
            None => true,
            Some(Data::Bool(v)) if v.len() == 1 => v[0],
            Some(_) => return Err(Error::Invalid("input 'exclude_seen' must be one BOOL".into())),
        };
        let rec_req = RecommendRequest {
            user: None,
            users: None,
            k: Some(k),
            exclude_seen: Some(exclude_seen),
            include_items: None,
            exclude_items: None,
        };
        let id = req.id.clone().unwrap_or(request_id);
        let served = self.served(&live, "infer", &id);
        let (mut items, mut scores, mut variants, mut versions) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut width = 0;
        let mut rows = Vec::with_capacity(users.len());
        for user in &users {
            let started = arrived;
            let unit = if users.len() == 1 { unit.clone().unwrap_or_else(|| user.clone()) } else { user.clone() };
            let slot = pinned.unwrap_or_else(|| live.assign(&unit));
            let rec = rank_user(slot, user, k, &rec_req);
            served.account(slot, &unit, rec.as_ref().ok().map(Recommendation::answer), started, false);
            let rec = rec?;
            width = width.max(rec.items.len());
            rows.push(rec);
        }
        for rec in &rows {
            for j in 0..width {
                match rec.items.get(j) {
                    Some(it) => {
                        items.push(it.item.as_bytes().to_vec());
                        scores.push(it.score);
                    }
                    None => {
                        items.push(Vec::new());
                        scores.push(0.0);
                    }
                }
            }
            variants.push(rec.variant.as_bytes().to_vec());
            versions.push(rec.model_version as i128);
        }
        let n = rows.len() as i64;
        let mut distinct: Vec<i128> = versions.clone();
        distinct.sort();
        distinct.dedup();
        let model_version = distinct.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(",");
        let mut params = Map::new();
        if let [only] = rows.as_slice() {
            params.insert("variant".into(), json!(only.variant));
            if let Some(f) = only.fallback {
                params.insert("fallback".into(), json!(f));
            }
        }
        let outputs = vec![
            Tensor {
                name: "items".into(),
                datatype: "BYTES".into(),
                shape: vec![n, width as i64],
                data: Data::Bytes(items),
            },
            Tensor {
                name: "scores".into(),
                datatype: "FP32".into(),
                shape: vec![n, width as i64],
                data: Data::Fp32(scores),
            },
            Tensor { name: "variant".into(), datatype: "BYTES".into(), shape: vec![n], data: Data::Bytes(variants) },
            Tensor {
                name: "model_version".into(),
                datatype: "INT64".into(),
                shape: vec![n],
                data: Data::Int(versions),
            },
        ];
        Ok(InferOutcome { outputs, model_version, parameters: params })
    }
}

/// User ids from a BYTES or integer tensor of shape `[n]` or `[n, 1]`.
fn users(t: &Tensor) -> Result<Vec<String>> {
    let rows_ok = matches!(t.shape.as_slice(), [_] | [_, 1]);
    if !rows_ok || t.data.is_empty() {
        return Err(Error::Invalid(format!(
            "input 'user' must have shape [n] or [n, 1] with n >= 1, got {:?}",
            t.shape
        )));
    }
    match &t.data {
        Data::Bytes(v) => v
            .iter()
            .map(|b| {
                String::from_utf8(b.clone())
                    .ok()
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| Error::Invalid("input 'user': ids must be non-empty UTF-8".into()))
            })
            .collect(),
        Data::Int(v) => Ok(v.iter().map(|x| x.to_string()).collect()),
        _ => Err(Error::Invalid(format!("input 'user' must be BYTES or an integer type, got {}", t.datatype))),
    }
}
