//! Runs: one execution of training code, with its params, metrics, tags and
//! the datasets and models it consumed or produced.

use crate::experiments::{LifecycleStage, Tag};
use crate::{Error, Result};

/// A run's status. Transitions are free, as in MLflow, except that the
/// terminal ones set an end time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    Running,
    Scheduled,
    Finished,
    Failed,
    Killed,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "RUNNING",
            RunStatus::Scheduled => "SCHEDULED",
            RunStatus::Finished => "FINISHED",
            RunStatus::Failed => "FAILED",
            RunStatus::Killed => "KILLED",
        }
    }
    /// Parses the enum by name or by MLflow's numeric value (1..=5).
    pub fn parse(s: &str) -> Result<Self> {
        match s.to_ascii_uppercase().as_str() {
            "RUNNING" | "1" => Ok(RunStatus::Running),
            "SCHEDULED" | "2" => Ok(RunStatus::Scheduled),
            "FINISHED" | "3" => Ok(RunStatus::Finished),
            "FAILED" | "4" => Ok(RunStatus::Failed),
            "KILLED" | "5" => Ok(RunStatus::Killed),
            other => Err(Error::invalid(format!(
                "Invalid run status '{other}': expected RUNNING, SCHEDULED, FINISHED, FAILED or KILLED"
            ))),
        }
    }
    pub fn is_terminal(self) -> bool {
        matches!(self, RunStatus::Finished | RunStatus::Failed | RunStatus::Killed)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RunInfo {
    pub run_id: String,
    pub run_name: String,
    pub experiment_id: String,
    pub user_id: String,
    pub status: RunStatus,
    pub start_time: i64,
    pub end_time: Option<i64>,
    pub artifact_uri: String,
    pub lifecycle_stage: LifecycleStage,
}

/// One logged value of a metric. `value` may be NaN or infinite.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    pub key: String,
    pub value: f64,
    pub timestamp: i64,
    pub step: i64,
    /// MLflow 3: the logged model and dataset this value belongs to.
    pub model_id: Option<String>,
    pub dataset_name: Option<String>,
    pub dataset_digest: Option<String>,
}

impl Metric {
    pub fn new(key: impl Into<String>, value: f64, timestamp: i64, step: i64) -> Self {
        Metric { key: key.into(), value, timestamp, step, model_id: None, dataset_name: None, dataset_digest: None }
    }

    /// MLflow's rule for the "latest" value of a metric: the greatest
    /// (step, timestamp, value), NaN sorting below every number.
    pub fn is_later_than(&self, other: &Metric) -> bool {
        let key = |m: &Metric| (m.step, m.timestamp);
        match key(self).cmp(&key(other)) {
            std::cmp::Ordering::Greater => true,
            std::cmp::Ordering::Less => false,
            std::cmp::Ordering::Equal => match (self.value.is_nan(), other.value.is_nan()) {
                (true, _) => false,
                (false, true) => true,
                (false, false) => self.value > other.value,
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    pub key: String,
    pub value: String,
}

impl Param {
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        Param { key: key.into(), value: value.into() }
    }
}

/// A dataset as MLflow describes it (name + digest identify it within an experiment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dataset {
    pub name: String,
    pub digest: String,
    pub source_type: String,
    pub source: String,
    pub schema: Option<String>,
    pub profile: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetInput {
    pub dataset: Dataset,
    pub tags: Vec<Tag>,
}

impl DatasetInput {
    /// How the run used the dataset: its `mlflow.data.context` tag.
    pub fn context(&self) -> Option<&str> {
        self.tags.iter().find(|t| t.key == DATASET_CONTEXT_TAG).map(|t| t.value.as_str())
    }
}

/// One dataset used in an experiment, with the context a run used it in
/// (the `mlflow.data.context` input tag: `training`, `eval`…), as MLflow's
/// `experiments/search-datasets` answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetSummary {
    pub experiment_id: String,
    pub name: String,
    pub digest: String,
    pub context: Option<String>,
}

/// The input tag that says how a run used a dataset.
pub const DATASET_CONTEXT_TAG: &str = "mlflow.data.context";

/// A model a run consumed (`inputs`) or produced (`outputs`, with a step).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelIo {
    pub model_id: String,
    pub step: i64,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunData {
    /// The latest value of each metric.
    pub metrics: Vec<Metric>,
    pub params: Vec<Param>,
    pub tags: Vec<Tag>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunInputs {
    pub datasets: Vec<DatasetInput>,
    pub models: Vec<ModelIo>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub info: RunInfo,
    pub data: RunData,
    pub inputs: RunInputs,
    pub outputs: Vec<ModelIo>,
}

/// What a new run starts with.
#[derive(Debug, Clone, Default)]
pub struct NewRun {
    pub experiment_id: String,
    pub user_id: String,
    pub run_name: Option<String>,
    pub start_time: Option<i64>,
    pub tags: Vec<Tag>,
}

/// A partial update of a run's info.
#[derive(Debug, Clone, Default)]
pub struct RunUpdate {
    pub status: Option<RunStatus>,
    pub end_time: Option<i64>,
    pub run_name: Option<String>,
}

/// The tag MLflow uses to carry a run's name, kept in sync with `run_name`.
pub const RUN_NAME_TAG: &str = "mlflow.runName";
pub const PARENT_RUN_TAG: &str = "mlflow.parentRunId";
pub const USER_TAG: &str = "mlflow.user";

/// A human-friendly generated run name, as MLflow gives unnamed runs.
pub fn generate_run_name(seed: &str) -> String {
    const ADJ: [&str; 16] = [
        "amber", "bold", "brisk", "calm", "clever", "crisp", "eager", "gentle", "lucid", "merry", "nimble", "quiet",
        "rapid", "sunny", "vivid", "witty",
    ];
    const NOUN: [&str; 16] = [
        "badger", "crane", "dolphin", "falcon", "fox", "heron", "lynx", "otter", "owl", "panda", "raven", "seal",
        "sparrow", "tiger", "whale", "wolf",
    ];
    let h = seed.bytes().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64));
    format!("{}-{}-{}", ADJ[(h % 16) as usize], NOUN[((h >> 8) % 16) as usize], (h >> 16) % 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_metric_rule() {
        let a = Metric::new("m", 1.0, 10, 1);
        let b = Metric::new("m", 0.5, 5, 2);
        assert!(b.is_later_than(&a));
        let c = Metric::new("m", 2.0, 10, 1);
        assert!(c.is_later_than(&a));
        let nan = Metric::new("m", f64::NAN, 10, 1);
        assert!(!nan.is_later_than(&a));
        assert!(a.is_later_than(&nan));
    }

    #[test]
    fn status_parses_names_and_numbers() {
        assert_eq!(RunStatus::parse("finished").ok(), Some(RunStatus::Finished));
        assert_eq!(RunStatus::parse("4").ok(), Some(RunStatus::Failed));
        assert!(RunStatus::parse("DONE").is_err());
    }

    #[test]
    fn generated_names_are_stable() {
        assert_eq!(generate_run_name("abc"), generate_run_name("abc"));
    }
}
