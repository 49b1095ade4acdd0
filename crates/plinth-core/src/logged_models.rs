//! MLflow 3 logged models: a model artifact with its own id, params, tags and
//! metrics, produced by a run and registered as model versions.

use crate::experiments::Tag;
use crate::runs::{Metric, Param};
use crate::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoggedModelStatus {
    Pending,
    Ready,
    Failed,
}

impl LoggedModelStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            LoggedModelStatus::Pending => "LOGGED_MODEL_PENDING",
            LoggedModelStatus::Ready => "LOGGED_MODEL_READY",
            LoggedModelStatus::Failed => "LOGGED_MODEL_UPLOAD_FAILED",
        }
    }
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "LOGGED_MODEL_PENDING" | "1" => Ok(LoggedModelStatus::Pending),
            "LOGGED_MODEL_READY" | "2" => Ok(LoggedModelStatus::Ready),
            "LOGGED_MODEL_UPLOAD_FAILED" | "3" => Ok(LoggedModelStatus::Failed),
            other => Err(Error::invalid(format!("Invalid logged model status '{other}'"))),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct LoggedModel {
    pub model_id: String,
    pub experiment_id: String,
    pub name: String,
    pub artifact_location: String,
    pub creation_timestamp_ms: i64,
    pub last_updated_timestamp_ms: i64,
    pub model_type: Option<String>,
    pub source_run_id: Option<String>,
    pub status: LoggedModelStatus,
    pub status_message: Option<String>,
    pub deleted: bool,
    pub tags: Vec<Tag>,
    pub params: Vec<Param>,
    pub metrics: Vec<Metric>,
}

#[derive(Debug, Clone, Default)]
pub struct NewLoggedModel {
    pub experiment_id: String,
    pub name: Option<String>,
    pub model_type: Option<String>,
    pub source_run_id: Option<String>,
    pub params: Vec<Param>,
    pub tags: Vec<Tag>,
}
