//! The recommendation endpoints' use cases: assign a variant, rank, log the
//! exposure, mirror to the shadow variant.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use plinth_core::ids::now_ms;
use plinth_ml::model::{ItemFilter, Query, RecModel};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{Error, Exposure, ExposureLog, Live, Result, Serving, Slot};

pub const MAX_K: usize = 1000;
pub const MAX_BATCH: usize = 10_000;

/// `POST /v1/deployments/{name}/recommend`: one `user` or a batch of `users`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecommendRequest {
    pub user: Option<Value>,
    pub users: Option<Vec<Value>>,
    pub k: Option<usize>,
    pub exclude_seen: Option<bool>,
    pub include_items: Option<Vec<Value>>,
    pub exclude_items: Option<Vec<Value>>,
}

/// `POST /v1/deployments/{name}/similar`: one `item` or a batch of `items`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimilarRequest {
    pub item: Option<Value>,
    pub items: Option<Vec<Value>>,
    pub k: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ScoredItem {
    pub item: String,
    pub score: f32,
}

/// What one user (or item) got, and from which variant and version.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Recommendation {
    pub variant: String,
    pub model: String,
    pub model_version: i64,
    /// `"popularity"` when the user was unknown to the model.
    pub fallback: Option<&'static str>,
    pub items: Vec<ScoredItem>,
}

impl Recommendation {
    pub(crate) fn answer(&self) -> Answer<'_> {
        Answer { model: &self.model, model_version: self.model_version, fallback: self.fallback.is_some() }
    }
}

/// Which model version answered a unit, for the books.
pub(crate) struct Answer<'a> {
    pub(crate) model: &'a str,
    pub(crate) model_version: i64,
    pub(crate) fallback: bool,
}

/// Ids may be sent as strings or integers; both name the same id.
fn id_string(v: &Value, what: &str) -> Result<String> {
    match v {
        Value::String(s) if !s.is_empty() => Ok(s.clone()),
        Value::Number(n) if n.is_i64() || n.is_u64() => Ok(n.to_string()),
        other => Err(Error::Invalid(format!("{what} must be a non-empty string or an integer, got {other}"))),
    }
}

fn one_or_many(one: &Option<Value>, many: &Option<Vec<Value>>, what: &str) -> Result<(Vec<String>, bool)> {
    match (one, many) {
        (Some(v), None) => Ok((vec![id_string(v, what)?], false)),
        (None, Some(vs)) => {
            if vs.is_empty() || vs.len() > MAX_BATCH {
                return Err(Error::Invalid(format!("{what}s must hold 1 to {MAX_BATCH} ids")));
            }
            Ok((vs.iter().map(|v| id_string(v, what)).collect::<Result<_>>()?, true))
        }
        _ => Err(Error::Invalid(format!("give exactly one of '{what}' and '{what}s'"))),
    }
}

fn check_k(k: Option<usize>) -> Result<usize> {
    let k = k.unwrap_or(10);
    if k == 0 || k > MAX_K {
        return Err(Error::Invalid(format!("k must be in 1..={MAX_K}, got {k}")));
    }
    Ok(k)
}

fn filter_for(model: &RecModel, include: &Option<Vec<Value>>, exclude: &Option<Vec<Value>>) -> Result<ItemFilter> {
    let indices = |ids: &Vec<Value>| -> Result<Vec<u32>> {
        // Items the model never saw cannot be ranked; they are skipped.
        Ok(ids
            .iter()
            .map(|v| id_string(v, "item"))
            .collect::<Result<Vec<_>>>()?
            .iter()
            .filter_map(|i| model.items.get(i))
            .collect())
    };
    Ok(ItemFilter {
        allowed: include.as_ref().map(indices).transpose()?,
        blocked: exclude.as_ref().map(indices).transpose()?.unwrap_or_default(),
    })
}

fn named(model: &RecModel, ranked: Vec<(u32, f32)>) -> Vec<ScoredItem> {
    ranked.into_iter().map(|(i, score)| ScoredItem { item: model.items.id(i).to_string(), score }).collect()
}

/// The precomputed answer, when the request is the default one (no item
/// filters, seen items excluded) for a known user.
fn precomputed(
    rec: &crate::loaded::Recommender,
    index: Option<u32>,
    k: usize,
    req: &RecommendRequest,
) -> Option<Vec<(u32, f32)>> {
    if req.include_items.is_some() || req.exclude_items.is_some() || !req.exclude_seen.unwrap_or(true) {
        return None;
    }
    Some(rec.top.as_ref()?.get(index?, k)?.to_vec())
}

/// Ranks for one user on one slot's current model.
pub(crate) fn rank_user(slot: &Slot, user: &str, k: usize, req: &RecommendRequest) -> Result<Recommendation> {
    let loaded = slot.model();
    let rec = loaded.recommender()?;
    let model = &rec.model;
    let index = model.users.get(user);
    let ranked = match precomputed(rec, index, k, req) {
        Some(r) => r,
        None => {
            let filter = filter_for(model, &req.include_items, &req.exclude_items)?;
            model.recommend(index, k, req.exclude_seen.unwrap_or(true), &filter)
        }
    };
    Ok(Recommendation {
        variant: slot.variant.name.clone(),
        model: loaded.name.clone(),
        model_version: loaded.version,
        fallback: index.is_none().then_some("popularity"),
        items: named(model, ranked),
    })
}

fn similar_for(slot: &Slot, item: &str, k: usize) -> Result<Recommendation> {
    let loaded = slot.model();
    let model = &loaded.recommender()?.model;
    let index = model.items.get(item).ok_or_else(|| {
        Error::NotFound(format!("Item '{item}' is unknown to model '{}' version {}", loaded.name, loaded.version))
    })?;
    Ok(Recommendation {
        variant: slot.variant.name.clone(),
        model: loaded.name.clone(),
        model_version: loaded.version,
        fallback: None,
        items: named(model, model.similar_items(index, k)),
    })
}

/// Bookkeeping after a slot answered: counters, Prometheus, exposure log.
pub(crate) struct Served<'a> {
    pub(crate) live: &'a Live,
    pub(crate) endpoint: &'static str,
    pub(crate) request_id: &'a str,
    pub(crate) exposures: &'a ExposureLog,
}

impl Served<'_> {
    /// Accounts for one unit served by `slot` (`answer` is `None` on error).
    pub(crate) fn account(&self, slot: &Slot, unit: &str, answer: Option<Answer<'_>>, started: Instant, shadow: bool) {
        let micros = started.elapsed().as_micros() as u64;
        self.count(slot, answer.as_ref(), micros);
        let Some(r) = answer else { return };
        self.exposures.record(Exposure {
            time_ms: now_ms(),
            deployment: self.live.spec.name.clone(),
            variant: slot.variant.name.clone(),
            model: r.model.to_string(),
            model_version: r.model_version,
            unit: unit.to_string(),
            request_id: self.request_id.to_string(),
            endpoint: self.endpoint.to_string(),
            latency_us: micros,
            shadow,
            fallback: r.fallback,
        });
    }

    fn count(&self, slot: &Slot, answer: Option<&Answer<'_>>, micros: u64) {
        let stats = &slot.stats;
        stats.requests.fetch_add(1, Ordering::Relaxed);
        stats.latency_us_total.fetch_add(micros, Ordering::Relaxed);
        let outcome = match answer {
            Some(r) if r.fallback => {
                stats.fallbacks.fetch_add(1, Ordering::Relaxed);
                "fallback"
            }
            Some(_) => "ok",
            None => {
                stats.error();
                "error"
            }
        };
        let labels = [
            ("deployment", self.live.spec.name.clone()),
            ("variant", slot.variant.name.clone()),
            ("endpoint", self.endpoint.to_string()),
        ];
        metrics::histogram!("plinth_serving_request_seconds", &labels).record(micros as f64 / 1e6);
        let mut with_outcome = labels.to_vec();
        with_outcome.push(("outcome", outcome.to_string()));
        metrics::counter!("plinth_serving_requests_total", &with_outcome).increment(1);
    }
}

impl Serving {
    /// [`rank_user`] through the batcher, so concurrent requests share one
    /// pass over the item factors.
    async fn rank_batched(&self, slot: &Slot, user: &str, k: usize, req: &RecommendRequest) -> Result<Recommendation> {
        let loaded = slot.model();
        let rec = loaded.recommender()?;
        let model = rec.model.clone();
        let index = model.users.get(user);
        let ranked = match precomputed(rec, index, k, req) {
            Some(r) => r,
            None => {
                let filter = filter_for(&model, &req.include_items, &req.exclude_items)?;
                let query = Query { user: index, k, exclude_seen: req.exclude_seen.unwrap_or(true), filter };
                self.batcher()
                    .recommend(model.clone(), query)
                    .await
                    .ok_or_else(|| Error::Internal("the scoring workers stopped".into()))?
            }
        };
        Ok(Recommendation {
            variant: slot.variant.name.clone(),
            model: loaded.name.clone(),
            model_version: loaded.version,
            fallback: index.is_none().then_some("popularity"),
            items: named(&model, ranked),
        })
    }

    pub(crate) fn served<'a>(&'a self, live: &'a Live, endpoint: &'static str, request_id: &'a str) -> Served<'a> {
        Served { live, endpoint, request_id, exposures: self.exposures() }
    }

    /// Recommendations for one user or a batch. `unit` (a header) overrides
    /// the user id as the assignment unit of a single request; in a batch
    /// each user is their own unit.
    pub async fn recommend(
        &self,
        deployment: &str,
        req: RecommendRequest,
        unit: Option<String>,
        request_id: String,
        arrived: Instant,
    ) -> Result<Value> {
        let live = self.live(deployment)?;
        let k = check_k(req.k)?;
        let (users, batch) = one_or_many(&req.user, &req.users, "user")?;
        let req = Arc::new(req);
        // (user, unit, answer)
        let results: Vec<(String, String, Recommendation)> = if batch {
            let (this, live, req, request_id) = (self.clone(), live.clone(), req.clone(), request_id.clone());
            tokio::task::spawn_blocking(move || {
                let served = this.served(&live, "recommend", &request_id);
                users
                    .into_iter()
                    .map(|user| {
                        let started = arrived;
                        let slot = live.assign(&user);
                        let rec = rank_user(slot, &user, k, &req);
                        served.account(slot, &user, rec.as_ref().ok().map(Recommendation::answer), started, false);
                        rec.map(|r| (user.clone(), user, r))
                    })
                    .collect::<Result<_>>()
            })
            .await
            .map_err(|e| Error::Internal(e.to_string()))??
        } else {
            let user = users.into_iter().next().unwrap_or_default();
            let unit = unit.unwrap_or_else(|| user.clone());
            let started = arrived;
            let slot = live.assign(&unit);
            let rec = self.rank_batched(slot, &user, k, &req).await;
            self.served(&live, "recommend", &request_id).account(
                slot,
                &unit,
                rec.as_ref().ok().map(Recommendation::answer),
                started,
                false,
            );
            vec![(user, unit, rec?)]
        };
        if live.shadow.is_some() {
            let pairs = results.iter().map(|(user, unit, _)| (user.clone(), unit.clone())).collect();
            self.mirror(live.clone(), req, pairs, request_id.clone());
        }
        let rows = results
            .iter()
            .map(|(user, _, r)| {
                json!({"user": user, "variant": r.variant, "model": r.model, "model_version": r.model_version,
                       "fallback": r.fallback, "items": r.items})
            })
            .collect();
        Ok(envelope(deployment, &request_id, batch, rows))
    }

    /// Items similar to one item or a batch.
    pub async fn similar(
        &self,
        deployment: &str,
        req: SimilarRequest,
        unit: Option<String>,
        request_id: String,
        arrived: Instant,
    ) -> Result<Value> {
        let live = self.live(deployment)?;
        let k = check_k(req.k)?;
        let (items, batch) = one_or_many(&req.item, &req.items, "item")?;
        let served = self.served(&live, "similar", &request_id);
        let mut rows = Vec::new();
        for item in &items {
            let started = arrived;
            let unit = unit.clone().unwrap_or_else(|| item.clone());
            let slot = live.assign(&unit);
            let rec = similar_for(slot, item, k);
            served.account(slot, &unit, rec.as_ref().ok().map(Recommendation::answer), started, false);
            let r = rec?;
            rows.push(json!({"item": item, "variant": r.variant, "model": r.model, "model_version": r.model_version,
                             "items": r.items}));
        }
        Ok(envelope(deployment, &request_id, batch, rows))
    }

    /// Runs the request on the shadow variant off the hot path: its result
    /// is logged and counted, never returned.
    fn mirror(&self, live: Arc<Live>, req: Arc<RecommendRequest>, users: Vec<(String, String)>, request_id: String) {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let Some(shadow) = &live.shadow else { return };
            let k = req.k.unwrap_or(10);
            let served = this.served(&live, "recommend", &request_id);
            for (user, unit) in &users {
                let started = Instant::now();
                let rec = rank_user(shadow, user, k, &req);
                served.account(shadow, unit, rec.as_ref().ok().map(Recommendation::answer), started, true);
            }
        });
    }
}

/// The response: one row as the body itself, or a batch under `results`;
/// either way with the deployment and request id.
fn envelope(deployment: &str, request_id: &str, batch: bool, mut rows: Vec<Value>) -> Value {
    if batch || rows.len() != 1 {
        return json!({"deployment": deployment, "request_id": request_id, "results": rows});
    }
    let mut v = rows.remove(0);
    v["deployment"] = json!(deployment);
    v["request_id"] = json!(request_id);
    v
}
