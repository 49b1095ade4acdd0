//! The one request flow of serving. Every endpoint (recommend, similar,
//! OIP infer over REST and gRPC) and every model kind goes through
//! [`Serving::answer`]: each unit is assigned a variant (or the pinned one),
//! its part runs on that variant's current model, the outcome is accounted
//! (counters, Prometheus, exposure log), and, when the deployment has a
//! shadow, the same parts run on the shadow off the request path, accounted
//! and logged, never returned.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use crate::{Error, Exposure, Live, LoadedModel, Result, Serving, Slot};

/// Which endpoint served a request, for metrics and the exposure log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Recommend,
    Similar,
    Infer,
}

impl Endpoint {
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Recommend => "recommend",
            Endpoint::Similar => "similar",
            Endpoint::Infer => "infer",
        }
    }
}

/// Who is asking, as the edge saw it.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// The caller's request id (`X-Request-Id`, the OIP `id`), else a fresh one.
    pub request_id: String,
    /// The assignment unit the caller named (`X-Plinth-Unit`), if any.
    pub unit: Option<String>,
    /// When the request's first byte arrived: latencies are end to end.
    pub arrived: Instant,
}

/// A request decoded for one model kind, split into the parts that are
/// assigned and answered independently (a user of a batch; a whole tensor
/// request is one part).
pub(crate) trait Task: Send + Sync + 'static {
    type Output: Send + 'static;

    /// One assignment unit per part.
    fn units(&self) -> &[String];

    /// Whether the parts are cheap enough to run on the async worker
    /// (else they run on the blocking pool).
    fn inline(&self) -> bool;

    /// Runs part `part` on `model`.
    fn run(&self, model: &LoadedModel, part: usize) -> Result<Self::Output>;

    /// A lone part on the request path; a kind may override it (the
    /// recommender shares one pass over the item factors with concurrent
    /// requests).
    fn run_alone(
        &self,
        _serving: &Serving,
        model: Arc<LoadedModel>,
        part: usize,
    ) -> impl Future<Output = Result<Self::Output>> + Send {
        let out = self.run(&model, part);
        async move { out }
    }

    /// Whether an output is a fallback (a recommender's unknown user).
    fn fallback(_output: &Self::Output) -> bool {
        false
    }

    /// What an output showed, for the exposure log (a ranking's item ids in order).
    fn shown(_output: &Self::Output) -> Vec<Arc<str>> {
        Vec::new()
    }
}

/// One part's output, with who answered it.
#[derive(Debug, Clone)]
pub struct Answered<T> {
    pub variant: String,
    pub model: String,
    pub model_version: i64,
    pub output: T,
}

impl Live {
    /// The slot that answers `unit`: the pinned variant, else its assignment.
    fn route(&self, pinned: Option<usize>, unit: &str) -> &Slot {
        match pinned.and_then(|i| self.variants.get(i)) {
            Some(slot) => slot,
            None => self.assign(unit),
        }
    }
}

impl Serving {
    /// Assign → run → account → mirror, for every endpoint and model kind.
    /// Parts run in order; the first failure fails the request (the parts
    /// before it are still accounted), and a failed request is not mirrored.
    pub(crate) async fn answer<T: Task>(
        &self,
        live: &Arc<Live>,
        pinned: Option<usize>,
        task: T,
        endpoint: Endpoint,
        ctx: &RequestContext,
    ) -> Result<Vec<Answered<T::Output>>> {
        let task = Arc::new(task);
        let answers = match (task.units().len(), task.inline()) {
            (1, true) => {
                let slot = live.route(pinned, &task.units()[0]);
                let model = slot.model();
                let out = task.run_alone(self, model.clone(), 0).await;
                self.account::<T>(live, slot, &model, endpoint, ctx, &task.units()[0], &out, ctx.arrived, false);
                vec![answered(slot, &model, out?)]
            }
            (_, true) => self.run_parts(live, pinned, &*task, endpoint, ctx)?,
            (_, false) => {
                let (this, live, task, ctx) = (self.clone(), live.clone(), task.clone(), ctx.clone());
                tokio::task::spawn_blocking(move || this.run_parts(&live, pinned, &*task, endpoint, &ctx))
                    .await
                    .map_err(|e| Error::Internal(format!("serving task failed: {e}")))??
            }
        };
        if live.shadow.is_some() {
            self.mirror(live.clone(), task, endpoint, ctx.request_id.clone());
        }
        Ok(answers)
    }

    fn run_parts<T: Task>(
        &self,
        live: &Live,
        pinned: Option<usize>,
        task: &T,
        endpoint: Endpoint,
        ctx: &RequestContext,
    ) -> Result<Vec<Answered<T::Output>>> {
        let mut answers = Vec::with_capacity(task.units().len());
        for (part, unit) in task.units().iter().enumerate() {
            let slot = live.route(pinned, unit);
            let model = slot.model();
            let out = task.run(&model, part);
            self.account::<T>(live, slot, &model, endpoint, ctx, unit, &out, ctx.arrived, false);
            answers.push(answered(slot, &model, out?));
        }
        Ok(answers)
    }

    /// Runs every part on the shadow variant off the request path.
    fn mirror<T: Task>(&self, live: Arc<Live>, task: Arc<T>, endpoint: Endpoint, request_id: String) {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let Some(shadow) = &live.shadow else { return };
            let ctx = RequestContext { request_id, unit: None, arrived: Instant::now() };
            for (part, unit) in task.units().iter().enumerate() {
                let started = Instant::now();
                let model = shadow.model();
                let out = task.run(&model, part);
                this.account::<T>(&live, shadow, &model, endpoint, &ctx, unit, &out, started, true);
            }
        });
    }

    /// Counters, Prometheus and the exposure log for one part.
    #[allow(clippy::too_many_arguments)]
    fn account<T: Task>(
        &self,
        live: &Live,
        slot: &Slot,
        model: &LoadedModel,
        endpoint: Endpoint,
        ctx: &RequestContext,
        unit: &str,
        out: &Result<T::Output>,
        started: Instant,
        shadow: bool,
    ) {
        let micros = started.elapsed().as_micros() as u64;
        self.count(live, slot, endpoint, micros, out.as_ref().ok().map(T::fallback));
        // A caller's mistake exposed nobody to anything; our failure exposed the unit to it.
        let (fallback, error, items) = match out {
            Ok(output) => (T::fallback(output), false, T::shown(output)),
            Err(e) if e.kind().is_callers() => return,
            Err(_) => (false, true, Vec::new()),
        };
        self.exposures().record(Exposure {
            time_ms: self.now_ms(),
            deployment: live.spec.name.clone(),
            variant: slot.variant.name.clone(),
            model: model.name.clone(),
            model_version: model.version,
            unit: unit.to_string(),
            request_id: ctx.request_id.clone(),
            endpoint: endpoint.as_str().to_string(),
            latency_us: micros,
            shadow,
            fallback,
            items,
            rankers: Vec::new(),
            error,
        });
    }

    /// A variant's counters and Prometheus for one answered part (`fallback`
    /// is `None` for a failure).
    pub(crate) fn count(&self, live: &Live, slot: &Slot, endpoint: Endpoint, micros: u64, fallback: Option<bool>) {
        let stats = &slot.stats;
        stats.requests.fetch_add(1, Ordering::Relaxed);
        stats.latency_us_total.fetch_add(micros, Ordering::Relaxed);
        let outcome = match fallback {
            Some(true) => {
                stats.fallbacks.fetch_add(1, Ordering::Relaxed);
                "fallback"
            }
            Some(false) => "ok",
            None => {
                stats.error(self.now_ms());
                "error"
            }
        };
        let labels = [
            ("deployment", live.spec.name.clone()),
            ("variant", slot.variant.name.clone()),
            ("endpoint", endpoint.as_str().to_string()),
        ];
        metrics::histogram!("plinth_serving_request_seconds", &labels).record(micros as f64 / 1e6);
        let mut with_outcome = labels.to_vec();
        with_outcome.push(("outcome", outcome.to_string()));
        metrics::counter!("plinth_serving_requests_total", &with_outcome).increment(1);
    }
}

fn answered<T>(slot: &Slot, model: &LoadedModel, output: T) -> Answered<T> {
    Answered { variant: slot.variant.name.clone(), model: model.name.clone(), model_version: model.version, output }
}
