//! Experiments: create, find, rename, delete/restore, tag.

use plinth_core::access::{Op, ResourceType};
use plinth_core::audit::{Action, resource};
use plinth_core::experiments::{Experiment, LifecycleStage, Tag};
use plinth_core::query::ExperimentClause;
use plinth_core::{sources, validation};

use crate::{ExperimentSearch, Page, Platform, Result};

/// A relative local path becomes absolute against the server's working
/// directory (MLflow's `resolve_uri_if_local`), so every client that reads
/// the experiment sees one place.
fn resolve_local_location(loc: String) -> String {
    if !sources::split(&loc).scheme.is_empty() || loc.starts_with('/') {
        return loc;
    }
    match std::env::current_dir() {
        Ok(cwd) => sources::normalize_local(&format!("{}/{loc}", cwd.display())),
        Err(_) => loc,
    }
}

impl Platform {
    pub async fn create_experiment(
        &self,
        name: String,
        artifact_location: Option<String>,
        tags: Vec<Tag>,
    ) -> Result<String> {
        validation::validate_experiment_name(&name)?;
        for t in &tags {
            validation::validate_experiment_tag(&t.key, &t.value)?;
        }
        self.need_create(ResourceType::Experiment).await?;
        let location = match artifact_location.filter(|s| !s.is_empty()) {
            Some(loc) => resolve_local_location(loc),
            None => self.workspace_artifact_location().await?,
        };
        let id = self.store.create_experiment(name.clone(), location, tags).await?;
        self.grant_creator(ResourceType::Experiment, &id).await?;
        self.record(Action::ExperimentCreate, resource::experiment(&id), None, Some(name)).await?;
        Ok(id)
    }

    pub async fn get_experiment(&self, id: &str) -> Result<Experiment> {
        self.need_experiment(id, Op::Read).await?;
        Ok(self.store.get_experiment(id).await?)
    }

    pub async fn get_experiment_by_name(&self, name: &str) -> Result<Experiment> {
        match self.store.get_experiment_by_name(name).await? {
            Some(e) if self.need_experiment(&e.experiment_id, Op::Read).await.is_ok() => Ok(e),
            _ => Err(plinth_core::Error::not_found(format!("Could not find experiment with name '{name}'")).into()),
        }
    }

    /// Active runs per experiment (experiments with none are absent).
    pub async fn count_runs(&self, experiment_ids: Vec<String>) -> Result<Vec<(String, i64)>> {
        Ok(self.store.count_runs(experiment_ids).await?)
    }

    pub async fn search_experiments(&self, mut search: ExperimentSearch) -> Result<Page<Experiment>> {
        validation::validate_max_results(search.query.max_results, validation::MAX_RESULTS_EXPERIMENTS)?;
        let visible = self.visible(ResourceType::Experiment).await?;
        if visible != plinth_core::access::Visible::All {
            search.query.filter.push(ExperimentClause::Visible(visible));
        }
        Ok(self.store.search_experiments(search).await?)
    }

    pub async fn rename_experiment(&self, id: &str, new_name: String) -> Result<()> {
        validation::validate_experiment_name(&new_name)?;
        self.need_experiment(id, Op::Update).await?;
        let before = self.store.get_experiment(id).await?.name;
        self.store.rename_experiment(id, new_name.clone()).await?;
        self.record(Action::ExperimentRename, resource::experiment(id), Some(before), Some(new_name)).await
    }

    pub async fn delete_experiment(&self, id: &str) -> Result<()> {
        self.need_experiment(id, Op::Delete).await?;
        self.store.set_experiment_lifecycle(id, LifecycleStage::Deleted).await?;
        self.record_change(Action::ExperimentDelete, resource::experiment(id)).await
    }

    pub async fn restore_experiment(&self, id: &str) -> Result<()> {
        self.need_experiment(id, Op::Delete).await?;
        self.store.set_experiment_lifecycle(id, LifecycleStage::Active).await?;
        self.record_change(Action::ExperimentRestore, resource::experiment(id)).await
    }

    pub async fn set_experiment_tag(&self, id: &str, tag: Tag) -> Result<()> {
        validation::validate_experiment_tag(&tag.key, &tag.value)?;
        self.need_experiment(id, Op::Update).await?;
        let key = tag.key.clone();
        self.store.set_experiment_tag(id, tag).await?;
        self.record(Action::ExperimentSetTag, resource::experiment(id), None, Some(key)).await
    }

    pub async fn delete_experiment_tag(&self, id: &str, key: &str) -> Result<()> {
        self.need_experiment(id, Op::Update).await?;
        self.store.delete_experiment_tag(id, key).await?;
        self.record(Action::ExperimentDeleteTag, resource::experiment(id), Some(key.to_string()), None).await
    }
}
