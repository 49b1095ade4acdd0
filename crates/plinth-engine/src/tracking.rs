//! What every training shares, whatever it trains: where it records its run
//! ([`Tracker`], embedded over the [`Platform`] or remote over REST), how it
//! reports progress and learns it should stop ([`Progress`]), how a run is
//! closed, and what a training produced ([`TrainReport`]).

use async_trait::async_trait;
use bytes::Bytes;
use plinth_core::Error as DomainError;
use plinth_core::experiments::Tag;
use plinth_core::registry::NewModelVersion;
use plinth_core::runs::{Metric, NewRun, Param, RunStatus, RunUpdate};
use serde_json::{Value, json};

use crate::{Error, Platform, Result};

/// Where the model goes inside the run's artifacts.
pub const MODEL_ARTIFACT_DIR: &str = "model";

/// What a training produced.
#[derive(Debug, Clone)]
pub struct TrainReport {
    pub experiment_id: String,
    pub run_id: String,
    pub metrics: Vec<(String, f64)>,
    pub model_name: Option<String>,
    pub model_version: Option<i64>,
    /// The alias pointed at the new version, if asked for.
    pub alias: Option<String>,
    pub stats: Value,
}

/// Where a training records its run.
#[async_trait]
pub trait Tracker: Send + Sync {
    /// Creates (if needed) the experiment and starts a run; returns (experiment id, run id).
    async fn start_run(&self, experiment: &str, run_name: Option<String>, tags: Vec<Tag>) -> Result<(String, String)>;
    async fn log(&self, run_id: &str, metrics: Vec<Metric>, params: Vec<Param>) -> Result<()>;
    async fn upload(&self, run_id: &str, path: &str, bytes: Bytes) -> Result<()>;
    async fn finish(&self, run_id: &str, status: RunStatus) -> Result<()>;
    /// Registers `runs:/<run_id>/<artifact_dir>` as a new version of `name`.
    async fn register(&self, name: &str, run_id: &str, artifact_dir: &str) -> Result<i64>;
    /// Points `@alias` of `name` at `version` (moving it if set).
    async fn set_alias(&self, name: &str, alias: &str, version: i64) -> Result<()>;
}

#[async_trait]
impl Tracker for Platform {
    async fn start_run(&self, experiment: &str, run_name: Option<String>, tags: Vec<Tag>) -> Result<(String, String)> {
        let experiment_id = match self.get_experiment_by_name(experiment).await {
            Ok(e) => e.experiment_id,
            Err(Error::Domain(DomainError::NotFound(_))) => {
                match self.create_experiment(experiment.to_string(), None, vec![]).await {
                    Ok(id) => id,
                    // Created concurrently by someone else: use theirs.
                    Err(Error::Domain(DomainError::AlreadyExists(_))) => {
                        self.get_experiment_by_name(experiment).await?.experiment_id
                    }
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        };
        let run = self
            .create_run(NewRun {
                experiment_id: experiment_id.clone(),
                user_id: std::env::var("USER").unwrap_or_default(),
                run_name,
                start_time: None,
                tags,
            })
            .await?;
        Ok((experiment_id, run.info.run_id))
    }

    async fn log(&self, run_id: &str, metrics: Vec<Metric>, params: Vec<Param>) -> Result<()> {
        for chunk in params.chunks(100) {
            self.log_batch(run_id, vec![], chunk.to_vec(), vec![]).await?;
        }
        for chunk in metrics.chunks(1000) {
            self.log_batch(run_id, chunk.to_vec(), vec![], vec![]).await?;
        }
        Ok(())
    }

    async fn upload(&self, run_id: &str, path: &str, bytes: Bytes) -> Result<()> {
        let run = self.get_run(run_id).await?;
        let Some(key) = self.artifact_key(&run.info.artifact_uri) else {
            return Err(Error::Internal(format!(
                "run artifacts at {} are not served by Plinth",
                run.info.artifact_uri
            )));
        };
        let full = format!("{key}/{path}");
        let body = futures::stream::iter([Ok::<_, std::io::Error>(bytes)]);
        self.upload_artifact(&full, body).await?;
        Ok(())
    }

    async fn finish(&self, run_id: &str, status: RunStatus) -> Result<()> {
        self.update_run(run_id, RunUpdate { status: Some(status), end_time: Some(self.now_ms()), run_name: None })
            .await?;
        Ok(())
    }

    async fn register(&self, name: &str, run_id: &str, artifact_dir: &str) -> Result<i64> {
        match self.create_registered_model(name.to_string(), None, vec![]).await {
            Ok(_) | Err(Error::Domain(DomainError::AlreadyExists(_))) => {}
            Err(e) => return Err(e),
        }
        let version = self
            .create_model_version(NewModelVersion {
                name: name.to_string(),
                source: format!("runs:/{run_id}/{artifact_dir}"),
                run_id: Some(run_id.to_string()),
                ..Default::default()
            })
            .await?;
        Ok(version.version)
    }

    async fn set_alias(&self, name: &str, alias: &str, version: i64) -> Result<()> {
        Platform::set_alias(self, name, alias, version).await
    }
}

/// A progress sink: (stage, done, total).
type Report = dyn Fn(&str, usize, usize) + Send + Sync;

/// Where long work reports (stage, done, total), and how it learns that it
/// should stop: every report answers whether to go on, so a training loop
/// stops at its next iteration once [`Progress::cancel`] is called.
#[derive(Clone)]
pub struct Progress {
    report: std::sync::Arc<Report>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Progress {
    pub fn new(report: impl Fn(&str, usize, usize) + Send + Sync + 'static) -> Progress {
        Progress { report: std::sync::Arc::new(report), stop: std::sync::Arc::default() }
    }

    /// Asks the work to stop at its next report.
    pub fn cancel(&self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Reports, and says whether to go on.
    pub fn step(&self, stage: &str, done: usize, total: usize) -> std::ops::ControlFlow<()> {
        (self.report)(stage, done, total);
        if self.stop.load(std::sync::atomic::Ordering::Relaxed) {
            std::ops::ControlFlow::Break(())
        } else {
            std::ops::ControlFlow::Continue(())
        }
    }

    /// [`Progress::step`] as a `Result`, for straight-line work.
    pub fn check(&self, stage: &str, done: usize, total: usize) -> Result<()> {
        match self.step(stage, done, total) {
            std::ops::ControlFlow::Continue(()) => Ok(()),
            std::ops::ControlFlow::Break(()) => Err(Error::Cancelled),
        }
    }
}

/// A param's value as a person would write it: strings without JSON
/// quotes, `f32` hyperparameters without `f64` noise (`0.05`, not
/// `0.05000000074505806`).
pub(crate) fn param_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i.to_string(),
            (None, Some(f)) if (f as f32) as f64 == f => (f as f32).to_string(),
            (None, Some(f)) => f.to_string(),
            (None, None) => n.to_string(),
        },
        other => other.to_string(),
    }
}

/// Runs CPU-bound training on its own rayon pool (`threads`, default all
/// cores), off the async threads.
pub(crate) async fn off_the_async_threads<T: Send + 'static>(
    threads: Option<usize>,
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.unwrap_or(0))
        .build()
        .map_err(|e| Error::Internal(format!("cannot start worker threads: {e}")))?;
    tokio::task::spawn_blocking(move || pool.install(work))
        .await
        .map_err(|e| Error::Internal(format!("training task failed: {e}")))?
}

/// Ends a run as FINISHED if recording it succeeded, KILLED if it was
/// cancelled, FAILED otherwise.
pub(crate) async fn close_run<T>(tracker: &dyn Tracker, run_id: &str, outcome: Result<T>) -> Result<T> {
    match outcome {
        Ok(v) => {
            tracker.finish(run_id, RunStatus::Finished).await?;
            Ok(v)
        }
        Err(Error::Cancelled) => {
            let _ = tracker.finish(run_id, RunStatus::Killed).await;
            Err(Error::Cancelled)
        }
        Err(e) => {
            let _ = tracker.finish(run_id, RunStatus::Failed).await;
            Err(e)
        }
    }
}

impl TrainReport {
    pub fn to_json(&self) -> Value {
        let metrics: serde_json::Map<String, Value> = self.metrics.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        json!({
            "experiment_id": self.experiment_id,
            "run_id": self.run_id,
            "model_name": self.model_name,
            "model_version": self.model_version.map(|v| v.to_string()),
            "alias": self.alias,
            "metrics": metrics,
            "data": self.stats,
        })
    }
}

/// A JSON object's map (an empty one for any other value).
pub(crate) fn object(v: Value) -> serde_json::Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => serde_json::Map::new(),
    }
}
