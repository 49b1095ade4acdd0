//! Permissions: which resources the platform's actor may read and change.
//!
//! Every use case asks here before it touches a resource (`need_*`), and
//! every search takes the caller's [`Visible`] sets into its typed query, so
//! what a caller may not read is never listed and paging stays exact. The
//! answer comes from the caller's grants ([`Access`], `plinth_core::access`'s
//! rules), loaded once and kept for [`GRANTS_TTL`]; a change made through
//! this process drops the cache at once, one made through another replica is
//! seen at once over PostgreSQL (its change notifications; the TTL is the
//! fallback). Administrators, Plinth's own work and the embedded
//! single-user mode (authentication off) are unrestricted and never look.
//!
//! A caller who may not read a resource is told it does not exist, in the
//! store's own words (so a refusal says nothing about what exists); one who
//! may read it but not do what they asked gets `PERMISSION_DENIED`.
//!
//! Workspaces come first, for everyone (administrators and the embedded mode
//! too): a resource of another workspace than the actor's does not exist for
//! them. Names are looked up in the actor's workspace by the store itself; a
//! resource reached by a global id (an experiment, a run, a logged model, a
//! deployment, a job) is checked here, its experiment's workspace remembered
//! (an experiment never moves).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use plinth_core::access::{Access, DEFAULT_WORKSPACE, Op, Permission, ResourceType, Visible};
use plinth_core::rules::missing;

use crate::{Platform, Result};

/// How long a user's grants are trusted before they are read again.
pub const GRANTS_TTL: Duration = Duration::from_secs(5);
/// Runs whose experiment is remembered (a run never moves); past this the map starts over.
const RUNS_REMEMBERED: usize = 100_000;

/// Answers that do not change (a run's experiment, an experiment's
/// workspace), remembered by key; past `limit` entries it starts over.
struct Remembered {
    map: Mutex<HashMap<String, Arc<str>>>,
    limit: usize,
}

impl Remembered {
    fn new(limit: usize) -> Remembered {
        Remembered { map: Mutex::new(HashMap::new()), limit }
    }
    fn get(&self, key: &str) -> Option<Arc<str>> {
        self.map.lock().ok().and_then(|m| m.get(key).cloned())
    }
    fn keep(&self, key: &str, value: Arc<str>) {
        if let Ok(mut m) = self.map.lock() {
            if m.len() >= self.limit {
                m.clear();
            }
            m.insert(key.to_string(), value);
        }
    }
    fn forget_all(&self) {
        if let Ok(mut m) = self.map.lock() {
            m.clear();
        }
    }
}

/// A user's cached grants per workspace they were asked about (a few at
/// most), found without allocating a key.
type UserGrants = Vec<(Arc<str>, Instant, Arc<Access>)>;

/// The permission settings and caches one process shares across requests.
pub struct AccessControl {
    /// What members get where nothing is granted (MLflow's `default_permission`).
    default: Permission,
    grants: Mutex<HashMap<i64, UserGrants>>,
    /// Bumped by every forgetting: grants read before it are not kept after it.
    generation: std::sync::atomic::AtomicU64,
    run_experiments: Remembered,
    /// Each experiment's workspace (an experiment never moves).
    experiment_workspaces: Remembered,
    /// Each deployment's workspace (forgotten with grants: a name may be
    /// deleted and taken again in another workspace).
    deployment_workspaces: Remembered,
}

impl AccessControl {
    pub fn new(default: Permission) -> AccessControl {
        AccessControl {
            default,
            grants: Mutex::new(HashMap::new()),
            generation: std::sync::atomic::AtomicU64::new(0),
            run_experiments: Remembered::new(RUNS_REMEMBERED),
            experiment_workspaces: Remembered::new(RUNS_REMEMBERED),
            deployment_workspaces: Remembered::new(10_000),
        }
    }

    pub fn default_permission(&self) -> Permission {
        self.default
    }

    /// Forgets every cached grant (after a change to roles or grants).
    pub fn forget_grants(&self) {
        self.generation.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if let Ok(mut g) = self.grants.lock() {
            g.clear();
        }
        self.deployment_workspaces.forget_all();
    }

    fn cached(&self, user_id: i64, workspace: &str) -> Option<Arc<Access>> {
        let g = self.grants.lock().ok()?;
        let (_, at, access) = g.get(&user_id)?.iter().find(|(w, _, _)| **w == *workspace)?;
        (at.elapsed() < GRANTS_TTL).then(|| access.clone())
    }

    /// Keeps grants read at `generation`, unless they were forgotten since.
    fn keep(&self, user_id: i64, workspace: &str, access: Arc<Access>, generation: u64) {
        if let Ok(mut g) = self.grants.lock() {
            if self.generation.load(std::sync::atomic::Ordering::SeqCst) != generation {
                return;
            }
            if g.len() > 10_000 {
                g.clear();
            }
            let held = g.entry(user_id).or_default();
            // Bounded: a user naming ever new workspaces does not grow it.
            if held.len() >= 64 {
                held.clear();
            }
            held.retain(|(w, _, _)| **w != *workspace);
            held.push((workspace.into(), Instant::now(), access));
        }
    }
}

fn unrestricted() -> Arc<Access> {
    static ALL: std::sync::OnceLock<Arc<Access>> = std::sync::OnceLock::new();
    ALL.get_or_init(|| Arc::new(Access::unrestricted())).clone()
}

impl Platform {
    /// On a shared store, forgets cached grants whenever another process
    /// announces a change (roles and grants are announced with what serving
    /// follows), so a revocation reaches every replica at once; the TTL
    /// stays the fallback.
    pub fn follow_grant_changes(&self) {
        let Some(mut changes) = self.store.changes() else { return };
        let control = Arc::downgrade(&self.access_control);
        tokio::spawn(async move {
            while changes.changed().await.is_ok() {
                match control.upgrade() {
                    Some(c) => c.forget_grants(),
                    None => return,
                }
            }
        });
    }

    /// The actor's access: unrestricted for administrators, Plinth itself and
    /// when authentication is off; else the user's grants (cached).
    pub async fn access(&self) -> Result<Arc<Access>> {
        let principal = &self.actor.principal;
        if principal.is_admin || principal.user_id <= 0 {
            return Ok(unrestricted());
        }
        self.access_of(principal.user_id, &self.actor.workspace).await
    }

    /// The actor's access when something restricts it (`None`: nothing does,
    /// and no check needs to look anything up).
    async fn restricted(&self) -> Result<Option<Arc<Access>>> {
        let access = self.access().await?;
        Ok((!access.is_unrestricted()).then_some(access))
    }

    /// Any user's access in `workspace` (for `users/permissions/get` too):
    /// their grants there. Everyone is a member of `default` (where nothing
    /// is granted they get the default permission, as before workspaces);
    /// of another workspace only who holds a role in it.
    pub(crate) async fn access_of(&self, user_id: i64, workspace: &str) -> Result<Arc<Access>> {
        if let Some(a) = self.access_control.cached(user_id, workspace) {
            return Ok(a);
        }
        let generation = self.access_control.generation.load(std::sync::atomic::Ordering::SeqCst);
        let grants = self.store.list_grants(user_id, workspace).await?;
        let member = workspace == DEFAULT_WORKSPACE || self.holds_role_in(user_id, workspace).await?;
        let access = Arc::new(Access::of(grants, self.access_control.default, member));
        self.access_control.keep(user_id, workspace, access.clone(), generation);
        Ok(access)
    }

    /// Whether a user holds a role in `workspace` (their own grants' role
    /// counts only through what it grants).
    async fn holds_role_in(&self, user_id: i64, workspace: &str) -> Result<bool> {
        let roles = self.store.list_roles(plinth_store::RoleFilter::User(user_id)).await?;
        Ok(roles.iter().any(|r| r.workspace == workspace && !plinth_core::access::is_personal_role(&r.name)))
    }

    /// The workspace an experiment belongs to (remembered: it never moves).
    pub(crate) async fn experiment_workspace(&self, experiment_id: &str) -> Result<Arc<str>> {
        if let Some(ws) = self.access_control.experiment_workspaces.get(experiment_id) {
            return Ok(ws);
        }
        let ws: Arc<str> = self.store.experiment_workspace(experiment_id).await?.into();
        self.access_control.experiment_workspaces.keep(experiment_id, ws.clone());
        Ok(ws)
    }

    /// The workspace a deployment belongs to (remembered until grants are forgotten).
    async fn deployment_workspace(&self, name: &str) -> Result<Arc<str>> {
        if let Some(ws) = self.access_control.deployment_workspaces.get(name) {
            return Ok(ws);
        }
        let ws: Arc<str> = self.store.get_deployment(name).await?.workspace.into();
        self.access_control.deployment_workspaces.keep(name, ws.clone());
        Ok(ws)
    }

    /// Whether an experiment is in the actor's workspace (an unknown one is not).
    pub(crate) async fn experiment_is_here(&self, experiment_id: &str) -> Result<bool> {
        match self.experiment_workspace(experiment_id).await {
            Ok(ws) => Ok(*ws == *self.actor.workspace),
            Err(e) if e.kind() == plinth_core::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// An experiment of another workspace does not exist for the actor.
    async fn need_here(&self, experiment_id: &str, missing: impl FnOnce() -> plinth_core::Error) -> Result<()> {
        if self.experiment_is_here(experiment_id).await? { Ok(()) } else { Err(missing().into()) }
    }

    /// Decides `op` on the resource reached through `keys` (its own tier
    /// first, then its container); `missing` says how it does not exist.
    fn decide(
        &self,
        access: &Access,
        keys: &[(ResourceType, &str)],
        missing: impl FnOnce() -> plinth_core::Error,
        op: Op,
    ) -> Result<()> {
        let permission = access.permission(keys);
        if permission.allows(op) {
            Ok(())
        } else if !permission.allows(Op::Read) {
            Err(missing().into())
        } else {
            Err(plinth_core::Error::denied().into())
        }
    }

    pub(crate) async fn need_experiment(&self, experiment_id: &str, op: Op) -> Result<()> {
        self.need_here(experiment_id, || missing::experiment(experiment_id)).await?;
        let Some(access) = self.restricted().await? else { return Ok(()) };
        self.decide(&access, &[(ResourceType::Experiment, experiment_id)], || missing::experiment(experiment_id), op)
    }

    /// The experiment a run is in (remembered: it never changes).
    pub(crate) async fn experiment_of_run(&self, run_id: &str) -> Result<Arc<str>> {
        if let Some(e) = self.access_control.run_experiments.get(run_id) {
            return Ok(e);
        }
        let experiment: Arc<str> = self.store.run_experiment(run_id).await?.into();
        self.access_control.run_experiments.keep(run_id, experiment.clone());
        Ok(experiment)
    }

    /// A run's own tier (`run`, `*`) first, then its experiment.
    pub(crate) async fn need_run(&self, run_id: &str, op: Op) -> Result<()> {
        let experiment = self.experiment_of_run(run_id).await?;
        self.need_here(&experiment, || missing::run(run_id)).await?;
        let Some(access) = self.restricted().await? else { return Ok(()) };
        self.decide(
            &access,
            &[(ResourceType::Run, run_id), (ResourceType::Experiment, &experiment)],
            || missing::run(run_id),
            op,
        )
    }

    /// A logged model's tier first, then its experiment.
    pub(crate) async fn need_logged_model(&self, model_id: &str, op: Op) -> Result<()> {
        let experiment = self.store.get_logged_model(model_id).await?.experiment_id;
        self.need_here(&experiment, || missing::logged_model(model_id)).await?;
        let Some(access) = self.restricted().await? else { return Ok(()) };
        self.decide(
            &access,
            &[(ResourceType::LoggedModel, model_id), (ResourceType::Experiment, &experiment)],
            || missing::logged_model(model_id),
            op,
        )
    }

    pub(crate) async fn need_model(&self, name: &str, op: Op) -> Result<()> {
        let Some(access) = self.restricted().await? else { return Ok(()) };
        self.decide(&access, &[(ResourceType::RegisteredModel, name)], || missing::registered_model(name), op)
    }

    /// A model version's tier first, then its registered model.
    pub(crate) async fn need_version(&self, name: &str, version: i64, op: Op) -> Result<()> {
        let Some(access) = self.restricted().await? else { return Ok(()) };
        self.decide(
            &access,
            &[(ResourceType::RegisteredModelVersion, name), (ResourceType::RegisteredModel, name)],
            || missing::model_version(name, version),
            op,
        )
    }

    pub async fn need_deployment(&self, name: &str, op: Op) -> Result<()> {
        let deployment = self.store.get_deployment(name).await?;
        if *deployment.workspace != *self.actor.workspace {
            return Err(missing::deployment(name).into());
        }
        let Some(access) = self.restricted().await? else { return Ok(()) };
        self.decide(&access, &[(ResourceType::Deployment, name)], || missing::deployment(name), op)
    }

    /// Whether `principal` may read (so call) a deployment, without making a
    /// platform that acts for them: the inference endpoints' check (a
    /// deployment's name is its address, whatever the request's workspace;
    /// its grants are its own workspace's).
    pub async fn may_read_deployment(&self, principal: &plinth_core::auth::Principal, name: &str) -> Result<()> {
        if principal.is_admin || principal.user_id <= 0 {
            return Ok(());
        }
        let workspace = self.deployment_workspace(name).await?;
        let access = self.access_of(principal.user_id, &workspace).await?;
        self.decide(&access, &[(ResourceType::Deployment, name)], || missing::deployment(name), Op::Read)
    }

    /// Whether the actor may create a resource of `resource_type`.
    pub(crate) async fn need_create(&self, resource_type: ResourceType) -> Result<()> {
        if self.access().await?.can_create(resource_type) { Ok(()) } else { Err(plinth_core::Error::denied().into()) }
    }

    /// Roles and grants are administered by administrators and the
    /// workspace's administrators (a workspace-wide `MANAGE`).
    pub async fn need_workspace_admin(&self) -> Result<()> {
        if self.access().await?.is_unrestricted() {
            return Ok(());
        }
        Err(plinth_core::Error::PermissionDenied("Permission denied: administrators only".into()).into())
    }

    /// Which resources of `resource_type` the actor may read.
    pub async fn visible(&self, resource_type: ResourceType) -> Result<Visible> {
        Ok(self.access().await?.visible(resource_type))
    }

    /// The subset of `experiment_ids` whose runs (or logged models, with
    /// `tier`) the actor may read, in order.
    pub(crate) async fn readable_experiments(
        &self,
        experiment_ids: Vec<String>,
        tier: ResourceType,
    ) -> Result<Vec<String>> {
        let mut here = Vec::with_capacity(experiment_ids.len());
        for e in experiment_ids {
            if self.experiment_is_here(&e).await? {
                here.push(e);
            }
        }
        let experiment_ids = here;
        let access = self.access().await?;
        if access.is_unrestricted() {
            return Ok(experiment_ids);
        }
        Ok(experiment_ids
            .into_iter()
            .filter(|e| access.permission(&[(tier, "*"), (ResourceType::Experiment, e)]).allows(Op::Read))
            .collect())
    }

    /// Whether the actor may read the deployment named (listings filter with it).
    pub async fn can_read_deployment(&self, name: &str) -> Result<bool> {
        match self.need_deployment(name, Op::Read).await {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == plinth_core::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// A training job runs as Plinth itself; whoever submits it must be
    /// able to do what it will: log to its experiment and register into its
    /// model.
    pub(crate) async fn need_training_targets(&self, experiment: &str, register: Option<&str>) -> Result<()> {
        if self.access().await?.is_unrestricted() {
            return Ok(());
        }
        // Targets that do not exist yet are made now, as the submitter's
        // (who then manages them), not later as Plinth's.
        match self.store.get_experiment_by_name(experiment).await? {
            // Named, not numbered: a hidden experiment's id is not told either.
            Some(e) => self.need_experiment(&e.experiment_id, Op::Update).await.map_err(|err| match err.kind() {
                plinth_core::ErrorKind::NotFound => {
                    plinth_core::Error::not_found(format!("Could not find experiment with name '{experiment}'")).into()
                }
                _ => err,
            })?,
            None => {
                self.create_experiment(experiment.to_string(), None, Vec::new()).await?;
            }
        }
        if let Some(name) = register {
            match self.store.get_registered_model(name).await {
                Ok(_) => self.need_model(name, Op::Update).await?,
                Err(e) if e.is_not_found() => {
                    self.create_registered_model(name.to_string(), None, Vec::new()).await?;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}
