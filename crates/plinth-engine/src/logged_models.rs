//! MLflow 3 logged models.

use plinth_core::access::{Op, ResourceType};
use plinth_core::audit::{Action, resource};
use plinth_core::experiments::Tag;
use plinth_core::ids::new_logged_model_id;
use plinth_core::logged_models::{LoggedModel, LoggedModelStatus, NewLoggedModel};
use plinth_core::runs::{Param, generate_run_name};
use plinth_core::validation;

use crate::{LoggedModelSearch, Page, Platform, Result};

impl Platform {
    pub async fn create_logged_model(&self, new: NewLoggedModel) -> Result<LoggedModel> {
        for t in &new.tags {
            validation::validate_run_tag(&t.key, &t.value)?;
        }
        for p in &new.params {
            validation::validate_param(&p.key, &p.value)?;
        }
        self.need_experiment(&new.experiment_id, Op::Update).await?;
        let experiment = self.store.get_experiment(&new.experiment_id).await?;
        if let Some(run_id) = &new.source_run_id {
            self.need_run(run_id, Op::Read).await?;
            self.store.get_run(run_id).await?;
        }
        let model_id = new_logged_model_id();
        let now = self.now_ms();
        let model = LoggedModel {
            artifact_location: format!(
                "{}/models/{model_id}/artifacts",
                experiment.artifact_location.trim_end_matches('/')
            ),
            name: new.name.filter(|n| !n.is_empty()).unwrap_or_else(|| generate_run_name(&model_id)),
            model_id,
            experiment_id: experiment.experiment_id,
            creation_timestamp_ms: now,
            last_updated_timestamp_ms: now,
            model_type: new.model_type,
            source_run_id: new.source_run_id,
            status: LoggedModelStatus::Pending,
            status_message: None,
            deleted: false,
            tags: new.tags,
            params: new.params,
            metrics: Vec::new(),
        };
        let model = self.store.create_logged_model(model).await?;
        self.record_change(Action::LoggedModelCreate, resource::logged_model(&model.model_id)).await?;
        Ok(model)
    }

    pub async fn get_logged_model(&self, model_id: &str) -> Result<LoggedModel> {
        self.need_logged_model(model_id, Op::Read).await?;
        Ok(self.store.get_logged_model(model_id).await?)
    }

    pub async fn finalize_logged_model(&self, model_id: &str, status: LoggedModelStatus) -> Result<LoggedModel> {
        self.need_logged_model(model_id, Op::Update).await?;
        let model = self.store.finalize_logged_model(model_id, status).await?;
        let after = Some(status.as_str().to_string());
        self.record(Action::LoggedModelFinalize, resource::logged_model(model_id), None, after).await?;
        Ok(model)
    }

    pub async fn delete_logged_model(&self, model_id: &str) -> Result<()> {
        self.need_logged_model(model_id, Op::Delete).await?;
        self.store.delete_logged_model(model_id).await?;
        self.record_change(Action::LoggedModelDelete, resource::logged_model(model_id)).await
    }

    pub async fn set_logged_model_tags(&self, model_id: &str, tags: Vec<Tag>) -> Result<()> {
        for t in &tags {
            validation::validate_run_tag(&t.key, &t.value)?;
        }
        self.need_logged_model(model_id, Op::Update).await?;
        Ok(self.store.set_logged_model_tags(model_id, tags).await?)
    }

    pub async fn delete_logged_model_tag(&self, model_id: &str, key: &str) -> Result<()> {
        self.need_logged_model(model_id, Op::Update).await?;
        Ok(self.store.delete_logged_model_tag(model_id, key).await?)
    }

    pub async fn log_logged_model_params(&self, model_id: &str, params: Vec<Param>) -> Result<()> {
        for p in &params {
            validation::validate_param(&p.key, &p.value)?;
        }
        self.need_logged_model(model_id, Op::Update).await?;
        Ok(self.store.log_logged_model_params(model_id, params).await?)
    }

    pub async fn search_logged_models(&self, mut search: LoggedModelSearch) -> Result<Page<LoggedModel>> {
        validation::validate_max_results(search.max_results, validation::MAX_RESULTS_RUNS)?;
        search.experiment_ids = self.readable_experiments(search.experiment_ids, ResourceType::LoggedModel).await?;
        Ok(self.store.search_logged_models(search).await?)
    }
}
