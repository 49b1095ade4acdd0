//! The recommender as a served model kind: ranking for users
//! (`/v1/.../recommend`, and OIP infer with a `user` tensor) and similar
//! items (`/v1/.../similar`), both through [`Serving::answer`].

use std::future::Future;
use std::sync::Arc;

use plinth_core::deployments::TrafficMode;
use plinth_ml::model::{ItemFilter, Query, RecModel};

use crate::answer::{Answered, Endpoint, RequestContext, Task};
use crate::loaded::Recommender;
use crate::{Error, LoadedModel, Result, Serving};

pub const MAX_K: usize = 1000;
pub const MAX_BATCH: usize = 10_000;

/// Whom a request is about: one id, or a batch of ids.
#[derive(Debug, Clone, PartialEq)]
pub enum Subjects {
    One(String),
    Many(Vec<String>),
}

impl Subjects {
    fn checked(self, what: &str) -> Result<(Vec<String>, bool)> {
        match self {
            Subjects::One(id) => Ok((vec![id], false)),
            Subjects::Many(ids) if ids.is_empty() || ids.len() > MAX_BATCH => {
                Err(Error::Invalid(format!("{what}s must hold 1 to {MAX_BATCH} ids")))
            }
            Subjects::Many(ids) => Ok((ids, true)),
        }
    }
}

/// `POST /v1/deployments/{name}/recommend`, decoded.
#[derive(Debug, Clone)]
pub struct RecommendQuery {
    pub users: Subjects,
    pub k: Option<usize>,
    pub exclude_seen: Option<bool>,
    /// Rank only these items (ids the model never saw are skipped).
    pub include_items: Option<Vec<String>>,
    pub exclude_items: Option<Vec<String>>,
}

/// `POST /v1/deployments/{name}/similar`, decoded.
#[derive(Debug, Clone)]
pub struct SimilarQuery {
    pub items: Subjects,
    pub k: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ScoredItem {
    pub item: Arc<str>,
    pub score: f32,
    /// An interleaved deployment's answer: the variant whose ranking
    /// contributed the item (its score is that ranking's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ranker: Option<String>,
}

/// What one user (or item) got, and from which variant and version.
#[derive(Debug, Clone)]
pub struct Recommendation {
    /// The user (recommend) or item (similar) asked about.
    pub subject: String,
    pub variant: String,
    pub model: String,
    pub model_version: i64,
    /// `"popularity"` when the user was unknown to the model.
    pub fallback: Option<&'static str>,
    pub items: Vec<ScoredItem>,
}

/// The answer to a recommend or similar request.
#[derive(Debug, Clone)]
pub struct Recommendations {
    pub deployment: String,
    pub request_id: String,
    /// Whether the request was a batch (`users`/`items`), so the edge
    /// answers a list even for one entry.
    pub batch: bool,
    pub rows: Vec<Recommendation>,
}

fn check_k(k: Option<usize>) -> Result<usize> {
    let k = k.unwrap_or(10);
    if k == 0 || k > MAX_K {
        return Err(Error::Invalid(format!("k must be in 1..={MAX_K}, got {k}")));
    }
    Ok(k)
}

/// A ranked list with the precomputed answer's provenance.
pub(crate) struct Ranked {
    pub(crate) items: Vec<ScoredItem>,
    pub(crate) fallback: Option<&'static str>,
}

/// Ranking for users: one part per user.
pub(crate) struct RankTask {
    pub(crate) users: Vec<String>,
    pub(crate) units: Vec<String>,
    pub(crate) k: usize,
    pub(crate) exclude_seen: bool,
    pub(crate) include: Option<Vec<String>>,
    pub(crate) exclude: Option<Vec<String>>,
}

impl RankTask {
    fn filter(&self, model: &RecModel) -> ItemFilter {
        // Items the model never saw cannot be ranked; they are skipped.
        let indices = |ids: &Vec<String>| ids.iter().filter_map(|i| model.items.get(i)).collect::<Vec<u32>>();
        ItemFilter {
            allowed: self.include.as_ref().map(indices),
            blocked: self.exclude.as_ref().map(indices).unwrap_or_default(),
        }
    }

    /// The precomputed answer, when the request is the default one (no item
    /// filters, seen items excluded) for a known user.
    fn precomputed(&self, rec: &Recommender, index: Option<u32>) -> Option<Vec<(u32, f32)>> {
        if self.include.is_some() || self.exclude.is_some() || !self.exclude_seen {
            return None;
        }
        Some(rec.top.as_ref()?.get(index?, self.k)?.to_vec())
    }

    fn ranked(ids: &[Arc<str>], index: Option<u32>, ranked: Vec<(u32, f32)>) -> Ranked {
        Ranked { items: named(ids, ranked), fallback: index.is_none().then_some("popularity") }
    }
}

fn named(ids: &[Arc<str>], ranked: Vec<(u32, f32)>) -> Vec<ScoredItem> {
    ranked
        .into_iter()
        .filter_map(|(i, score)| Some(ScoredItem { item: ids.get(i as usize)?.clone(), score, ranker: None }))
        .collect()
}

impl Task for RankTask {
    type Output = Ranked;

    fn units(&self) -> &[String] {
        &self.units
    }

    fn inline(&self) -> bool {
        self.users.len() == 1
    }

    fn run(&self, model: &LoadedModel, part: usize) -> Result<Ranked> {
        let rec = model.recommender()?;
        let index = rec.model.users.get(&self.users[part]);
        let ranked = match self.precomputed(rec, index) {
            Some(r) => r,
            None => rec.model.recommend(index, self.k, self.exclude_seen, &self.filter(&rec.model)),
        };
        Ok(RankTask::ranked(&rec.item_ids, index, ranked))
    }

    /// Live scoring goes through the batcher, so concurrent requests share
    /// one pass over the item factors.
    fn run_alone(
        &self,
        serving: &Serving,
        loaded: Arc<LoadedModel>,
        part: usize,
    ) -> impl Future<Output = Result<Ranked>> + Send {
        let prepared = loaded.recommender().map(|rec| {
            let model = rec.model.clone();
            let index = model.users.get(&self.users[part]);
            match self.precomputed(rec, index) {
                Some(r) => Err(RankTask::ranked(&rec.item_ids, index, r)),
                None => {
                    let filter = self.filter(&model);
                    let query = Query { user: index, k: self.k, exclude_seen: self.exclude_seen, filter };
                    Ok((model, rec.item_ids.clone(), query))
                }
            }
        });
        let batcher = serving.batcher().clone();
        async move {
            match prepared? {
                Err(done) => Ok(done),
                Ok((model, ids, query)) => {
                    let index = query.user;
                    let ranked = batcher
                        .recommend(model, query)
                        .await
                        .ok_or_else(|| Error::Internal("the scoring workers stopped".into()))?;
                    Ok(RankTask::ranked(&ids, index, ranked))
                }
            }
        }
    }

    fn fallback(output: &Ranked) -> bool {
        output.fallback.is_some()
    }

    fn shown(output: &Ranked) -> Vec<Arc<str>> {
        output.items.iter().map(|i| i.item.clone()).collect()
    }
}

/// Similar items: one part per item.
struct SimilarTask {
    items: Vec<String>,
    units: Vec<String>,
    k: usize,
}

impl Task for SimilarTask {
    type Output = Ranked;

    fn units(&self) -> &[String] {
        &self.units
    }

    fn inline(&self) -> bool {
        self.items.len() == 1
    }

    fn run(&self, loaded: &LoadedModel, part: usize) -> Result<Ranked> {
        let rec = loaded.recommender()?;
        let model = &rec.model;
        let item = &self.items[part];
        let index = model.items.get(item).ok_or_else(|| {
            Error::NotFound(format!("Item '{item}' is unknown to model '{}' version {}", loaded.name, loaded.version))
        })?;
        Ok(Ranked { items: named(&rec.item_ids, model.similar_items(index, self.k)), fallback: None })
    }

    fn shown(output: &Ranked) -> Vec<Arc<str>> {
        RankTask::shown(output)
    }
}

fn rows(subjects: Vec<String>, answers: Vec<Answered<Ranked>>) -> Vec<Recommendation> {
    subjects
        .into_iter()
        .zip(answers)
        .map(|(subject, a)| Recommendation {
            subject,
            variant: a.variant,
            model: a.model,
            model_version: a.model_version,
            fallback: a.output.fallback,
            items: a.output.items,
        })
        .collect()
}

impl Serving {
    /// Recommendations for one user or a batch. The caller's unit overrides
    /// the user id as the assignment unit of a single request; in a batch
    /// each user is their own unit.
    pub async fn recommend(
        &self,
        deployment: &str,
        query: RecommendQuery,
        ctx: &RequestContext,
    ) -> Result<Recommendations> {
        let live = self.live(deployment).await?;
        let k = check_k(query.k)?;
        let (users, batch) = query.users.checked("user")?;
        let units = match (&ctx.unit, batch) {
            (Some(unit), false) => vec![unit.clone()],
            _ => users.clone(),
        };
        let task = RankTask {
            users: users.clone(),
            units,
            k,
            exclude_seen: query.exclude_seen.unwrap_or(true),
            include: query.include_items,
            exclude: query.exclude_items,
        };
        let answers = match live.spec.mode {
            TrafficMode::Split => self.answer(&live, None, task, Endpoint::Recommend, ctx).await?,
            TrafficMode::Interleave => self.interleave(&live, task, ctx).await?,
        };
        Ok(Recommendations {
            deployment: deployment.to_string(),
            request_id: ctx.request_id.clone(),
            batch,
            rows: rows(users, answers),
        })
    }

    /// Items similar to one item or a batch; the caller's unit, if any, is
    /// every item's assignment unit.
    pub async fn similar(
        &self,
        deployment: &str,
        query: SimilarQuery,
        ctx: &RequestContext,
    ) -> Result<Recommendations> {
        let live = self.live(deployment).await?;
        let k = check_k(query.k)?;
        let (items, batch) = query.items.checked("item")?;
        let units = items.iter().map(|item| ctx.unit.clone().unwrap_or_else(|| item.clone())).collect();
        let task = SimilarTask { items: items.clone(), units, k };
        let answers = self.answer(&live, None, task, Endpoint::Similar, ctx).await?;
        Ok(Recommendations {
            deployment: deployment.to_string(),
            request_id: ctx.request_id.clone(),
            batch,
            rows: rows(items, answers),
        })
    }
}
