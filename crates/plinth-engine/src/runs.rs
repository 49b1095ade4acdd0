//! Runs: create, update, delete/restore, log, search.

use plinth_core::access::{Op, ResourceType};
use plinth_core::audit::{Action, resource};
use plinth_core::experiments::{LifecycleStage, Tag};
use plinth_core::ids::{new_run_id, now_ms};
use plinth_core::runs::{
    DatasetInput, DatasetSummary, Metric, ModelIo, NewRun, Param, RUN_NAME_TAG, Run, RunInfo, RunStatus, RunUpdate,
    generate_run_name,
};
use plinth_core::{Error as DomainError, validation};

use crate::{Page, Platform, Result, RunSearch};

/// MLflow's bounds on `get-history-bulk-interval`.
pub const MAX_BULK_RUNS: usize = 100;
pub const MAX_BULK_POINTS: i64 = 2500;

impl Platform {
    pub async fn create_run(&self, new: NewRun) -> Result<Run> {
        for t in &new.tags {
            validation::validate_run_tag(&t.key, &t.value)?;
        }
        self.need_experiment(&new.experiment_id, Op::Update).await?;
        let experiment = self.store.get_experiment(&new.experiment_id).await?;
        let run_id = new_run_id();
        // The name comes from run_name, else the mlflow.runName tag, else is generated.
        let tag_name = new.tags.iter().find(|t| t.key == RUN_NAME_TAG).map(|t| t.value.clone());
        let run_name = match (new.run_name.filter(|n| !n.is_empty()), tag_name) {
            (Some(name), Some(tag)) if name != tag => {
                return Err(DomainError::invalid(format!(
                    "Both 'run_name' argument and 'mlflow.runName' tag are specified, but with different values (run_name='{name}', mlflow.runName='{tag}')."
                ))
                .into());
            }
            (Some(name), _) => name,
            (None, Some(tag)) => tag,
            (None, None) => generate_run_name(&run_id),
        };
        let mut tags = new.tags;
        if !tags.iter().any(|t| t.key == RUN_NAME_TAG) {
            tags.push(Tag::new(RUN_NAME_TAG, run_name.clone()));
        }
        let info = RunInfo {
            artifact_uri: format!("{}/{run_id}/artifacts", experiment.artifact_location.trim_end_matches('/')),
            run_id,
            run_name,
            experiment_id: experiment.experiment_id,
            user_id: new.user_id,
            status: RunStatus::Running,
            start_time: new.start_time.unwrap_or_else(now_ms),
            end_time: None,
            lifecycle_stage: LifecycleStage::Active,
        };
        let run = self.store.create_run(info, tags).await?;
        let experiment = Some(format!("experiment {}", run.info.experiment_id));
        self.record(Action::RunCreate, resource::run(&run.info.run_id), None, experiment).await?;
        Ok(run)
    }

    pub async fn get_run(&self, run_id: &str) -> Result<Run> {
        self.need_run(run_id, Op::Read).await?;
        Ok(self.store.get_run(run_id).await?)
    }

    pub async fn update_run(&self, run_id: &str, update: RunUpdate) -> Result<RunInfo> {
        if let Some(name) = &update.run_name {
            validation::validate_run_tag(RUN_NAME_TAG, name)?;
        }
        self.need_run(run_id, Op::Update).await?;
        let status = update.status.map(|s| s.as_str().to_string());
        let info = self.store.update_run(run_id, update).await?;
        self.record(Action::RunUpdate, resource::run(run_id), None, status).await?;
        Ok(info)
    }

    pub async fn delete_run(&self, run_id: &str) -> Result<()> {
        self.need_run(run_id, Op::Delete).await?;
        self.store.set_run_lifecycle(run_id, LifecycleStage::Deleted).await?;
        self.record_change(Action::RunDelete, resource::run(run_id)).await
    }

    pub async fn restore_run(&self, run_id: &str) -> Result<()> {
        self.need_run(run_id, Op::Delete).await?;
        self.store.set_run_lifecycle(run_id, LifecycleStage::Active).await?;
        self.record_change(Action::RunRestore, resource::run(run_id)).await
    }

    /// Logs metrics, params and tags in one durable, all-or-nothing write.
    pub async fn log_batch(
        &self,
        run_id: &str,
        metrics: Vec<Metric>,
        params: Vec<Param>,
        tags: Vec<Tag>,
    ) -> Result<()> {
        validation::validate_batch_counts(metrics.len(), params.len(), tags.len())?;
        for m in &metrics {
            validation::validate_metric_name(&m.key)?;
        }
        for p in &params {
            validation::validate_param(&p.key, &p.value)?;
        }
        for t in &tags {
            validation::validate_run_tag(&t.key, &t.value)?;
        }
        self.need_run(run_id, Op::Update).await?;
        Ok(self.store.log_batch(run_id, metrics, params, tags).await?)
    }

    /// MLflow 2's `log-model`: `model_json` appended to the run's
    /// `mlflow.log-model.history` tag, atomically.
    pub async fn log_model_history(&self, run_id: &str, model_json: String) -> Result<()> {
        let entry: serde_json::Value = serde_json::from_str(&model_json)
            .map_err(|e| plinth_core::Error::invalid(format!("Invalid model_json: {e}")))?;
        self.need_run(run_id, Op::Update).await?;
        Ok(self.store.append_to_run_tag_list(run_id, "mlflow.log-model.history", entry).await?)
    }

    pub async fn delete_run_tag(&self, run_id: &str, key: &str) -> Result<()> {
        self.need_run(run_id, Op::Update).await?;
        Ok(self.store.delete_run_tag(run_id, key).await?)
    }

    pub async fn log_inputs(&self, run_id: &str, datasets: Vec<DatasetInput>, models: Vec<ModelIo>) -> Result<()> {
        for d in &datasets {
            let ds = &d.dataset;
            let check = |what: &str, v: &str, max: usize| validation::validate_value_len(what, &ds.name, v, max);
            validation::validate_name("dataset", &ds.name, validation::MAX_DATASET_NAME_SIZE)?;
            check("Dataset digest", &ds.digest, validation::MAX_DATASET_DIGEST_SIZE)?;
            check("Dataset source", &ds.source, validation::MAX_DATASET_SOURCE_SIZE)?;
            check("Dataset schema", ds.schema.as_deref().unwrap_or(""), validation::MAX_DATASET_SCHEMA_SIZE)?;
            check("Dataset profile", ds.profile.as_deref().unwrap_or(""), validation::MAX_DATASET_PROFILE_SIZE)?;
        }
        self.need_run(run_id, Op::Update).await?;
        Ok(self.store.log_inputs(run_id, datasets, models).await?)
    }

    pub async fn log_outputs(&self, run_id: &str, models: Vec<ModelIo>) -> Result<()> {
        self.need_run(run_id, Op::Update).await?;
        Ok(self.store.log_outputs(run_id, models).await?)
    }

    /// MLflow's `get-history-bulk-interval`: each run's history of `key`
    /// sampled to at most `max_results` points (default 2,500) within
    /// `[start_step, end_step]`; at most 100 runs (unknown ones have no
    /// points). Messages are MLflow's.
    pub async fn sample_metric_histories(
        &self,
        run_ids: &[String],
        key: &str,
        start_step: Option<i64>,
        end_step: Option<i64>,
        max_results: Option<i64>,
    ) -> Result<Vec<(String, Metric)>> {
        const HINT: &str = " See the API docs for more information about request parameters.";
        if run_ids.is_empty() {
            return Err(DomainError::invalid(format!("Missing value for required parameter 'run_ids'.{HINT}")).into());
        }
        if run_ids.len() > MAX_BULK_RUNS {
            return Err(DomainError::invalid(format!(
                "GetMetricHistoryBulkInterval request must specify at most {MAX_BULK_RUNS} run_ids. Received {} \
                 run_ids.{HINT}",
                run_ids.len()
            ))
            .into());
        }
        if key.is_empty() {
            return Err(
                DomainError::invalid(format!("Missing value for required parameter 'metric_key'.{HINT}")).into()
            );
        }
        let max_results = max_results.unwrap_or(MAX_BULK_POINTS);
        if !(1..=MAX_BULK_POINTS).contains(&max_results) {
            return Err(
                DomainError::invalid(format!("max_results must be between 1 and {MAX_BULK_POINTS}.{HINT}")).into()
            );
        }
        let steps = match (start_step, end_step) {
            (Some(start), Some(end)) if start > end => {
                return Err(DomainError::invalid(format!(
                    "end_step must be greater than start_step. Found start_step={start} and end_step={end}."
                ))
                .into());
            }
            (Some(start), Some(end)) => Some((start, end)),
            (None, None) => None,
            _ => {
                return Err(DomainError::invalid(
                    "If either start step or end step are specified, both must be specified.",
                )
                .into());
            }
        };
        // As MLflow's SQL store: a run that does not exist has no history.
        let mut out = Vec::new();
        for id in run_ids {
            if !self.readable_run(id).await? {
                continue;
            }
            match self.store.sample_metric_history(id, key, steps, max_results).await {
                Ok(points) => out.extend(points.into_iter().map(|m| (id.clone(), m))),
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(out)
    }

    /// MLflow's `get-history-bulk` (the UI's older call): every value of `key`
    /// for up to 100 runs, ordered by run id, timestamp, step and value, at
    /// most `max_results` (25,000) in all. Unknown runs are left out.
    pub async fn metric_histories(
        &self,
        run_ids: &[String],
        key: Option<&str>,
        max_results: Option<i64>,
    ) -> Result<Vec<(String, Metric)>> {
        const MAX_HISTORY: i64 = 25_000;
        if run_ids.is_empty() {
            return Err(DomainError::invalid("GetMetricHistoryBulk request must specify at least one run_id.").into());
        }
        if run_ids.len() > MAX_BULK_RUNS {
            return Err(DomainError::invalid(format!(
                "GetMetricHistoryBulk request cannot specify more than {MAX_BULK_RUNS} run_ids. Received {} run_ids.",
                run_ids.len()
            ))
            .into());
        }
        let Some(key) = key else {
            return Err(DomainError::invalid("GetMetricHistoryBulk request must specify a metric_key.").into());
        };
        let max_results = max_results.unwrap_or(MAX_HISTORY).clamp(0, MAX_HISTORY);
        let mut ids: Vec<&String> = run_ids.iter().collect();
        ids.sort();
        ids.dedup();
        let mut out: Vec<(String, Metric)> = Vec::new();
        for id in ids {
            if out.len() as i64 >= max_results {
                break;
            }
            if !self.readable_run(id).await? {
                continue;
            }
            let page = match self.store.get_metric_history(id, key, max_results, 0).await {
                Ok(page) => page,
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e.into()),
            };
            let mut items = page.items;
            items.sort_by(|a, b| (a.timestamp, a.step).cmp(&(b.timestamp, b.step)).then(a.value.total_cmp(&b.value)));
            out.extend(items.into_iter().map(|m| (id.clone(), m)));
        }
        out.truncate(max_results as usize);
        Ok(out)
    }

    /// MLflow's `experiments/search-datasets`: the datasets (with their
    /// context) that runs of 1 to 20 experiments used, at most 1,000.
    pub async fn search_datasets(&self, experiment_ids: Vec<String>) -> Result<Vec<DatasetSummary>> {
        const MAX_EXPERIMENTS: usize = 20;
        if experiment_ids.is_empty() {
            return Err(DomainError::invalid("SearchDatasets request must specify at least one experiment_id.").into());
        }
        if experiment_ids.len() > MAX_EXPERIMENTS {
            return Err(DomainError::invalid(format!(
                "SearchDatasets request cannot specify more than {MAX_EXPERIMENTS} experiment_ids. Received {} \
                 experiment_ids.",
                experiment_ids.len()
            ))
            .into());
        }
        let experiment_ids = self.readable_experiments(experiment_ids, ResourceType::Run).await?;
        Ok(self.store.search_dataset_summaries(experiment_ids, 1000).await?)
    }

    pub async fn get_metric_history(
        &self,
        run_id: &str,
        key: &str,
        max_results: i64,
        offset: i64,
    ) -> Result<Page<Metric>> {
        validation::validate_max_results(max_results, 1_000_000)?;
        self.need_run(run_id, Op::Read).await?;
        Ok(self.store.get_metric_history(run_id, key, max_results, offset).await?)
    }

    pub async fn search_runs(&self, mut search: RunSearch) -> Result<Page<Run>> {
        validation::validate_max_results(search.query.max_results, validation::MAX_RESULTS_RUNS)?;
        search.experiment_ids = self.readable_experiments(search.experiment_ids, ResourceType::Run).await?;
        Ok(self.store.search_runs(search).await?)
    }

    /// Whether the actor may read the run (an unknown run is not readable:
    /// the bulk histories leave both out alike).
    async fn readable_run(&self, run_id: &str) -> Result<bool> {
        match self.need_run(run_id, Op::Read).await {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == plinth_core::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }
}
