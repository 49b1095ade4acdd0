//! Loading a registered model version into memory, checked before it serves.

use std::sync::Arc;

use plinth_core::registry::ModelVersion;
use plinth_engine::Platform;
use plinth_ml::model::{ItemFilter, RecModel};
use plinth_ml::tabular::model::TabularFile;
use plinth_onnx::OnnxModel;

use crate::{Error, Result};

use plinth_core::model_dir::{Flavor, META_FILE, ModelMeta};

/// What the Open Inference Protocol's metadata calls each Plinth kind.
pub(crate) const RECOMMENDER_PLATFORM: &str = Flavor::Recommender.as_str();
pub(crate) const TABULAR_PLATFORM: &str = Flavor::Tabular.as_str();

/// Recommendations precomputed per user at load: the default request (no
/// item filters, seen items excluded, `k` up to [`TOP_N`]) is answered from
/// here without scoring. Only for models with up to [`MAX_PRECOMPUTED_USERS`]
/// users (at most 8 bytes x 100 per user, 80 MB); larger ones score live.
pub const TOP_N: usize = 100;
pub const MAX_PRECOMPUTED_USERS: usize = 100_000;

pub struct TopN {
    /// `TOP_N` slots per user; a row may be shorter (small catalogue).
    items: Vec<(u32, f32)>,
    lens: Vec<u8>,
}

impl TopN {
    fn build(model: &RecModel) -> TopN {
        let users: Vec<Option<u32>> = (0..model.users.len() as u32).map(Some).collect();
        let rows = model.recommend_batch(&users, TOP_N, true, &ItemFilter::default());
        let mut items = Vec::with_capacity(rows.len() * TOP_N);
        let mut lens = Vec::with_capacity(rows.len());
        for row in rows {
            lens.push(row.len() as u8);
            items.extend(row.iter().copied());
            items.resize(lens.len() * TOP_N, (0, 0.0));
        }
        TopN { items, lens }
    }

    /// The top `k` for a known user, if precomputed rows cover it.
    pub fn get(&self, user: u32, k: usize) -> Option<&[(u32, f32)]> {
        let len = *self.lens.get(user as usize)? as usize;
        if k > TOP_N {
            return None;
        }
        let start = user as usize * TOP_N;
        Some(&self.items[start..start + len.min(k)])
    }
}

/// A recommender with what serving precomputed for it.
pub struct Recommender {
    pub model: Arc<RecModel>,
    pub top: Option<TopN>,
    /// The item ids, shared: an answer and its exposure record hold them
    /// without copying a string per item per request.
    pub item_ids: Arc<[Arc<str>]>,
}

/// A tabular model trained by Plinth, with the encoding it was trained with.
pub type Tabular = TabularFile;

/// What a loaded version runs.
pub enum Kind {
    Recommender(Recommender),
    Onnx(Arc<OnnxModel>),
    Tabular(Arc<Tabular>),
}

/// A model version ready to answer.
pub struct LoadedModel {
    pub name: String,
    pub version: i64,
    pub loaded_time: i64,
    pub kind: Kind,
}

impl LoadedModel {
    /// What the Open Inference Protocol's metadata calls the platform.
    pub fn platform(&self) -> &'static str {
        self.kind.describe().platform()
    }

    /// The recommender, for the recommendation endpoints.
    pub fn recommender(&self) -> Result<&Recommender> {
        match &self.kind {
            Kind::Recommender(r) => Ok(r),
            Kind::Onnx(_) | Kind::Tabular(_) => Err(Error::Invalid(format!(
                "model '{}' version {} is not a recommender ({}): it answers /v2/models/<deployment>/infer",
                self.name,
                self.version,
                self.platform()
            ))),
        }
    }

    /// Whether `other` can replace or sit beside this model in one
    /// deployment: the same kind and, for ONNX, the same inputs and outputs,
    /// so clients see one contract whatever variant answers.
    pub fn check_compatible(&self, other: &LoadedModel) -> Result<()> {
        let describe = |m: &LoadedModel| format!("model '{}' version {}", m.name, m.version);
        match (&self.kind, &other.kind) {
            (Kind::Recommender(_), Kind::Recommender(_)) => Ok(()),
            (Kind::Tabular(a), Kind::Tabular(b))
                if a.schema.features == b.schema.features
                    && a.schema.task == b.schema.task
                    && a.schema.classes == b.schema.classes =>
            {
                Ok(())
            }
            (Kind::Tabular(_), Kind::Tabular(_)) => Err(Error::Invalid(format!(
                "{} and {} take different features or predict different classes; variants of one deployment must share a signature",
                describe(self),
                describe(other)
            ))),
            (Kind::Onnx(a), Kind::Onnx(b)) if a.inputs == b.inputs && same_outputs(a, b) => Ok(()),
            (Kind::Onnx(_), Kind::Onnx(_)) => Err(Error::Invalid(format!(
                "{} and {} take or give different tensors; variants of one deployment must share a signature",
                describe(self),
                describe(other)
            ))),
            _ => Err(Error::Invalid(format!(
                "{} ({}) and {} ({}) cannot serve one deployment",
                describe(self),
                self.platform(),
                describe(other),
                other.platform()
            ))),
        }
    }
}

fn same_outputs(a: &OnnxModel, b: &OnnxModel) -> bool {
    a.outputs.len() == b.outputs.len()
        && a.outputs.iter().zip(&b.outputs).all(|(x, y)| x.name == y.name && x.datatype == y.datatype)
}

/// MLflow's model directory descriptor, as far as serving reads it.
#[derive(serde::Deserialize)]
struct MlModel {
    #[serde(default)]
    flavors: std::collections::BTreeMap<String, serde_yaml_ng::Value>,
}

/// Reads and parses a version's files; anything that cannot serve is an
/// `Invalid` error naming the model, so a deploy fails up front. Plinth's
/// own models carry `plinth_model.json`; models logged with MLflow's `onnx`
/// flavor (`mlflow.onnx.log_model`) carry an `MLmodel` naming the file.
pub async fn load(platform: &Platform, version: &ModelVersion) -> Result<LoadedModel> {
    let what = format!("model '{}' version {}", version.name, version.version);
    let kind = match platform.read_model_file(version, META_FILE).await {
        Ok(meta) => load_plinth(platform, version, &what, &meta).await?,
        Err(e) if is_missing(&e) => load_mlflow(platform, version, &what).await?,
        Err(e) => return Err(e.into()),
    };
    Ok(LoadedModel { name: version.name.clone(), version: version.version, loaded_time: platform.now_ms(), kind })
}

/// A model file that is not there (or whose path cannot be there).
fn is_missing(e: &plinth_engine::Error) -> bool {
    matches!(e.kind(), plinth_core::ErrorKind::NotFound | plinth_core::ErrorKind::InvalidParameter)
}

async fn load_plinth(platform: &Platform, version: &ModelVersion, what: &str, meta: &[u8]) -> Result<Kind> {
    let meta: ModelMeta = serde_json::from_slice(meta)
        .map_err(|e| Error::Invalid(format!("{what} cannot be served: bad {META_FILE}: {e}")))?;
    let file = meta.file.as_str();
    let bytes = platform.read_model_file(version, file).await?;
    if meta.flavor == Flavor::Tabular {
        let model: Tabular = tokio::task::spawn_blocking(move || serde_json::from_slice(&bytes))
            .await
            .map_err(|e| Error::Internal(e.to_string()))?
            .map_err(|e| Error::Invalid(format!("{what}: bad {file}: {e}")))?;
        if !model.consistent() {
            return Err(Error::Invalid(format!("{what}: the model and its encoding disagree on the features")));
        }
        return Ok(Kind::Tabular(Arc::new(model)));
    }
    let (model, top) = tokio::task::spawn_blocking(move || {
        RecModel::from_bytes(&bytes).map(|mut m| {
            m.prepare_for_serving();
            let top = (m.users.len() <= MAX_PRECOMPUTED_USERS).then(|| TopN::build(&m));
            (m, top)
        })
    })
    .await
    .map_err(|e| Error::Internal(e.to_string()))?
    .map_err(|e| Error::Invalid(format!("{what}: {e}")))?;
    let item_ids = (0..model.items.len() as u32).map(|i| Arc::from(model.items.id(i))).collect();
    Ok(Kind::Recommender(Recommender { model: Arc::new(model), top, item_ids }))
}

async fn load_mlflow(platform: &Platform, version: &ModelVersion, what: &str) -> Result<Kind> {
    let descriptor = platform.read_model_file(version, "MLmodel").await.map_err(|e| {
        if is_missing(&e) {
            Error::Invalid(format!(
                "{what} cannot be served: it has neither {META_FILE} (a model trained by Plinth) nor an MLmodel file"
            ))
        } else {
            e.into()
        }
    })?;
    let descriptor: MlModel =
        serde_yaml_ng::from_slice(&descriptor).map_err(|e| Error::Invalid(format!("{what}: bad MLmodel: {e}")))?;
    if let Some(lightgbm) = descriptor.flavors.get("lightgbm") {
        return load_lightgbm(platform, version, what, lightgbm).await;
    }
    let Some(onnx) = descriptor.flavors.get("onnx") else {
        let found: Vec<&str> = descriptor.flavors.keys().map(String::as_str).collect();
        return Err(Error::Invalid(format!(
            "{what} cannot be served: Plinth serves MLflow models in the 'onnx' flavor (export with skl2onnx, \
             onnxmltools or torch.onnx and log with mlflow.onnx.log_model) or LightGBM boosters \
             (mlflow.lightgbm.log_model); this one has: {}",
            found.join(", ")
        )));
    };
    let file = onnx.get("data").and_then(serde_yaml_ng::Value::as_str).unwrap_or("model.onnx").to_string();
    let bytes = platform.read_model_file(version, &file).await?;
    let model = tokio::task::spawn_blocking(move || OnnxModel::load(&bytes))
        .await
        .map_err(|e| Error::Internal(e.to_string()))?
        .map_err(|e| Error::Invalid(format!("{what} cannot be served: {e}")))?;
    Ok(Kind::Onnx(Arc::new(model)))
}

/// A LightGBM booster logged with `mlflow.lightgbm.log_model`: its text
/// model file, imported into Plinth's trees and served as a tabular model.
async fn load_lightgbm(
    platform: &Platform,
    version: &ModelVersion,
    what: &str,
    flavor: &serde_yaml_ng::Value,
) -> Result<Kind> {
    let file = flavor.get("data").and_then(serde_yaml_ng::Value::as_str).unwrap_or("model.lgb").to_string();
    if !file.ends_with(".lgb") && !file.ends_with(".txt") {
        return Err(Error::Invalid(format!(
            "{what} cannot be served: its LightGBM model is pickled ({file}); log the booster instead \
             (mlflow.lightgbm.log_model(model.booster_, ...)), which saves LightGBM's text format"
        )));
    }
    let bytes = platform.read_model_file(version, &file).await?;
    let model = tokio::task::spawn_blocking(move || {
        let text = std::str::from_utf8(&bytes).map_err(|_| "the model file is not text".to_string())?;
        plinth_ml::tabular::lightgbm::parse(text).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| Error::Internal(e.to_string()))?
    .map_err(|e| Error::Invalid(format!("{what} cannot be served: {e}")))?;
    Ok(Kind::Tabular(Arc::new(model)))
}

#[cfg(test)]
mod tests {
    use plinth_ml::als::Factors;
    use plinth_ml::csr::Csr;
    use plinth_ml::interactions::IdMap;
    use plinth_ml::model::Engine;

    use super::*;

    #[test]
    fn precomputed_rows_match_live_ranking() {
        let n_items = 150;
        let mut m = RecModel {
            algo: "als".into(),
            params: serde_json::json!({}),
            users: IdMap::from_ids((0..3).map(|u| format!("u{u}")).collect()),
            items: IdMap::from_ids((0..n_items).map(|i| format!("i{i}")).collect()),
            popularity: (0..n_items).map(|i| i as f32).collect(),
            seen: Csr::from_triples(3, n_items, vec![(0, 5, 1.0), (1, 7, 1.0), (2, 149, 1.0)]),
            engine: Engine::Factors(Factors {
                factors: 2,
                users: vec![1.0, 0.0, 0.0, 1.0, 0.5, 0.5],
                items: (0..n_items * 2).map(|k| ((k * 37) % 101) as f32 / 101.0).collect(),
            }),
            scoring: None,
        };
        m.prepare_for_serving();
        let top = TopN::build(&m);
        for u in 0..3u32 {
            for k in [1, 10, 100] {
                assert_eq!(top.get(u, k).unwrap(), m.recommend(Some(u), k, true, &ItemFilter::default()).as_slice());
            }
            assert!(top.get(u, 101).is_none());
        }
        assert!(top.get(3, 10).is_none());
    }
}
