//! A [`Tracker`] that talks to a running Plinth (or MLflow) server over its
//! REST API, for `--tracking-uri`.

use async_trait::async_trait;
use bytes::Bytes;
use plinth_core::experiments::Tag;
use plinth_core::runs::{Metric, Param, RunStatus};
use plinth_engine::tracking::Tracker;
use plinth_engine::{Error, Result};
use serde_json::{Value, json};

pub struct RemoteTracker {
    base: String,
    http: reqwest::Client,
}

impl RemoteTracker {
    pub fn new(base: &str) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder().timeout(std::time::Duration::from_secs(300)).build()?;
        Ok(RemoteTracker { base: base.trim_end_matches('/').to_string(), http })
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Result<Value> {
        let url = format!("{}/api/2.0/mlflow/{path}", self.base);
        let req = if method == reqwest::Method::GET {
            self.http.get(&url).query(&body_pairs(&body))
        } else {
            self.http.request(method, &url).json(&body)
        };
        let resp = req.send().await.map_err(|e| Error::Internal(format!("{url}: {e}")))?;
        let status = resp.status();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(v);
        }
        let msg = v["message"].as_str().unwrap_or("request failed").to_string();
        // The server's code back to its kind (the one table in plinth-core).
        let kind = v["error_code"].as_str().and_then(plinth_core::ErrorKind::from_code);
        Err(match kind.and_then(|k| plinth_core::Error::of_kind(k, msg.clone())) {
            Some(domain) => domain.into(),
            None if kind == Some(plinth_core::ErrorKind::Cancelled) => Error::Cancelled,
            None => Error::Internal(format!("{url}: {status}: {msg}")),
        })
    }
}

fn body_pairs(v: &Value) -> Vec<(String, String)> {
    v.as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())))
        .collect()
}

/// The server's encoding of doubles (non-finite as MLflow's "NaN"/"Infinity").
use plinth_core::mlflow_json::double as f64_json;

#[async_trait]
impl Tracker for RemoteTracker {
    async fn start_run(&self, experiment: &str, run_name: Option<String>, tags: Vec<Tag>) -> Result<(String, String)> {
        let exp = match self
            .call(reqwest::Method::GET, "experiments/get-by-name", json!({"experiment_name": experiment}))
            .await
        {
            Ok(v) => v["experiment"]["experiment_id"].as_str().unwrap_or_default().to_string(),
            Err(Error::Domain(plinth_core::Error::NotFound(_))) => {
                let v = self.call(reqwest::Method::POST, "experiments/create", json!({"name": experiment})).await?;
                v["experiment_id"].as_str().unwrap_or_default().to_string()
            }
            Err(e) => return Err(e),
        };
        let tags: Vec<Value> = tags.iter().map(|t| json!({"key": t.key, "value": t.value})).collect();
        let mut body = json!({"experiment_id": exp, "start_time": plinth_core::ids::now_ms(), "tags": tags});
        if let Some(name) = run_name {
            body["run_name"] = json!(name);
        }
        let v = self.call(reqwest::Method::POST, "runs/create", body).await?;
        let run_id = v["run"]["info"]["run_id"].as_str().unwrap_or_default().to_string();
        Ok((exp, run_id))
    }

    async fn log(&self, run_id: &str, metrics: Vec<Metric>, params: Vec<Param>) -> Result<()> {
        for chunk in params.chunks(100) {
            let params: Vec<Value> = chunk.iter().map(|p| json!({"key": p.key, "value": p.value})).collect();
            self.call(reqwest::Method::POST, "runs/log-batch", json!({"run_id": run_id, "params": params})).await?;
        }
        for chunk in metrics.chunks(1000) {
            let metrics: Vec<Value> = chunk
                .iter()
                .map(|m| json!({"key": m.key, "value": f64_json(m.value), "timestamp": m.timestamp, "step": m.step}))
                .collect();
            self.call(reqwest::Method::POST, "runs/log-batch", json!({"run_id": run_id, "metrics": metrics})).await?;
        }
        Ok(())
    }

    async fn upload(&self, run_id: &str, path: &str, bytes: Bytes) -> Result<()> {
        let v = self.call(reqwest::Method::GET, "runs/get", json!({"run_id": run_id})).await?;
        let uri = v["run"]["info"]["artifact_uri"].as_str().unwrap_or_default();
        let Some(key) = plinth_engine::artifact_key(uri) else {
            return Err(Error::Internal(format!("run artifacts at {uri} are not served by the tracking server")));
        };
        let url = format!("{}/api/2.0/mlflow-artifacts/artifacts/{key}/{path}", self.base);
        let resp = self.http.put(&url).body(bytes).send().await.map_err(|e| Error::Internal(format!("{url}: {e}")))?;
        if !resp.status().is_success() {
            return Err(Error::Internal(format!("{url}: {}", resp.status())));
        }
        Ok(())
    }

    async fn finish(&self, run_id: &str, status: RunStatus) -> Result<()> {
        let body = json!({"run_id": run_id, "status": status.as_str(), "end_time": plinth_core::ids::now_ms()});
        self.call(reqwest::Method::POST, "runs/update", body).await?;
        Ok(())
    }

    async fn set_alias(&self, name: &str, alias: &str, version: i64) -> Result<()> {
        let body = json!({"name": name, "alias": alias, "version": version.to_string()});
        self.call(reqwest::Method::POST, "registered-models/alias", body).await?;
        Ok(())
    }

    async fn register(&self, name: &str, run_id: &str, artifact_dir: &str) -> Result<i64> {
        match self.call(reqwest::Method::POST, "registered-models/create", json!({"name": name})).await {
            Ok(_) | Err(Error::Domain(plinth_core::Error::AlreadyExists(_))) => {}
            Err(e) => return Err(e),
        }
        let body = json!({"name": name, "source": format!("runs:/{run_id}/{artifact_dir}"), "run_id": run_id});
        let v = self.call(reqwest::Method::POST, "model-versions/create", body).await?;
        v["model_version"]["version"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| Error::Internal("the server returned no model version".into()))
    }
}
