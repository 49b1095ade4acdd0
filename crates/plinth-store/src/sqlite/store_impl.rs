//! [`MetadataStore`] for [`SqliteStore`]: each call becomes one job on the
//! writer (writes) or the read pool (reads).

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

use super::{
    SqliteStore, audit, deployments, experiments, jobs, logged_models, registry, roles, runs, users, workspaces,
};
use crate::{
    ExperimentSearch, LoggedModelSearch, MetadataStore, ModelVersionQuery, Page, RegisteredModelQuery, Result,
    RoleFilter, RunSearch,
};

#[async_trait]
impl MetadataStore for SqliteStore {
    fn in_workspace(&self, workspace: &str) -> std::sync::Arc<dyn MetadataStore> {
        std::sync::Arc::new(self.scoped(workspace))
    }
    fn workspace(&self) -> &str {
        &self.workspace
    }
    async fn create_workspace(&self, workspace: Workspace) -> Result<Workspace> {
        self.write(move |c| workspaces::create(c, &workspace)).await
    }
    async fn get_workspace(&self, name: &str) -> Result<Workspace> {
        let name = name.to_string();
        self.read(move |c| workspaces::get(c, &name)).await
    }
    async fn list_workspaces(&self) -> Result<Vec<Workspace>> {
        self.read(workspaces::list).await
    }
    async fn update_workspace(&self, name: &str, update: WorkspaceUpdate) -> Result<Workspace> {
        let name = name.to_string();
        let now = self.now();
        self.write(move |c| workspaces::update(c, &name, &update, now)).await
    }
    async fn delete_workspace(&self, name: &str) -> Result<()> {
        let name = name.to_string();
        self.write(move |c| workspaces::delete(c, &name)).await
    }
    async fn experiment_workspace(&self, experiment_id: &str) -> Result<String> {
        let id = experiment_id.to_string();
        self.read(move |c| workspaces::experiment_workspace(c, &id)).await
    }

    async fn ensure_default_experiment(&self, artifact_location: String) -> Result<()> {
        let now = self.now();
        self.write(move |c| experiments::ensure_default(c, &artifact_location, now)).await
    }
    async fn create_experiment(&self, name: String, artifact_location: String, tags: Vec<Tag>) -> Result<String> {
        let now = self.now();
        let ws = self.ws();
        self.write(move |c| experiments::create(c, &ws, &name, &artifact_location, &tags, now)).await
    }
    async fn get_experiment(&self, experiment_id: &str) -> Result<Experiment> {
        let id = experiment_id.to_string();
        self.read(move |c| experiments::get(c, &id)).await
    }
    async fn count_runs(&self, experiment_ids: Vec<String>) -> Result<Vec<(String, i64)>> {
        self.read(move |c| experiments::count_runs(c, &experiment_ids)).await
    }
    async fn get_experiment_by_name(&self, name: &str) -> Result<Option<Experiment>> {
        let name = name.to_string();
        let ws = self.ws();
        self.read(move |c| experiments::get_by_name(c, &ws, &name)).await
    }
    async fn search_experiments(&self, search: ExperimentSearch) -> Result<Page<Experiment>> {
        let ws = self.ws();
        self.read(move |c| experiments::search(c, &ws, &search)).await
    }
    async fn rename_experiment(&self, experiment_id: &str, new_name: String) -> Result<()> {
        let id = experiment_id.to_string();
        let now = self.now();
        self.write(move |c| experiments::rename(c, &id, &new_name, now)).await
    }
    async fn set_experiment_lifecycle(&self, experiment_id: &str, stage: LifecycleStage) -> Result<()> {
        let id = experiment_id.to_string();
        let now = self.now();
        self.write(move |c| experiments::set_lifecycle(c, &id, stage, now)).await
    }
    async fn set_experiment_tag(&self, experiment_id: &str, tag: Tag) -> Result<()> {
        let id = experiment_id.to_string();
        self.write(move |c| experiments::set_tag(c, &id, &tag)).await
    }
    async fn delete_experiment_tag(&self, experiment_id: &str, key: &str) -> Result<()> {
        let (id, key) = (experiment_id.to_string(), key.to_string());
        self.write(move |c| experiments::delete_tag(c, &id, &key)).await
    }

    async fn create_run(&self, info: RunInfo, tags: Vec<Tag>) -> Result<Run> {
        self.write(move |c| runs::create(c, &info, &tags)).await
    }
    async fn get_run(&self, run_id: &str) -> Result<Run> {
        let id = run_id.to_string();
        self.read(move |c| runs::get(c, &id)).await
    }
    async fn update_run(&self, run_id: &str, update: RunUpdate) -> Result<RunInfo> {
        let id = run_id.to_string();
        let now = self.now();
        self.write(move |c| runs::update(c, &id, &update, now)).await
    }
    async fn set_run_lifecycle(&self, run_id: &str, stage: LifecycleStage) -> Result<()> {
        let id = run_id.to_string();
        let now = self.now();
        self.write(move |c| runs::set_lifecycle(c, &id, stage, now)).await
    }
    async fn log_batch(&self, run_id: &str, metrics: Vec<Metric>, params: Vec<Param>, tags: Vec<Tag>) -> Result<()> {
        let id = run_id.to_string();
        self.write(move |c| runs::log_batch(c, &id, &metrics, &params, &tags)).await
    }
    async fn append_to_run_tag_list(&self, run_id: &str, key: &str, entry: serde_json::Value) -> Result<()> {
        let (id, key) = (run_id.to_string(), key.to_string());
        self.write(move |c| runs::append_to_tag_list(c, &id, &key, entry)).await
    }
    async fn delete_run_tag(&self, run_id: &str, key: &str) -> Result<()> {
        let (id, key) = (run_id.to_string(), key.to_string());
        self.write(move |c| runs::delete_tag(c, &id, &key)).await
    }
    async fn log_inputs(&self, run_id: &str, datasets: Vec<DatasetInput>, models: Vec<ModelIo>) -> Result<()> {
        let id = run_id.to_string();
        self.write(move |c| runs::log_inputs(c, &id, &datasets, &models)).await
    }
    async fn log_outputs(&self, run_id: &str, models: Vec<ModelIo>) -> Result<()> {
        let id = run_id.to_string();
        self.write(move |c| runs::log_outputs(c, &id, &models)).await
    }
    async fn get_metric_history(&self, run_id: &str, key: &str, max_results: i64, offset: i64) -> Result<Page<Metric>> {
        let (id, key) = (run_id.to_string(), key.to_string());
        self.read(move |c| runs::metric_history(c, &id, &key, max_results, offset)).await
    }
    async fn search_dataset_summaries(&self, experiment_ids: Vec<String>, limit: usize) -> Result<Vec<DatasetSummary>> {
        self.read(move |c| runs::dataset_summaries(c, &experiment_ids, limit)).await
    }
    async fn sample_metric_history(
        &self,
        run_id: &str,
        key: &str,
        steps: Option<(i64, i64)>,
        max_points: i64,
    ) -> Result<Vec<Metric>> {
        let (id, key) = (run_id.to_string(), key.to_string());
        self.read(move |c| runs::sample_metric_history(c, &id, &key, steps, max_points)).await
    }
    async fn search_runs(&self, search: RunSearch) -> Result<Page<Run>> {
        self.read(move |c| runs::search(c, &search)).await
    }

    async fn create_logged_model(&self, model: LoggedModel) -> Result<LoggedModel> {
        self.write(move |c| logged_models::create(c, &model)).await
    }
    async fn get_logged_model(&self, model_id: &str) -> Result<LoggedModel> {
        let id = model_id.to_string();
        self.read(move |c| logged_models::get(c, &id)).await
    }
    async fn finalize_logged_model(&self, model_id: &str, status: LoggedModelStatus) -> Result<LoggedModel> {
        let id = model_id.to_string();
        let now = self.now();
        self.write(move |c| logged_models::finalize(c, &id, status, now)).await
    }
    async fn delete_logged_model(&self, model_id: &str) -> Result<()> {
        let id = model_id.to_string();
        self.write(move |c| logged_models::delete(c, &id)).await
    }
    async fn set_logged_model_tags(&self, model_id: &str, tags: Vec<Tag>) -> Result<()> {
        let id = model_id.to_string();
        self.write(move |c| logged_models::set_tags(c, &id, &tags)).await
    }
    async fn delete_logged_model_tag(&self, model_id: &str, key: &str) -> Result<()> {
        let (id, key) = (model_id.to_string(), key.to_string());
        self.write(move |c| logged_models::delete_tag(c, &id, &key)).await
    }
    async fn log_logged_model_params(&self, model_id: &str, params: Vec<Param>) -> Result<()> {
        let id = model_id.to_string();
        self.write(move |c| logged_models::log_params(c, &id, &params)).await
    }
    async fn search_logged_models(&self, search: LoggedModelSearch) -> Result<Page<LoggedModel>> {
        self.read(move |c| logged_models::search(c, &search)).await
    }

    async fn create_registered_model(
        &self,
        name: String,
        description: Option<String>,
        tags: Vec<Tag>,
    ) -> Result<RegisteredModel> {
        let now = self.now();
        let ws = self.ws();
        self.write(move |c| registry::create_model(c, &ws, &name, description.as_deref(), &tags, now)).await
    }
    async fn get_registered_model(&self, name: &str) -> Result<RegisteredModel> {
        let name = name.to_string();
        let ws = self.ws();
        self.read(move |c| registry::get_model(c, &ws, &name)).await
    }
    async fn rename_registered_model(&self, name: &str, new_name: String) -> Result<RegisteredModel> {
        let name = name.to_string();
        let now = self.now();
        let ws = self.ws();
        self.write(move |c| registry::rename_model(c, &ws, &name, &new_name, now)).await
    }
    async fn update_registered_model(&self, name: &str, description: Option<String>) -> Result<RegisteredModel> {
        let name = name.to_string();
        let now = self.now();
        let ws = self.ws();
        self.write(move |c| registry::update_model(c, &ws, &name, description.as_deref(), now)).await
    }
    async fn delete_registered_model(&self, name: &str) -> Result<()> {
        let name = name.to_string();
        let ws = self.ws();
        self.write(move |c| registry::delete_model(c, &ws, &name)).await
    }
    async fn search_registered_models(&self, query: RegisteredModelQuery) -> Result<Page<RegisteredModel>> {
        let ws = self.ws();
        self.read(move |c| registry::search_models(c, &ws, &query)).await
    }
    async fn set_registered_model_tag(&self, name: &str, tag: Tag) -> Result<()> {
        let name = name.to_string();
        let ws = self.ws();
        self.write(move |c| registry::set_model_tag(c, &ws, &name, &tag)).await
    }
    async fn delete_registered_model_tag(&self, name: &str, key: &str) -> Result<()> {
        let (name, key) = (name.to_string(), key.to_string());
        let ws = self.ws();
        self.write(move |c| registry::delete_model_tag(c, &ws, &name, &key)).await
    }
    async fn set_alias(&self, name: &str, alias: &str, version: i64) -> Result<()> {
        let (name, alias) = (name.to_string(), alias.to_string());
        let now = self.now();
        let ws = self.ws();
        self.write(move |c| registry::set_alias(c, &ws, &name, &alias, version, now)).await
    }
    async fn delete_alias(&self, name: &str, alias: &str) -> Result<()> {
        let (name, alias) = (name.to_string(), alias.to_string());
        let ws = self.ws();
        self.write(move |c| registry::delete_alias(c, &ws, &name, &alias)).await
    }
    async fn get_model_version_by_alias(&self, name: &str, alias: &str) -> Result<ModelVersion> {
        let (name, alias) = (name.to_string(), alias.to_string());
        let ws = self.ws();
        self.read(move |c| registry::version_by_alias(c, &ws, &name, &alias)).await
    }
    async fn create_model_version(&self, new: NewModelVersion) -> Result<ModelVersion> {
        let now = self.now();
        let ws = self.ws();
        self.write(move |c| registry::create_version(c, &ws, &new, now)).await
    }
    async fn get_model_version(&self, name: &str, version: i64) -> Result<ModelVersion> {
        let name = name.to_string();
        let ws = self.ws();
        self.read(move |c| registry::get_version(c, &ws, &name, version)).await
    }
    async fn update_model_version(
        &self,
        name: &str,
        version: i64,
        description: Option<String>,
    ) -> Result<ModelVersion> {
        let name = name.to_string();
        let now = self.now();
        let ws = self.ws();
        self.write(move |c| registry::update_version(c, &ws, &name, version, description.as_deref(), now)).await
    }
    async fn delete_model_version(&self, name: &str, version: i64) -> Result<()> {
        let name = name.to_string();
        let ws = self.ws();
        self.write(move |c| registry::delete_version(c, &ws, &name, version)).await
    }
    async fn search_model_versions(&self, query: ModelVersionQuery) -> Result<Page<ModelVersion>> {
        let ws = self.ws();
        self.read(move |c| registry::search_versions(c, &ws, &query)).await
    }
    async fn set_model_version_tag(&self, name: &str, version: i64, tag: Tag) -> Result<()> {
        let name = name.to_string();
        let ws = self.ws();
        self.write(move |c| registry::set_version_tag(c, &ws, &name, version, &tag)).await
    }
    async fn delete_model_version_tag(&self, name: &str, version: i64, key: &str) -> Result<()> {
        let (name, key) = (name.to_string(), key.to_string());
        let ws = self.ws();
        self.write(move |c| registry::delete_version_tag(c, &ws, &name, version, &key)).await
    }
    async fn transition_stage(
        &self,
        name: &str,
        version: i64,
        stage: Stage,
        archive_existing: bool,
    ) -> Result<ModelVersion> {
        let name = name.to_string();
        let now = self.now();
        let ws = self.ws();
        self.write(move |c| registry::transition(c, &ws, &name, version, stage, archive_existing, now)).await
    }
    async fn get_latest_versions(&self, name: &str, stages: Vec<Stage>) -> Result<Vec<ModelVersion>> {
        let name = name.to_string();
        let ws = self.ws();
        self.read(move |c| registry::latest_versions(c, &ws, &name, &stages)).await
    }

    async fn create_job(&self, job: Job) -> Result<()> {
        self.write(move |c| jobs::create(c, &job)).await
    }
    async fn get_job(&self, job_id: &str) -> Result<Job> {
        let id = job_id.to_string();
        self.read(move |c| jobs::get(c, &id)).await
    }
    async fn update_job(&self, job: Job) -> Result<()> {
        self.write(move |c| jobs::update(c, &job)).await
    }
    async fn list_jobs(&self, status: Option<JobStatus>, limit: i64) -> Result<Vec<Job>> {
        self.read(move |c| jobs::list(c, status, limit)).await
    }

    async fn create_deployment(&self, deployment: Deployment) -> Result<Deployment> {
        self.write(move |c| deployments::create(c, &deployment)).await
    }
    async fn get_deployment(&self, name: &str) -> Result<Deployment> {
        let name = name.to_string();
        self.read(move |c| deployments::get(c, &name)).await
    }
    async fn update_deployment(&self, deployment: Deployment) -> Result<Deployment> {
        self.write(move |c| deployments::update(c, &deployment)).await
    }
    async fn update_deployment_if(&self, deployment: Deployment, expected: i64) -> Result<Option<Deployment>> {
        self.write(move |c| deployments::update_if(c, &deployment, expected)).await
    }
    async fn delete_deployment(&self, name: &str) -> Result<()> {
        let name = name.to_string();
        self.write(move |c| deployments::delete(c, &name)).await
    }
    async fn list_deployments(&self) -> Result<Vec<Deployment>> {
        self.read(deployments::list).await
    }
    async fn publish_counters(&self, counters: Vec<VariantCounters>, now: i64) -> Result<()> {
        self.write(move |c| deployments::publish_counters(c, &counters, now)).await
    }
    async fn deployment_counters(&self, deployment: &str, since: i64) -> Result<Vec<VariantCounters>> {
        let deployment = deployment.to_string();
        self.read(move |c| deployments::counters(c, &deployment, since)).await
    }
    async fn claim_job(&self, worker: &str, now: i64, lease_ms: i64, max_attempts: i64) -> Result<Option<Job>> {
        let worker = worker.to_string();
        self.write(move |c| jobs::claim(c, &worker, now, lease_ms, max_attempts)).await
    }
    async fn renew_job_lease(&self, job_id: &str, worker: &str, until: i64) -> Result<LeaseState> {
        let (id, worker) = (job_id.to_string(), worker.to_string());
        self.write(move |c| jobs::renew(c, &id, &worker, until)).await
    }
    async fn finish_job(&self, job: Job, worker: &str) -> Result<bool> {
        let worker = worker.to_string();
        self.write(move |c| jobs::finish(c, &job, &worker)).await
    }
    async fn cancel_job(&self, job_id: &str, now: i64) -> Result<Job> {
        let id = job_id.to_string();
        self.write(move |c| jobs::cancel(c, &id, now)).await
    }
    async fn release_job(&self, job_id: &str, worker: &str) -> Result<()> {
        let (id, worker) = (job_id.to_string(), worker.to_string());
        self.write(move |c| jobs::release(c, &id, &worker)).await
    }
    async fn create_user(&self, username: String, password_hash: String, is_admin: bool) -> Result<User> {
        let now = self.now();
        self.write(move |c| users::create(c, &username, &password_hash, is_admin, now)).await
    }
    async fn get_user(&self, username: &str) -> Result<User> {
        let username = username.to_string();
        self.read(move |c| users::get(c, &username)).await
    }
    async fn get_user_by_id(&self, user_id: i64) -> Result<User> {
        self.read(move |c| users::get_by_id(c, user_id)).await
    }
    async fn list_users(&self) -> Result<Vec<User>> {
        self.read(users::list).await
    }
    async fn update_user(&self, username: &str, password_hash: Option<String>, is_admin: Option<bool>) -> Result<User> {
        let username = username.to_string();
        self.write(move |c| users::update(c, &username, password_hash.as_deref(), is_admin)).await
    }
    async fn delete_user(&self, username: &str) -> Result<()> {
        let username = username.to_string();
        self.write(move |c| users::delete(c, &username)).await
    }
    async fn create_token(&self, token: ApiToken) -> Result<()> {
        self.write(move |c| users::create_token(c, &token)).await
    }
    async fn find_token(&self, secret_hash: &str) -> Result<Option<(ApiToken, User)>> {
        let hash = secret_hash.to_string();
        self.read(move |c| users::find_token(c, &hash)).await
    }
    async fn list_tokens(&self, user_id: i64) -> Result<Vec<ApiToken>> {
        self.read(move |c| users::list_tokens(c, user_id)).await
    }
    async fn revoke_token(&self, token_id: &str, now: i64) -> Result<ApiToken> {
        let id = token_id.to_string();
        self.write(move |c| users::revoke_token(c, &id, now)).await
    }
    async fn change_roles(&self, change: RoleChange) -> Result<RoleChanged> {
        self.write(move |c| roles::change(c, change)).await
    }
    async fn get_role(&self, role_id: i64) -> Result<Role> {
        self.read(move |c| roles::get(c, role_id)).await
    }
    async fn list_roles(&self, filter: RoleFilter) -> Result<Vec<Role>> {
        self.read(move |c| roles::list(c, &filter)).await
    }
    async fn get_role_permission(&self, id: i64) -> Result<RolePermission> {
        self.read(move |c| roles::get_permission(c, id)).await
    }
    async fn list_role_users(&self, role_id: i64) -> Result<Vec<RoleAssignment>> {
        self.read(move |c| roles::role_users(c, role_id)).await
    }
    async fn list_grants(&self, user_id: i64, workspace: &str) -> Result<Vec<Grant>> {
        let workspace = workspace.to_string();
        self.read(move |c| roles::grants(c, user_id, &workspace)).await
    }
    async fn run_experiment(&self, run_id: &str) -> Result<String> {
        let run_id = run_id.to_string();
        self.read(move |c| runs::experiment_of(c, &run_id)).await
    }
    async fn append_audit(&self, record: AuditRecord) -> Result<()> {
        self.write(move |c| audit::append(c, &record)).await
    }
    async fn search_audit(&self, query: AuditQuery) -> Result<Page<AuditRecord>> {
        self.read(move |c| audit::search(c, &query)).await
    }
    async fn audit_activity(&self, since: i64) -> Result<Vec<ActivityRow>> {
        self.read(move |c| audit::activity(c, since)).await
    }
    async fn acquire_lease(&self, name: &str, holder: &str, now: i64, ttl_ms: i64) -> Result<bool> {
        let (name, holder) = (name.to_string(), holder.to_string());
        self.write(move |c| jobs::acquire_lease(c, &name, &holder, now, ttl_ms)).await
    }
    /// One process owns an embedded database.
    fn shared(&self) -> bool {
        false
    }
}
