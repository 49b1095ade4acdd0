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
}
