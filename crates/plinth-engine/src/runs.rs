//! Runs: create, update, delete/restore, log, search.

use plinth_core::experiments::{LifecycleStage, Tag};
use plinth_core::ids::{new_run_id, now_ms};
use plinth_core::runs::{
    DatasetInput, Metric, ModelIo, NewRun, Param, RUN_NAME_TAG, Run, RunInfo, RunStatus, RunUpdate, generate_run_name,
};
use plinth_core::{Error as DomainError, validation};

use crate::{Page, Platform, Result, RunSearch};

impl Platform {
    pub async fn create_run(&self, new: NewRun) -> Result<Run> {
        for t in &new.tags {
            validation::validate_run_tag(&t.key, &t.value)?;
        }
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
        Ok(self.store.create_run(info, tags).await?)
    }

    pub async fn get_run(&self, run_id: &str) -> Result<Run> {
        Ok(self.store.get_run(run_id).await?)
    }

    pub async fn update_run(&self, run_id: &str, update: RunUpdate) -> Result<RunInfo> {
        if let Some(name) = &update.run_name {
            validation::validate_run_tag(RUN_NAME_TAG, name)?;
        }
        Ok(self.store.update_run(run_id, update).await?)
    }

    pub async fn delete_run(&self, run_id: &str) -> Result<()> {
        Ok(self.store.set_run_lifecycle(run_id, LifecycleStage::Deleted).await?)
    }

    pub async fn restore_run(&self, run_id: &str) -> Result<()> {
        Ok(self.store.set_run_lifecycle(run_id, LifecycleStage::Active).await?)
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
        Ok(self.store.log_batch(run_id, metrics, params, tags).await?)
    }

    pub async fn delete_run_tag(&self, run_id: &str, key: &str) -> Result<()> {
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
        Ok(self.store.log_inputs(run_id, datasets, models).await?)
    }

    pub async fn log_outputs(&self, run_id: &str, models: Vec<ModelIo>) -> Result<()> {
        Ok(self.store.log_outputs(run_id, models).await?)
    }

    pub async fn get_metric_history(
        &self,
        run_id: &str,
        key: &str,
        max_results: i64,
        offset: i64,
    ) -> Result<Page<Metric>> {
        validation::validate_max_results(max_results, 1_000_000)?;
        Ok(self.store.get_metric_history(run_id, key, max_results, offset).await?)
    }

    pub async fn search_runs(&self, search: RunSearch) -> Result<Page<Run>> {
        validation::validate_max_results(search.query.max_results, validation::MAX_RESULTS_RUNS)?;
        Ok(self.store.search_runs(search).await?)
    }
}
