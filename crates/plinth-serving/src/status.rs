//! A deployment's status as the API and the UI both show it: its spec and,
//! once loaded here, each variant's model version and counters.

use std::sync::atomic::Ordering;

use plinth_core::deployments::{Deployment, TrafficMode, Variant, VariantCounters};
use plinth_core::policy::{MetricDef, Policy};
use serde::Serialize;

use crate::{Live, Serving, Slot};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum DeploymentState {
    /// Every variant is loaded here and serving.
    Ready,
    /// Stored, but this replica has not loaded this revision yet.
    Loading,
}

impl DeploymentState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeploymentState::Ready => "READY",
            DeploymentState::Loading => "LOADING",
        }
    }
}

/// What a loaded variant has done since this server started — over a shared
/// store, since each live replica started, summed.
#[derive(Debug, Clone, Serialize)]
pub struct LiveStats {
    pub model_version: i64,
    pub loaded_time: i64,
    pub requests: u64,
    pub errors: u64,
    pub fallbacks: u64,
    pub mean_latency_us: u64,
    /// `[minute start (ms), errors]` for the minutes of the last hour that had any.
    pub errors_per_minute: Vec<(i64, u64)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct VariantStatus {
    pub name: String,
    /// `name@alias` or `name/version`, as deployed.
    pub model: String,
    pub weight: u32,
    /// Absent while loading.
    #[serde(flatten)]
    pub live: Option<LiveStats>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeploymentStatus {
    pub name: String,
    pub salt: String,
    pub created_time: i64,
    pub updated_time: i64,
    pub variants: Vec<VariantStatus>,
    pub shadow: Option<VariantStatus>,
    pub mode: TrafficMode,
    pub state: DeploymentState,
    /// Its named metrics.
    pub metrics: Vec<MetricDef>,
    /// Its policy with the policy's progress.
    pub policy: Option<Policy>,
}

impl VariantStatus {
    fn spec(v: &Variant) -> VariantStatus {
        VariantStatus { name: v.name.clone(), model: v.model.to_string(), weight: v.weight, live: None }
    }

    fn slot(s: &Slot, now_ms: i64) -> VariantStatus {
        let m = s.model();
        let n = s.stats.requests.load(Ordering::Relaxed);
        VariantStatus {
            live: Some(LiveStats {
                model_version: m.version,
                loaded_time: m.loaded_time,
                requests: n,
                errors: s.stats.errors.load(Ordering::Relaxed),
                fallbacks: s.stats.fallbacks.load(Ordering::Relaxed),
                mean_latency_us: s.stats.latency_us_total.load(Ordering::Relaxed).checked_div(n).unwrap_or(0),
                errors_per_minute: s.stats.errors_per_minute(now_ms),
            }),
            ..VariantStatus::spec(&s.variant)
        }
    }
}

impl Live {
    /// The live status; per-minute counters as seen at `now_ms`.
    pub fn status(&self, now_ms: i64) -> DeploymentStatus {
        DeploymentStatus {
            name: self.spec.name.clone(),
            salt: self.spec.salt.clone(),
            created_time: self.spec.created_time,
            updated_time: self.spec.updated_time,
            variants: self.variants.iter().map(|s| VariantStatus::slot(s, now_ms)).collect(),
            shadow: self.shadow.as_ref().map(|s| VariantStatus::slot(s, now_ms)),
            mode: self.spec.mode,
            state: DeploymentState::Ready,
            metrics: self.spec.metrics.clone(),
            policy: self.spec.policy.clone(),
        }
    }
}

impl LiveStats {
    /// Adds another replica's counters to these.
    fn add(&mut self, c: &VariantCounters) {
        let total_latency = self.mean_latency_us * self.requests;
        self.requests += c.requests.max(0) as u64;
        self.errors += c.errors.max(0) as u64;
        self.fallbacks += c.fallbacks.max(0) as u64;
        self.mean_latency_us =
            (total_latency + c.latency_us_total.max(0) as u64).checked_div(self.requests).unwrap_or(0);
    }
}

impl Serving {
    /// The status of a stored deployment: live counters when this replica
    /// serves that revision (with, over a shared store, every other live
    /// replica's last published counters added), else the spec, loading.
    pub async fn status(&self, d: &Deployment) -> DeploymentStatus {
        let mut status = self.local_status(d);
        if !self.inner.platform.shared() || status.state != DeploymentState::Ready {
            return status;
        }
        let since = self.now_ms() - self.counters_fresh_ms();
        let others = match self.inner.platform.deployment_counters(&d.name, since).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(deployment = %d.name, error = %e, "cannot read other replicas' counters");
                return status;
            }
        };
        for c in others.iter().filter(|c| c.replica != self.inner.replica) {
            let slot = status.variants.iter_mut().chain(status.shadow.as_mut()).find(|v| v.name == c.variant);
            if let Some(live) = slot.and_then(|v| v.live.as_mut()) {
                live.add(c);
            }
        }
        status
    }

    fn local_status(&self, d: &Deployment) -> DeploymentStatus {
        match self.get(&d.name) {
            Some(live) if live.spec.updated_time == d.updated_time => live.status(self.now_ms()),
            _ => DeploymentStatus {
                name: d.name.clone(),
                salt: d.salt.clone(),
                created_time: d.created_time,
                updated_time: d.updated_time,
                variants: d.variants.iter().map(VariantStatus::spec).collect(),
                shadow: d.shadow.as_ref().map(VariantStatus::spec),
                mode: d.mode,
                state: DeploymentState::Loading,
                metrics: d.metrics.clone(),
                policy: d.policy.clone(),
            },
        }
    }
}

impl Serving {
    /// The platform's usage report, with the requests each deployment has
    /// answered as the live serving processes count them (variants and
    /// shadow; every replica's over a shared store).
    pub async fn usage(&self, query: plinth_core::usage::UsageQuery) -> crate::Result<plinth_core::usage::Usage> {
        let scope = query.workspace.clone();
        let mut usage = self.inner.platform.usage(query).await?;
        let deployments = self.inner.platform.all_deployments().await?;
        for d in deployments.into_iter().filter(|d| scope.as_deref().is_none_or(|s| s == d.workspace)) {
            let status = self.status(&d).await;
            let (mut requests, mut errors) = (0i64, 0i64);
            for live in status.variants.iter().chain(status.shadow.as_ref()).filter_map(|v| v.live.as_ref()) {
                requests += i64::try_from(live.requests).unwrap_or(i64::MAX);
                errors += i64::try_from(live.errors).unwrap_or(i64::MAX);
            }
            usage.requests.push(plinth_core::usage::DeploymentRequests { deployment: d.name, requests, errors });
        }
        Ok(usage)
    }
}
