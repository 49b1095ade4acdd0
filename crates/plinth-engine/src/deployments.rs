//! Deployments as stored state, and the registry lookups serving needs:
//! which version a model reference means now, and that version's files.

use bytes::Bytes;
use plinth_artifacts::ArtifactPath;
use plinth_core::access::{Op, ResourceType};
use plinth_core::audit::{Action, resource};
use plinth_core::deployments::{Deployment, ModelRef, ModelTarget, VariantCounters};
use plinth_core::policy::{Policy, PolicyState, PolicyStatus};
use plinth_core::registry::ModelVersion;

use crate::{Error, Platform, Result};

impl Platform {
    /// The version a reference points at now.
    pub async fn resolve_model(&self, model: &ModelRef) -> Result<ModelVersion> {
        match &model.target {
            ModelTarget::Alias(alias) => self.get_model_version_by_alias(&model.name, alias).await,
            ModelTarget::Version(v) => Ok(self.store.get_model_version(&model.name, *v).await?),
        }
    }

    /// A file of a model version's directory (`file` relative to it), for
    /// versions whose bytes this server holds.
    pub async fn read_model_file(&self, version: &ModelVersion, file: &str) -> Result<Bytes> {
        let Some(key) = self.artifact_key(&version.storage_location) else {
            return Err(plinth_core::Error::invalid(format!(
                "Model {} version {} lives at '{}', outside this server's artifact store",
                version.name, version.version, version.storage_location
            ))
            .into());
        };
        let path = ArtifactPath::parse(&format!("{key}/{file}"))?;
        match self.artifacts.read(&path).await {
            Ok(bytes) => Ok(bytes),
            Err(plinth_artifacts::Error::NotFound(_)) => Err(plinth_core::Error::invalid(format!(
                "Model {} version {} has no '{file}' in {}",
                version.name, version.version, version.storage_location
            ))
            .into()),
            Err(e) => Err(Error::from(e)),
        }
    }

    /// Creates a deployment in the actor's workspace (its name is its
    /// endpoint's address, unique across workspaces).
    pub async fn create_deployment(&self, mut deployment: Deployment) -> Result<Deployment> {
        deployment.validate()?;
        deployment.workspace = self.actor.workspace.to_string();
        self.need_create(ResourceType::Deployment).await?;
        self.need_models_served(&deployment).await?;
        let now = self.now_ms();
        (deployment.created_time, deployment.updated_time) = (now, now);
        start_policy(&mut deployment, None, now);
        let created = self.store.create_deployment(deployment).await?;
        self.grant_creator(ResourceType::Deployment, &created.name).await?;
        let after = Some(created.traffic());
        self.record(Action::DeploymentCreate, resource::deployment(&created.name), None, after).await?;
        Ok(created)
    }

    pub async fn get_deployment(&self, name: &str) -> Result<Deployment> {
        self.need_deployment(name, Op::Read).await?;
        Ok(self.store.get_deployment(name).await?)
    }

    /// The deployments of the actor's workspace the actor may read.
    pub async fn list_deployments(&self) -> Result<Vec<Deployment>> {
        let access = self.access().await?;
        let here = self.store.list_deployments().await?.into_iter().filter(|d| *d.workspace == *self.actor.workspace);
        if access.is_unrestricted() {
            return Ok(here.collect());
        }
        Ok(here.filter(|d| access.permission(&[(ResourceType::Deployment, &d.name)]).allows(Op::Read)).collect())
    }

    /// Every workspace's deployments: what serving serves (each resolves its
    /// models in its own workspace: [`Platform::resolve_served_model`]).
    pub async fn all_deployments(&self) -> Result<Vec<Deployment>> {
        Ok(self.store.list_deployments().await?)
    }

    /// A deployment by name, whatever its workspace: serving's lookup of an
    /// endpoint's address (the caller's right to call it is checked apart).
    pub async fn deployment_named(&self, name: &str) -> Result<Deployment> {
        Ok(self.store.get_deployment(name).await?)
    }

    /// The version a deployment's reference points at now, in the deployment's workspace.
    pub async fn resolve_served_model(&self, deployment: &Deployment, model: &ModelRef) -> Result<ModelVersion> {
        let platform = self.in_workspace(&deployment.workspace);
        match &model.target {
            ModelTarget::Alias(alias) => Ok(platform.store.get_model_version_by_alias(&model.name, alias).await?),
            ModelTarget::Version(v) => Ok(platform.store.get_model_version(&model.name, *v).await?),
        }
    }

    /// Whoever points a deployment at models must be able to read them.
    async fn need_models_served(&self, deployment: &Deployment) -> Result<()> {
        for v in deployment.variants.iter().chain(deployment.shadow.iter()) {
            self.need_model(&v.model.name, Op::Read).await?;
        }
        Ok(())
    }

    /// Replaces the variants and shadow; name and salt stay.
    pub async fn update_deployment(&self, mut deployment: Deployment) -> Result<Deployment> {
        self.need_deployment(&deployment.name, Op::Update).await?;
        self.need_models_served(&deployment).await?;
        let current = self.store.get_deployment(&deployment.name).await?;
        let before = Some(current.traffic());
        deployment.salt = current.salt;
        deployment.created_time = current.created_time;
        // Strictly increasing, so replicas see every change.
        deployment.updated_time = self.now_ms().max(current.updated_time + 1);
        start_policy(&mut deployment, current.policy.as_ref(), self.now_ms());
        deployment.validate()?;
        let updated = self.store.update_deployment(deployment).await?;
        let after = Some(updated.traffic());
        self.record(Action::DeploymentUpdate, resource::deployment(&updated.name), before, after).await?;
        Ok(updated)
    }

    pub async fn delete_deployment(&self, name: &str) -> Result<()> {
        self.need_deployment(name, Op::Delete).await?;
        let before = self.store.get_deployment(name).await?.traffic();
        self.store.delete_deployment(name).await?;
        self.forget_grants(ResourceType::Deployment, name).await?;
        self.record(Action::DeploymentDelete, resource::deployment(name), Some(before), None).await
    }

    /// Applies a policy's decision: `decided` (the deployment with its new
    /// weights and policy state) replaces what is stored, if the stored one is
    /// still `seen` — a compare-and-set on its `updated_time`, in the store's
    /// one statement (else nothing happens: someone changed it meanwhile, and
    /// the next evaluation judges the new one). Recorded as `action` with the
    /// traffic before and after and the figures in `detail`, as the actor
    /// (Plinth's policy, in the deployment's workspace).
    pub async fn decide_policy(
        &self,
        seen: &Deployment,
        mut decided: Deployment,
        action: Action,
        detail: String,
    ) -> Result<Option<Deployment>> {
        decided.updated_time = self.now_ms().max(seen.updated_time + 1);
        decided.validate()?;
        let Some(updated) = self.store.update_deployment_if(decided, seen.updated_time).await? else {
            return Ok(None);
        };
        let change = crate::audit::Change {
            action,
            resource: resource::deployment(&updated.name),
            before: Some(seen.traffic()),
            after: Some(updated.traffic()),
            detail: Some(detail),
        };
        crate::audit::append(&*self.store, self.now_ms(), &self.actor, change).await?;
        Ok(Some(updated))
    }

    /// A deployment's policy decisions, newest first (the decision log).
    pub async fn policy_decisions(&self, name: &str) -> Result<Vec<plinth_core::audit::AuditRecord>> {
        self.need_deployment(name, Op::Read).await?;
        let deployment = self.store.get_deployment(name).await?;
        let mut query = plinth_core::audit::AuditQuery {
            resource: Some(resource::deployment(name)),
            workspace: Some(deployment.workspace),
            max_results: plinth_core::audit::MAX_AUDIT_RESULTS,
            ..Default::default()
        };
        let mut decisions = Vec::new();
        // Decisions are few beside a deployment's other records; ten pages of them are plenty.
        for _ in 0..10 {
            let page = self.store.search_audit(query.clone()).await?;
            decisions.extend(page.items.into_iter().filter(|r| r.action.is_policy_decision()));
            match page.next_offset {
                Some(next) => query.before_seq = Some(next),
                None => break,
            }
        }
        Ok(decisions)
    }

    /// Takes or renews the lease `name` for `holder` (see
    /// [`plinth_store::MetadataStore::acquire_lease`]).
    pub async fn acquire_lease(&self, name: &str, holder: &str, ttl_ms: i64) -> Result<bool> {
        Ok(self.store.acquire_lease(name, holder, self.now_ms(), ttl_ms).await?)
    }

    /// Publishes this process's serving counters for other replicas to add up.
    pub async fn publish_counters(&self, counters: Vec<VariantCounters>) -> Result<()> {
        Ok(self.store.publish_counters(counters, self.now_ms()).await?)
    }

    /// Every process's counters of `deployment` published at or after `since`.
    pub async fn deployment_counters(&self, deployment: &str, since: i64) -> Result<Vec<VariantCounters>> {
        Ok(self.store.deployment_counters(deployment, since).await?)
    }

    /// Whether other processes share the store (replicas).
    pub fn shared(&self) -> bool {
        self.store.shared()
    }
}

/// A policy given with a deployment starts at its first stage (the ramp's
/// first weights) now; one restated unchanged keeps its progress.
fn start_policy(deployment: &mut Deployment, current: Option<&Policy>, now: i64) {
    let Some(policy) = deployment.policy.as_mut() else { return };
    if let Some(current) = current
        && current.same_terms(policy)
    {
        policy.state = current.state.clone();
        return;
    }
    policy.state = PolicyState { status: PolicyStatus::Running, stage: 0, stage_started_ms: now, reason: None };
    deployment.apply_stage(0);
}
