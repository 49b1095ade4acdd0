//! A deployment as an Open Inference Protocol model: the model name is the
//! deployment's. Each model kind says what it takes and gives
//! ([`InferKind`]): ONNX deployments take and give their model's tensors
//! ([`crate::onnx`]), tabular ones a column per feature ([`crate::tabular`]).
//! A recommender takes `user` (BYTES or integer ids, shape `[n]` or
//! `[n, 1]`), optionally `k` (integer, `[1]`) and `exclude_seen` (BOOL,
//! `[1]`), and answers `items` (BYTES `[n, k]`), `scores` (FP32 `[n, k]`),
//! and per row the `variant` (BYTES `[n]`) and `model_version` (INT64 `[n]`)
//! that answered. Rows shorter than `k` (a catalogue too small after
//! exclusions) are padded with `""` and a score of 0.

use serde_json::Map;

use crate::answer::{Answered, Endpoint, RequestContext, Task};
use crate::loaded::{Kind, Recommender};
use crate::recommend::{MAX_K, RankTask};
use crate::tensor::{
    Array, DataType, InferRequest, InferResponse, ModelMetadata, Parameter, Parameters, Signature, TensorMetadata,
    Values,
};
use crate::{Error, Live, Result, Serving};

/// What a model kind takes and gives, for metadata.
pub(crate) trait Describe {
    /// What the OIP metadata calls the platform.
    fn platform(&self) -> &'static str;
    fn signature(&self) -> Signature;
}

/// A model kind served over the Open Inference Protocol: a new kind is one
/// `impl` of this (and of [`Task`] for what it runs) plus its arm in
/// [`Serving::infer`].
pub(crate) trait InferKind: Describe + Send + Sync + 'static {
    type Task: Task;

    /// The request decoded for this kind, split into the units it is
    /// assigned by (`ctx.request_id` is the OIP `id`, else the edge's).
    fn decode(&self, req: InferRequest, ctx: &RequestContext) -> Result<Self::Task>;

    /// The parts' outputs as the response's tensors and parameters.
    fn respond(answers: Vec<Answered<<Self::Task as Task>::Output>>) -> Result<(Vec<Array>, Parameters)>;
}

impl Kind {
    pub(crate) fn describe(&self) -> &dyn Describe {
        match self {
            Kind::Recommender(r) => r,
            Kind::Onnx(m) => &**m,
            Kind::Tabular(m) => &**m,
        }
    }
}

/// The assignment unit of a request answered whole: the caller's, else the
/// request id.
pub(crate) fn whole_unit(ctx: &RequestContext) -> Vec<String> {
    vec![ctx.unit.clone().unwrap_or_else(|| ctx.request_id.clone())]
}

/// A whole request's answer: its outputs, and the variant as a parameter.
pub(crate) fn respond_whole(answers: Vec<Answered<(Vec<Array>, Parameters)>>) -> Result<(Vec<Array>, Parameters)> {
    let a = answers.into_iter().next().ok_or_else(|| Error::Internal("a whole request had no answer".into()))?;
    let (outputs, mut parameters) = a.output;
    parameters.insert("variant".into(), Parameter::Str(a.variant));
    Ok((outputs, parameters))
}

impl Serving {
    /// The index of the variant that serves `version` (a loaded version).
    fn slot_for_version(&self, live: &Live, version: &str) -> Result<usize> {
        let v: i64 = version.parse().map_err(|_| Error::Invalid(format!("Invalid model version '{version}'")))?;
        live.variants
            .iter()
            .position(|s| s.model().version == v)
            .ok_or_else(|| Error::NotFound(format!("Version {v} of model '{}' is not being served", live.spec.name)))
    }

    /// `GET /v2/models/{name}[/versions/{v}]`.
    pub async fn model_metadata(&self, name: &str, version: Option<&str>) -> Result<ModelMetadata> {
        let live = self.live(name).await?;
        if let Some(v) = version {
            self.slot_for_version(&live, v)?;
        }
        let mut versions: Vec<String> = live.variants.iter().map(|s| s.model().version.to_string()).collect();
        versions.dedup();
        let model = live.variants[0].model();
        let kind = model.kind.describe();
        Ok(ModelMetadata { name: name.to_string(), versions, platform: kind.platform(), signature: kind.signature() })
    }

    /// `GET /v2/models/{name}[/versions/{v}]/ready`.
    pub async fn model_ready(&self, name: &str, version: Option<&str>) -> Result<()> {
        let live = self.live(name).await?;
        if let Some(v) = version {
            self.slot_for_version(&live, v)?;
        }
        Ok(())
    }

    /// `POST /v2/models/{name}[/versions/{v}]/infer`, from either codec. A
    /// version pins the variant serving it; the OIP `id`, when given, is the
    /// request id the exposure log records.
    pub async fn infer(
        &self,
        name: &str,
        version: Option<&str>,
        req: InferRequest,
        ctx: RequestContext,
    ) -> Result<InferResponse> {
        let live = self.live(name).await?;
        let pinned = version.map(|v| self.slot_for_version(&live, v)).transpose()?;
        let ctx = RequestContext { request_id: req.id.clone().unwrap_or(ctx.request_id), ..ctx };
        let model = live.variants[pinned.unwrap_or(0)].model();
        match &model.kind {
            Kind::Recommender(r) => self.infer_as(r, &live, pinned, req, &ctx).await,
            Kind::Onnx(m) => self.infer_as(&**m, &live, pinned, req, &ctx).await,
            Kind::Tabular(m) => self.infer_as(&**m, &live, pinned, req, &ctx).await,
        }
    }

    async fn infer_as<K: InferKind>(
        &self,
        kind: &K,
        live: &std::sync::Arc<Live>,
        pinned: Option<usize>,
        req: InferRequest,
        ctx: &RequestContext,
    ) -> Result<InferResponse> {
        let id = req.id.clone();
        let task = kind.decode(req, ctx)?;
        let answers = self.answer(live, pinned, task, Endpoint::Infer, ctx).await?;
        let mut versions: Vec<i64> = answers.iter().map(|a| a.model_version).collect();
        versions.sort_unstable();
        versions.dedup();
        let (outputs, parameters) = K::respond(answers)?;
        Ok(InferResponse {
            model_name: live.spec.name.clone(),
            model_version: versions.iter().map(i64::to_string).collect::<Vec<_>>().join(","),
            id,
            outputs,
            parameters,
        })
    }
}

const INPUTS: &[&str] = &["user", "k", "exclude_seen"];

impl Describe for Recommender {
    fn platform(&self) -> &'static str {
        crate::loaded::RECOMMENDER_PLATFORM
    }

    fn signature(&self) -> Signature {
        Signature {
            inputs: vec![
                TensorMetadata::new("user", DataType::Bytes, vec![-1]),
                TensorMetadata::new("k", DataType::I32, vec![1]),
                TensorMetadata::new("exclude_seen", DataType::Bool, vec![1]),
            ],
            outputs: vec![
                TensorMetadata::new("items", DataType::Bytes, vec![-1, -1]),
                TensorMetadata::new("scores", DataType::F32, vec![-1, -1]),
                TensorMetadata::new("variant", DataType::Bytes, vec![-1]),
                TensorMetadata::new("model_version", DataType::I64, vec![-1]),
            ],
            parameters: Map::new(),
        }
    }
}

impl InferKind for Recommender {
    type Task = RankTask;

    fn decode(&self, req: InferRequest, ctx: &RequestContext) -> Result<RankTask> {
        if let Some(t) = req.inputs.iter().find(|t| !INPUTS.contains(&t.name.as_str())) {
            return Err(Error::Invalid(format!("unknown input '{}': the model takes user, k, exclude_seen", t.name)));
        }
        let users = users(req.input("user").ok_or_else(|| Error::Invalid("missing input 'user'".into()))?)?;
        let in_range = |k: u64| (1..=MAX_K as u64).contains(&k);
        let k = match req.input("k").map(|t| &t.values) {
            None => 10,
            Some(Values::Int(v)) if v.len() == 1 && u64::try_from(v[0]).is_ok_and(in_range) => v[0] as usize,
            Some(Values::UInt(v)) if v.len() == 1 && in_range(v[0]) => v[0] as usize,
            Some(_) => return Err(Error::Invalid(format!("input 'k' must be one integer in 1..={MAX_K}"))),
        };
        let exclude_seen = match req.input("exclude_seen").map(|t| &t.values) {
            None => true,
            Some(Values::Bool(v)) if v.len() == 1 => v[0],
            Some(_) => return Err(Error::Invalid("input 'exclude_seen' must be one BOOL".into())),
        };
        let units = match (&ctx.unit, users.as_slice()) {
            (Some(unit), [_]) => vec![unit.clone()],
            _ => users.clone(),
        };
        Ok(RankTask { users, units, k, exclude_seen, include: None, exclude: None })
    }

    fn respond(answers: Vec<Answered<crate::recommend::Ranked>>) -> Result<(Vec<Array>, Parameters)> {
        let n = answers.len();
        let width = answers.iter().map(|a| a.output.items.len()).max().unwrap_or(0);
        let (mut items, mut scores) = (Vec::with_capacity(n * width), Vec::with_capacity(n * width));
        let (mut variants, mut versions) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for a in &answers {
            for j in 0..width {
                match a.output.items.get(j) {
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
            variants.push(a.variant.as_bytes().to_vec());
            versions.push(a.model_version);
        }
        let mut parameters = Parameters::new();
        if let [only] = answers.as_slice() {
            parameters.insert("variant".into(), Parameter::Str(only.variant.clone()));
            if let Some(f) = only.output.fallback {
                parameters.insert("fallback".into(), Parameter::Str(f.into()));
            }
        }
        let array =
            |name: &str, datatype, shape: Vec<usize>, values| Array { name: name.into(), datatype, shape, values };
        let outputs = vec![
            array("items", DataType::Bytes, vec![n, width], Values::Bytes(items)),
            array("scores", DataType::F32, vec![n, width], Values::F32(scores)),
            array("variant", DataType::Bytes, vec![n], Values::Bytes(variants)),
            array("model_version", DataType::I64, vec![n], Values::Int(versions)),
        ];
        Ok((outputs, parameters))
    }
}

/// User ids from a BYTES or integer tensor of shape `[n]` or `[n, 1]`.
fn users(t: &Array) -> Result<Vec<String>> {
    let rows_ok = matches!(t.shape.as_slice(), [_] | [_, 1]);
    if !rows_ok || t.values.is_empty() {
        return Err(Error::Invalid(format!(
            "input 'user' must have shape [n] or [n, 1] with n >= 1, got {:?}",
            t.shape
        )));
    }
    match &t.values {
        Values::Bytes(v) => v
            .iter()
            .map(|b| {
                String::from_utf8(b.clone())
                    .ok()
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| Error::Invalid("input 'user': ids must be non-empty UTF-8".into()))
            })
            .collect(),
        Values::Int(v) => Ok(v.iter().map(|x| x.to_string()).collect()),
        Values::UInt(v) => Ok(v.iter().map(|x| x.to_string()).collect()),
        _ => Err(Error::Invalid(format!("input 'user' must be BYTES or an integer type, got {}", t.datatype))),
    }
}
