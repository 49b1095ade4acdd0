//! Long work as persistent jobs: submitted, queued in the metadata store,
//! polled by clients, and run one at a time by each server's worker, which
//! claims the oldest waiting job from the store under a lease and renews it
//! while the job runs. Over a shared store (PostgreSQL) any number of
//! replicas claim from one queue and each job runs on exactly one; a replica
//! that dies stops renewing, and once its lease ends another takes the job
//! over. A cancel request travels through the store to whichever worker runs
//! the job. On the embedded store, jobs running when the process stopped are
//! queued again at start. A job interrupted [`MAX_ATTEMPTS`] times is failed
//! with the reason instead.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use plinth_core::Error as DomainError;
use plinth_core::audit::{Action, Actor, resource};
use plinth_core::jobs::{Job, JobKind, JobStatus, LeaseState};
use serde_json::Value;
use tokio::sync::Notify;

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

/// How a server runs jobs.
#[derive(Debug, Clone)]
pub struct JobConfig {
    /// Whether this process runs jobs (the `worker` role) or only takes them.
    pub work: bool,
    /// A claim lasts this long unless renewed (every third of it).
    pub lease: Duration,
    /// How often an idle worker looks for jobs other replicas queued.
    pub poll: Duration,
}

impl Default for JobConfig {
    fn default() -> Self {
        JobConfig { work: true, lease: Duration::from_secs(30), poll: Duration::from_secs(1) }
    }
}

#[derive(Clone)]
pub struct JobRunner {
    platform: Platform,
    datasets_dir: PathBuf,
    config: JobConfig,
    /// This process's worker id, the holder of its leases.
    worker: Arc<str>,
    /// Wakes the worker when this process queues a job.
    wake: Arc<Notify>,
    progress: ProgressMap,
    running: RunningMap,
    /// Set on shutdown: a job stopped by it is given back, not cancelled.
    stopping: Arc<AtomicBool>,
}

impl JobRunner {
    /// Starts the worker with the default [`JobConfig`].
    pub async fn start(platform: Platform, datasets_dir: PathBuf) -> Result<JobRunner> {
        Self::start_with(platform, datasets_dir, JobConfig::default()).await
    }

    /// Starts the worker (when `config.work`). On a store no other process
    /// shares, jobs left running by the previous process are queued again
    /// (or failed, after [`MAX_ATTEMPTS`]).
    pub async fn start_with(platform: Platform, datasets_dir: PathBuf, config: JobConfig) -> Result<JobRunner> {
        let runner = JobRunner {
            worker: format!("worker-{}", plinth_core::ids::new_run_id()).into(),
            platform,
            datasets_dir,
            config,
            wake: Arc::default(),
            progress: Arc::default(),
            running: Arc::default(),
            stopping: Arc::default(),
        };
        if !runner.platform.store.shared() {
            for mut job in runner.platform.store.list_jobs(Some(JobStatus::Running), 10_000).await? {
                if job.attempts >= MAX_ATTEMPTS {
                    // A job that was running each time the process died may be
                    // what kills it: it is not started again.
                    tracing::error!(job_id = %job.job_id, attempts = job.attempts, "job interrupted too often; marked failed");
                    job.status = JobStatus::Failed;
                    job.finished_time = Some(runner.platform.now_ms());
                    job.error = Some(plinth_core::rules::job_interrupted_too_often(job.attempts));
                } else {
                    tracing::warn!(job_id = %job.job_id, "job was interrupted by a restart; running it again");
                    job.status = JobStatus::Queued;
                }
                runner.platform.store.update_job(job).await?;
            }
        }
        if runner.config.work {
            tracing::info!(worker = %runner.worker, lease_ms = runner.config.lease.as_millis() as u64, "job worker started");
            tokio::spawn(runner.clone().work());
        }
        Ok(runner)
    }

    /// Stops taking jobs and gives the running one back to the queue (its
    /// training stops at its next iteration), waiting up to [`CANCEL_WAIT`].
    pub async fn shutdown(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        let handles: Vec<_> = self.running.lock().map(|m| m.values().cloned().collect()).unwrap_or_default();
        for h in &handles {
            h.cancel();
        }
        let deadline = tokio::time::Instant::now() + CANCEL_WAIT;
        while self.running.lock().is_ok_and(|m| !m.is_empty()) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
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
    pub async fn submit_recommender(&self, by: &Actor, spec: Value) -> Result<Job> {
        let parsed: RecommenderSpec = parse_spec(&spec)?;
        let register = parsed.register.as_deref();
        let experiment = parsed.experiment.as_deref().unwrap_or("recommenders");
        self.platform.acting(by.clone()).need_training_targets(experiment, register).await?;
        let dir = self.datasets_dir.clone();
        parsed.into_job(|p| Self::resolve(&dir, p))?;
        self.queue_job(by, JobKind::TrainRecommender, spec).await
    }

    /// Checks and queues a tabular training job.
    pub async fn submit_tabular(&self, by: &Actor, spec: Value) -> Result<Job> {
        let parsed: TabularSpec = parse_spec(&spec)?;
        let register = parsed.register.as_deref();
        let experiment = parsed.experiment.as_deref().unwrap_or("tabular");
        self.platform.acting(by.clone()).need_training_targets(experiment, register).await?;
        let dir = self.datasets_dir.clone();
        parsed.into_job(|p| Self::resolve(&dir, p))?;
        self.queue_job(by, JobKind::TrainTabular, spec).await
    }

    async fn queue_job(&self, by: &Actor, kind: JobKind, spec: Value) -> Result<Job> {
        let job =
            Job::queued(format!("job-{}", uuid_like()), kind, spec, self.platform.now_ms()).in_workspace(&by.workspace);
        self.platform.store.create_job(job.clone()).await?;
        let what = Some(kind.as_str().to_string());
        self.platform.acting(by.clone()).record(Action::JobSubmit, resource::job(&job.job_id), None, what).await?;
        self.wake.notify_one();
        Ok(job)
    }

    /// Whether `by` may do `op` to a job: one of their workspace, and what
    /// they may do to the experiment its runs go to (its submitter made or
    /// could log to it).
    async fn allows(&self, by: &Actor, job: &Job, op: plinth_core::access::Op) -> Result<bool> {
        if *job.workspace != *by.workspace {
            return Ok(false);
        }
        let platform = self.platform.acting(by.clone());
        let access = platform.access().await?;
        if access.is_unrestricted() {
            return Ok(true);
        }
        let default = match job.kind {
            JobKind::TrainRecommender => "recommenders",
            JobKind::TrainTabular => "tabular",
        };
        let name = job.spec.get("experiment").and_then(Value::as_str).unwrap_or(default);
        Ok(match platform.store.get_experiment_by_name(name).await? {
            Some(e) => {
                access.permission(&[(plinth_core::access::ResourceType::Experiment, &e.experiment_id)]).allows(op)
            }
            None => false,
        })
    }

    /// A job `by` may see (one they may not is not found).
    async fn visible_job(&self, by: &Actor, job_id: &str) -> Result<Job> {
        let job = self.platform.store.get_job(job_id).await?;
        if !self.allows(by, &job, plinth_core::access::Op::Read).await? {
            return Err(plinth_core::rules::missing::job(job_id).into());
        }
        Ok(job)
    }

    /// The job and, while it runs, its progress.
    pub async fn get(&self, by: &Actor, job_id: &str) -> Result<(Job, Option<(String, usize, usize)>)> {
        let job = self.visible_job(by, job_id).await?;
        let progress = self.progress.lock().ok().and_then(|m| m.get(job_id).cloned());
        Ok((job, progress))
    }

    /// Withdraws a queued job, or stops a running one at its next iteration
    /// (its run ends KILLED, nothing is registered) and waits up to
    /// [`CANCEL_WAIT`] for it to stop. Cancelling a finished job is refused.
    pub async fn cancel(&self, by: &Actor, job_id: &str) -> Result<Job> {
        let job = self.visible_job(by, job_id).await?;
        if !self.allows(by, &job, plinth_core::access::Op::Update).await? {
            return Err(DomainError::denied().into());
        }
        let job = self.platform.store.cancel_job(job_id, self.platform.now_ms()).await?;
        let after = Some(job.status.as_str().to_string());
        self.platform.acting(by.clone()).record(Action::JobCancel, resource::job(job_id), None, after).await?;
        if job.status != JobStatus::Running {
            tracing::info!(%job_id, "job cancelled");
            return Ok(job);
        }
        // Here: stop it now; elsewhere, its worker sees the request at its next renewal.
        if let Some(handle) = self.running.lock().ok().and_then(|m| m.get(job_id).cloned()) {
            handle.cancel();
        }
        tracing::info!(%job_id, "job cancellation requested");
        let deadline = tokio::time::Instant::now() + CANCEL_WAIT;
        loop {
            let job = self.platform.store.get_job(job_id).await?;
            if job.status != JobStatus::Running || tokio::time::Instant::now() >= deadline {
                return Ok(job);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The newest jobs `by` may see.
    pub async fn list(&self, by: &Actor, limit: i64) -> Result<Vec<Job>> {
        let mut visible = Vec::new();
        for job in self.platform.store.list_jobs(None, limit).await? {
            if self.allows(by, &job, plinth_core::access::Op::Read).await? {
                visible.push(job);
            }
        }
        Ok(visible)
    }

    /// Claims and runs jobs until shutdown; idle, waits for a local
    /// submission or the poll interval (jobs other replicas queued).
    async fn work(self) {
        let lease_ms = self.config.lease.as_millis() as i64;
        while !self.stopping.load(Ordering::SeqCst) {
            let now = self.platform.now_ms();
            match self.platform.store.claim_job(&self.worker, now, lease_ms, MAX_ATTEMPTS).await {
                Ok(Some(job)) => {
                    let job_id = job.job_id.clone();
                    if let Err(e) = self.run(job).await {
                        tracing::error!(%job_id, error = %e, "job bookkeeping failed");
                    }
                }
                Ok(None) => {
                    tokio::select! {
                        _ = self.wake.notified() => {}
                        _ = tokio::time::sleep(self.config.poll) => {}
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot claim a job; retrying");
                    tokio::time::sleep(self.config.poll).await;
                }
            }
        }
    }

    /// Keeps the lease on `job_id` while it runs: a cancel request (or a
    /// lost lease) stops the training at its next iteration.
    fn heartbeat(&self, job_id: &str, progress: crate::tracking::Progress) -> tokio::task::JoinHandle<()> {
        let (runner, job_id) = (self.clone(), job_id.to_string());
        tokio::spawn(async move {
            let lease_ms = runner.config.lease.as_millis() as i64;
            loop {
                tokio::time::sleep(runner.config.lease / 3).await;
                let until = runner.platform.now_ms() + lease_ms;
                match runner.platform.store.renew_job_lease(&job_id, &runner.worker, until).await {
                    Ok(LeaseState::Held) => {}
                    Ok(LeaseState::CancelRequested) => progress.cancel(),
                    Ok(LeaseState::Lost) => {
                        tracing::warn!(%job_id, "lost the job's lease to another worker; stopping it here");
                        progress.cancel();
                        return;
                    }
                    Err(e) => tracing::warn!(%job_id, error = %e, "cannot renew the job's lease; retrying"),
                }
            }
        })
    }

    async fn run(&self, mut job: Job) -> Result<()> {
        let job_id = job.job_id.clone();
        tracing::info!(%job_id, kind = %job.kind, attempt = job.attempts, "job started");
        let (outcome, heartbeat) = self.execute(&job).await;
        heartbeat.abort();
        if let Ok(mut map) = self.progress.lock() {
            map.remove(&job_id);
        }
        if let Ok(mut map) = self.running.lock() {
            map.remove(&job_id);
        }
        if self.stopping.load(Ordering::SeqCst) && matches!(outcome, Err(Error::Cancelled)) {
            // Stopped by our shutdown, not by a user: another worker (or this one, restarted) runs it.
            self.platform.store.release_job(&job_id, &self.worker).await?;
            tracing::info!(%job_id, "job given back to the queue on shutdown");
            return Ok(());
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
        if !self.platform.store.finish_job(job, &self.worker).await? {
            tracing::warn!(%job_id, "the job's lease was lost before it ended; its outcome is not recorded here");
        }
        Ok(())
    }

    /// Runs the job with its progress registered and its lease renewed.
    async fn execute(&self, job: &Job) -> (Result<Value>, tokio::task::JoinHandle<()>) {
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
        let heartbeat = self.heartbeat(&job.job_id, progress.clone());
        (self.train(job, progress, resolve).await, heartbeat)
    }

    async fn train(
        &self,
        job: &Job,
        progress: crate::tracking::Progress,
        resolve: impl Fn(&str) -> Result<PathBuf>,
    ) -> Result<Value> {
        // What a job makes (its run, its registered version) is recorded as the job's.
        let platform = self.platform.acting(Actor::system(&format!("job {}", job.job_id)).in_workspace(&job.workspace));
        let report = match job.kind {
            JobKind::TrainRecommender => {
                let train = parse_spec::<RecommenderSpec>(&job.spec)?.into_job(resolve)?;
                train_recommender(&platform, train, progress).await?
            }
            JobKind::TrainTabular => {
                let train = parse_spec::<TabularSpec>(&job.spec)?.into_job(resolve)?;
                train_tabular(&platform, train, progress).await?
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
