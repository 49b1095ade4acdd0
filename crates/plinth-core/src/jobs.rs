//! Jobs: long-running work (training) with an id and a status clients poll.

use crate::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    /// Withdrawn before it started.
    Cancelled,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "QUEUED",
            JobStatus::Running => "RUNNING",
            JobStatus::Succeeded => "SUCCEEDED",
            JobStatus::Failed => "FAILED",
            JobStatus::Cancelled => "CANCELLED",
        }
    }
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "QUEUED" => Ok(JobStatus::Queued),
            "RUNNING" => Ok(JobStatus::Running),
            "SUCCEEDED" => Ok(JobStatus::Succeeded),
            "FAILED" => Ok(JobStatus::Failed),
            "CANCELLED" => Ok(JobStatus::Cancelled),
            other => Err(Error::invalid(format!("Invalid job status '{other}'"))),
        }
    }
    pub fn is_finished(self) -> bool {
        matches!(self, JobStatus::Succeeded | JobStatus::Failed | JobStatus::Cancelled)
    }
}

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    TrainRecommender,
    TrainTabular,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::TrainRecommender => "train-recommender",
            JobKind::TrainTabular => "train-tabular",
        }
    }
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "train-recommender" => Ok(JobKind::TrainRecommender),
            "train-tabular" => Ok(JobKind::TrainTabular),
            other => Err(Error::invalid(format!("Unknown job kind '{other}'"))),
        }
    }
}

impl std::fmt::Display for JobKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub job_id: String,
    pub kind: JobKind,
    pub status: JobStatus,
    /// The request, as JSON: enough to run (or re-run) the job.
    pub spec: serde_json::Value,
    pub result: Option<serde_json::Value>,
    pub error: Option<String>,
    pub attempts: i64,
    pub created_time: i64,
    pub started_time: Option<i64>,
    pub finished_time: Option<i64>,
    /// Who runs it (a server process's worker id) while it runs.
    pub worker: Option<String>,
    /// The worker's lease: past it, another worker may take the job over.
    pub lease_until: Option<i64>,
    /// Someone asked for it to stop; the worker running it sees this at its next heartbeat.
    pub cancel_requested: bool,
    /// The workspace it runs in (its experiment and model are that workspace's).
    pub workspace: String,
}

impl Job {
    /// A new job, queued, in the default workspace (see [`Job::in_workspace`]).
    pub fn queued(job_id: String, kind: JobKind, spec: serde_json::Value, now: i64) -> Job {
        Job {
            job_id,
            kind,
            status: JobStatus::Queued,
            spec,
            result: None,
            error: None,
            attempts: 0,
            created_time: now,
            started_time: None,
            finished_time: None,
            worker: None,
            lease_until: None,
            cancel_requested: false,
            workspace: crate::access::DEFAULT_WORKSPACE.to_string(),
        }
    }

    pub fn in_workspace(mut self, workspace: &str) -> Job {
        self.workspace = workspace.to_string();
        self
    }
}

/// What a worker's lease on a job is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseState {
    /// Still the worker's; go on.
    Held,
    /// Still the worker's, and someone asked for it to stop.
    CancelRequested,
    /// Another worker took it over (this one was too slow to renew), or it ended.
    Lost,
}
