//! The model registry: registered models, versions, aliases, stages.

use plinth_core::access::{Op, ResourceType, Visible};
use plinth_core::audit::{Action, resource};
use plinth_core::experiments::Tag;
use plinth_core::query::{ModelVersionClause, RegisteredModelClause, TextMatch};
use plinth_core::registry::{self, ModelVersion, NewModelVersion, RegisteredModel, Stage};
use plinth_core::{Error as DomainError, sources, validation};

use crate::{ModelVersionQuery, Page, Platform, RegisteredModelQuery, Result};

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
        self.need_create(ResourceType::RegisteredModel).await?;
        let model = self.store.create_registered_model(name, description, tags).await?;
        self.grant_creator(ResourceType::RegisteredModel, &model.name).await?;
        self.record_change(Action::ModelCreate, resource::model(&model.name)).await?;
        Ok(model)
    }

    pub async fn get_registered_model(&self, name: &str) -> Result<RegisteredModel> {
        self.need_model(name, Op::Read).await?;
        Ok(self.store.get_registered_model(name).await?)
    }

    pub async fn rename_registered_model(&self, name: &str, new_name: String) -> Result<RegisteredModel> {
        validation::validate_model_name(&new_name)?;
        self.need_model(name, Op::Update).await?;
        let model = self.store.rename_registered_model(name, new_name).await?;
        self.rename_grants(ResourceType::RegisteredModel, name, &model.name).await?;
        let (before, after) = (Some(name.to_string()), Some(model.name.clone()));
        self.record(Action::ModelRename, resource::model(name), before, after).await?;
        Ok(model)
    }

    pub async fn update_registered_model(&self, name: &str, description: Option<String>) -> Result<RegisteredModel> {
        self.need_model(name, Op::Update).await?;
        let model = self.store.update_registered_model(name, description).await?;
        self.record_change(Action::ModelUpdate, resource::model(name)).await?;
        Ok(model)
    }

    pub async fn delete_registered_model(&self, name: &str) -> Result<()> {
        self.need_model(name, Op::Delete).await?;
        self.store.delete_registered_model(name).await?;
        self.forget_grants(ResourceType::RegisteredModel, name).await?;
        self.record_change(Action::ModelDelete, resource::model(name)).await
    }

    pub async fn search_registered_models(&self, mut query: RegisteredModelQuery) -> Result<Page<RegisteredModel>> {
        validation::validate_max_results(query.max_results, validation::MAX_RESULTS_REGISTRY)?;
        if let Some(names) = names_visible(self.visible(ResourceType::RegisteredModel).await?) {
            query.filter.push(RegisteredModelClause::Name(names));
        }
        Ok(self.store.search_registered_models(query).await?)
    }

    pub async fn set_registered_model_tag(&self, name: &str, tag: Tag) -> Result<()> {
        validation::validate_registry_tag(&tag.key, &tag.value)?;
        let key = tag.key.clone();
        self.need_model(name, Op::Update).await?;
        self.store.set_registered_model_tag(name, tag).await?;
        self.record(Action::ModelSetTag, resource::model(name), None, Some(key)).await
    }

    pub async fn delete_registered_model_tag(&self, name: &str, key: &str) -> Result<()> {
        self.need_model(name, Op::Update).await?;
        self.store.delete_registered_model_tag(name, key).await?;
        self.record(Action::ModelDeleteTag, resource::model(name), Some(key.to_string()), None).await
    }

    pub async fn set_alias(&self, name: &str, alias: &str, version: i64) -> Result<()> {
        registry::validate_alias(alias)?;
        self.need_model(name, Op::Update).await?;
        let before = self.alias_target(name, alias).await?;
        self.store.set_alias(name, alias, version).await?;
        self.record(Action::AliasSet, resource::alias(name, alias), before, Some(version.to_string())).await
    }

    pub async fn delete_alias(&self, name: &str, alias: &str) -> Result<()> {
        self.need_model(name, Op::Update).await?;
        let before = self.alias_target(name, alias).await?;
        self.store.delete_alias(name, alias).await?;
        self.record(Action::AliasDelete, resource::alias(name, alias), before, None).await
    }

    /// The version an alias points at now, for the trail's "before".
    async fn alias_target(&self, name: &str, alias: &str) -> Result<Option<String>> {
        match self.store.get_model_version_by_alias(name, alias).await {
            Ok(v) => Ok(Some(v.version.to_string())),
            Err(e) if e.kind() == plinth_core::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn get_model_version_by_alias(&self, name: &str, alias: &str) -> Result<ModelVersion> {
        if self.need_version(name, 0, Op::Read).await.is_err() {
            return Err(plinth_core::rules::missing::registered_model(name).into());
        }
        Ok(self.store.get_model_version_by_alias(name, alias).await?)
    }

    /// Registers a new version. The source may be a logged model
    /// (`models:/m-...`), another version (`models:/name/3`), a run path
    /// (`runs:/<run_id>/path`) or an artifact URI; it is checked by MLflow's
    /// rules (`plinth_core::sources`) and where the bytes are is resolved now
    /// and answered by `get-download-uri`.
    pub async fn create_model_version(&self, mut new: NewModelVersion) -> Result<ModelVersion> {
        validation::validate_model_name(&new.name)?;
        if new.source.trim().is_empty() {
            return Err(DomainError::invalid("Missing value for required parameter 'source'.").into());
        }
        for t in &new.tags {
            validation::validate_registry_tag(&t.key, &t.value)?;
        }
        new.run_id = new.run_id.filter(|s| !s.is_empty());
        new.model_id = new.model_id.filter(|s| !s.is_empty());
        if let Some(scheme) = sources::host_addressed_scheme(&new.source) {
            return Err(sources::host_refusal(&scheme).into());
        }
        self.need_model(&new.name, Op::Update).await?;
        self.resolve_source_lineage(&mut new).await?;
        self.need_source_readable(&new).await?;
        match new.model_id.clone() {
            Some(model_id) => self.check_source_model(&new.source, &model_id).await?,
            None => self.check_source_run(&new.source, new.run_id.as_deref()).await?,
        }
        let source = new.source.clone();
        new.storage_location = if let Some(model_id) = sources::models_uri_model_id(&source) {
            let model = self.store.get_logged_model(&model_id).await?;
            if new.run_id.is_none() {
                new.run_id = model.source_run_id.clone();
            }
            model.artifact_location
        } else if let Some(rest) = source.strip_prefix("models:/") {
            let (name, version) = rest
                .trim_end_matches('/')
                .split_once('/')
                .ok_or_else(|| DomainError::invalid(format!("Invalid model version source: '{source}'")))?;
            self.store.get_model_version(name, parse_version(version)?).await?.storage_location
        } else if let Some(rest) = source.strip_prefix("runs:/") {
            let (run_id, path) = rest.split_once('/').unwrap_or((rest, ""));
            // MLflow registers a `runs:/` source without looking the run up (it
            // may live in another tracking server); its bytes are then not here.
            match self.store.get_run(run_id).await {
                Ok(run) if path.is_empty() => run.info.artifact_uri,
                Ok(run) => format!("{}/{}", run.info.artifact_uri.trim_end_matches('/'), path.trim_matches('/')),
                Err(e) if e.is_not_found() => source.clone(),
                Err(e) => return Err(e.into()),
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
        let from = version.run_id.as_ref().map(|r| format!("run {r}"));
        self.record(Action::VersionCreate, resource::version(&version.name, version.version), None, from).await?;
        Ok(version)
    }

    /// `models:/name/version` stands for that version: its run and logged
    /// model become the new version's unless the request names others
    /// (then they must agree).
    async fn resolve_source_lineage(&self, new: &mut NewModelVersion) -> Result<()> {
        let uri = sources::split(&new.source);
        if uri.scheme != "models" {
            return Ok(());
        }
        if !uri.netloc.is_empty() {
            return Err(DomainError::invalid(format!(
                "Invalid model version source: '{}'. Registered model sources must use the active model registry.",
                new.source
            ))
            .into());
        }
        if sources::models_uri_model_id(&new.source).is_some() {
            return Ok(());
        }
        let rest = uri.path.trim_start_matches('/').trim_end_matches('/');
        let (name, version) = match rest.split_once('/') {
            Some((name, v)) => (name, self.store.get_model_version(name, parse_version(v)?).await?),
            None => match rest.split_once('@') {
                Some((name, alias)) => (name, self.store.get_model_version_by_alias(name, alias).await?),
                None => return Err(sources::invalid_source(&new.source, "model_id").into()),
            },
        };
        let differs = |asked: &Option<String>, actual: &Option<String>| asked.is_some() && asked != actual;
        if differs(&new.run_id, &version.run_id) || differs(&new.model_id, &version.model_id) {
            return Err(DomainError::invalid(format!(
                "Invalid model version source: '{}'. The run_id and model_id request parameters must match the                  referenced model version.",
                new.source
            ))
            .into());
        }
        new.source = format!("models:/{name}/{}", version.version);
        if new.run_id.is_none() {
            new.run_id = version.run_id.clone();
        }
        if new.model_id.is_none() {
            new.model_id = version.model_id.clone();
        }
        Ok(())
    }

    /// MLflow's `_validate_source_run`.
    async fn check_source_run(&self, source: &str, run_id: Option<&str>) -> Result<()> {
        if sources::is_local(source) {
            if let Some(run_id) = run_id {
                let run = self.source_run(run_id, source).await?;
                if sources::local_within(source, &run.info.artifact_uri) {
                    return Ok(());
                }
                return Err(sources::local_refusal(&sources::normalize_local(source), "run_id").into());
            }
            return Err(sources::local_refusal(source, "run_id").into());
        }
        sources::check_no_relative_paths(source)?;
        let uri = sources::split(source);
        if uri.scheme == "runs" {
            if uri.netloc.is_empty() && run_id.is_some() && sources::runs_uri_run_id(source).as_deref() == run_id {
                return Ok(());
            }
            return Err(sources::invalid_source(source, "run_id").into());
        }
        if uri.scheme == "models" && (!uri.netloc.is_empty() || sources::models_uri_model_id(source).is_some()) {
            return Err(sources::invalid_source(source, "model_id").into());
        }
        if sources::is_mlflow_artifact_source(source) {
            if let Some(run_id) = run_id {
                let run = self.source_run(run_id, source).await?;
                if sources::within_root(source, &run.info.artifact_uri) {
                    return Ok(());
                }
            }
            return Err(sources::invalid_source(source, "run_id").into());
        }
        Ok(())
    }

    /// MLflow's `_validate_source_model`.
    async fn check_source_model(&self, source: &str, model_id: &str) -> Result<()> {
        if sources::is_local(source) {
            let model = self.source_model(model_id, source).await?;
            if sources::local_within(source, &model.artifact_location) {
                return Ok(());
            }
            return Err(sources::local_refusal(&sources::normalize_local(source), "model_id").into());
        }
        sources::check_no_relative_paths(source)?;
        let uri = sources::split(source);
        if uri.scheme == "models" {
            if !uri.netloc.is_empty() {
                return Err(sources::invalid_source(source, "model_id").into());
            }
            if let Some(id) = sources::models_uri_model_id(source) {
                if id == model_id {
                    return Ok(());
                }
                return Err(sources::invalid_source(source, "model_id").into());
            }
        }
        if uri.scheme == "runs" {
            return Err(sources::invalid_source(source, "model_id").into());
        }
        if sources::is_mlflow_artifact_source(source) {
            let model = self.source_model(model_id, source).await?;
            if sources::within_root(source, &model.artifact_location) {
                return Ok(());
            }
            return Err(sources::invalid_source(source, "model_id").into());
        }
        Ok(())
    }

    /// The run a source names; unknown is the caller's mistake (400).
    async fn source_run(&self, run_id: &str, source: &str) -> Result<plinth_core::runs::Run> {
        match self.store.get_run(run_id).await {
            Err(e) if e.is_not_found() => Err(sources::invalid_source(source, "run_id").into()),
            other => Ok(other?),
        }
    }

    async fn source_model(&self, model_id: &str, source: &str) -> Result<plinth_core::logged_models::LoggedModel> {
        match self.store.get_logged_model(model_id).await {
            Err(e) if e.is_not_found() => Err(sources::invalid_source(source, "model_id").into()),
            other => Ok(other?),
        }
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
        let version = parse_version(version)?;
        self.need_version(name, version, Op::Read).await?;
        Ok(self.store.get_model_version(name, version).await?)
    }

    pub async fn update_model_version(
        &self,
        name: &str,
        version: &str,
        description: Option<String>,
    ) -> Result<ModelVersion> {
        let version = parse_version(version)?;
        self.need_version(name, version, Op::Update).await?;
        let v = self.store.update_model_version(name, version, description).await?;
        self.record_change(Action::VersionUpdate, resource::version(name, v.version)).await?;
        Ok(v)
    }

    pub async fn delete_model_version(&self, name: &str, version: &str) -> Result<()> {
        let version = parse_version(version)?;
        self.need_version(name, version, Op::Delete).await?;
        self.store.delete_model_version(name, version).await?;
        self.record_change(Action::VersionDelete, resource::version(name, version)).await
    }

    pub async fn search_model_versions(&self, mut query: ModelVersionQuery) -> Result<Page<ModelVersion>> {
        validation::validate_max_results(query.max_results, validation::MAX_RESULTS_REGISTRY)?;
        let access = self.access().await?;
        let visible = match access.tier(ResourceType::RegisteredModelVersion) {
            Some(p) if p.allows(Op::Read) => Visible::All,
            Some(_) => Visible::Only(Vec::new()),
            None => access.visible(ResourceType::RegisteredModel),
        };
        if let Some(names) = names_visible(visible) {
            query.filter.push(ModelVersionClause::Name(names));
        }
        Ok(self.store.search_model_versions(query).await?)
    }

    pub async fn set_model_version_tag(&self, name: &str, version: &str, tag: Tag) -> Result<()> {
        validation::validate_registry_tag(&tag.key, &tag.value)?;
        let (version, key) = (parse_version(version)?, tag.key.clone());
        self.need_version(name, version, Op::Update).await?;
        self.store.set_model_version_tag(name, version, tag).await?;
        self.record(Action::VersionSetTag, resource::version(name, version), None, Some(key)).await
    }

    pub async fn delete_model_version_tag(&self, name: &str, version: &str, key: &str) -> Result<()> {
        let version = parse_version(version)?;
        self.need_version(name, version, Op::Update).await?;
        self.store.delete_model_version_tag(name, version, key).await?;
        self.record(Action::VersionDeleteTag, resource::version(name, version), Some(key.to_string()), None).await
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
        let (stage, version) = (Stage::parse(stage)?, parse_version(version)?);
        self.need_version(name, version, Op::Update).await?;
        let before = self.store.get_model_version(name, version).await?.current_stage;
        let v = self.store.transition_stage(name, version, stage, archive_existing).await?;
        let (before, after) = (Some(before.as_str().to_string()), Some(v.current_stage.as_str().to_string()));
        self.record(Action::VersionStage, resource::version(name, version), before, after).await?;
        Ok(v)
    }

    pub async fn get_latest_versions(&self, name: &str, stages: &[String]) -> Result<Vec<ModelVersion>> {
        let stages = stages.iter().map(|s| Stage::parse(s)).collect::<plinth_core::Result<Vec<_>>>()?;
        self.need_model(name, Op::Read).await?;
        Ok(self.store.get_latest_versions(name, stages).await?)
    }
}

/// The name test that keeps a search to the models a caller may read
/// (`None`: every model).
fn names_visible(visible: Visible) -> Option<TextMatch> {
    match visible {
        Visible::All => None,
        Visible::AllBut(names) if names.is_empty() => None,
        Visible::AllBut(names) => Some(TextMatch::NotIn(names)),
        Visible::Only(names) => Some(TextMatch::In(names)),
    }
}

impl Platform {
    /// A version registered from a run or a logged model here needs the
    /// caller to be able to read it (its bytes become the version's).
    async fn need_source_readable(&self, new: &NewModelVersion) -> Result<()> {
        if let Some(model_id) = &new.model_id {
            self.need_logged_model(model_id, Op::Read).await?;
        }
        if let Some(run_id) = &new.run_id
            && self.store.run_experiment(run_id).await.is_ok()
        {
            self.need_run(run_id, Op::Read).await?;
        }
        Ok(())
    }
}

/// Versions travel as strings; they must be positive integers.
pub fn parse_version(v: &str) -> Result<i64> {
    match v.trim().parse::<i64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(DomainError::invalid(format!("Parameter 'version' must be a positive integer, got '{v}'")).into()),
    }
}
