//! The recommender use case: load interactions, split, train, evaluate with
//! ranking metrics, track the run, store the model, optionally register it.
//! Tracking goes through [`Tracker`], so the same use case runs against the
//! embedded platform or a remote Plinth server.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::Instant;

use bytes::Bytes;
use plinth_core::Error as DomainError;
use plinth_core::experiments::Tag;
use plinth_core::ids::now_ms;
use plinth_core::model_dir::{Flavor, META_FILE, ModelMeta};
use plinth_core::runs::{Metric, Param};
use plinth_ml::als::{self, AlsParams, Solver};
use plinth_ml::bpr::{self, BprParams};
use plinth_ml::data::{Format, ReadOptions, read_interactions};
use plinth_ml::interactions::{Event, IdMap, Interactions, WeightTransform};
use plinth_ml::metrics::RankingMetrics;
use plinth_ml::model::{Engine, ItemFilter, RecModel};
use plinth_ml::split::{Split, split};
use plinth_ml::{knn, popularity};
use serde_json::{Value, json};

use crate::tracking::{
    MODEL_ARTIFACT_DIR, Progress, Tracker, TrainReport, close_run, object, off_the_async_threads, param_value,
};
use crate::{Error, Result};

pub const MODEL_FILE: &str = "model.plinthrec";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algo {
    Als,
    Bpr,
    ItemKnn,
    Popularity,
}

impl Algo {
    pub fn parse(s: &str) -> Result<Algo> {
        match s {
            "als" => Ok(Algo::Als),
            "bpr" => Ok(Algo::Bpr),
            "item-knn" | "knn" => Ok(Algo::ItemKnn),
            "popularity" => Ok(Algo::Popularity),
            other => Err(DomainError::invalid(format!(
                "unknown algorithm '{other}': expected als, bpr, item-knn or popularity"
            ))
            .into()),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Algo::Als => "als",
            Algo::Bpr => "bpr",
            Algo::ItemKnn => "item-knn",
            Algo::Popularity => "popularity",
        }
    }
}

/// Everything one training needs.
#[derive(Debug, Clone)]
pub struct RecommenderJob {
    pub data: PathBuf,
    pub test_data: Option<PathBuf>,
    pub read: ReadOptions,
    pub algo: Algo,
    pub als: AlsParams,
    pub bpr: BprParams,
    pub neighbors: usize,
    pub weight_transform: WeightTransform,
    pub split: Split,
    pub k: usize,
    pub seed: u64,
    pub threads: Option<usize>,
    pub experiment: String,
    pub run_name: Option<String>,
    pub register: Option<String>,
    /// Evaluate at most this many users (an even, deterministic sample); all by default.
    pub max_eval_users: Option<usize>,
}

struct Prepared {
    data: Interactions,
    /// The weight column as the run records it (`none` for unit weights).
    weight_col: String,
    /// Said in the log and the run's tags when weights look wrong for the model.
    weight_warning: Option<String>,
    train: Vec<Event>,
    test: Vec<Event>,
    cold_users: usize,
    cold_items: usize,
}

fn prepare(job: &RecommenderJob) -> Result<Prepared> {
    let data = read_interactions(&job.data, &job.read, None).map_err(Error::from)?;
    match &job.test_data {
        None => {
            let events = Interactions::aggregate(&data.events);
            let (train, test) = split(&events, job.split, job.seed);
            Ok(keep_training_ids(data, train, test))
        }
        Some(test_path) => {
            let (n_users, n_items) = (data.users.len(), data.items.len());
            let train = Interactions::aggregate(&data.events);
            let with_test = read_interactions(test_path, &job.read, Some((data.users.clone(), data.items.clone())))
                .map_err(Error::from)?;
            let test = Interactions::aggregate(&with_test.events);
            let cold_users: HashSet<u32> = test.iter().filter(|e| e.user as usize >= n_users).map(|e| e.user).collect();
            let cold_items: HashSet<u32> = test.iter().filter(|e| e.item as usize >= n_items).map(|e| e.item).collect();
            if test.iter().all(|e| e.user as usize >= n_users) {
                return Err(DomainError::invalid(format!(
                    "{}: every test user is unknown to the training data: nothing to evaluate",
                    test_path.display()
                ))
                .into());
            }
            // Keep the test items' indices (cold ones count in |T| but can never be hit).
            Ok(Prepared {
                weight_col: String::new(),
                weight_warning: None,
                data,
                train,
                test,
                cold_users: cold_users.len(),
                cold_items: cold_items.len(),
            })
        }
    }
}

/// Transforms the training weights and checks them against ALS's `alpha`:
/// confidence is `1 + alpha·w`, so raw play counts in the thousands make a
/// few items dominate.
fn weigh(job: &RecommenderJob, p: &mut Prepared) {
    p.weight_col = p.data.weight_column.clone().unwrap_or_else(|| "none".into());
    let (n_users, n_items) = (p.data.users.len(), p.data.items.len());
    job.weight_transform.apply(&mut p.train, n_users, n_items);
    if job.algo != Algo::Als || p.train.is_empty() {
        return;
    }
    let mut w: Vec<f32> = p.train.iter().map(|e| e.weight).collect();
    let at = ((w.len() - 1) as f64 * 0.99) as usize;
    let (_, p99, _) = w.select_nth_unstable_by(at, f32::total_cmp);
    let confidence = 1.0 + job.als.alpha * *p99;
    if confidence > 100.0 {
        let msg = format!(
            "weights are large for alpha={}: 1% of interactions get a confidence above {confidence:.0} (weight column \
             '{}', transform {}); consider --weight-transform log1p or bm25, or a smaller --alpha",
            job.als.alpha,
            p.weight_col,
            job.weight_transform.name()
        );
        tracing::warn!("{msg}");
        p.weight_warning = Some(msg);
    }
}

/// The model holds only what it was trained on: users and items that appear
/// only in the held-out part get no place in it (no zero factors, so serving
/// gives such users the popularity fallback, flagged). In the test events
/// they keep indices past the model's, and are counted as cold.
fn keep_training_ids(data: Interactions, train: Vec<Event>, test: Vec<Event>) -> Prepared {
    let (mut in_train_u, mut in_train_i) = (vec![false; data.users.len()], vec![false; data.items.len()]);
    for e in &train {
        in_train_u[e.user as usize] = true;
        in_train_i[e.item as usize] = true;
    }
    let renumber = |keep: &[bool], ids: &IdMap| -> (IdMap, Vec<u32>) {
        let mut kept = IdMap::default();
        let mut new_index = vec![u32::MAX; keep.len()];
        for (i, _) in keep.iter().enumerate().filter(|(_, k)| **k) {
            new_index[i] = kept.intern(ids.id(i as u32));
        }
        (kept, new_index)
    };
    let (users, user_index) = renumber(&in_train_u, &data.users);
    let (items, item_index) = renumber(&in_train_i, &data.items);
    let train = train
        .into_iter()
        .map(|e| Event { user: user_index[e.user as usize], item: item_index[e.item as usize], ..e })
        .collect();
    let (mut cold_users, mut cold_items) = (HashMap::new(), HashMap::new());
    let (n_users, n_items) = (users.len() as u32, items.len() as u32);
    let test = test
        .into_iter()
        .map(|e| {
            let cold = |index: &[u32], cold: &mut HashMap<u32, u32>, n: u32, old: u32| match index[old as usize] {
                u32::MAX => {
                    let next = n + cold.len() as u32;
                    *cold.entry(old).or_insert(next)
                }
                i => i,
            };
            let user = cold(&user_index, &mut cold_users, n_users, e.user);
            let item = cold(&item_index, &mut cold_items, n_items, e.item);
            Event { user, item, ..e }
        })
        .collect();
    Prepared {
        weight_col: String::new(),
        weight_warning: None,
        data: Interactions { users, items, events: Vec::new(), weight_column: data.weight_column },
        train,
        test,
        cold_users: cold_users.len(),
        cold_items: cold_items.len(),
    }
}

struct Trained {
    model: RecModel,
    steps: Vec<Metric>,
    train_seconds: f64,
}

fn train_model(job: &RecommenderJob, p: &Prepared, progress: &Progress) -> Result<Trained> {
    let (n_users, n_items) = (p.data.users.len(), p.data.items.len());
    let matrix = Interactions::matrix(n_users, n_items, &p.train);
    let pop = popularity::train(&matrix);
    let mut steps = Vec::new();
    let start = Instant::now();
    let t0 = now_ms();
    let (engine, params) = match job.algo {
        Algo::Als => {
            let params = job.als;
            let total = params.iterations;
            let fs = als::train(&matrix, params, |it, loss| {
                steps.push(Metric::new("train_loss", loss, t0 + it as i64, it as i64));
                tracing::info!(iteration = it + 1, total, loss, "als");
                progress.step("als", it + 1, total)
            })
            .map_err(Error::from)?;
            let params = json!({"factors": params.factors, "iterations": params.iterations, "regularization": params.regularization, "alpha": params.alpha, "solver": params.solver.name(), "cg_steps": params.cg_steps, "seed": params.seed});
            (Engine::Factors(fs), params)
        }
        Algo::Bpr => {
            let params = job.bpr;
            let total = params.iterations;
            let fs = bpr::train(&matrix, params, |epoch, acc| {
                steps.push(Metric::new("train_ranking_accuracy", acc, t0 + epoch as i64, epoch as i64));
                if (epoch + 1) % 10 == 0 || epoch + 1 == total {
                    tracing::info!(epoch = epoch + 1, total, accuracy = acc, "bpr");
                }
                progress.step("bpr", epoch + 1, total)
            })
            .map_err(Error::from)?;
            let params = json!({"factors": params.factors, "iterations": params.iterations, "learning_rate": params.learning_rate, "regularization": params.regularization, "seed": params.seed});
            (Engine::Factors(fs), params)
        }
        Algo::ItemKnn => {
            progress.check("item-knn", 0, 1)?;
            let sim = knn::train(&matrix, job.neighbors).map_err(Error::from)?;
            progress.check("item-knn", 1, 1)?;
            (Engine::ItemKnn(sim), json!({"neighbors": job.neighbors}))
        }
        Algo::Popularity => (Engine::Popularity, json!({})),
    };
    let train_seconds = start.elapsed().as_secs_f64();
    let model = RecModel {
        algo: job.algo.name().to_string(),
        params,
        users: p.data.users.clone(),
        items: p.data.items.clone(),
        seen: matrix,
        popularity: pop,
        engine,
        scoring: None,
    };
    Ok(Trained { model, steps, train_seconds })
}

/// Ranking metrics at each K in `ks` over users with test items.
pub fn evaluate(
    model: &RecModel,
    test: &[Event],
    ks: &[usize],
    max_users: Option<usize>,
) -> (Vec<(String, f64)>, usize) {
    let mut relevant: HashMap<u32, HashSet<u32>> = HashMap::new();
    for e in test {
        if (e.user as usize) < model.users.len() {
            relevant.entry(e.user).or_default().insert(e.item);
        }
    }
    let mut users: Vec<u32> = relevant.keys().copied().collect();
    users.sort_unstable();
    if let Some(max) = max_users.filter(|m| *m > 0 && *m < users.len()) {
        let stride = users.len() as f64 / max as f64;
        users = (0..max).map(|i| users[(i as f64 * stride) as usize]).collect();
    }
    let max_k = ks.iter().copied().max().unwrap_or(10);
    let queries: Vec<Option<u32>> = users.iter().map(|u| Some(*u)).collect();
    let ranked = model.recommend_batch(&queries, max_k, true, &ItemFilter::default());
    let mut out = Vec::new();
    for &k in ks {
        let mut m = RankingMetrics::new(k);
        for (u, recs) in users.iter().zip(&ranked) {
            let ids: Vec<u32> = recs.iter().map(|r| r.0).collect();
            m.add(&ids, &relevant[u]);
        }
        out.extend(m.finish(model.n_items()));
    }
    (out, users.len())
}

/// Trains, evaluates, tracks and (optionally) registers a recommender.
pub async fn train_recommender(tracker: &dyn Tracker, job: RecommenderJob, progress: Progress) -> Result<TrainReport> {
    if job.k == 0 {
        return Err(DomainError::invalid("--k must be at least 1").into());
    }
    if let Some(name) = &job.register {
        plinth_core::validation::validate_model_name(name)?;
    }
    let mut tags = vec![Tag::new("plinth.task", "recommender"), Tag::new("plinth.algo", job.algo.name())];
    tags.push(Tag::new("mlflow.source.name", "plinth train recommender"));
    if job.split == Split::None && job.test_data.is_none() {
        tags.push(Tag::new("plinth.evaluation", "none: trained on all data (--split none); evaluate with --test-data"));
    }
    // The run starts when its work starts (reading the data), so its
    // duration is the training's; a failure on the way marks it FAILED.
    let (experiment_id, run_id) = tracker.start_run(&job.experiment, job.run_name.clone(), tags).await?;
    let run_job = job.clone();
    let outcome = async {
        let (prepared, trained, metrics, evaluated_users) = off_the_async_threads(job.threads, move || {
            let job = run_job;
            let mut prepared = prepare(&job)?;
            weigh(&job, &mut prepared);
            if prepared.train.is_empty() {
                return Err(DomainError::invalid("no training interactions left after the split").into());
            }
            let trained = train_model(&job, &prepared, &progress)?;
            if prepared.test.is_empty() {
                // `--split none` without `--test-data`: nothing held out.
                return Ok((prepared, trained, Vec::new(), 0));
            }
            let mut ks = vec![job.k];
            if job.k != 20 {
                ks.push(20);
            }
            progress.check("evaluate", 0, 1)?;
            let (metrics, users) = evaluate(&trained.model, &prepared.test, &ks, job.max_eval_users);
            progress.check("evaluate", 1, 1)?;
            if users == 0 {
                // Every held-out user is new to the model: no ranking to score.
                tracing::warn!("no held-out user is known to the model; nothing was evaluated");
                return Ok((prepared, trained, Vec::new(), 0));
            }
            Ok((prepared, trained, metrics, users))
        })
        .await?;
        let (stats, version) = record(tracker, &job, &run_id, &prepared, &trained, &metrics, evaluated_users).await?;
        Ok((trained.train_seconds, metrics, stats, version))
    }
    .await;
    let (train_seconds, metrics, stats, version) = close_run(tracker, &run_id, outcome).await?;
    let mut all = metrics;
    all.push(("train_seconds".into(), train_seconds));
    Ok(TrainReport {
        experiment_id,
        run_id,
        metrics: all,
        model_name: job.register.clone(),
        model_version: version,
        alias: None,
        stats,
    })
}

async fn record(
    tracker: &dyn Tracker,
    job: &RecommenderJob,
    run_id: &str,
    p: &Prepared,
    t: &Trained,
    metrics: &[(String, f64)],
    evaluated_users: usize,
) -> Result<(Value, Option<i64>)> {
    let mut params = vec![
        Param::new("algo", job.algo.name()),
        Param::new("data", job.data.display().to_string()),
        Param::new("k", job.k.to_string()),
        Param::new("seed", job.seed.to_string()),
    ];
    match &job.test_data {
        Some(t) => params.push(Param::new("test_data", t.display().to_string())),
        None => params.push(Param::new("split", job.split.name())),
    }
    params.push(Param::new("weight_col", p.weight_col.clone()));
    params.push(Param::new("weight_transform", job.weight_transform.name()));
    if let Some(obj) = t.model.params.as_object() {
        for (k, v) in obj {
            if k != "seed" {
                params.push(Param::new(k.clone(), param_value(v)));
            }
        }
    }
    let now = now_ms();
    let mut all: Vec<Metric> = t.steps.clone();
    all.extend(metrics.iter().map(|(k, v)| Metric::new(k.clone(), *v, now, 0)));
    all.push(Metric::new("train_seconds", t.train_seconds, now, 0));
    let mut stats = json!({
        "users": p.data.users.len(),
        "items": p.data.items.len(),
        "train_interactions": p.train.len(),
        "test_interactions": p.test.len(),
        "evaluated_users": evaluated_users,
        "cold_start_users": p.cold_users,
        "cold_start_items": p.cold_items,
    });
    for (k, v) in stats.as_object().into_iter().flatten() {
        all.push(Metric::new(k.clone(), v.as_f64().unwrap_or(0.0), now, 0));
    }
    tracker.log(run_id, all, params).await?;
    if let (Some(w), Some(obj)) = (&p.weight_warning, stats.as_object_mut()) {
        obj.insert("warning".into(), json!(w));
    }

    let file = tempfile::NamedTempFile::new().map_err(|e| Error::Internal(e.to_string()))?;
    t.model.save(file.path()).map_err(|e| Error::Internal(e.to_string()))?;
    let bytes = std::fs::read(file.path()).map_err(|e| Error::Internal(e.to_string()))?;
    tracker.upload(run_id, &format!("{MODEL_ARTIFACT_DIR}/{MODEL_FILE}"), Bytes::from(bytes)).await?;
    let details = json!({
        "format_version": plinth_ml::model::FORMAT_VERSION,
        "algo": job.algo.name(),
        "params": t.model.params,
        "metrics": metrics.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<_, _>>(),
        "data": stats,
    });
    let meta = ModelMeta { flavor: Flavor::Recommender, file: MODEL_FILE.into(), details: object(details) };
    tracker
        .upload(
            run_id,
            &format!("{MODEL_ARTIFACT_DIR}/{META_FILE}"),
            Bytes::from(meta.to_bytes().map_err(|e| Error::Internal(e.to_string()))?),
        )
        .await?;
    crate::pyfunc::write(tracker, run_id, crate::pyfunc::ModelKind::Recommender).await?;
    let version = match &job.register {
        Some(name) => Some(tracker.register(name, run_id, MODEL_ARTIFACT_DIR).await?),
        None => None,
    };
    Ok((stats, version))
}

/// A training request as data (CLI flags or an API body), with every default
/// in one place. `into_job` checks it.
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RecommenderSpec {
    pub data: String,
    pub test_data: Option<String>,
    pub format: Option<String>,
    pub user_col: Option<String>,
    pub item_col: Option<String>,
    pub weight_col: Option<String>,
    pub time_col: Option<String>,
    /// none (default), log1p or bm25.
    pub weight_transform: Option<String>,
    pub algo: String,
    pub factors: Option<usize>,
    pub iterations: Option<usize>,
    pub regularization: Option<f32>,
    pub alpha: Option<f32>,
    pub learning_rate: Option<f32>,
    pub neighbors: Option<usize>,
    /// ALS solver: cg (default) or cholesky.
    pub solver: Option<String>,
    pub seed: Option<u64>,
    pub threads: Option<usize>,
    pub split: Option<String>,
    pub k: Option<usize>,
    pub experiment: Option<String>,
    pub run_name: Option<String>,
    pub register: Option<String>,
    pub max_eval_users: Option<usize>,
}

impl RecommenderSpec {
    /// Checks the spec; `resolve` turns `data`/`test_data` into readable paths
    /// (the server confines them to its datasets directory).
    pub fn into_job(self, resolve: impl Fn(&str) -> Result<PathBuf>) -> Result<RecommenderJob> {
        let invalid = |m: String| -> Error { DomainError::invalid(m).into() };
        let algo = Algo::parse(&self.algo)?;
        let (delimiter, format) = match self.format.as_deref() {
            None => (None, Format::Auto),
            Some("csv") => (Some(b','), Format::Text),
            Some("tsv") => (Some(b'\t'), Format::Text),
            Some("parquet") => (None, Format::Parquet),
            Some(other) => return Err(invalid(format!("format {other}: expected csv, tsv or parquet"))),
        };
        let k = self.k.unwrap_or(10);
        if k == 0 {
            return Err(invalid("--k must be at least 1".into()));
        }
        if self.threads == Some(0) {
            return Err(invalid("--threads must be at least 1".into()));
        }
        let seed = self.seed.unwrap_or(42);
        let split = Split::parse(self.split.as_deref().unwrap_or("random:0.2")).map_err(Error::from)?;
        let als = AlsParams {
            factors: self.factors.unwrap_or(64),
            iterations: self.iterations.unwrap_or(15),
            regularization: self.regularization.unwrap_or(0.05),
            alpha: self.alpha.unwrap_or(1.0),
            solver: self.solver.as_deref().map(Solver::parse).transpose().map_err(Error::from)?.unwrap_or_default(),
            seed,
            ..AlsParams::default()
        };
        let bpr = BprParams {
            factors: self.factors.unwrap_or(64),
            iterations: self.iterations.unwrap_or(100),
            learning_rate: self.learning_rate.unwrap_or(0.01),
            regularization: self.regularization.unwrap_or(0.01),
            seed,
        };
        match algo {
            Algo::Als => {
                als.check().map_err(Error::from)?;
            }
            Algo::Bpr => {
                bpr.check().map_err(Error::from)?;
            }
            Algo::ItemKnn | Algo::Popularity => {}
        }
        let neighbors = self.neighbors.unwrap_or(100);
        if neighbors == 0 {
            return Err(invalid("neighbors must be at least 1".into()));
        }
        if let Some(name) = &self.register {
            plinth_core::validation::validate_model_name(name)?;
        }
        Ok(RecommenderJob {
            data: resolve(&self.data)?,
            test_data: self.test_data.as_deref().map(&resolve).transpose()?,
            read: ReadOptions {
                columns: plinth_ml::data::Columns {
                    user: self.user_col,
                    item: self.item_col,
                    weight: self.weight_col,
                    time: self.time_col,
                },
                delimiter,
                format,
            },
            algo,
            als,
            bpr,
            neighbors,
            weight_transform: self
                .weight_transform
                .as_deref()
                .map(WeightTransform::parse)
                .transpose()
                .map_err(Error::from)?
                .unwrap_or_default(),
            split,
            k,
            seed,
            threads: self.threads,
            experiment: self.experiment.unwrap_or_else(|| "recommenders".into()),
            run_name: self.run_name,
            register: self.register,
            max_eval_users: self.max_eval_users,
        })
    }
}
