//! Plinth's metadata store: experiments, runs, logged models and the model
//! registry behind one trait, [`MetadataStore`], so that the embedded SQLite
//! backend and a server database backend are interchangeable.
//!
//! Every backend must pass [`conformance::run_all`]. Only this crate holds SQL.

mod codec;
pub mod conformance;
mod error;
mod plan;
pub mod postgres;
pub mod sqlite;

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

pub use error::{Error, Result};
pub use plinth_core::query::{
    DatasetFilter, ExperimentSearch, LoggedModelOrder, LoggedModelSearch, ModelVersionQuery, RegisteredModelQuery,
    RunSearch,
};
pub use postgres::PostgresStore;
pub use sqlite::{SqliteOptions, SqliteStore};

/// Which roles a listing is of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleFilter {
    All,
    Workspace(String),
    /// The roles a user holds.
    User(i64),
}

/// One page of a listing, and where the next one starts (if any).
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_offset: Option<i64>,
}

/// The metadata store. Writes are durable when they return `Ok`.
///
/// A store handle works in one workspace ([`MetadataStore::in_workspace`];
/// `default` as opened): experiment names, the registry (keyed by workspace
/// and name in every table) and the searches of experiments, registered
/// models and versions are that workspace's. What is addressed by a global
/// id (an experiment's or run's id, a logged model, a job) or by a global
/// name (a deployment: its name is its endpoint) is found whatever the
/// handle's workspace; the engine checks the workspace it belongs to.
/// Deployments and jobs are written in the workspace their value names.
#[async_trait]
pub trait MetadataStore: Send + Sync + 'static {
    /// The same store, working in `workspace` (which the caller made sure exists).
    fn in_workspace(&self, workspace: &str) -> std::sync::Arc<dyn MetadataStore>;
    /// The workspace this handle works in.
    fn workspace(&self) -> &str;

    // --- workspaces ---
    /// A taken name is `AlreadyExists`.
    async fn create_workspace(&self, workspace: Workspace) -> Result<Workspace>;
    async fn get_workspace(&self, name: &str) -> Result<Workspace>;
    /// Every workspace, by name.
    async fn list_workspaces(&self) -> Result<Vec<Workspace>>;
    async fn update_workspace(&self, name: &str, update: WorkspaceUpdate) -> Result<Workspace>;
    /// Deletes an empty workspace (MLflow's RESTRICT mode) with its roles;
    /// one that holds experiments, models, deployments or unfinished jobs is
    /// `InvalidState`, and so is `default`.
    async fn delete_workspace(&self, name: &str) -> Result<()>;
    /// The workspace an experiment belongs to (which never changes).
    async fn experiment_workspace(&self, experiment_id: &str) -> Result<String>;

    // --- experiments ---
    /// Creates the experiment with id `0` named `Default` unless it exists.
    async fn ensure_default_experiment(&self, artifact_location: String) -> Result<()>;
    /// Creates an experiment. The artifact location may depend on the new id:
    /// `{id}` in `artifact_location` is replaced by it.
    async fn create_experiment(&self, name: String, artifact_location: String, tags: Vec<Tag>) -> Result<String>;
    async fn get_experiment(&self, experiment_id: &str) -> Result<Experiment>;
    async fn get_experiment_by_name(&self, name: &str) -> Result<Option<Experiment>>;
    /// Active runs per experiment among `experiment_ids` (ones with none are absent).
    async fn count_runs(&self, experiment_ids: Vec<String>) -> Result<Vec<(String, i64)>>;
    async fn search_experiments(&self, search: ExperimentSearch) -> Result<Page<Experiment>>;
    async fn rename_experiment(&self, experiment_id: &str, new_name: String) -> Result<()>;
    /// Deletes (soft) or restores an experiment and its runs.
    async fn set_experiment_lifecycle(&self, experiment_id: &str, stage: LifecycleStage) -> Result<()>;
    async fn set_experiment_tag(&self, experiment_id: &str, tag: Tag) -> Result<()>;
    async fn delete_experiment_tag(&self, experiment_id: &str, key: &str) -> Result<()>;

    // --- runs ---
    /// Stores a new run (in an active experiment) with its initial tags.
    async fn create_run(&self, info: RunInfo, tags: Vec<Tag>) -> Result<Run>;
    async fn get_run(&self, run_id: &str) -> Result<Run>;
    async fn update_run(&self, run_id: &str, update: RunUpdate) -> Result<RunInfo>;
    async fn set_run_lifecycle(&self, run_id: &str, stage: LifecycleStage) -> Result<()>;
    /// Logs metrics, params and tags atomically: all or none. Params are
    /// immutable; re-logging the same value is a no-op.
    async fn log_batch(&self, run_id: &str, metrics: Vec<Metric>, params: Vec<Param>, tags: Vec<Tag>) -> Result<()>;
    async fn delete_run_tag(&self, run_id: &str, key: &str) -> Result<()>;
    /// Appends `entry` to the JSON list kept in run tag `key` (MLflow 2's
    /// `mlflow.log-model.history`) in one transaction, so concurrent appends
    /// lose nothing. The result obeys the tag rules.
    async fn append_to_run_tag_list(&self, run_id: &str, key: &str, entry: serde_json::Value) -> Result<()>;
    async fn log_inputs(&self, run_id: &str, datasets: Vec<DatasetInput>, models: Vec<ModelIo>) -> Result<()>;
    async fn log_outputs(&self, run_id: &str, models: Vec<ModelIo>) -> Result<()>;
    async fn get_metric_history(&self, run_id: &str, key: &str, max_results: i64, offset: i64) -> Result<Page<Metric>>;
    /// The distinct (dataset, context) pairs used by runs of these
    /// experiments, at most `limit`.
    async fn search_dataset_summaries(&self, experiment_ids: Vec<String>, limit: usize) -> Result<Vec<DatasetSummary>>;
    /// At most `max_points` of a run's history of `key` (inside `steps`,
    /// inclusive, if given), evenly sampled as MLflow's SQL store does it:
    /// rows ordered by (step, timestamp, value), split into `max_points`
    /// NTILE buckets, the first row of each kept, and the last row always
    /// kept (it replaces the final sample when the budget is full).
    async fn sample_metric_history(
        &self,
        run_id: &str,
        key: &str,
        steps: Option<(i64, i64)>,
        max_points: i64,
    ) -> Result<Vec<Metric>>;
    async fn search_runs(&self, search: RunSearch) -> Result<Page<Run>>;

    // --- logged models (MLflow 3) ---
    async fn create_logged_model(&self, model: LoggedModel) -> Result<LoggedModel>;
    async fn get_logged_model(&self, model_id: &str) -> Result<LoggedModel>;
    async fn finalize_logged_model(&self, model_id: &str, status: LoggedModelStatus) -> Result<LoggedModel>;
    async fn delete_logged_model(&self, model_id: &str) -> Result<()>;
    async fn set_logged_model_tags(&self, model_id: &str, tags: Vec<Tag>) -> Result<()>;
    async fn delete_logged_model_tag(&self, model_id: &str, key: &str) -> Result<()>;
    async fn log_logged_model_params(&self, model_id: &str, params: Vec<Param>) -> Result<()>;
    async fn search_logged_models(&self, search: LoggedModelSearch) -> Result<Page<LoggedModel>>;

    // --- model registry ---
    async fn create_registered_model(
        &self,
        name: String,
        description: Option<String>,
        tags: Vec<Tag>,
    ) -> Result<RegisteredModel>;
    async fn get_registered_model(&self, name: &str) -> Result<RegisteredModel>;
    async fn rename_registered_model(&self, name: &str, new_name: String) -> Result<RegisteredModel>;
    async fn update_registered_model(&self, name: &str, description: Option<String>) -> Result<RegisteredModel>;
    async fn delete_registered_model(&self, name: &str) -> Result<()>;
    async fn search_registered_models(&self, query: RegisteredModelQuery) -> Result<Page<RegisteredModel>>;
    async fn set_registered_model_tag(&self, name: &str, tag: Tag) -> Result<()>;
    async fn delete_registered_model_tag(&self, name: &str, key: &str) -> Result<()>;
    async fn set_alias(&self, name: &str, alias: &str, version: i64) -> Result<()>;
    async fn delete_alias(&self, name: &str, alias: &str) -> Result<()>;
    async fn get_model_version_by_alias(&self, name: &str, alias: &str) -> Result<ModelVersion>;
    async fn create_model_version(&self, new: NewModelVersion) -> Result<ModelVersion>;
    async fn get_model_version(&self, name: &str, version: i64) -> Result<ModelVersion>;
    async fn update_model_version(&self, name: &str, version: i64, description: Option<String>)
    -> Result<ModelVersion>;
    async fn delete_model_version(&self, name: &str, version: i64) -> Result<()>;
    async fn search_model_versions(&self, query: ModelVersionQuery) -> Result<Page<ModelVersion>>;
    async fn set_model_version_tag(&self, name: &str, version: i64, tag: Tag) -> Result<()>;
    async fn delete_model_version_tag(&self, name: &str, version: i64, key: &str) -> Result<()>;
    async fn transition_stage(
        &self,
        name: &str,
        version: i64,
        stage: Stage,
        archive_existing: bool,
    ) -> Result<ModelVersion>;
    async fn get_latest_versions(&self, name: &str, stages: Vec<Stage>) -> Result<Vec<ModelVersion>>;

    // --- deployments ---
    /// Fails with AlreadyExists if the name is taken.
    async fn create_deployment(&self, deployment: Deployment) -> Result<Deployment>;
    async fn get_deployment(&self, name: &str) -> Result<Deployment>;
    /// Replaces variants and shadow; keeps name, salt and creation time.
    async fn update_deployment(&self, deployment: Deployment) -> Result<Deployment>;
    /// The same, only while the stored deployment's `updated_time` is still
    /// `expected` (compare-and-set in one statement): `None` when another
    /// change came first. A policy's decisions go through it.
    async fn update_deployment_if(&self, deployment: Deployment, expected: i64) -> Result<Option<Deployment>>;
    async fn delete_deployment(&self, name: &str) -> Result<()>;
    async fn list_deployments(&self) -> Result<Vec<Deployment>>;
    /// Writes one process's counters (replacing what it published before)
    /// and removes counters nobody has published for an hour before `now`.
    async fn publish_counters(&self, counters: Vec<VariantCounters>, now: i64) -> Result<()>;
    /// The counters of `deployment` published at or after `since`, every process's.
    async fn deployment_counters(&self, deployment: &str, since: i64) -> Result<Vec<VariantCounters>>;

    // --- jobs ---
    async fn create_job(&self, job: Job) -> Result<()>;
    async fn get_job(&self, job_id: &str) -> Result<Job>;
    /// Replaces the job's mutable fields (status, result, error, attempts, times).
    async fn update_job(&self, job: Job) -> Result<()>;
    /// Jobs with `status` oldest first, or all newest first.
    async fn list_jobs(&self, status: Option<JobStatus>, limit: i64) -> Result<Vec<Job>>;
    /// Claims the oldest job to run for `worker`: a queued one, or a running
    /// one whose lease ended before `now` (its worker died). Exactly one
    /// caller gets each job, however many processes claim at once. The job
    /// comes back running under `worker` until `now + lease_ms`, its attempt
    /// counted. Jobs whose lease ended after `max_attempts` starts are marked
    /// failed with the reason instead.
    async fn claim_job(&self, worker: &str, now: i64, lease_ms: i64, max_attempts: i64) -> Result<Option<Job>>;
    /// Extends `worker`'s lease on a running job to `until`.
    async fn renew_job_lease(&self, job_id: &str, worker: &str, until: i64) -> Result<LeaseState>;
    /// Ends a job `worker` holds with its status, result, error and finished
    /// time; `false` (nothing written) when the lease was lost.
    async fn finish_job(&self, job: Job, worker: &str) -> Result<bool>;
    /// A queued job is cancelled at once; a running one is asked to stop
    /// (its worker sees it at its next renewal). An ended one is an error.
    async fn cancel_job(&self, job_id: &str, now: i64) -> Result<Job>;
    /// Gives a held job back to the queue (a worker shutting down), its
    /// attempt not counted.
    async fn release_job(&self, job_id: &str, worker: &str) -> Result<()>;
    // --- users and tokens ---
    /// A new user; its id is the next free one. A taken name is `AlreadyExists`.
    async fn create_user(&self, username: String, password_hash: String, is_admin: bool) -> Result<User>;
    async fn get_user(&self, username: &str) -> Result<User>;
    async fn get_user_by_id(&self, user_id: i64) -> Result<User>;
    /// Every user, by name.
    async fn list_users(&self) -> Result<Vec<User>>;
    /// Sets what is given of the password hash and the admin flag.
    async fn update_user(&self, username: &str, password_hash: Option<String>, is_admin: Option<bool>) -> Result<User>;
    /// Removes the user and every token of theirs.
    async fn delete_user(&self, username: &str) -> Result<()>;
    async fn create_token(&self, token: ApiToken) -> Result<()>;
    /// The token whose secret hashes to `secret_hash`, and its user; revoked
    /// and expired ones too (the caller decides).
    async fn find_token(&self, secret_hash: &str) -> Result<Option<(ApiToken, User)>>;
    /// A user's tokens of every kind, newest first.
    async fn list_tokens(&self, user_id: i64) -> Result<Vec<ApiToken>>;
    /// Marks a token revoked at `now` (again: no change); unknown is `NotFound`.
    async fn revoke_token(&self, token_id: &str, now: i64) -> Result<ApiToken>;

    // --- roles and grants ---
    /// Makes one change to roles, their grants or who holds them, in one
    /// transaction (refusals in `plinth_core::access::msg`'s words).
    async fn change_roles(&self, change: RoleChange) -> Result<RoleChanged>;
    async fn get_role(&self, role_id: i64) -> Result<Role>;
    /// Roles with their grants, by workspace then name.
    async fn list_roles(&self, filter: RoleFilter) -> Result<Vec<Role>>;
    async fn get_role_permission(&self, id: i64) -> Result<RolePermission>;
    /// Who holds a role (an unknown role is not found).
    async fn list_role_users(&self, role_id: i64) -> Result<Vec<RoleAssignment>>;
    /// Every grant of every role `user_id` holds in `workspace`.
    async fn list_grants(&self, user_id: i64, workspace: &str) -> Result<Vec<Grant>>;
    /// The experiment a run belongs to (which never changes), without reading the run.
    async fn run_experiment(&self, run_id: &str) -> Result<String>;

    // --- the audit trail (append-only: nothing updates or deletes it) ---
    /// Appends one record; its `seq` is ignored and the next one taken.
    async fn append_audit(&self, record: AuditRecord) -> Result<()>;
    /// Records matching `query`, newest first; `next_offset` is the next
    /// page's `before_seq`.
    async fn search_audit(&self, query: AuditQuery) -> Result<Page<AuditRecord>>;
    /// How many records each actor made of each action, per day (UTC), from `since` on.
    async fn audit_activity(&self, since: i64) -> Result<Vec<ActivityRow>>;

    /// Takes the lease `name` for `holder` for `ttl_ms` from `now`, or renews
    /// it when `holder` has it; false while another holder's has not ended.
    /// Work that one process of many does at a time (the policy evaluator).
    async fn acquire_lease(&self, name: &str, holder: &str, now: i64, ttl_ms: i64) -> Result<bool>;

    /// Whether other processes may share this store: then a job running at
    /// start may be another process's, and only an expired lease frees it.
    fn shared(&self) -> bool;
    /// On a shared store, ticks whenever any process changes what serving
    /// follows (deployments, aliases, stages), so replicas reload at once
    /// instead of at their next poll. `None` where nothing else writes.
    fn changes(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        None
    }
}
