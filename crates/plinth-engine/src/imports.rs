//! Importing models trained elsewhere: a LightGBM text model file becomes a
//! tracked run whose `model/` directory is what `mlflow.lightgbm.log_model`
//! writes for a booster (the text file plus an `MLmodel` naming it, with the
//! `lightgbm` and `python_function` flavors), so it
//! registers, deploys and serves natively like one logged through MLflow,
//! and MLflow's own client can load it back.

use std::path::Path;

use bytes::Bytes;
use plinth_core::experiments::Tag;
use plinth_core::runs::Param;
use plinth_ml::tabular::model::TabularModel;
use serde_json::json;

use crate::tracking::{MODEL_ARTIFACT_DIR, Tracker, TrainReport, close_run};
use crate::{Error, Result};

pub const LIGHTGBM_FILE: &str = "model.lgb";

/// Checks the file parses into trees Plinth can serve (so a bad file fails
/// before anything is tracked), then tracks and optionally registers it.
pub async fn import_lightgbm(
    tracker: &dyn Tracker,
    path: &Path,
    experiment: &str,
    run_name: Option<String>,
    register: Option<String>,
) -> Result<TrainReport> {
    if let Some(name) = &register {
        plinth_core::validation::validate_model_name(name)?;
    }
    let bytes = std::fs::read(path)
        .map_err(|e| Error::from(plinth_core::Error::invalid(format!("{}: {e}", path.display()))))?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| Error::from(plinth_core::Error::invalid(format!("{}: not a text file", path.display()))))?;
    let file = plinth_ml::tabular::lightgbm::parse(text)
        .map_err(|e| Error::from(plinth_core::Error::invalid(format!("{}: {e}", path.display()))))?;
    let TabularModel::Gbdt(trees) = &file.model else {
        return Err(Error::Internal("a LightGBM import is trees".into()));
    };
    let stats = json!({
        "features": file.schema.features.len(),
        "trees": trees.trees.len(),
        "task": file.schema.task,
    });
    let tags = vec![
        Tag::new("plinth.task", "tabular"),
        Tag::new("plinth.algo", "lightgbm"),
        Tag::new("mlflow.source.name", "plinth import lightgbm"),
    ];
    let (experiment_id, run_id) = tracker.start_run(experiment, run_name, tags).await?;
    let outcome = async {
        let params = vec![
            Param::new("source", path.display().to_string()),
            Param::new("task", format!("{:?}", file.schema.task).to_lowercase()),
            Param::new("features", file.schema.features.len().to_string()),
            Param::new("trees", trees.trees.len().to_string()),
        ];
        tracker.log(&run_id, vec![], params).await?;
        tracker.upload(&run_id, &format!("{MODEL_ARTIFACT_DIR}/{LIGHTGBM_FILE}"), Bytes::from(bytes.clone())).await?;
        let mlmodel = format!(
            "artifact_path: {MODEL_ARTIFACT_DIR}\nflavors:\n  lightgbm:\n    code: null\n    data: {LIGHTGBM_FILE}\n    \
             model_class: lightgbm.basic.Booster\n  python_function:\n    data: {LIGHTGBM_FILE}\n    \
             loader_module: mlflow.lightgbm\nrun_id: {run_id}\n"
        );
        tracker.upload(&run_id, &format!("{MODEL_ARTIFACT_DIR}/MLmodel"), Bytes::from(mlmodel)).await?;
        match &register {
            Some(name) => Ok(Some(tracker.register(name, &run_id, MODEL_ARTIFACT_DIR).await?)),
            None => Ok(None),
        }
    }
    .await;
    let version = close_run(tracker, &run_id, outcome).await?;
    Ok(TrainReport {
        experiment_id,
        run_id,
        metrics: vec![],
        model_name: register,
        model_version: version,
        alias: None,
        stats,
    })
}
