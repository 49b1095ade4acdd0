//! The `MLmodel` beside every model Plinth trains, so MLflow's own client
//! loads it: `mlflow.pyfunc.load_model("models:/<name>@<alias>")`. Its
//! `python_function` flavor names a loader module that ships inside the
//! model's directory (`code/`), reads the same files the server serves from
//! and needs only numpy and pandas. The loader's text is compiled in, so the
//! module a model carries is the one its Plinth version wrote.

use bytes::Bytes;
use serde_json::json;

use crate::tracking::{MODEL_ARTIFACT_DIR, Tracker};
use crate::{Error, Result};

/// Versioned with the file formats it reads: a process that loads models of
/// two Plinth generations imports each generation's module once.
pub const LOADER_MODULE: &str = "plinth_pyfunc_v1";
const LOADER: &str = include_str!("pyfunc/plinth_pyfunc_v1.py");
const CODE_DIR: &str = "code";
const REQUIREMENTS: &str = "numpy\npandas\n";

/// What a model is, for its `python_function` signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    Recommender,
    Tabular,
}

/// The `MLmodel` document (YAML) for a model of `kind` logged by `run_id`.
pub fn mlmodel(run_id: &str, kind: ModelKind, created: std::time::SystemTime) -> Result<String> {
    // MLflow writes `%Y-%m-%d %H:%M:%S.%f` (UTC).
    let created = humantime::format_rfc3339_micros(created).to_string().replace('T', " ").replace('Z', "");
    let mut doc = json!({
        "artifact_path": MODEL_ARTIFACT_DIR,
        "flavors": {
            "python_function": {
                "loader_module": LOADER_MODULE,
                "code": CODE_DIR,
            },
        },
        "run_id": run_id,
        "utc_time_created": created,
    });
    if kind == ModelKind::Recommender {
        // Without a params schema MLflow drops `params` before `predict`.
        let params = json!([
            {"name": "k", "type": "long", "default": 10, "shape": null},
            {"name": "exclude_seen", "type": "boolean", "default": true, "shape": null},
        ]);
        doc["signature"] = json!({"inputs": null, "outputs": null, "params": params.to_string()});
    }
    serde_yaml_ng::to_string(&doc).map_err(|e| Error::Internal(format!("MLmodel: {e}")))
}

/// Uploads the `MLmodel`, the loader and its requirements into the run's
/// model directory.
pub async fn write(tracker: &dyn Tracker, run_id: &str, kind: ModelKind) -> Result<()> {
    let dir = MODEL_ARTIFACT_DIR;
    let files = [
        (format!("{dir}/{CODE_DIR}/{LOADER_MODULE}.py"), LOADER.to_string()),
        (format!("{dir}/requirements.txt"), REQUIREMENTS.to_string()),
        (format!("{dir}/MLmodel"), mlmodel(run_id, kind, std::time::SystemTime::now())?),
    ];
    for (path, text) in files {
        tracker.upload(run_id, &path, Bytes::from(text)).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mlmodel_names_the_loader_and_recommender_params() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_micros(1_700_000_000_123_456);
        let text = mlmodel("abc123", ModelKind::Recommender, t).unwrap();
        let doc: serde_json::Value = serde_yaml_ng::from_str(&text).unwrap();
        assert_eq!(doc["flavors"]["python_function"]["loader_module"], LOADER_MODULE);
        assert_eq!(doc["flavors"]["python_function"]["code"], CODE_DIR);
        assert_eq!(doc["utc_time_created"], "2023-11-14 22:13:20.123456");
        let params: serde_json::Value = serde_json::from_str(doc["signature"]["params"].as_str().unwrap()).unwrap();
        assert_eq!(params[0]["name"], "k");
        let tabular: serde_json::Value =
            serde_yaml_ng::from_str(&mlmodel("abc123", ModelKind::Tabular, t).unwrap()).unwrap();
        assert!(tabular.get("signature").is_none());
        assert!(LOADER.contains("def _load_pyfunc(path"));
    }
}
