//! MLflow's REST messages as serde types: the entities (`Experiment`, `Run`,
//! `ModelVersion`, …) and the requests and responses Plinth's server answers
//! and its remote client (`plinth train --tracking-uri`) sends, compiled by
//! both so the two sides cannot drift.
//!
//! Field names follow MLflow's protobuf messages (`service.proto`,
//! `model_registry.proto`); int64 travels as a JSON number, except model
//! versions, which MLflow spells as strings; a double that is not finite as
//! `"NaN"`/`"Infinity"`/`"-Infinity"` ([`double`]); enums by name. Reading is
//! lenient where MLflow's server omits a field (an empty list, an unset
//! optional), strict where a field is required: a response without a run's
//! `run_id` is an error, never an empty id.
//!
//! Conversions go from `plinth_core`'s types to these; the server turns them
//! into JSON only at its edge.

pub mod double;

use plinth_core::experiments::{LifecycleStage, Tag};
use plinth_core::logged_models::LoggedModelStatus;
use plinth_core::registry::Stage;
use plinth_core::runs::{Param, RunStatus};
use plinth_core::{experiments, logged_models, registry, runs};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An enum MLflow's JSON carries by name.
pub trait Named: Sized {
    fn name(&self) -> &'static str;
    fn from_name(name: &str) -> Option<Self>;
}

impl Named for RunStatus {
    fn name(&self) -> &'static str {
        self.as_str()
    }
    fn from_name(name: &str) -> Option<Self> {
        RunStatus::parse(name).ok()
    }
}

impl Named for LifecycleStage {
    fn name(&self) -> &'static str {
        self.as_str()
    }
    fn from_name(name: &str) -> Option<Self> {
        LifecycleStage::parse(name).ok()
    }
}

impl Named for Stage {
    fn name(&self) -> &'static str {
        self.as_str()
    }
    fn from_name(name: &str) -> Option<Self> {
        Stage::parse(name).ok()
    }
}

impl Named for LoggedModelStatus {
    fn name(&self) -> &'static str {
        self.as_str()
    }
    fn from_name(name: &str) -> Option<Self> {
        LoggedModelStatus::parse(name).ok()
    }
}

/// `#[serde(with = "named")]`: a [`Named`] enum by its name.
mod named {
    use super::*;

    pub fn serialize<S: Serializer, T: Named>(v: &T, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(v.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>, T: Named>(d: D) -> Result<T, D::Error> {
        let name = String::deserialize(d)?;
        T::from_name(&name).ok_or_else(|| serde::de::Error::custom(format!("unknown value '{name}'")))
    }
}

/// `#[serde(with = "decimal")]`: an integer MLflow spells as a string (a
/// model version); a JSON number is read too.
mod decimal {
    use super::*;

    pub fn serialize<S: Serializer>(v: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(s) => {
                s.trim().parse().map_err(|_| serde::de::Error::custom(format!("expected an integer, found '{s}'")))
            }
            serde_json::Value::Number(n) => {
                n.as_i64().ok_or_else(|| serde::de::Error::custom(format!("expected an integer, found {n}")))
            }
            other => Err(serde::de::Error::custom(format!("expected an integer, found {other}"))),
        }
    }
}

// --- entities ---

/// A tag or a param: `{"key", "value"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyValue {
    pub key: String,
    #[serde(default)]
    pub value: String,
}

impl From<&Tag> for KeyValue {
    fn from(t: &Tag) -> Self {
        KeyValue { key: t.key.clone(), value: t.value.clone() }
    }
}

impl From<&Param> for KeyValue {
    fn from(p: &Param) -> Self {
        KeyValue { key: p.key.clone(), value: p.value.clone() }
    }
}

fn key_values<'a, T: 'a>(items: impl IntoIterator<Item = &'a T>) -> Vec<KeyValue>
where
    KeyValue: From<&'a T>,
{
    items.into_iter().map(KeyValue::from).collect()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Experiment {
    pub experiment_id: String,
    pub name: String,
    #[serde(default)]
    pub artifact_location: String,
    #[serde(with = "named")]
    pub lifecycle_stage: LifecycleStage,
    #[serde(default)]
    pub creation_time: i64,
    #[serde(default)]
    pub last_update_time: i64,
    #[serde(default)]
    pub tags: Vec<KeyValue>,
    /// MLflow's field on a server with workspaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
}

impl From<&experiments::Experiment> for Experiment {
    fn from(e: &experiments::Experiment) -> Self {
        Experiment {
            experiment_id: e.experiment_id.clone(),
            name: e.name.clone(),
            artifact_location: e.artifact_location.clone(),
            lifecycle_stage: e.lifecycle_stage,
            creation_time: e.creation_time,
            last_update_time: e.last_update_time,
            tags: key_values(&e.tags),
            workspace: Some(e.workspace.clone()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    pub key: String,
    #[serde(with = "double")]
    pub value: f64,
    pub timestamp: i64,
    #[serde(default)]
    pub step: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset_digest: Option<String>,
}

impl From<&runs::Metric> for Metric {
    fn from(m: &runs::Metric) -> Self {
        Metric {
            key: m.key.clone(),
            value: m.value,
            timestamp: m.timestamp,
            step: m.step,
            model_id: m.model_id.clone(),
            dataset_name: m.dataset_name.clone(),
            dataset_digest: m.dataset_digest.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    pub run_id: String,
    /// MLflow's deprecated spelling of `run_id`, still read by old clients.
    #[serde(default)]
    pub run_uuid: String,
    #[serde(default)]
    pub run_name: String,
    pub experiment_id: String,
    #[serde(default)]
    pub user_id: String,
    #[serde(with = "named")]
    pub status: RunStatus,
    #[serde(default)]
    pub start_time: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<i64>,
    pub artifact_uri: String,
    #[serde(with = "named")]
    pub lifecycle_stage: LifecycleStage,
}

impl From<&runs::RunInfo> for RunInfo {
    fn from(i: &runs::RunInfo) -> Self {
        RunInfo {
            run_id: i.run_id.clone(),
            run_uuid: i.run_id.clone(),
            run_name: i.run_name.clone(),
            experiment_id: i.experiment_id.clone(),
            user_id: i.user_id.clone(),
            status: i.status,
            start_time: i.start_time,
            end_time: i.end_time,
            artifact_uri: i.artifact_uri.clone(),
            lifecycle_stage: i.lifecycle_stage,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunData {
    #[serde(default)]
    pub metrics: Vec<Metric>,
    #[serde(default)]
    pub params: Vec<KeyValue>,
    #[serde(default)]
    pub tags: Vec<KeyValue>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dataset {
    pub name: String,
    pub digest: String,
    pub source_type: String,
    #[serde(default)]
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
}

impl From<&runs::Dataset> for Dataset {
    fn from(d: &runs::Dataset) -> Self {
        Dataset {
            name: d.name.clone(),
            digest: d.digest.clone(),
            source_type: d.source_type.clone(),
            source: d.source.clone(),
            schema: d.schema.clone(),
            profile: d.profile.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetInput {
    #[serde(default)]
    pub tags: Vec<KeyValue>,
    pub dataset: Dataset,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelInput {
    pub model_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelOutput {
    pub model_id: String,
    #[serde(default)]
    pub step: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunInputs {
    #[serde(default)]
    pub dataset_inputs: Vec<DatasetInput>,
    #[serde(default)]
    pub model_inputs: Vec<ModelInput>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunOutputs {
    #[serde(default)]
    pub model_outputs: Vec<ModelOutput>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub info: RunInfo,
    #[serde(default)]
    pub data: RunData,
    #[serde(default)]
    pub inputs: RunInputs,
    #[serde(default)]
    pub outputs: RunOutputs,
}

impl From<&runs::Run> for Run {
    fn from(r: &runs::Run) -> Self {
        Run {
            info: (&r.info).into(),
            data: RunData {
                metrics: r.data.metrics.iter().map(Metric::from).collect(),
                params: key_values(&r.data.params),
                tags: key_values(&r.data.tags),
            },
            inputs: RunInputs {
                dataset_inputs: r
                    .inputs
                    .datasets
                    .iter()
                    .map(|d| DatasetInput { tags: key_values(&d.tags), dataset: (&d.dataset).into() })
                    .collect(),
                model_inputs: r.inputs.models.iter().map(|m| ModelInput { model_id: m.model_id.clone() }).collect(),
            },
            outputs: RunOutputs {
                model_outputs: r
                    .outputs
                    .iter()
                    .map(|m| ModelOutput { model_id: m.model_id.clone(), step: m.step })
                    .collect(),
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoggedModelInfo {
    pub model_id: String,
    pub experiment_id: String,
    pub name: String,
    #[serde(default)]
    pub creation_timestamp_ms: i64,
    #[serde(default)]
    pub last_updated_timestamp_ms: i64,
    #[serde(default)]
    pub artifact_uri: String,
    #[serde(with = "named")]
    pub status: LoggedModelStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_run_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_message: Option<String>,
    #[serde(default)]
    pub tags: Vec<KeyValue>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LoggedModelData {
    #[serde(default)]
    pub params: Vec<KeyValue>,
    #[serde(default)]
    pub metrics: Vec<Metric>,
}

/// An MLflow 3 logged model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoggedModel {
    pub info: LoggedModelInfo,
    #[serde(default)]
    pub data: LoggedModelData,
}

impl From<&logged_models::LoggedModel> for LoggedModel {
    fn from(m: &logged_models::LoggedModel) -> Self {
        LoggedModel {
            info: LoggedModelInfo {
                model_id: m.model_id.clone(),
                experiment_id: m.experiment_id.clone(),
                name: m.name.clone(),
                creation_timestamp_ms: m.creation_timestamp_ms,
                last_updated_timestamp_ms: m.last_updated_timestamp_ms,
                artifact_uri: m.artifact_location.clone(),
                status: m.status,
                model_type: m.model_type.clone(),
                source_run_id: m.source_run_id.clone(),
                status_message: m.status_message.clone(),
                tags: key_values(&m.tags),
            },
            data: LoggedModelData {
                params: key_values(&m.params),
                metrics: m.metrics.iter().map(Metric::from).collect(),
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelVersion {
    pub name: String,
    #[serde(with = "decimal")]
    pub version: i64,
    #[serde(default)]
    pub creation_timestamp: i64,
    #[serde(default)]
    pub last_updated_timestamp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(with = "named")]
    pub current_stage: Stage,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_link: Option<String>,
    #[serde(default)]
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_message: Option<String>,
    #[serde(default)]
    pub tags: Vec<KeyValue>,
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_id: Option<String>,
}

impl From<&registry::ModelVersion> for ModelVersion {
    fn from(v: &registry::ModelVersion) -> Self {
        ModelVersion {
            name: v.name.clone(),
            version: v.version,
            creation_timestamp: v.creation_timestamp,
            last_updated_timestamp: v.last_updated_timestamp,
            user_id: v.user_id.clone(),
            current_stage: v.current_stage,
            description: v.description.clone(),
            source: v.source.clone(),
            run_id: v.run_id.clone(),
            run_link: v.run_link.clone(),
            status: v.status.clone(),
            status_message: v.status_message.clone(),
            tags: key_values(&v.tags),
            aliases: v.aliases.clone(),
            model_id: v.model_id.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisteredModelAlias {
    pub alias: String,
    #[serde(with = "decimal")]
    pub version: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisteredModel {
    pub name: String,
    #[serde(default)]
    pub creation_timestamp: i64,
    #[serde(default)]
    pub last_updated_timestamp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub latest_versions: Vec<ModelVersion>,
    #[serde(default)]
    pub tags: Vec<KeyValue>,
    #[serde(default)]
    pub aliases: Vec<RegisteredModelAlias>,
}

impl From<&registry::RegisteredModel> for RegisteredModel {
    fn from(m: &registry::RegisteredModel) -> Self {
        RegisteredModel {
            name: m.name.clone(),
            creation_timestamp: m.creation_timestamp,
            last_updated_timestamp: m.last_updated_timestamp,
            description: m.description.clone(),
            latest_versions: m.latest_versions.iter().map(ModelVersion::from).collect(),
            tags: key_values(&m.tags),
            aliases: m
                .aliases
                .iter()
                .map(|a| RegisteredModelAlias { alias: a.alias.clone(), version: a.version })
                .collect(),
        }
    }
}

// --- requests and responses ---

/// Every failed call's body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorResponse {
    pub error_code: String,
    #[serde(default)]
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentResponse {
    pub experiment: Experiment,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateExperiment {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_location: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<KeyValue>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateExperimentResponse {
    pub experiment_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchExperimentsResponse {
    #[serde(default)]
    pub experiments: Vec<Experiment>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateRun {
    pub experiment_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<KeyValue>,
}

/// What `runs/create` and `runs/get` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResponse {
    pub run: Run,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateRun {
    pub run_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "optional_status")]
    pub status: Option<RunStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_name: Option<String>,
}

mod optional_status {
    use super::*;

    pub fn serialize<S: Serializer>(v: &Option<RunStatus>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(status) => s.serialize_str(status.as_str()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<RunStatus>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(name) => RunStatus::from_name(&name)
                .map(Some)
                .ok_or_else(|| serde::de::Error::custom(format!("unknown run status '{name}'"))),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateRunResponse {
    pub run_info: RunInfo,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchRunsResponse {
    #[serde(default)]
    pub runs: Vec<Run>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// `runs/log-batch`: all or nothing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LogBatch {
    pub run_id: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<Metric>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<KeyValue>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<KeyValue>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricHistoryResponse {
    #[serde(default)]
    pub metrics: Vec<Metric>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// A point of a metric with the run it belongs to (`get-history-bulk-interval`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricWithRunId {
    #[serde(flatten)]
    pub metric: Metric,
    pub run_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsWithRunIdsResponse {
    #[serde(default)]
    pub metrics: Vec<MetricWithRunId>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoggedModelResponse {
    pub model: LoggedModel,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchLoggedModelsResponse {
    #[serde(default)]
    pub models: Vec<LoggedModel>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateRegisteredModel {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<KeyValue>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisteredModelResponse {
    pub registered_model: RegisteredModel,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchRegisteredModelsResponse {
    #[serde(default)]
    pub registered_models: Vec<RegisteredModel>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetRegisteredModelAlias {
    pub name: String,
    pub alias: String,
    #[serde(with = "decimal")]
    pub version: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateModelVersion {
    pub name: String,
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// What every model-version call that returns one answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelVersionResponse {
    pub model_version: ModelVersion,
}

/// `registered-models/get-latest-versions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelVersionsResponse {
    #[serde(default)]
    pub model_versions: Vec<ModelVersion>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchModelVersionsResponse {
    #[serde(default)]
    pub model_versions: Vec<ModelVersion>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_run_from_mlflow_reads_and_a_missing_id_is_an_error() {
        // As MLflow's server answers: unset fields omitted.
        let body = json!({"run": {
            "info": {"run_id": "r1", "experiment_id": "0", "status": "RUNNING", "artifact_uri": "a",
                     "lifecycle_stage": "active", "start_time": 5},
            "data": {"metrics": [{"key": "m", "value": "NaN", "timestamp": 1}]},
        }});
        let run: Option<RunResponse> = serde_json::from_value(body.clone()).ok();
        assert_eq!(run.as_ref().map(|r| r.run.info.run_id.as_str()), Some("r1"));
        assert!(run.is_some_and(|r| r.run.data.metrics[0].value.is_nan() && r.run.data.params.is_empty()));
        let mut no_id = body;
        if let Some(info) = no_id["run"]["info"].as_object_mut() {
            info.remove("run_id");
        }
        assert!(serde_json::from_value::<RunResponse>(no_id).is_err());
    }

    #[test]
    fn versions_travel_as_strings() {
        let v = SetRegisteredModelAlias { name: "m".into(), alias: "champion".into(), version: 3 };
        assert_eq!(serde_json::to_value(&v).ok(), Some(json!({"name": "m", "alias": "champion", "version": "3"})));
        let back: Option<SetRegisteredModelAlias> =
            serde_json::from_value(json!({"name": "m", "alias": "a", "version": 4})).ok();
        assert_eq!(back.map(|a| a.version), Some(4));
    }

    #[test]
    fn log_batch_writes_doubles_as_mlflow_reads_them() {
        let batch = LogBatch {
            run_id: "r".into(),
            metrics: vec![(&runs::Metric::new("loss", f64::INFINITY, 1, 2)).into()],
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&batch).ok(),
            Some(json!({"run_id": "r", "metrics": [{"key": "loss", "value": "Infinity", "timestamp": 1, "step": 2}]}))
        );
    }
}
