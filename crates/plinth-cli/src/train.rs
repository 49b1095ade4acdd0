//! `plinth train recommender`: arguments → a checked job → the engine's use case.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use plinth_engine::recommenders::{RecommenderSpec, train_recommender};
use plinth_engine::tracking::{Progress, Tracker};

#[derive(Debug, clap::Args)]
pub struct RecommenderArgs {
    /// Interactions: CSV or TSV, with or without a header.
    #[arg(long)]
    data: PathBuf,
    /// Evaluate on this file instead of a split of --data.
    #[arg(long)]
    test_data: Option<PathBuf>,
    /// csv, tsv or parquet (detected when omitted: .parquet/.pq are Parquet).
    #[arg(long)]
    format: Option<String>,
    /// The user id column: a header name or a 0-based position (default: a column named user, user_id, userId…,
    /// else the first).
    #[arg(long)]
    user_col: Option<String>,
    /// The item id column: a header name or a 0-based position (default: item, item_id, movieId, artistId…, else
    /// the second).
    #[arg(long)]
    item_col: Option<String>,
    /// The weight column (name or position), or `none` for unit weights (default: a column named weight,
    /// rating, score, count, plays or value; without a header, the third). Recorded in the run's params.
    #[arg(long)]
    weight_col: Option<String>,
    /// Transform of the summed weights before training: none (default), log1p or bm25 (K1=100, B=0.8, as
    /// implicit's bm25_weight).
    #[arg(long)]
    weight_transform: Option<String>,
    /// The time column (name or position), or `none` (default: timestamp, time, ts, datetime, date; without a
    /// header, the fourth). Needed by the last: and time: splits.
    #[arg(long)]
    time_col: Option<String>,
    /// als, bpr, item-knn or popularity.
    #[arg(long)]
    algo: String,
    /// Latent factors (als, bpr; default 64).
    #[arg(long)]
    factors: Option<usize>,
    /// Training iterations: ALS sweeps (default 15) or BPR epochs (default 100).
    #[arg(long)]
    iterations: Option<usize>,
    /// L2 regularization (default 0.05 for als, 0.01 for bpr).
    #[arg(long, allow_hyphen_values = true)]
    regularization: Option<f32>,
    /// ALS confidence scale: confidence = 1 + alpha * weight (default 1.0).
    #[arg(long, allow_hyphen_values = true)]
    alpha: Option<f32>,
    /// BPR learning rate (default 0.01).
    #[arg(long, allow_hyphen_values = true)]
    learning_rate: Option<f32>,
    /// Neighbours kept per item (item-knn; default 100).
    #[arg(long)]
    neighbors: Option<usize>,
    /// ALS solver: cg (conjugate gradient, default) or cholesky (exact, slower).
    #[arg(long)]
    solver: Option<String>,
    /// Random seed (default 42).
    #[arg(long)]
    seed: Option<u64>,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// random:<fraction> per user, last:<n> per user by time, time:<fraction> globally, or none to train on
    /// everything (then evaluate only with --test-data) (default random:0.2).
    #[arg(long)]
    split: Option<String>,
    /// Cut-off of the ranking metrics (default 10; 20 is always reported too).
    #[arg(long)]
    k: Option<usize>,
    /// Experiment to track the run in (default "recommenders").
    #[arg(long)]
    experiment: Option<String>,
    /// Evaluate at most this many users (an even sample of those with test items).
    #[arg(long)]
    max_eval_users: Option<usize>,
    #[command(flatten)]
    run: RunFlags,
}

/// Where and how a training run is recorded; shared by every `plinth train`.
#[derive(Debug, clap::Args)]
pub struct RunFlags {
    /// The run's name (default: generated, as MLflow does).
    #[arg(long)]
    pub run_name: Option<String>,
    /// Register the trained model as a new version of this registered model.
    #[arg(long)]
    pub register: Option<String>,
    /// Point this alias (e.g. `champion`) of the registered model at the new version (needs --register).
    #[arg(long, requires = "register")]
    pub alias: Option<String>,
    /// Track on a running Plinth server instead of the local data dir.
    #[arg(long, env = "PLINTH_TRACKING_URI", conflicts_with = "data_dir")]
    pub tracking_uri: Option<String>,
    /// The embedded platform's data dir.
    #[arg(long, env = "PLINTH_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Print one JSON object (metrics, run and model ids) as the last line of stdout.
    #[arg(long)]
    pub json: bool,
}

impl RunFlags {
    /// After a registration: moves `--alias` to the new version.
    pub async fn apply_alias(
        &self,
        tracker: &dyn Tracker,
        report: &mut plinth_engine::tracking::TrainReport,
    ) -> anyhow::Result<()> {
        if let (Some(alias), Some(name), Some(version)) = (&self.alias, &report.model_name, report.model_version) {
            plinth_core::registry::validate_alias(alias)?;
            tracker.set_alias(name, alias, version).await.with_context(|| format!("cannot set @{alias}"))?;
            report.alias = Some(alias.clone());
        }
        Ok(())
    }

    /// Where the run is tracked: a running server, or the data dir.
    pub async fn tracker(&self) -> anyhow::Result<Box<dyn Tracker>> {
        Ok(match &self.tracking_uri {
            Some(uri) => Box::new(crate::remote::RemoteTracker::new(uri)?),
            None => {
                let dir = self.data_dir.clone().unwrap_or_else(|| PathBuf::from("plinth-data"));
                Box::new(crate::open_platform(&dir).await?)
            }
        })
    }
}

impl RecommenderArgs {
    /// The flags as the engine's request; it holds the defaults and the checks.
    fn spec(&self) -> RecommenderSpec {
        RecommenderSpec {
            data: self.data.display().to_string(),
            test_data: self.test_data.as_ref().map(|p| p.display().to_string()),
            format: self.format.clone(),
            user_col: self.user_col.clone(),
            item_col: self.item_col.clone(),
            weight_col: self.weight_col.clone(),
            weight_transform: self.weight_transform.clone(),
            time_col: self.time_col.clone(),
            algo: self.algo.clone(),
            factors: self.factors,
            iterations: self.iterations,
            regularization: self.regularization,
            alpha: self.alpha,
            learning_rate: self.learning_rate,
            neighbors: self.neighbors,
            solver: self.solver.clone(),
            seed: self.seed,
            threads: self.threads,
            split: self.split.clone(),
            k: self.k,
            experiment: self.experiment.clone(),
            run_name: self.run.run_name.clone(),
            register: self.run.register.clone(),
            max_eval_users: self.max_eval_users,
        }
    }
}

pub async fn recommender(args: RecommenderArgs) -> anyhow::Result<()> {
    let job = args.spec().into_job(|p| Ok(PathBuf::from(p)))?;
    let tracker = args.run.tracker().await?;
    let (progress, bar) = terminal_progress();
    let report = train_recommender(tracker.as_ref(), job, progress).await.context("training failed");
    finish(&bar);
    let mut report = report?;
    args.run.apply_alias(tracker.as_ref(), &mut report).await?;
    print_report(&report, args.run.json);
    Ok(())
}

pub(crate) type Bar = Arc<Mutex<Option<indicatif::ProgressBar>>>;

/// A progress bar on a terminal; nothing otherwise (the engine logs progress).
pub(crate) fn terminal_progress() -> (Progress, Bar) {
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(1);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} {elapsed}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let bar = Arc::new(Mutex::new(bar));
    let shown = bar.clone();
    let progress = Progress::new(move |stage: &str, done: usize, total: usize| {
        if let Ok(guard) = shown.lock()
            && let Some(b) = guard.as_ref()
        {
            b.set_message(stage.to_string());
            b.set_length(total as u64);
            b.set_position(done as u64);
        }
    });
    (progress, bar)
}

pub(crate) fn finish(bar: &Bar) {
    if let Ok(guard) = bar.lock()
        && let Some(b) = guard.as_ref()
    {
        b.finish_and_clear();
    }
}

pub(crate) fn print_report(report: &plinth_engine::tracking::TrainReport, json: bool) {
    if json {
        println!("{}", report.to_json());
    } else {
        println!("run {} (experiment {})", report.run_id, report.experiment_id);
        for (k, v) in &report.metrics {
            println!("  {k:<20} {v:.4}");
        }
        if let (Some(name), Some(v)) = (&report.model_name, report.model_version) {
            match &report.alias {
                Some(alias) => println!("registered {name} version {v} as @{alias}"),
                None => println!("registered {name} version {v}"),
            }
        }
    }
}
