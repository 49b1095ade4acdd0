//! The tabular use case: read a CSV/Parquet table, split it (or read a test
//! file), fit the encoding, train a GBDT, evaluate on the test rows, track
//! the run (params, metrics, a per-round validation curve, feature
//! importance), store the model with its encoding, optionally register it.
//! Tracking goes through the shared [`Tracker`], so it runs against
//! the embedded platform or a remote server alike.

use std::path::PathBuf;
use std::time::Instant;

use bytes::Bytes;
use plinth_core::Error as DomainError;
use plinth_core::experiments::Tag;
use plinth_core::ids::now_ms;
use plinth_core::model_dir::{Flavor, META_FILE, ModelMeta};
use plinth_core::runs::{Metric, Param};
use plinth_ml::tabular::gbdt::{Gbdt, GbdtParams, Objective};
use plinth_ml::tabular::linear::{Linear, LinearParams};
use plinth_ml::tabular::metrics;
use plinth_ml::tabular::model::{TabularFile, TabularModel};
use plinth_ml::tabular::prepare::{Encoded, Feature, Schema, Selection, Task, check_target};
use plinth_ml::tabular::split;
use plinth_ml::tabular::table::{Table, TableOptions, read_table};
use serde_json::{Value, json};

use crate::plots;
use crate::tracking::{MODEL_ARTIFACT_DIR, Progress, Tracker, TrainReport, close_run, off_the_async_threads};
use crate::{Error, Result};

pub const MODEL_FILE: &str = "model.json";

/// How the test rows are chosen when there is no test file.
#[derive(Debug, Clone, PartialEq)]
pub enum TabularSplit {
    Random(f64),
    /// The latest fraction of rows by this column.
    Time(String, f64),
}

impl TabularSplit {
    /// `random:0.2` or `time:COLUMN:0.2`.
    pub fn parse(s: &str) -> Result<TabularSplit> {
        let bad = || {
            Error::from(DomainError::invalid(format!("bad split '{s}': random:<fraction> or time:<column>:<fraction>")))
        };
        let fraction = |f: &str| f.parse::<f64>().ok().filter(|f| *f > 0.0 && *f < 1.0).ok_or_else(bad);
        match s.split(':').collect::<Vec<_>>().as_slice() {
            ["random", f] => Ok(TabularSplit::Random(fraction(f)?)),
            ["time", col, f] if !col.is_empty() => Ok(TabularSplit::Time(col.to_string(), fraction(f)?)),
            _ => Err(bad()),
        }
    }
}

/// The engine and its settings.
#[derive(Debug, Clone, PartialEq)]
pub enum Algo {
    Gbdt(GbdtParams),
    Linear(LinearParams),
}

impl Algo {
    pub fn name(&self) -> &'static str {
        match self {
            Algo::Gbdt(_) => "gbdt",
            Algo::Linear(_) => "linear",
        }
    }
}

#[derive(Debug, Clone)]
pub struct TabularJob {
    pub data: PathBuf,
    pub test_data: Option<PathBuf>,
    pub split: TabularSplit,
    pub target: String,
    pub task: Task,
    pub selection: Selection,
    pub table: TableOptions,
    pub algo: Algo,
    /// Stop when the loss on a tenth of the training rows (held out) has not
    /// improved for this many rounds.
    pub early_stopping: Option<usize>,
    pub seed: u64,
    pub threads: Option<usize>,
    pub experiment: String,
    pub run_name: Option<String>,
    pub register: Option<String>,
}

/// A training request as data (CLI flags or an API body), with every
/// default in one place. `into_job` checks it; `resolve` turns data paths
/// into files (the server confines them to its datasets directory).
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct TabularSpec {
    pub data: String,
    pub test_data: Option<String>,
    pub split: Option<String>,
    pub target: String,
    pub task: String,
    pub features: Option<Vec<String>>,
    #[serde(default)]
    pub drop: Vec<String>,
    #[serde(default)]
    pub categorical: Vec<String>,
    #[serde(default)]
    pub numeric: Vec<String>,
    pub format: Option<String>,
    pub algo: Option<String>,
    pub rounds: Option<usize>,
    pub learning_rate: Option<f64>,
    pub max_depth: Option<usize>,
    pub max_leaves: Option<usize>,
    pub min_leaf: Option<usize>,
    pub l2: Option<f64>,
    pub early_stopping: Option<usize>,
    pub seed: Option<u64>,
    pub threads: Option<usize>,
    pub experiment: Option<String>,
    pub run_name: Option<String>,
    pub register: Option<String>,
}

impl TabularSpec {
    pub fn into_job(self, resolve: impl Fn(&str) -> Result<PathBuf>) -> Result<TabularJob> {
        let invalid = |m: String| Error::from(DomainError::invalid(m));
        let algo = match self.algo.as_deref().unwrap_or("gbdt") {
            "gbdt" => {
                let defaults = GbdtParams::default();
                let params = GbdtParams {
                    rounds: self.rounds.unwrap_or(defaults.rounds),
                    learning_rate: self.learning_rate.unwrap_or(defaults.learning_rate),
                    max_leaves: self.max_leaves.unwrap_or(defaults.max_leaves),
                    max_depth: self.max_depth.unwrap_or(defaults.max_depth),
                    min_leaf: self.min_leaf.unwrap_or(defaults.min_leaf),
                    l2: self.l2.unwrap_or(defaults.l2),
                    ..defaults
                };
                params.check().map_err(Error::from)?;
                Algo::Gbdt(params)
            }
            "linear" => {
                let tree_only = [
                    ("learning rate", self.learning_rate.is_some()),
                    ("max depth", self.max_depth.is_some()),
                    ("max leaves", self.max_leaves.is_some()),
                    ("min leaf", self.min_leaf.is_some()),
                    ("early stopping", self.early_stopping.is_some()),
                ];
                if let Some((name, _)) = tree_only.iter().find(|(_, given)| *given) {
                    return Err(invalid(format!("{name} applies to gbdt, not to linear models")));
                }
                let defaults = LinearParams::default();
                let params = LinearParams {
                    l2: self.l2.unwrap_or(defaults.l2),
                    max_iterations: self.rounds.unwrap_or(defaults.max_iterations),
                };
                if !(params.l2.is_finite() && params.l2 >= 0.0) || params.max_iterations == 0 {
                    return Err(invalid("l2 must be finite and >= 0, and rounds (iterations) at least 1".into()));
                }
                Algo::Linear(params)
            }
            other => return Err(invalid(format!("unknown algorithm '{other}': gbdt or linear"))),
        };
        if self.test_data.is_some() && self.split.is_some() {
            return Err(invalid("give either a test file or a split, not both".into()));
        }
        if self.features.is_some() && !self.drop.is_empty() {
            return Err(invalid("give either the features to use or the columns to drop, not both".into()));
        }
        let format = match self.format.as_deref() {
            None => plinth_ml::data::Format::Auto,
            Some("csv" | "tsv" | "text") => plinth_ml::data::Format::Text,
            Some("parquet") => plinth_ml::data::Format::Parquet,
            Some(other) => return Err(invalid(format!("unknown format '{other}': csv or parquet"))),
        };
        if self.early_stopping == Some(0) {
            return Err(invalid("early stopping needs a patience of at least 1 round".into()));
        }
        Ok(TabularJob {
            data: resolve(&self.data)?,
            test_data: self.test_data.as_deref().map(&resolve).transpose()?,
            split: TabularSplit::parse(self.split.as_deref().unwrap_or("random:0.2"))?,
            target: self.target,
            task: self.task.parse::<Task>().map_err(Error::from)?,
            selection: Selection { only: self.features, drop: self.drop },
            table: TableOptions { format, delimiter: None, categorical: self.categorical, numeric: self.numeric },
            algo,
            early_stopping: self.early_stopping,
            seed: self.seed.unwrap_or(42),
            threads: self.threads,
            experiment: self.experiment.unwrap_or_else(|| "tabular".into()),
            run_name: self.run_name,
            register: self.register,
        })
    }
}

struct Trained {
    schema: Schema,
    model: TabularModel,
    train_rows: usize,
    test_rows: usize,
    unseen: Vec<(String, usize)>,
    metrics: Vec<(String, f64)>,
    curve: Vec<Metric>,
    train_seconds: f64,
    /// (artifact name, SVG): the confusion matrix or the residual plot.
    plot: (&'static str, String),
    confusion: Option<Vec<Vec<u64>>>,
    /// GBDT rounds run (with early stopping, more than the rounds kept).
    rounds_run: Option<usize>,
}

fn objective(schema: &Schema) -> Objective {
    match schema.task {
        Task::Regression => Objective::Squared,
        Task::Binary => Objective::Logistic,
        Task::Multiclass => Objective::Softmax { classes: schema.classes.len() },
    }
}

/// The test metrics of predictions `p` (values, P(class 1), or class
/// probabilities row-major).
pub fn evaluate(task: Task, classes: usize, y: &[f64], p: &[f64]) -> Vec<(String, f64)> {
    match task {
        Task::Regression => {
            let mut m = vec![("rmse".into(), metrics::rmse(y, p)), ("mae".into(), metrics::mae(y, p))];
            if let Some(r2) = metrics::r2(y, p) {
                m.push(("r2".into(), r2));
            }
            m
        }
        Task::Binary => {
            let labels: Vec<f64> = p.iter().map(|&q| (q >= 0.5) as u8 as f64).collect();
            let mut m = vec![
                ("logloss".into(), metrics::logloss_binary(y, p)),
                ("accuracy".into(), metrics::accuracy(y, &labels)),
                ("f1".into(), metrics::f1(y, &labels, 1.0)),
            ];
            if let Some(auc) = metrics::auc(y, p) {
                m.insert(0, ("auc".into(), auc));
            }
            m
        }
        Task::Multiclass => {
            let labels: Vec<f64> = p
                .chunks(classes)
                .map(|r| r.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map_or(0.0, |(c, _)| c as f64))
                .collect();
            vec![
                ("accuracy".into(), metrics::accuracy(y, &labels)),
                ("logloss".into(), metrics::logloss_multiclass(y, p, classes)),
                ("macro_f1".into(), metrics::macro_f1(y, &labels, classes)),
            ]
        }
    }
}

/// The validation loss after each round (`valid_logloss` or `valid_rmse`),
/// from the trees added round by round.
fn curve(model: &Gbdt, test: &Encoded) -> Vec<Metric> {
    let k = model.objective.outputs();
    let f = model.features;
    let mut raw: Vec<f64> = (0..test.rows).flat_map(|_| model.base.iter().copied()).collect();
    let (name, t0) =
        (if k == 1 && model.objective == Objective::Squared { "valid_rmse" } else { "valid_logloss" }, now_ms());
    let mut out = Vec::new();
    for (round, trees) in model.trees.chunks(k).enumerate() {
        for (i, row) in test.x.chunks(f).enumerate() {
            for (j, tree) in trees.iter().enumerate() {
                raw[i * k + j] += tree.predict(row);
            }
        }
        let value = model.objective.loss(&test.y, &raw);
        out.push(Metric::new(name, value, t0 + round as i64, round as i64 + 1));
    }
    out
}

fn train_blocking(job: &TabularJob, progress: &Progress) -> Result<Trained> {
    progress.check("read", 0, 1)?;
    let table = read_table(&job.data, &job.table).map_err(Error::from)?;
    check_target(&table, &job.target, job.task).map_err(Error::from)?;
    let (train, test): (Table, Table) = match &job.test_data {
        Some(path) => (table, read_table(path, &job.table).map_err(Error::from)?),
        None => match &job.split {
            TabularSplit::Random(f) => split::random(&table, *f, job.seed).map_err(Error::from)?,
            TabularSplit::Time(col, f) => split::by_time(&table, col, *f).map_err(Error::from)?,
        },
    };
    progress.check("read", 1, 1)?;
    let schema = Schema::fit(&train, &job.target, job.task, &job.selection).map_err(Error::from)?;
    // Early stopping watches rows held out of training, never the test rows.
    let (train, valid) = match job.early_stopping {
        Some(_) => {
            let (fit, valid) = split::random(&train, 0.1, job.seed.wrapping_add(1)).map_err(Error::from)?;
            (fit, Some(schema.encode(&valid, true).map_err(Error::from)?))
        }
        None => (train, None),
    };
    let train_rows = schema.encode(&train, true).map_err(Error::from)?;
    let test_rows = schema.encode(&test, true).map_err(Error::from)?;
    let start = Instant::now();
    let features = schema.features.len();
    let mut rounds_run = None;
    let (model, curve) = match &job.algo {
        Algo::Gbdt(params) => {
            let rounds = params.rounds;
            let mut last = 0;
            let watch =
                valid.as_ref().zip(job.early_stopping).map(|(v, patience)| (v.x.as_slice(), v.y.as_slice(), patience));
            let model = Gbdt::train_with_validation(
                &train_rows.x,
                train_rows.rows,
                features,
                &train_rows.y,
                objective(&schema),
                params,
                watch,
                &mut |r| {
                    last = r;
                    if r % 50 == 0 || r == rounds {
                        tracing::info!(round = r, rounds, "gbdt");
                    }
                    progress.step("gbdt", r, rounds)
                },
            )
            .map_err(Error::from)?;
            rounds_run = Some(last);
            let kept = model.trees.len() / model.objective.outputs();
            if job.early_stopping.is_some() {
                tracing::info!(
                    rounds_run = last,
                    best_round = kept,
                    "early stopping: kept the rounds up to the best one"
                );
            }
            let curve = curve(&model, &test_rows);
            (TabularModel::Gbdt(model), curve)
        }
        Algo::Linear(params) => {
            let levels: Vec<Option<usize>> = schema
                .features
                .iter()
                .map(|f| match f {
                    Feature::Categorical { levels, .. } => Some(levels.len()),
                    Feature::Numeric { .. } => None,
                })
                .collect();
            // The training loss after each solver iteration, as the curve.
            let (mut curve, t0, limit) = (Vec::new(), now_ms(), params.max_iterations);
            let model = Linear::train(
                &train_rows.x,
                train_rows.rows,
                features,
                &levels,
                &train_rows.y,
                objective(&schema),
                params,
                &mut |i, loss| {
                    curve.push(Metric::new("train_loss", loss, t0 + i as i64, i as i64));
                    progress.step("linear", i, limit)
                },
            )
            .map_err(Error::from)?;
            progress.check("linear", limit, limit)?;
            (TabularModel::Linear(model), curve)
        }
    };
    let train_seconds = start.elapsed().as_secs_f64();
    let p = model.predict(&test_rows.x, test_rows.rows);
    let mut metrics = evaluate(job.task, schema.classes.len(), &test_rows.y, &p);
    metrics.push(("train_seconds".into(), train_seconds));
    let (plot, confusion) = match job.task {
        Task::Regression => (("residuals.svg", plots::residuals_svg(&test_rows.y, &p)), None),
        Task::Binary | Task::Multiclass => {
            let k = schema.classes.len();
            let labels: Vec<f64> = if job.task == Task::Binary {
                p.iter().map(|&q| (q >= 0.5) as u8 as f64).collect()
            } else {
                p.chunks(k)
                    .map(|r| r.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map_or(0.0, |(c, _)| c as f64))
                    .collect()
            };
            let m = plots::confusion(&test_rows.y, &labels, k);
            (("confusion_matrix.svg", plots::confusion_svg(&m, &schema.classes)), Some(m))
        }
    };
    Ok(Trained {
        rounds_run,
        plot,
        confusion,
        train_rows: train_rows.rows,
        test_rows: test_rows.rows,
        unseen: test_rows.unseen,
        schema,
        model,
        metrics,
        curve,
        train_seconds,
    })
}

/// Trains, evaluates, tracks and (optionally) registers a tabular model.
pub async fn train_tabular(tracker: &dyn Tracker, job: TabularJob, progress: Progress) -> Result<TrainReport> {
    if let Some(name) = &job.register {
        plinth_core::validation::validate_model_name(name)?;
    }
    if let Algo::Gbdt(params) = &job.algo {
        params.check().map_err(Error::from)?;
    }
    let run_job = job.clone();
    let trained = off_the_async_threads(job.threads, move || train_blocking(&run_job, &progress)).await?;
    let tags = vec![
        Tag::new("plinth.task", "tabular"),
        Tag::new("plinth.algo", job.algo.name()),
        Tag::new("mlflow.source.name", "plinth train tabular"),
    ];
    let (experiment_id, run_id) = tracker.start_run(&job.experiment, job.run_name.clone(), tags).await?;
    let outcome = record(tracker, &job, &run_id, &trained).await;
    let (stats, version) = close_run(tracker, &run_id, outcome).await?;
    Ok(TrainReport {
        experiment_id,
        run_id,
        metrics: trained.metrics.clone(),
        model_name: job.register.clone(),
        model_version: version,
        alias: None,
        stats,
    })
}

async fn record(tracker: &dyn Tracker, job: &TabularJob, run_id: &str, t: &Trained) -> Result<(Value, Option<i64>)> {
    let mut params = vec![
        Param::new("algo", job.algo.name()),
        Param::new("task", format!("{:?}", job.task).to_lowercase()),
        Param::new("target", job.target.clone()),
        Param::new("data", job.data.display().to_string()),
        Param::new("seed", job.seed.to_string()),
        Param::new("features", t.schema.features.len().to_string()),
    ];
    match &job.algo {
        Algo::Gbdt(p) => params.extend([
            Param::new("rounds", p.rounds.to_string()),
            Param::new("learning_rate", p.learning_rate.to_string()),
            Param::new("max_leaves", p.max_leaves.to_string()),
            Param::new("max_depth", p.max_depth.to_string()),
            Param::new("min_leaf", p.min_leaf.to_string()),
            Param::new("l2", p.l2.to_string()),
            Param::new("max_bins", p.max_bins.to_string()),
            Param::new("early_stopping", job.early_stopping.map_or("none".to_string(), |p| p.to_string())),
        ]),
        Algo::Linear(p) => params
            .extend([Param::new("l2", p.l2.to_string()), Param::new("max_iterations", p.max_iterations.to_string())]),
    }
    match &job.test_data {
        Some(path) => params.push(Param::new("test_data", path.display().to_string())),
        None => params.push(Param::new(
            "split",
            match &job.split {
                TabularSplit::Random(f) => format!("random:{f}"),
                TabularSplit::Time(c, f) => format!("time:{c}:{f}"),
            },
        )),
    }
    let now = now_ms();
    let mut all = t.curve.clone();
    all.extend(t.metrics.iter().map(|(k, v)| Metric::new(k.clone(), *v, now, 0)));
    let unseen: usize = t.unseen.iter().map(|u| u.1).sum();
    let stats = json!({
        "train_rows": t.train_rows,
        "test_rows": t.test_rows,
        "features": t.schema.features.len(),
        "unseen_categories": unseen,
    });
    let mut stats = stats;
    match &t.model {
        TabularModel::Gbdt(m) => {
            let kept = m.trees.len() / m.objective.outputs();
            stats["rounds_trained"] = json!(kept);
            if job.early_stopping.is_some() {
                // Where it stopped, and which round it kept (the best on the held-out rows).
                stats["rounds_run"] = json!(t.rounds_run.unwrap_or(kept));
                stats["best_round"] = json!(kept);
            }
        }
        TabularModel::Linear(_) => stats["iterations"] = json!(t.curve.len()),
    }
    for (k, v) in stats.as_object().into_iter().flatten() {
        all.push(Metric::new(k.clone(), v.as_f64().unwrap_or(0.0), now, 0));
    }
    tracker.log(run_id, all, params).await?;

    let (measure, values) = t.model.importance();
    let mut importance: Vec<(String, f64)> =
        t.schema.features.iter().map(|f| f.name().to_string()).zip(values).collect();
    importance.sort_by(|a, b| b.1.total_cmp(&a.1));
    let importance_json = json!(importance.iter().map(|(f, g)| json!({"feature": f, measure: g})).collect::<Vec<_>>());
    tracker.upload(run_id, "feature_importance.json", Bytes::from(importance_json.to_string())).await?;
    tracker.upload(run_id, t.plot.0, Bytes::from(t.plot.1.clone())).await?;
    if let Some(m) = &t.confusion {
        let doc = json!({"classes": t.schema.classes, "actual_by_predicted": m});
        tracker.upload(run_id, "confusion_matrix.json", Bytes::from(doc.to_string())).await?;
    }
    let model = TabularFile { schema: t.schema.clone(), model: t.model.clone() };
    let model = serde_json::to_vec(&model).map_err(|e| Error::Internal(e.to_string()))?;
    tracker.upload(run_id, &format!("{MODEL_ARTIFACT_DIR}/{MODEL_FILE}"), Bytes::from(model)).await?;
    let details = json!({
        "algo": t.model.algo(),
        "task": t.schema.task,
        "target": t.schema.target,
        "features": t.schema.features.iter().map(|f| f.name()).collect::<Vec<_>>(),
        "classes": t.schema.classes,
        "metrics": t.metrics.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<_, _>>(),
        "train_seconds": t.train_seconds,
    });
    let details = crate::tracking::object(details);
    let meta = ModelMeta { flavor: Flavor::Tabular, file: MODEL_FILE.into(), details };
    tracker
        .upload(
            run_id,
            &format!("{MODEL_ARTIFACT_DIR}/{META_FILE}"),
            Bytes::from(meta.to_bytes().map_err(|e| Error::Internal(e.to_string()))?),
        )
        .await?;
    crate::pyfunc::write(tracker, run_id, crate::pyfunc::ModelKind::Tabular).await?;
    let version = match &job.register {
        Some(name) => Some(tracker.register(name, run_id, MODEL_ARTIFACT_DIR).await?),
        None => None,
    };
    Ok((stats, version))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_parse_and_bad_ones_are_refused() {
        assert_eq!(TabularSplit::parse("random:0.25").unwrap(), TabularSplit::Random(0.25));
        assert_eq!(TabularSplit::parse("time:date:0.1").unwrap(), TabularSplit::Time("date".into(), 0.1));
        for bad in ["random", "random:1.5", "time::0.2", "time:d", "last:3"] {
            assert!(TabularSplit::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn metrics_per_task_use_mlflow_names() {
        let names = |m: Vec<(String, f64)>| m.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
        assert_eq!(names(evaluate(Task::Binary, 2, &[0.0, 1.0], &[0.2, 0.7])), ["auc", "logloss", "accuracy", "f1"]);
        assert_eq!(
            names(evaluate(Task::Multiclass, 3, &[0.0, 2.0], &[0.8, 0.1, 0.1, 0.1, 0.1, 0.8])),
            ["accuracy", "logloss", "macro_f1"]
        );
        assert_eq!(names(evaluate(Task::Regression, 0, &[1.0, 2.0], &[1.5, 2.5])), ["rmse", "mae", "r2"]);
    }
}
