//! [`MetadataStore`] for [`PostgresStore`]: each call is one transaction.

use async_trait::async_trait;
use plinth_core::access::{Grant, Role, RoleAssignment, RoleChange, RoleChanged, RolePermission};
use plinth_core::audit::{AuditQuery, AuditRecord};
use plinth_core::auth::{ApiToken, User};
use plinth_core::deployments::{Deployment, VariantCounters};
use plinth_core::experiments::{Experiment, LifecycleStage, Tag};
use plinth_core::jobs::{Job, JobStatus, LeaseState};
use plinth_core::logged_models::{LoggedModel, LoggedModelStatus};
use plinth_core::registry::{ModelVersion, NewModelVersion, RegisteredModel, Stage};
use plinth_core::runs::{DatasetInput, DatasetSummary, Metric, ModelIo, Param, Run, RunInfo, RunUpdate};
use plinth_core::usage::ActivityRow;
use plinth_core::workspaces::{Workspace, WorkspaceUpdate};

use super::{PostgresStore, audit, experiments, in_tx, registry, roles, runs, tables, users, workspaces};
use crate::{
    ExperimentSearch, LoggedModelSearch, MetadataStore, ModelVersionQuery, Page, RegisteredModelQuery, Result,
    RoleFilter, RunSearch,
};

#[async_trait]
impl MetadataStore for PostgresStore {
    fn in_workspace(&self, workspace: &str) -> std::sync::Arc<dyn MetadataStore> {
        std::sync::Arc::new(self.scoped(workspace))
    }
    fn workspace(&self) -> &str {
        &self.workspace
    }
    async fn create_workspace(&self, workspace: Workspace) -> Result<Workspace> {
        in_tx!(self, |tx| workspaces::create(&tx, &workspace).await?)
    }
    async fn get_workspace(&self, name: &str) -> Result<Workspace> {
        in_tx!(self, |tx| workspaces::get(&tx, name).await?)
    }
    async fn list_workspaces(&self) -> Result<Vec<Workspace>> {
        in_tx!(self, |tx| workspaces::list(&tx).await?)
    }
    async fn update_workspace(&self, name: &str, update: WorkspaceUpdate) -> Result<Workspace> {
        in_tx!(self, |tx| workspaces::update(&tx, name, &update, self.now()).await?)
    }
    async fn delete_workspace(&self, name: &str) -> Result<()> {
        in_tx!(self, |tx| workspaces::delete(&tx, name).await?)
    }
    async fn experiment_workspace(&self, experiment_id: &str) -> Result<String> {
        in_tx!(self, |tx| workspaces::experiment_workspace(&tx, experiment_id).await?)
    }

    async fn ensure_default_experiment(&self, artifact_location: String) -> Result<()> {
        in_tx!(self, |tx| experiments::ensure_default(&tx, &artifact_location, self.now()).await?)
    }
    async fn create_experiment(&self, name: String, artifact_location: String, tags: Vec<Tag>) -> Result<String> {
        in_tx!(self, |tx| experiments::create(&tx, &self.workspace, &name, &artifact_location, &tags, self.now())
            .await?)
    }
    async fn get_experiment(&self, experiment_id: &str) -> Result<Experiment> {
        in_tx!(self, |tx| experiments::get(&tx, experiment_id).await?)
    }
    async fn get_experiment_by_name(&self, name: &str) -> Result<Option<Experiment>> {
        in_tx!(self, |tx| experiments::get_by_name(&tx, &self.workspace, name).await?)
    }
    async fn count_runs(&self, experiment_ids: Vec<String>) -> Result<Vec<(String, i64)>> {
        in_tx!(self, |tx| experiments::count_runs(&tx, &experiment_ids).await?)
    }
    async fn search_experiments(&self, search: ExperimentSearch) -> Result<Page<Experiment>> {
        in_tx!(self, |tx| experiments::search(&tx, &self.workspace, &search).await?)
    }
    async fn rename_experiment(&self, experiment_id: &str, new_name: String) -> Result<()> {
        in_tx!(self, |tx| experiments::rename(&tx, experiment_id, &new_name, self.now()).await?)
    }
    async fn set_experiment_lifecycle(&self, experiment_id: &str, stage: LifecycleStage) -> Result<()> {
        in_tx!(self, |tx| experiments::set_lifecycle(&tx, experiment_id, stage, self.now()).await?)
    }
    async fn set_experiment_tag(&self, experiment_id: &str, tag: Tag) -> Result<()> {
        in_tx!(self, |tx| experiments::set_tag(&tx, experiment_id, &tag).await?)
    }
    async fn delete_experiment_tag(&self, experiment_id: &str, key: &str) -> Result<()> {
        in_tx!(self, |tx| experiments::delete_tag(&tx, experiment_id, key).await?)
    }

    async fn create_run(&self, info: RunInfo, tags: Vec<Tag>) -> Result<Run> {
        in_tx!(self, |tx| runs::create(&tx, &info, &tags).await?)
    }
    async fn get_run(&self, run_id: &str) -> Result<Run> {
        in_tx!(self, |tx| runs::get(&tx, run_id).await?)
    }
    async fn update_run(&self, run_id: &str, update: RunUpdate) -> Result<RunInfo> {
        in_tx!(self, |tx| runs::update(&tx, run_id, &update, self.now()).await?)
    }
    async fn set_run_lifecycle(&self, run_id: &str, stage: LifecycleStage) -> Result<()> {
        in_tx!(self, |tx| runs::set_lifecycle(&tx, run_id, stage, self.now()).await?)
    }
    async fn log_batch(&self, run_id: &str, metrics: Vec<Metric>, params: Vec<Param>, tags: Vec<Tag>) -> Result<()> {
        if params.is_empty() && tags.is_empty() && !metrics.is_empty() {
            return runs::log_metrics_only(&self.client().await?, run_id, &metrics).await;
        }
        in_tx!(self, |tx| runs::log_batch(&tx, run_id, &metrics, &params, &tags).await?)
    }
    async fn delete_run_tag(&self, run_id: &str, key: &str) -> Result<()> {
        in_tx!(self, |tx| runs::delete_tag(&tx, run_id, key).await?)
    }
    async fn append_to_run_tag_list(&self, run_id: &str, key: &str, entry: serde_json::Value) -> Result<()> {
        in_tx!(self, |tx| runs::append_to_tag_list(&tx, run_id, key, entry).await?)
    }
    async fn log_inputs(&self, run_id: &str, datasets: Vec<DatasetInput>, models: Vec<ModelIo>) -> Result<()> {
        in_tx!(self, |tx| runs::log_inputs(&tx, run_id, &datasets, &models).await?)
    }
    async fn log_outputs(&self, run_id: &str, models: Vec<ModelIo>) -> Result<()> {
        in_tx!(self, |tx| runs::log_outputs(&tx, run_id, &models).await?)
    }
    async fn get_metric_history(&self, run_id: &str, key: &str, max_results: i64, offset: i64) -> Result<Page<Metric>> {
        in_tx!(self, |tx| runs::metric_history(&tx, run_id, key, max_results, offset).await?)
    }
    async fn search_dataset_summaries(&self, experiment_ids: Vec<String>, limit: usize) -> Result<Vec<DatasetSummary>> {
        in_tx!(self, |tx| runs::dataset_summaries(&tx, &experiment_ids, limit).await?)
    }
    async fn sample_metric_history(
        &self,
        run_id: &str,
        key: &str,
        steps: Option<(i64, i64)>,
        max_points: i64,
    ) -> Result<Vec<Metric>> {
        in_tx!(self, |tx| runs::sample_metric_history(&tx, run_id, key, steps, max_points).await?)
    }
    async fn search_runs(&self, search: RunSearch) -> Result<Page<Run>> {
        in_tx!(self, |tx| runs::search(&tx, &search).await?)
    }

    async fn create_logged_model(&self, model: LoggedModel) -> Result<LoggedModel> {
        in_tx!(self, |tx| tables::create_model(&tx, &model).await?)
    }
    async fn get_logged_model(&self, model_id: &str) -> Result<LoggedModel> {
        in_tx!(self, |tx| tables::get_model(&tx, model_id).await?)
    }
    async fn finalize_logged_model(&self, model_id: &str, status: LoggedModelStatus) -> Result<LoggedModel> {
        in_tx!(self, |tx| tables::finalize_model(&tx, model_id, status, self.now()).await?)
    }
    async fn delete_logged_model(&self, model_id: &str) -> Result<()> {
        in_tx!(self, |tx| tables::delete_model(&tx, model_id).await?)
    }
    async fn set_logged_model_tags(&self, model_id: &str, tags: Vec<Tag>) -> Result<()> {
        in_tx!(self, |tx| tables::set_model_tags(&tx, model_id, &tags).await?)
    }
    async fn delete_logged_model_tag(&self, model_id: &str, key: &str) -> Result<()> {
        in_tx!(self, |tx| tables::delete_model_tag(&tx, model_id, key).await?)
    }
    async fn log_logged_model_params(&self, model_id: &str, params: Vec<Param>) -> Result<()> {
        in_tx!(self, |tx| tables::log_model_params(&tx, model_id, &params).await?)
    }
    async fn search_logged_models(&self, search: LoggedModelSearch) -> Result<Page<LoggedModel>> {
        in_tx!(self, |tx| tables::search_models(&tx, &search).await?)
    }

    async fn create_registered_model(
        &self,
        name: String,
        description: Option<String>,
        tags: Vec<Tag>,
    ) -> Result<RegisteredModel> {
        in_tx!(self, |tx| registry::create_model(
            &tx,
            &self.workspace,
            &name,
            description.as_deref(),
            &tags,
            self.now()
        )
        .await?)
    }
    async fn get_registered_model(&self, name: &str) -> Result<RegisteredModel> {
        in_tx!(self, |tx| registry::get_model(&tx, &self.workspace, name).await?)
    }
    async fn rename_registered_model(&self, name: &str, new_name: String) -> Result<RegisteredModel> {
        in_tx!(self, |tx| registry::rename_model(&tx, &self.workspace, name, &new_name, self.now()).await?)
    }
    async fn update_registered_model(&self, name: &str, description: Option<String>) -> Result<RegisteredModel> {
        in_tx!(self, |tx| registry::update_model(&tx, &self.workspace, name, description.as_deref(), self.now())
            .await?)
    }
    async fn delete_registered_model(&self, name: &str) -> Result<()> {
        in_tx!(self, |tx| registry::delete_model(&tx, &self.workspace, name).await?)
    }
    async fn search_registered_models(&self, query: RegisteredModelQuery) -> Result<Page<RegisteredModel>> {
        in_tx!(self, |tx| registry::search_models(&tx, &self.workspace, &query).await?)
    }
    async fn set_registered_model_tag(&self, name: &str, tag: Tag) -> Result<()> {
        in_tx!(self, |tx| registry::set_model_tag(&tx, &self.workspace, name, &tag).await?)
    }
    async fn delete_registered_model_tag(&self, name: &str, key: &str) -> Result<()> {
        in_tx!(self, |tx| registry::delete_model_tag(&tx, &self.workspace, name, key).await?)
    }
    async fn set_alias(&self, name: &str, alias: &str, version: i64) -> Result<()> {
        in_tx!(self, |tx| registry::set_alias(&tx, &self.workspace, name, alias, version, self.now()).await?)
    }
    async fn delete_alias(&self, name: &str, alias: &str) -> Result<()> {
        in_tx!(self, |tx| registry::delete_alias(&tx, &self.workspace, name, alias).await?)
    }
    async fn get_model_version_by_alias(&self, name: &str, alias: &str) -> Result<ModelVersion> {
        in_tx!(self, |tx| registry::version_by_alias(&tx, &self.workspace, name, alias).await?)
    }
    async fn create_model_version(&self, new: NewModelVersion) -> Result<ModelVersion> {
        in_tx!(self, |tx| registry::create_version(&tx, &self.workspace, &new, self.now()).await?)
    }
    async fn get_model_version(&self, name: &str, version: i64) -> Result<ModelVersion> {
        in_tx!(self, |tx| registry::get_version(&tx, &self.workspace, name, version).await?)
    }
    async fn update_model_version(
        &self,
        name: &str,
        version: i64,
        description: Option<String>,
    ) -> Result<ModelVersion> {
        in_tx!(self, |tx| registry::update_version(
            &tx,
            &self.workspace,
            name,
            version,
            description.as_deref(),
            self.now()
        )
        .await?)
    }
    async fn delete_model_version(&self, name: &str, version: i64) -> Result<()> {
        in_tx!(self, |tx| registry::delete_version(&tx, &self.workspace, name, version).await?)
    }
    async fn search_model_versions(&self, query: ModelVersionQuery) -> Result<Page<ModelVersion>> {
        in_tx!(self, |tx| registry::search_versions(&tx, &self.workspace, &query).await?)
    }
    async fn set_model_version_tag(&self, name: &str, version: i64, tag: Tag) -> Result<()> {
        in_tx!(self, |tx| registry::set_version_tag(&tx, &self.workspace, name, version, &tag).await?)
    }
    async fn delete_model_version_tag(&self, name: &str, version: i64, key: &str) -> Result<()> {
        in_tx!(self, |tx| registry::delete_version_tag(&tx, &self.workspace, name, version, key).await?)
    }
    async fn transition_stage(
        &self,
        name: &str,
        version: i64,
        stage: Stage,
        archive_existing: bool,
    ) -> Result<ModelVersion> {
        in_tx!(self, |tx| registry::transition(
            &tx,
            &self.workspace,
            name,
            version,
            stage,
            archive_existing,
            self.now()
        )
        .await?)
    }
    async fn get_latest_versions(&self, name: &str, stages: Vec<Stage>) -> Result<Vec<ModelVersion>> {
        in_tx!(self, |tx| registry::latest_versions(&tx, &self.workspace, name, &stages).await?)
    }

    async fn create_deployment(&self, deployment: Deployment) -> Result<Deployment> {
        in_tx!(self, |tx| tables::create_deployment(&tx, &deployment).await?)
    }
    async fn get_deployment(&self, name: &str) -> Result<Deployment> {
        in_tx!(self, |tx| tables::get_deployment(&tx, name).await?)
    }
    async fn update_deployment(&self, deployment: Deployment) -> Result<Deployment> {
        in_tx!(self, |tx| tables::update_deployment(&tx, &deployment).await?)
    }
    async fn update_deployment_if(&self, deployment: Deployment, expected: i64) -> Result<Option<Deployment>> {
        in_tx!(self, |tx| tables::update_deployment_if(&tx, &deployment, expected).await?)
    }
    async fn delete_deployment(&self, name: &str) -> Result<()> {
        in_tx!(self, |tx| tables::delete_deployment(&tx, name).await?)
    }
    async fn list_deployments(&self) -> Result<Vec<Deployment>> {
        in_tx!(self, |tx| tables::list_deployments(&tx).await?)
    }
    async fn publish_counters(&self, counters: Vec<VariantCounters>, now: i64) -> Result<()> {
        in_tx!(self, |tx| tables::publish_counters(&tx, &counters, now).await?)
    }
    async fn deployment_counters(&self, deployment: &str, since: i64) -> Result<Vec<VariantCounters>> {
        in_tx!(self, |tx| tables::deployment_counters(&tx, deployment, since).await?)
    }

    async fn create_job(&self, job: Job) -> Result<()> {
        in_tx!(self, |tx| tables::create_job(&tx, &job).await?)
    }
    async fn get_job(&self, job_id: &str) -> Result<Job> {
        in_tx!(self, |tx| tables::get_job(&tx, job_id).await?)
    }
    async fn update_job(&self, job: Job) -> Result<()> {
        in_tx!(self, |tx| tables::update_job(&tx, &job).await?)
    }
    async fn list_jobs(&self, status: Option<JobStatus>, limit: i64) -> Result<Vec<Job>> {
        in_tx!(self, |tx| tables::list_jobs(&tx, status, limit).await?)
    }
    async fn claim_job(&self, worker: &str, now: i64, lease_ms: i64, max_attempts: i64) -> Result<Option<Job>> {
        in_tx!(self, |tx| tables::claim_job(&tx, worker, now, lease_ms, max_attempts).await?)
    }
    async fn renew_job_lease(&self, job_id: &str, worker: &str, until: i64) -> Result<LeaseState> {
        in_tx!(self, |tx| tables::renew_job_lease(&tx, job_id, worker, until).await?)
    }
    async fn finish_job(&self, job: Job, worker: &str) -> Result<bool> {
        in_tx!(self, |tx| tables::finish_job(&tx, &job, worker).await?)
    }
    async fn cancel_job(&self, job_id: &str, now: i64) -> Result<Job> {
        in_tx!(self, |tx| tables::cancel_job(&tx, job_id, now).await?)
    }
    async fn release_job(&self, job_id: &str, worker: &str) -> Result<()> {
        in_tx!(self, |tx| tables::release_job(&tx, job_id, worker).await?)
    }
    async fn create_user(&self, username: String, password_hash: String, is_admin: bool) -> Result<User> {
        in_tx!(self, |tx| users::create(&tx, &username, &password_hash, is_admin, self.now()).await?)
    }
    async fn get_user(&self, username: &str) -> Result<User> {
        in_tx!(self, |tx| users::get(&tx, username).await?)
    }
    async fn get_user_by_id(&self, user_id: i64) -> Result<User> {
        in_tx!(self, |tx| users::get_by_id(&tx, user_id).await?)
    }
    async fn list_users(&self) -> Result<Vec<User>> {
        in_tx!(self, |tx| users::list(&tx).await?)
    }
    async fn update_user(&self, username: &str, password_hash: Option<String>, is_admin: Option<bool>) -> Result<User> {
        in_tx!(self, |tx| users::update(&tx, username, password_hash.as_deref(), is_admin).await?)
    }
    async fn delete_user(&self, username: &str) -> Result<()> {
        in_tx!(self, |tx| users::delete(&tx, username).await?)
    }
    async fn create_token(&self, token: ApiToken) -> Result<()> {
        in_tx!(self, |tx| users::create_token(&tx, &token).await?)
    }
    async fn find_token(&self, secret_hash: &str) -> Result<Option<(ApiToken, User)>> {
        in_tx!(self, |tx| users::find_token(&tx, secret_hash).await?)
    }
    async fn list_tokens(&self, user_id: i64) -> Result<Vec<ApiToken>> {
        in_tx!(self, |tx| users::list_tokens(&tx, user_id).await?)
    }
    async fn revoke_token(&self, token_id: &str, now: i64) -> Result<ApiToken> {
        in_tx!(self, |tx| users::revoke_token(&tx, token_id, now).await?)
    }
    async fn change_roles(&self, change: RoleChange) -> Result<RoleChanged> {
        in_tx!(self, |tx| roles::change(&tx, change).await?)
    }
    async fn get_role(&self, role_id: i64) -> Result<Role> {
        in_tx!(self, |tx| roles::get(&tx, role_id).await?)
    }
    async fn list_roles(&self, filter: RoleFilter) -> Result<Vec<Role>> {
        in_tx!(self, |tx| roles::list(&tx, &filter).await?)
    }
    async fn get_role_permission(&self, id: i64) -> Result<RolePermission> {
        in_tx!(self, |tx| roles::get_permission(&tx, id).await?)
    }
    async fn list_role_users(&self, role_id: i64) -> Result<Vec<RoleAssignment>> {
        in_tx!(self, |tx| roles::role_users(&tx, role_id).await?)
    }
    async fn list_grants(&self, user_id: i64, workspace: &str) -> Result<Vec<Grant>> {
        in_tx!(self, |tx| roles::grants(&tx, user_id, workspace).await?)
    }
    async fn run_experiment(&self, run_id: &str) -> Result<String> {
        in_tx!(self, |tx| roles::run_experiment(&tx, run_id).await?)
    }
    async fn append_audit(&self, record: AuditRecord) -> Result<()> {
        in_tx!(self, |tx| audit::append(&tx, &record).await?)
    }
    async fn search_audit(&self, query: AuditQuery) -> Result<Page<AuditRecord>> {
        in_tx!(self, |tx| audit::search(&tx, &query).await?)
    }
    async fn audit_activity(&self, since: i64) -> Result<Vec<ActivityRow>> {
        in_tx!(self, |tx| audit::activity(&tx, since).await?)
    }
    async fn acquire_lease(&self, name: &str, holder: &str, now: i64, ttl_ms: i64) -> Result<bool> {
        in_tx!(self, |tx| tables::acquire_lease(&tx, name, holder, now, ttl_ms).await?)
    }
    /// Replicas share one database.
    fn shared(&self) -> bool {
        true
    }
    fn changes(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        Some(self.changes.clone())
    }
}
