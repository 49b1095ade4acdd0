//! Long work as persistent jobs: submitted, queued in the metadata store, run
//! one at a time by a background worker, polled by clients. Jobs that were
//! queued or running when the server stopped run again when it starts.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use plinth_core::Error as DomainError;
use plinth_core::jobs::{Job, JobKind, JobStatus};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::recommenders::{RecommenderSpec, train_recommender};
use crate::tabular::{TabularSpec, train_tabular};
use crate::{Error, Platform, Result};

/// Starts a job gets before an interruption (the process stopping while it
/// runs) marks it failed instead of running it again.
pub const MAX_ATTEMPTS: i64 = 3;

/// Live progress of running jobs: (stage, done, total).
type ProgressMap = Arc<Mutex<HashMap<String, (String, usize, usize)>>>;
/// The progress handle of each running job, to cancel it.
type RunningMap = Arc<Mutex<HashMap<String, crate::tracking::Progress>>>;
/// How long `cancel` waits for a running job to reach its next iteration.
const CANCEL_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Clone)]
pub struct JobRunner {
    platform: Platform,
    datasets_dir: PathBuf,
    queue: mpsc::UnboundedSender<String>,
    progress: ProgressMap,
    running: RunningMap,
}

impl JobRunner {
    /// Starts the worker and re-queues jobs a previous process left unfinished.
    pub async fn start(platform: Platform, datasets_dir: PathBuf) -> Result<JobRunner> {
        let (tx, rx) = mpsc::unbounded_channel();
        let runner = JobRunner { platform, datasets_dir, queue: tx, progress: Arc::default(), running: Arc::default() };
        let mut pending = runner.platform.store.list_jobs(Some(JobStatus::Running), 10_000).await?;
        pending.extend(runner.platform.store.list_jobs(Some(JobStatus::Queued), 10_000).await?);
        pending.sort_by_key(|j| j.created_time);
        tokio::spawn(runner.clone().work(rx));
        for mut job in pending {
            if job.status == JobStatus::Running && job.attempts >= MAX_ATTEMPTS {
                // A job that was running each time the process died may be
                // what kills it: it is not started again.
                tracing::error!(job_id = %job.job_id, attempts = job.attempts, "job interrupted too often; marked failed");
                job.status = JobStatus::Failed;
                job.finished_time = Some(runner.platform.now_ms());
                job.error = Some(format!(
                    "interrupted {} times: the server stopped while it ran each time; not retried",
                    job.attempts
                ));
                runner.platform.store.update_job(job).await?;
                continue;
            }
            if job.status == JobStatus::Running {
                tracing::warn!(job_id = %job.job_id, "job was interrupted by a restart; running it again");
                job.status = JobStatus::Queued;
                runner.platform.store.update_job(job.clone()).await?;
            }
            let _ = runner.queue.send(job.job_id);
        }
        Ok(runner)
    }

    /// Resolves a dataset path inside the datasets directory: relative, no
    /// `..`, no symlinks out.
    fn resolve(datasets_dir: &Path, raw: &str) -> Result<PathBuf> {
        let bad = |why: &str| -> Error { DomainError::invalid(format!("Invalid data path '{raw}': {why}")).into() };
        let rel = Path::new(raw);
        if raw.is_empty() || rel.is_absolute() {
            return Err(bad("give a path relative to the server's datasets directory"));
        }
        if rel.components().any(|c| !matches!(c, std::path::Component::Normal(_))) {
            return Err(bad("'..' and '.' are not allowed"));
        }
        let root = datasets_dir.canonicalize().map_err(|_| bad("the server has no datasets directory"))?;
        let full = root.join(rel).canonicalize().map_err(|_| bad("no such file"))?;
        if !full.starts_with(&root) {
            return Err(bad("it leaves the datasets directory"));
        }
        Ok(full)
    }

    /// Checks and queues a recommender training job; bad specs are refused
    /// now, not later.
    pub async fn submit_recommender(&self, spec: Value) -> Result<Job> {
        let parsed: RecommenderSpec = parse_spec(&spec)?;
        let dir = self.datasets_dir.clone();
        parsed.into_job(|p| Self::resolve(&dir, p))?;
        self.queue_job(JobKind::TrainRecommender, spec).await
    }

    /// Checks and queues a tabular training job.
    pub async fn submit_tabular(&self, spec: Value) -> Result<Job> {
        let parsed: TabularSpec = parse_spec(&spec)?;
        let dir = self.datasets_dir.clone();
        parsed.into_job(|p| Self::resolve(&dir, p))?;
        self.queue_job(JobKind::TrainTabular, spec).await
    }

    async fn queue_job(&self, kind: JobKind, spec: Value) -> Result<Job> {
        let job = Job {
            job_id: format!("job-{}", uuid_like()),
            kind,
            status: JobStatus::Queued,
            spec,
            result: None,
            error: None,
            attempts: 0,
            created_time: self.platform.now_ms(),
            started_time: None,
            finished_time: None,
        };
        self.platform.store.create_job(job.clone()).await?;
        self.queue.send(job.job_id.clone()).map_err(|_| Error::Internal("the job worker has stopped".into()))?;
        Ok(job)
    }

    /// The job and, while it runs, its progress.
    pub async fn get(&self, job_id: &str) -> Result<(Job, Option<(String, usize, usize)>)> {
        let job = self.platform.store.get_job(job_id).await?;
        let progress = self.progress.lock().ok().and_then(|m| m.get(job_id).cloned());
        Ok((job, progress))
    }

    /// Withdraws a queued job, or stops a running one at its next iteration
    /// (its run ends KILLED, nothing is registered) and waits up to
    /// [`CANCEL_WAIT`] for it to stop. Cancelling a finished job is refused.
    pub async fn cancel(&self, job_id: &str) -> Result<Job> {
        let mut job = self.platform.store.get_job(job_id).await?;
        match job.status {
            JobStatus::Queued => {
                job.status = JobStatus::Cancelled;
                job.finished_time = Some(self.platform.now_ms());
                self.platform.store.update_job(job.clone()).await?;
                tracing::info!(%job_id, "job cancelled");
                Ok(job)
            }
            JobStatus::Running => {
                let handle = self.running.lock().ok().and_then(|m| m.get(job_id).cloned());
                let Some(handle) = handle else {
                    // Running in the store but not here: it is between the
                    // store's update and its start, or just ended.
                    return Err(DomainError::InvalidState(format!("Job {job_id} is not running here; retry")).into());
                };
                handle.cancel();
                tracing::info!(%job_id, "job cancellation requested");
                let deadline = tokio::time::Instant::now() + CANCEL_WAIT;
                loop {
                    let job = self.platform.store.get_job(job_id).await?;
                    if job.status != JobStatus::Running || tokio::time::Instant::now() >= deadline {
                        return Ok(job);
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
            done => {
                Err(DomainError::InvalidState(format!("Job {job_id} has already ended ({})", done.as_str())).into())
            }
        }
    }

    pub async fn list(&self, limit: i64) -> Result<Vec<Job>> {
        Ok(self.platform.store.list_jobs(None, limit).await?)
    }

    async fn work(self, mut rx: mpsc::UnboundedReceiver<String>) {
        while let Some(job_id) = rx.recv().await {
            if let Err(e) = self.run(&job_id).await {
                tracing::error!(%job_id, error = %e, "job bookkeeping failed");
            }
        }
    }

    async fn run(&self, job_id: &str) -> Result<()> {
        let mut job = self.platform.store.get_job(job_id).await?;
        if job.status != JobStatus::Queued {
            return Ok(());
        }
        job.status = JobStatus::Running;
        job.attempts += 1;
        job.started_time = Some(self.platform.now_ms());
        self.platform.store.update_job(job.clone()).await?;
        tracing::info!(%job_id, kind = %job.kind, "job started");
        let outcome = self.execute(&job).await;
        if let Ok(mut map) = self.progress.lock() {
            map.remove(job_id);
        }
        if let Ok(mut map) = self.running.lock() {
            map.remove(job_id);
        }
        job.finished_time = Some(self.platform.now_ms());
        match outcome {
            Ok(result) => {
                job.status = JobStatus::Succeeded;
                job.result = Some(result);
                tracing::info!(%job_id, "job succeeded");
            }
            Err(Error::Cancelled) => {
                job.status = JobStatus::Cancelled;
                job.error = Some("cancelled while running; its run is marked KILLED".into());
                tracing::info!(%job_id, "job cancelled while running");
            }
            Err(e) => {
                job.status = JobStatus::Failed;
                // The job's one mapping from an error's kind to its message:
                // the caller's mistakes verbatim, our failures to the log.
                job.error = Some(match e.kind() {
                    plinth_core::ErrorKind::Internal => {
                        tracing::error!(%job_id, cause = %e, "job failed");
                        "internal error; see the server log".into()
                    }
                    _ => e.to_string(),
                });
            }
        }
        self.platform.store.update_job(job).await?;
        Ok(())
    }

    async fn execute(&self, job: &Job) -> Result<Value> {
        let dir = self.datasets_dir.clone();
        let resolve = |p: &str| Self::resolve(&dir, p);
        let (map, id) = (self.progress.clone(), job.job_id.clone());
        let progress = crate::tracking::Progress::new(move |stage: &str, done: usize, total: usize| {
            if let Ok(mut m) = map.lock() {
                m.insert(id.clone(), (stage.to_string(), done, total));
            }
        });
        if let Ok(mut m) = self.running.lock() {
            m.insert(job.job_id.clone(), progress.clone());
        }
        let report = match job.kind {
            JobKind::TrainRecommender => {
                let train = parse_spec::<RecommenderSpec>(&job.spec)?.into_job(resolve)?;
                train_recommender(&self.platform, train, progress).await?
            }
            JobKind::TrainTabular => {
                let train = parse_spec::<TabularSpec>(&job.spec)?.into_job(resolve)?;
                train_tabular(&self.platform, train, progress).await?
            }
        };
        Ok(report.to_json())
    }
}

fn parse_spec<T: serde::de::DeserializeOwned>(spec: &Value) -> Result<T> {
    serde_json::from_value(spec.clone())
        .map_err(|e| Error::Domain(DomainError::invalid(format!("Invalid training request: {e}"))))
}

fn uuid_like() -> String {
    plinth_core::ids::new_run_id()
}

/// The job as JSON for APIs.
pub fn job_json(job: &Job, progress: Option<(String, usize, usize)>) -> Value {
    json!({
        "job_id": job.job_id,
        "kind": job.kind.as_str(),
        "status": job.status.as_str(),
        "spec": job.spec,
        "result": job.result,
        "error": job.error,
        "attempts": job.attempts,
        "created_time": job.created_time,
        "started_time": job.started_time,
        "finished_time": job.finished_time,
        "progress": progress.map(|(stage, done, total)| json!({"stage": stage, "done": done, "total": total})),
    })
}
