//! Serving: deployments live in memory with their models loaded, answer
//! every request (recommend, similar, OIP infer) through one flow
//! ([`answer`]: the variant a unit is assigned to runs it, the outcome is
//! counted and logged, the shadow variant gets a mirror), and follow
//! registry aliases (a moved alias loads the new version in the background
//! and swaps it in atomically; requests in flight finish on the old one).
//! Requests come in decoded and answers go out typed; the wire formats are
//! the server's.
//!
//! State of record is the metadata store (deployments) and the registry
//! (versions, aliases); this crate only holds what it loaded, and a reload
//! loop reconciles it with the store, so replicas converge on their own.

pub mod analysis;
pub mod answer;
mod batcher;
mod error;
pub mod events;
pub mod exposure;
pub mod interleaved;
mod join;
mod loaded;
mod oip;
mod onnx;
pub mod policy;
mod recommend;
pub mod segments;
mod status;
mod tabular;
pub mod tensor;
pub mod traffic;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

pub use analysis::{Aggregate, Analysis, AnalysisQuery};
pub use answer::{Endpoint, RequestContext};
pub use error::{Error, Result};
pub use events::{Event, EventInput, EventLog};
pub use exposure::{Exposure, ExposureConfig, ExposureError, ExposureLog, ExposureQuery};
pub use loaded::{Kind, LoadedModel};
use plinth_core::audit::Actor;
use plinth_core::deployments::{Deployment, ModelTarget, Variant, bucket};
use plinth_engine::Platform;
pub use recommend::{
    MAX_BATCH, MAX_K, RecommendQuery, Recommendation, Recommendations, ScoredItem, SimilarQuery, Subjects,
};
pub use status::{DeploymentState, DeploymentStatus, LiveStats, VariantStatus};
pub use traffic::{Traffic, VariantTraffic};

/// How often deployments and aliases are re-read by default.
pub const DEFAULT_RELOAD_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub struct ServingConfig {
    /// Where the exposure log's segments go, and how long they stay.
    pub exposures: ExposureConfig,
    /// How often aliases and stored deployments are re-checked.
    pub reload_interval: Duration,
}

/// Request counters of one variant, for the deployment's status.
#[derive(Default)]
pub struct VariantStats {
    pub requests: AtomicU64,
    pub errors: AtomicU64,
    pub fallbacks: AtomicU64,
    pub latency_us_total: AtomicU64,
    /// Errors per minute over the last hour: (minute since the epoch, count).
    error_minutes: std::sync::Mutex<std::collections::VecDeque<(i64, u64)>>,
}

impl VariantStats {
    /// Counts a failed request at `now_ms` (errors are rare: a lock is fine).
    pub fn error(&self, now_ms: i64) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let minute = now_ms / 60_000;
        let mut m = self.error_minutes.lock().unwrap_or_else(|e| e.into_inner());
        match m.back_mut() {
            Some((at, n)) if *at == minute => *n += 1,
            _ => m.push_back((minute, 1)),
        }
        while m.front().is_some_and(|(at, _)| *at <= minute - 60) {
            m.pop_front();
        }
    }

    /// `[minute start (ms), errors]` for the minutes of the hour before
    /// `now_ms` that had any.
    pub fn errors_per_minute(&self, now_ms: i64) -> Vec<(i64, u64)> {
        let since = now_ms / 60_000 - 60;
        let m = self.error_minutes.lock().unwrap_or_else(|e| e.into_inner());
        m.iter().filter(|(at, _)| *at > since).map(|(at, n)| (at * 60_000, *n)).collect()
    }
}

/// A variant with its model: the slot is swapped whole when an alias moves.
pub struct Slot {
    pub variant: Variant,
    model: RwLock<Arc<LoadedModel>>,
    pub stats: Arc<VariantStats>,
}

impl Slot {
    pub fn model(&self) -> Arc<LoadedModel> {
        self.model.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
    fn swap(&self, m: Arc<LoadedModel>) {
        *self.model.write().unwrap_or_else(|p| p.into_inner()) = m;
    }
}

/// A deployment as served: its spec, bucket table and loaded variants.
pub struct Live {
    pub spec: Deployment,
    table: Vec<u8>,
    pub variants: Vec<Slot>,
    pub shadow: Option<Slot>,
}

impl Live {
    /// The same loaded models under `stored`, the spec the platform stored
    /// (which may have set weights: a policy starts at its ramp's first stage).
    fn stored_as(mut self, stored: Deployment) -> Live {
        for (slot, v) in
            self.variants.iter_mut().zip(&stored.variants).chain(self.shadow.iter_mut().zip(&stored.shadow))
        {
            slot.variant = v.clone();
        }
        Live { table: stored.assignment_table(), spec: stored, ..self }
    }

    /// The variant that serves `unit`.
    pub fn assign(&self, unit: &str) -> &Slot {
        let b = bucket(&self.spec.salt, unit) as usize;
        let i = self.table.get(b).copied().unwrap_or(0) as usize;
        &self.variants[i.min(self.variants.len() - 1)]
    }
}

struct Inner {
    platform: Platform,
    live: RwLock<HashMap<String, Arc<Live>>>,
    exposures: ExposureLog,
    /// Outcome events, in the exposure log's store.
    events: EventLog,
    batcher: batcher::Batcher,
    config: ServingConfig,
    /// Held while a deployment not yet loaded here is read-through ([`Serving::live`]).
    loading: tokio::sync::Mutex<()>,
    /// This process's name among the replicas that publish serving counters.
    replica: String,
}

/// The serving runtime. Cheap to clone.
#[derive(Clone)]
pub struct Serving {
    inner: Arc<Inner>,
}

impl Serving {
    /// Loads every stored deployment (one that fails to load is logged and
    /// left out until the next reload succeeds) and starts the reload loop.
    pub async fn start(platform: Platform, config: ServingConfig) -> Result<Serving> {
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        let batcher = batcher::Batcher::start(workers).map_err(|e| Error::Internal(format!("scoring workers: {e}")))?;
        let exposures = ExposureLog::open(config.exposures.clone());
        let events = EventLog::open(config.exposures.clone());
        let serving = Serving {
            inner: Arc::new(Inner {
                platform,
                live: RwLock::new(HashMap::new()),
                exposures,
                events,
                batcher,
                config,
                loading: tokio::sync::Mutex::new(()),
                replica: format!("serving-{}", plinth_core::ids::new_run_id()),
            }),
        };
        serving.reconcile().await;
        let weak = Arc::downgrade(&serving.inner);
        let interval = serving.inner.config.reload_interval;
        // Over a shared store, another replica's change wakes the loop at once; the poll stays as the fallback.
        let mut changes = serving.inner.platform.changes();
        tokio::spawn(async move {
            loop {
                match changes.as_mut() {
                    Some(rx) => {
                        tokio::select! {
                            _ = tokio::time::sleep(interval) => {}
                            changed = rx.changed() => if changed.is_err() { changes = None },
                        }
                    }
                    None => tokio::time::sleep(interval).await,
                }
                let Some(inner) = weak.upgrade() else { return };
                let serving = Serving { inner };
                serving.reconcile().await;
                serving.publish_counters().await;
            }
        });
        Ok(serving)
    }

    pub(crate) fn batcher(&self) -> &batcher::Batcher {
        &self.inner.batcher
    }

    /// The platform's clock.
    pub fn now_ms(&self) -> i64 {
        self.inner.platform.now_ms()
    }

    pub fn exposures(&self) -> &ExposureLog {
        &self.inner.exposures
    }

    pub fn events(&self) -> &EventLog {
        &self.inner.events
    }

    /// How long exposures and events are kept.
    pub fn retention(&self) -> std::time::Duration {
        self.inner.config.exposures.retention
    }

    pub fn get(&self, name: &str) -> Option<Arc<Live>> {
        self.inner.live.read().unwrap_or_else(|p| p.into_inner()).get(name).cloned()
    }

    /// The deployment as served here. One this process has not loaded yet —
    /// created a moment ago through another replica, before its announcement
    /// arrived — is read from the store and loaded now, so a client that
    /// created it through one replica can use it through any other at once.
    pub async fn live(&self, name: &str) -> Result<Arc<Live>> {
        if let Some(live) = self.get(name) {
            return Ok(live);
        }
        // One load at a time: concurrent requests for a new deployment wait for the first one's.
        let _one = self.inner.loading.lock().await;
        if let Some(live) = self.get(name) {
            return Ok(live);
        }
        let spec = self.inner.platform.deployment_named(name).await?;
        let live = self.build(spec, None).await?;
        self.install(live);
        self.get(name).ok_or_else(|| plinth_core::rules::missing::deployment(name).into())
    }

    /// Every stored deployment of every workspace, in name order.
    pub async fn deployments(&self) -> Result<Vec<Deployment>> {
        Ok(self.inner.platform.all_deployments().await?)
    }

    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> =
            self.inner.live.read().unwrap_or_else(|p| p.into_inner()).keys().cloned().collect();
        names.sort();
        names
    }

    /// Serves `live` from now on. Its variants keep the counters of the ones
    /// they replace (by name), taken under the lock, so no request counted
    /// by a concurrent load (the reload loop, a read-through) is lost.
    fn install(&self, mut live: Live) {
        let name = live.spec.name.clone();
        let mut map = self.inner.live.write().unwrap_or_else(|p| p.into_inner());
        if let Some(current) = map.get(&name) {
            for slot in live.variants.iter_mut().chain(live.shadow.as_mut()) {
                if let Some(old) =
                    current.variants.iter().chain(&current.shadow).find(|s| s.variant.name == slot.variant.name)
                {
                    slot.stats = old.stats.clone();
                }
            }
        }
        map.insert(name, Arc::new(live));
    }

    /// Loads every variant of `spec`, reusing models `previous` already has
    /// at the same version. Fails on the first model that cannot serve.
    async fn build(&self, spec: Deployment, previous: Option<&Live>) -> Result<Live> {
        let mut slots = Vec::new();
        for v in spec.variants.iter().chain(&spec.shadow) {
            let reuse = previous.and_then(|p| {
                p.variants.iter().chain(&p.shadow).find(|s| s.variant.model == v.model).map(|s| s.model())
            });
            let current = self.inner.platform.resolve_served_model(&spec, &v.model).await?;
            let model = match reuse {
                Some(m) if m.version == current.version => m,
                _ => Arc::new(self.load(&spec.name, v, &current).await?),
            };
            // Counters carry over across updates of the same variant.
            let stats = previous
                .and_then(|p| p.variants.iter().chain(&p.shadow).find(|s| s.variant.name == v.name))
                .map(|s| s.stats.clone())
                .unwrap_or_default();
            slots.push(Slot { variant: v.clone(), model: RwLock::new(model), stats });
        }
        if let Some((first, rest)) = slots.split_first() {
            let first = first.model();
            for s in rest {
                first.check_compatible(&s.model())?;
            }
        }
        let shadow = if spec.shadow.is_some() { slots.pop() } else { None };
        Ok(Live { table: spec.assignment_table(), spec, variants: slots, shadow })
    }

    async fn load(
        &self,
        deployment: &str,
        v: &Variant,
        version: &plinth_core::registry::ModelVersion,
    ) -> Result<LoadedModel> {
        let start = Instant::now();
        let m = loaded::load(&self.inner.platform, version).await?;
        let secs = start.elapsed().as_secs_f64();
        metrics::histogram!("plinth_model_load_seconds", "deployment" => deployment.to_string(), "variant" => v.name.clone())
            .record(secs);
        tracing::info!(deployment, variant = %v.name, model = %v.model, version = version.version, secs, "model loaded");
        Ok(m)
    }

    /// Creates a deployment: every model must load before it is stored.
    /// Recorded in the audit trail as `by`'s change (as are updates and deletes).
    /// It belongs to `by`'s workspace, whose models it serves.
    pub async fn create(&self, by: &Actor, mut spec: Deployment) -> Result<Deployment> {
        spec.validate()?;
        spec.workspace = by.workspace.to_string();
        if self.get(&spec.name).is_some() {
            return Err(plinth_core::rules::taken::deployment(&spec.name).into());
        }
        let loaded = self.build(spec.clone(), None).await?;
        let stored = self.inner.platform.acting(by.clone()).create_deployment(spec).await?;
        self.install(loaded.stored_as(stored.clone()));
        Ok(stored)
    }

    /// Replaces variants and shadow; models load before the swap.
    pub async fn update(&self, by: &Actor, mut spec: Deployment) -> Result<Deployment> {
        spec.validate()?;
        spec.workspace = by.workspace.to_string();
        let previous = self.get(&spec.name);
        self.inner.platform.acting(by.clone()).get_deployment(&spec.name).await?;
        let probe = self.build(spec.clone(), previous.as_deref()).await?;
        let stored = self.inner.platform.acting(by.clone()).update_deployment(spec).await?;
        self.install(probe.stored_as(stored.clone()));
        Ok(stored)
    }

    pub async fn delete(&self, by: &Actor, name: &str) -> Result<()> {
        self.inner.platform.acting(by.clone()).delete_deployment(name).await?;
        self.inner.live.write().unwrap_or_else(|p| p.into_inner()).remove(name);
        Ok(())
    }

    /// One pass of the reload loop: picks up deployments created, changed or
    /// deleted elsewhere (another replica), and alias moves.
    pub async fn reconcile(&self) {
        let stored = match self.inner.platform.all_deployments().await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "reload: cannot list deployments");
                return;
            }
        };
        let names: std::collections::HashSet<&str> = stored.iter().map(|d| d.name.as_str()).collect();
        self.inner.live.write().unwrap_or_else(|p| p.into_inner()).retain(|n, _| names.contains(n.as_str()));
        for spec in stored {
            let previous = self.get(&spec.name);
            match previous {
                Some(live) if live.spec == spec => self.follow_aliases(&live).await,
                _ => match self.build(spec.clone(), previous.as_deref()).await {
                    Ok(live) => self.install(live),
                    Err(e) => tracing::warn!(deployment = %spec.name, error = %e, "reload: cannot load deployment"),
                },
            }
        }
    }

    /// How recently a replica must have published its counters to count:
    /// three reload passes (it publishes on each), at least 5 s.
    pub(crate) fn counters_fresh_ms(&self) -> i64 {
        (3 * self.inner.config.reload_interval.as_millis() as i64).max(5_000)
    }

    /// Over a shared store, writes this process's counters of every variant
    /// that has served anything, for the other replicas' statuses.
    async fn publish_counters(&self) {
        if !self.inner.platform.shared() {
            return;
        }
        let now = self.now_ms();
        let live: Vec<Arc<Live>> =
            self.inner.live.read().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
        let mut rows = Vec::new();
        for d in &live {
            for slot in d.variants.iter().chain(&d.shadow) {
                let (requests, errors) =
                    (slot.stats.requests.load(Ordering::Relaxed), slot.stats.errors.load(Ordering::Relaxed));
                if requests == 0 && errors == 0 {
                    continue;
                }
                rows.push(plinth_core::deployments::VariantCounters {
                    deployment: d.spec.name.clone(),
                    variant: slot.variant.name.clone(),
                    replica: self.inner.replica.clone(),
                    requests: requests as i64,
                    errors: errors as i64,
                    fallbacks: slot.stats.fallbacks.load(Ordering::Relaxed) as i64,
                    latency_us_total: slot.stats.latency_us_total.load(Ordering::Relaxed) as i64,
                    updated_time: now,
                });
            }
        }
        if rows.is_empty() {
            return;
        }
        if let Err(e) = self.inner.platform.publish_counters(rows).await {
            tracing::warn!(error = %e, "cannot publish serving counters");
        }
    }

    /// Swaps in the version each alias-following slot points at now.
    async fn follow_aliases(&self, live: &Live) {
        for slot in live.variants.iter().chain(&live.shadow) {
            if !matches!(slot.variant.model.target, ModelTarget::Alias(_)) {
                continue;
            }
            let current = match self.inner.platform.resolve_served_model(&live.spec, &slot.variant.model).await {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(deployment = %live.spec.name, variant = %slot.variant.name, error = %e, "alias lookup failed");
                    continue;
                }
            };
            if current.version == slot.model().version {
                continue;
            }
            let loaded = self.load(&live.spec.name, &slot.variant, &current).await.and_then(|m| {
                slot.model().check_compatible(&m)?;
                Ok(m)
            });
            match loaded {
                Ok(m) => {
                    tracing::info!(deployment = %live.spec.name, variant = %slot.variant.name, from = slot.model().version, to = m.version, "alias moved: swapped model");
                    slot.swap(Arc::new(m));
                }
                Err(e) => {
                    tracing::warn!(deployment = %live.spec.name, variant = %slot.variant.name, error = %e, "alias moved but the new version cannot replace the old one; keeping the old one")
                }
            }
        }
    }
}

#[cfg(test)]
mod stats_tests {
    use super::*;

    #[test]
    fn errors_are_counted_per_minute() {
        let minute = 29_000_000 * 60_000; // a fixed clock: no minute boundary to race
        let stats = VariantStats::default();
        assert!(stats.errors_per_minute(minute).is_empty());
        stats.error(minute + 1_000);
        stats.error(minute + 59_999);
        stats.error(minute + 60_000);
        assert_eq!(stats.errors_per_minute(minute + 60_001), vec![(minute, 2), (minute + 60_000, 1)]);
        assert_eq!(stats.errors.load(Ordering::Relaxed), 3);
        // An hour later the first minute has left the window.
        assert_eq!(stats.errors_per_minute(minute + 60 * 60_000 + 1), vec![(minute + 60_000, 1)]);
        stats.error(minute + 61 * 60_000);
        assert_eq!(stats.errors_per_minute(minute + 61 * 60_000), vec![(minute + 61 * 60_000, 1)]);
    }
}
