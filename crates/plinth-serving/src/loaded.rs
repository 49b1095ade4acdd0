//! Loading a registered model version into memory, checked before it serves.

use std::sync::Arc;

use plinth_core::ids::now_ms;
use plinth_core::registry::ModelVersion;
use plinth_engine::Platform;
use plinth_ml::model::RecModel;

use crate::{Error, Result};

/// The metadata file every Plinth model directory carries.
const META_FILE: &str = "plinth_model.json";
const RECOMMENDER_FLAVOR: &str = "plinth-recommender";

/// A model version ready to answer.
pub struct LoadedModel {
    pub name: String,
    pub version: i64,
    pub loaded_time: i64,
    pub recommender: Arc<RecModel>,
}

/// Reads and parses a version's files; anything that cannot serve is an
/// `Invalid` error naming the model, so a deploy fails up front.
pub async fn load(platform: &Platform, version: &ModelVersion) -> Result<LoadedModel> {
    let what = format!("model '{}' version {}", version.name, version.version);
    let meta = platform.read_model_file(version, META_FILE).await.map_err(|e| match Error::from(e) {
        Error::Invalid(_) | Error::NotFound(_) => Error::Invalid(format!(
            "{what} cannot be served: it has no {META_FILE} (Plinth serves recommenders trained by Plinth)"
        )),
        other => other,
    })?;
    let meta: serde_json::Value =
        serde_json::from_slice(&meta).map_err(|e| Error::Invalid(format!("{what}: bad {META_FILE}: {e}")))?;
    let flavor = meta["flavor"].as_str().unwrap_or_default();
    if flavor != RECOMMENDER_FLAVOR {
        return Err(Error::Invalid(format!("{what} cannot be served: unknown flavor '{flavor}'")));
    }
    let file = meta["file"].as_str().ok_or_else(|| Error::Invalid(format!("{what}: {META_FILE} names no file")))?;
    let bytes = platform.read_model_file(version, file).await?;
    let recommender = tokio::task::spawn_blocking(move || {
        RecModel::from_bytes(&bytes).map(|mut m| {
            m.prepare_for_serving();
            m
        })
    })
    .await
    .map_err(|e| Error::Internal(e.to_string()))?
    .map_err(|e| Error::Invalid(format!("{what}: {e}")))?;
    Ok(LoadedModel {
        name: version.name.clone(),
        version: version.version,
        loaded_time: now_ms(),
        recommender: Arc::new(recommender),
    })
}
