//! A [`Tracker`] that talks to a running Plinth (or MLflow) server over its
//! REST API, for `--tracking-uri`.

use async_trait::async_trait;
use bytes::Bytes;
use plinth_core::experiments::Tag;
use plinth_core::runs::{Metric, Param, RunStatus};
use plinth_engine::tracking::Tracker;
use plinth_engine::{Error, Result};
use plinth_mlflow as mlflow;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub struct RemoteTracker {
    base: String,
    http: reqwest::Client,
}

impl RemoteTracker {
    pub fn new(base: &str) -> anyhow::Result<Self> {
        let http = crate::client::http_client(std::time::Duration::from_secs(300))?;
        Ok(RemoteTracker { base: base.trim_end_matches('/').to_string(), http })
    }

    /// A GET with query parameters.
    async fn get<T: DeserializeOwned>(&self, path: &str, query: &[(&str, &str)]) -> Result<T> {
        let url = format!("{}/api/2.0/mlflow/{path}", self.base);
        self.answer(&url, self.http.get(&url).query(query)).await
    }

    /// A POST of a JSON body.
    async fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T> {
        let url = format!("{}/api/2.0/mlflow/{path}", self.base);
        self.answer(&url, self.http.post(&url).json(body)).await
    }

    async fn answer<T: DeserializeOwned>(&self, url: &str, req: reqwest::RequestBuilder) -> Result<T> {
        let resp = req.send().await.map_err(|e| Error::Internal(format!("{url}: {e}")))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| Error::Internal(format!("{url}: {e}")))?;
        if status.is_success() {
            return serde_json::from_slice(&bytes)
                .map_err(|e| Error::Internal(format!("{url}: the server's answer is not what MLflow sends: {e}")));
        }
        let Ok(failure) = serde_json::from_slice::<mlflow::ErrorResponse>(&bytes) else {
            return Err(Error::Internal(format!("{url}: {status}")));
        };
        // The server's code back to its kind (the one table in plinth-core).
        let kind = plinth_core::ErrorKind::from_code(&failure.error_code);
        let message = failure.message;
        Err(match kind.and_then(|k| plinth_core::Error::of_kind(k, message.clone())) {
            Some(domain) => domain.into(),
            None if kind == Some(plinth_core::ErrorKind::Cancelled) => Error::Cancelled,
            None => Error::Internal(format!("{url}: {status}: {message}")),
        })
    }
}

/// MLflow answers `{}` to most writes.
#[derive(serde::Deserialize)]
struct Empty {}

#[async_trait]
impl Tracker for RemoteTracker {
    async fn start_run(&self, experiment: &str, run_name: Option<String>, tags: Vec<Tag>) -> Result<(String, String)> {
        let query = [("experiment_name", experiment)];
        let found = self.get::<mlflow::ExperimentResponse>("experiments/get-by-name", &query);
        let experiment_id = match found.await {
            Ok(found) => found.experiment.experiment_id,
            Err(Error::Domain(plinth_core::Error::NotFound(_))) => {
                let create =
                    mlflow::CreateExperiment { name: experiment.into(), artifact_location: None, tags: vec![] };
                self.post::<_, mlflow::CreateExperimentResponse>("experiments/create", &create).await?.experiment_id
            }
            Err(e) => return Err(e),
        };
        let create = mlflow::CreateRun {
            experiment_id: experiment_id.clone(),
            run_name,
            start_time: Some(plinth_core::ids::now_ms()),
            tags: tags.iter().map(Into::into).collect(),
        };
        let created: mlflow::RunResponse = self.post("runs/create", &create).await?;
        Ok((experiment_id, created.run.info.run_id))
    }

    async fn log(&self, run_id: &str, metrics: Vec<Metric>, params: Vec<Param>) -> Result<()> {
        // MLflow's batch limits: 100 params, 1000 metrics per call.
        for chunk in params.chunks(100) {
            let batch = mlflow::LogBatch {
                run_id: run_id.into(),
                params: chunk.iter().map(Into::into).collect(),
                ..Default::default()
            };
            self.post::<_, Empty>("runs/log-batch", &batch).await?;
        }
        for chunk in metrics.chunks(1000) {
            let batch = mlflow::LogBatch {
                run_id: run_id.into(),
                metrics: chunk.iter().map(Into::into).collect(),
                ..Default::default()
            };
            self.post::<_, Empty>("runs/log-batch", &batch).await?;
        }
        Ok(())
    }

    async fn upload(&self, run_id: &str, path: &str, bytes: Bytes) -> Result<()> {
        let found: mlflow::RunResponse = self.get("runs/get", &[("run_id", run_id)]).await?;
        let uri = found.run.info.artifact_uri;
        let Some(key) = plinth_engine::artifact_key(&uri) else {
            // Not proxied (a server with --serve-artifacts false): write to the bucket or directory itself,
            // as the mlflow client does.
            return upload_direct(&uri, path, bytes).await;
        };
        let url = format!("{}/api/2.0/mlflow-artifacts/artifacts/{key}/{path}", self.base);
        let resp = self.http.put(&url).body(bytes).send().await.map_err(|e| Error::Internal(format!("{url}: {e}")))?;
        if !resp.status().is_success() {
            return Err(Error::Internal(format!("{url}: {}", resp.status())));
        }
        Ok(())
    }

    async fn finish(&self, run_id: &str, status: RunStatus) -> Result<()> {
        let update = mlflow::UpdateRun {
            run_id: run_id.into(),
            status: Some(status),
            end_time: Some(plinth_core::ids::now_ms()),
            run_name: None,
        };
        self.post::<_, mlflow::UpdateRunResponse>("runs/update", &update).await?;
        Ok(())
    }

    async fn set_alias(&self, name: &str, alias: &str, version: i64) -> Result<()> {
        let body = mlflow::SetRegisteredModelAlias { name: name.into(), alias: alias.into(), version };
        self.post::<_, Empty>("registered-models/alias", &body).await?;
        Ok(())
    }

    async fn register(&self, name: &str, run_id: &str, artifact_dir: &str) -> Result<i64> {
        let create = mlflow::CreateRegisteredModel { name: name.into(), description: None, tags: vec![] };
        match self.post::<_, mlflow::RegisteredModelResponse>("registered-models/create", &create).await {
            Ok(_) | Err(Error::Domain(plinth_core::Error::AlreadyExists(_))) => {}
            Err(e) => return Err(e),
        }
        let version = mlflow::CreateModelVersion {
            name: name.into(),
            source: format!("runs:/{run_id}/{artifact_dir}"),
            run_id: Some(run_id.into()),
            description: None,
        };
        let created: mlflow::ModelVersionResponse = self.post("model-versions/create", &version).await?;
        Ok(created.model_version.version)
    }
}

/// Writes `path` below a run's own artifact URI: `s3://bucket/prefix/…` with
/// the standard AWS settings from the environment, or a `file://` directory.
async fn upload_direct(uri: &str, path: &str, bytes: Bytes) -> Result<()> {
    use plinth_artifacts::{ArtifactPath, ArtifactStore};
    let store = if uri.starts_with("s3://") {
        ArtifactStore::s3(uri).await
    } else if let Some(dir) = uri.strip_prefix("file://") {
        ArtifactStore::local(dir)
    } else {
        return Err(Error::Internal(format!("cannot write run artifacts to {uri}: not s3:// or file://")));
    };
    let store = store.map_err(|e| Error::Internal(format!("run artifacts at {uri}: {e}")))?;
    let key = ArtifactPath::parse(path).map_err(|e| Error::Internal(format!("artifact path {path}: {e}")))?;
    store.put(&key, bytes).await.map_err(|e| Error::Internal(format!("uploading {path} to {uri}: {e}")))
}
