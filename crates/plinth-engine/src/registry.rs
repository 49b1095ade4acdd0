//! The model registry: registered models, versions, aliases, stages.

use plinth_core::experiments::Tag;
use plinth_core::registry::{self, ModelVersion, NewModelVersion, RegisteredModel, Stage};
use plinth_core::{Error as DomainError, validation};

use crate::{Page, Platform, Result, SearchQuery};

/// The logged-model tag that lists the versions registered from it.
const MODEL_VERSIONS_TAG: &str = "mlflow.modelVersions";

impl Platform {
    pub async fn create_registered_model(
        &self,
        name: String,
        description: Option<String>,
        tags: Vec<Tag>,
    ) -> Result<RegisteredModel> {
        validation::validate_model_name(&name)?;
        for t in &tags {
            validation::validate_registry_tag(&t.key, &t.value)?;
        }
        Ok(self.store.create_registered_model(name, description, tags).await?)
    }

    pub async fn get_registered_model(&self, name: &str) -> Result<RegisteredModel> {
        Ok(self.store.get_registered_model(name).await?)
    }

    pub async fn rename_registered_model(&self, name: &str, new_name: String) -> Result<RegisteredModel> {
        validation::validate_model_name(&new_name)?;
        Ok(self.store.rename_registered_model(name, new_name).await?)
    }

    pub async fn update_registered_model(&self, name: &str, description: Option<String>) -> Result<RegisteredModel> {
        Ok(self.store.update_registered_model(name, description).await?)
    }

    pub async fn delete_registered_model(&self, name: &str) -> Result<()> {
        Ok(self.store.delete_registered_model(name).await?)
    }

    pub async fn search_registered_models(&self, query: SearchQuery) -> Result<Page<RegisteredModel>> {
        validation::validate_max_results(query.max_results, validation::MAX_RESULTS_REGISTRY)?;
        Ok(self.store.search_registered_models(query).await?)
    }

    pub async fn set_registered_model_tag(&self, name: &str, tag: Tag) -> Result<()> {
        validation::validate_registry_tag(&tag.key, &tag.value)?;
        Ok(self.store.set_registered_model_tag(name, tag).await?)
    }

    pub async fn delete_registered_model_tag(&self, name: &str, key: &str) -> Result<()> {
        Ok(self.store.delete_registered_model_tag(name, key).await?)
    }

    pub async fn set_alias(&self, name: &str, alias: &str, version: i64) -> Result<()> {
        registry::validate_alias(alias)?;
        Ok(self.store.set_alias(name, alias, version).await?)
    }

    pub async fn delete_alias(&self, name: &str, alias: &str) -> Result<()> {
        Ok(self.store.delete_alias(name, alias).await?)
    }

    pub async fn get_model_version_by_alias(&self, name: &str, alias: &str) -> Result<ModelVersion> {
        Ok(self.store.get_model_version_by_alias(name, alias).await?)
    }

    /// Registers a new version. The source may be a logged model
    /// (`models:/m-...`), another version (`models:/name/3`), a run path
    /// (`runs:/<run_id>/path`) or a plain artifact URI; where the bytes are is
    /// resolved now and answered by `get-download-uri`.
    pub async fn create_model_version(&self, mut new: NewModelVersion) -> Result<ModelVersion> {
        validation::validate_model_name(&new.name)?;
        if new.source.trim().is_empty() {
            return Err(DomainError::invalid("Missing value for required parameter 'source'.").into());
        }
        for t in &new.tags {
            validation::validate_registry_tag(&t.key, &t.value)?;
        }
        let source = new.source.clone();
        new.storage_location = if let Some(rest) = source.strip_prefix("models:/") {
            let rest = rest.trim_end_matches('/');
            if rest.starts_with("m-") && !rest.contains('/') {
                let model = self.store.get_logged_model(rest).await?;
                if new.run_id.is_none() {
                    new.run_id = model.source_run_id.clone();
                }
                new.model_id.get_or_insert_with(|| model.model_id.clone());
                model.artifact_location
            } else {
                let (name, version) = rest
                    .split_once('/')
                    .ok_or_else(|| DomainError::invalid(format!("Invalid model version source: '{source}'")))?;
                let version = parse_version(version)?;
                self.store.get_model_version(name, version).await?.storage_location
            }
        } else if let Some(rest) = source.strip_prefix("runs:/") {
            let (run_id, path) = rest.split_once('/').unwrap_or((rest, ""));
            let run = self.store.get_run(run_id).await?;
            new.run_id.get_or_insert_with(|| run_id.to_string());
            if path.is_empty() {
                run.info.artifact_uri
            } else {
                format!("{}/{}", run.info.artifact_uri.trim_end_matches('/'), path.trim_matches('/'))
            }
        } else {
            source.clone()
        };
        if let Some(model_id) = &new.model_id
            && new.run_id.is_none()
        {
            new.run_id = self.store.get_logged_model(model_id).await?.source_run_id;
        }
        let model_id = new.model_id.clone();
        let version = self.store.create_model_version(new).await?;
        if let Some(model_id) = model_id {
            self.record_version_on_logged_model(&model_id, &version).await?;
        }
        Ok(version)
    }

    async fn record_version_on_logged_model(&self, model_id: &str, version: &ModelVersion) -> Result<()> {
        let model = self.store.get_logged_model(model_id).await?;
        let entry = serde_json::json!({"name": version.name, "version": version.version.to_string()});
        let mut list: Vec<serde_json::Value> = model
            .tags
            .iter()
            .find(|t| t.key == MODEL_VERSIONS_TAG)
            .and_then(|t| serde_json::from_str(&t.value).ok())
            .unwrap_or_default();
        if !list.contains(&entry) {
            list.push(entry);
        }
        let tag = Tag::new(MODEL_VERSIONS_TAG, serde_json::Value::Array(list).to_string());
        Ok(self.store.set_logged_model_tags(model_id, vec![tag]).await?)
    }

    pub async fn get_model_version(&self, name: &str, version: &str) -> Result<ModelVersion> {
        Ok(self.store.get_model_version(name, parse_version(version)?).await?)
    }

    pub async fn update_model_version(
        &self,
        name: &str,
        version: &str,
        description: Option<String>,
    ) -> Result<ModelVersion> {
        Ok(self.store.update_model_version(name, parse_version(version)?, description).await?)
    }

    pub async fn delete_model_version(&self, name: &str, version: &str) -> Result<()> {
        Ok(self.store.delete_model_version(name, parse_version(version)?).await?)
    }

    pub async fn search_model_versions(&self, query: SearchQuery) -> Result<Page<ModelVersion>> {
        validation::validate_max_results(query.max_results, validation::MAX_RESULTS_REGISTRY)?;
        Ok(self.store.search_model_versions(query).await?)
    }

    pub async fn set_model_version_tag(&self, name: &str, version: &str, tag: Tag) -> Result<()> {
        validation::validate_registry_tag(&tag.key, &tag.value)?;
        Ok(self.store.set_model_version_tag(name, parse_version(version)?, tag).await?)
    }

    pub async fn delete_model_version_tag(&self, name: &str, version: &str, key: &str) -> Result<()> {
        Ok(self.store.delete_model_version_tag(name, parse_version(version)?, key).await?)
    }

    pub async fn model_version_download_uri(&self, name: &str, version: &str) -> Result<String> {
        Ok(self.get_model_version(name, version).await?.storage_location)
    }

    pub async fn transition_stage(
        &self,
        name: &str,
        version: &str,
        stage: &str,
        archive_existing: bool,
    ) -> Result<ModelVersion> {
        let stage = Stage::parse(stage)?;
        Ok(self.store.transition_stage(name, parse_version(version)?, stage, archive_existing).await?)
    }

    pub async fn get_latest_versions(&self, name: &str, stages: &[String]) -> Result<Vec<ModelVersion>> {
        let stages = stages.iter().map(|s| Stage::parse(s)).collect::<plinth_core::Result<Vec<_>>>()?;
        Ok(self.store.get_latest_versions(name, stages).await?)
    }
}

/// Versions travel as strings; they must be positive integers.
pub fn parse_version(v: &str) -> Result<i64> {
    match v.trim().parse::<i64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(DomainError::invalid(format!("Parameter 'version' must be a positive integer, got '{v}'")).into()),
    }
}
