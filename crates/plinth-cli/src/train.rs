//! `plinth train recommender`: arguments → a checked job → the engine's use case.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};
use plinth_engine::recommenders::{Algo, RecommenderJob, Tracker, train_recommender};
use plinth_ml::als::AlsParams;
use plinth_ml::bpr::BprParams;
use plinth_ml::data::{Columns, ReadOptions};
use plinth_ml::split::Split;
use serde_json::json;

#[derive(Debug, clap::Args)]
pub struct RecommenderArgs {
    /// Interactions: CSV or TSV, with or without a header.
    #[arg(long)]
    data: PathBuf,
    /// Evaluate on this file instead of a split of --data.
    #[arg(long)]
    test_data: Option<PathBuf>,
    /// csv or tsv (detected when omitted).
    #[arg(long)]
    format: Option<String>,
    #[arg(long)]
    user_col: Option<String>,
    #[arg(long)]
    item_col: Option<String>,
    #[arg(long)]
    weight_col: Option<String>,
    #[arg(long)]
    time_col: Option<String>,
    /// als, bpr, item-knn or popularity.
    #[arg(long)]
    algo: String,
    #[arg(long)]
    factors: Option<usize>,
    #[arg(long)]
    iterations: Option<usize>,
    #[arg(long, allow_hyphen_values = true)]
    regularization: Option<f32>,
    #[arg(long, allow_hyphen_values = true)]
    alpha: Option<f32>,
    #[arg(long, allow_hyphen_values = true)]
    learning_rate: Option<f32>,
    #[arg(long, default_value_t = 100)]
    neighbors: usize,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// random:<fraction> per user, last:<n> per user by time, or time:<fraction> globally.
    #[arg(long, default_value = "random:0.2")]
    split: String,
    #[arg(long, default_value_t = 10)]
    k: usize,
    #[arg(long, default_value = "recommenders")]
    experiment: String,
    #[arg(long)]
    run_name: Option<String>,
    /// Register the trained model as a new version of this registered model.
    #[arg(long)]
    register: Option<String>,
    /// Track on a running Plinth server instead of the local data dir.
    #[arg(long, env = "PLINTH_TRACKING_URI", conflicts_with = "data_dir")]
    tracking_uri: Option<String>,
    /// The embedded platform's data dir.
    #[arg(long, env = "PLINTH_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Evaluate at most this many users (an even sample of those with test items).
    #[arg(long)]
    max_eval_users: Option<usize>,
    /// Print one JSON object (metrics, run and model ids) as the last line of stdout.
    #[arg(long)]
    json: bool,
}

impl RecommenderArgs {
    fn job(&self) -> anyhow::Result<RecommenderJob> {
        let algo = Algo::parse(&self.algo)?;
        let delimiter = match self.format.as_deref() {
            None => None,
            Some("csv") => Some(b','),
            Some("tsv") => Some(b'\t'),
            Some("parquet") => bail!("--format parquet: Parquet input is not supported yet; convert to CSV or TSV"),
            Some(other) => bail!("--format {other}: expected csv or tsv"),
        };
        if self.k == 0 {
            bail!("--k must be at least 1");
        }
        if self.threads == Some(0) {
            bail!("--threads must be at least 1");
        }
        let split = Split::parse(&self.split)?;
        let als = AlsParams {
            factors: self.factors.unwrap_or(64),
            iterations: self.iterations.unwrap_or(15),
            regularization: self.regularization.unwrap_or(0.05),
            alpha: self.alpha.unwrap_or(1.0),
            seed: self.seed,
            ..AlsParams::default()
        };
        let bpr = BprParams {
            factors: self.factors.unwrap_or(64),
            iterations: self.iterations.unwrap_or(100),
            learning_rate: self.learning_rate.unwrap_or(0.01),
            regularization: self.regularization.unwrap_or(0.01),
            seed: self.seed,
        };
        match algo {
            Algo::Als => {
                als.check()?;
            }
            Algo::Bpr => {
                bpr.check()?;
            }
            _ => {}
        }
        Ok(RecommenderJob {
            data: self.data.clone(),
            test_data: self.test_data.clone(),
            read: ReadOptions {
                columns: Columns {
                    user: self.user_col.clone(),
                    item: self.item_col.clone(),
                    weight: self.weight_col.clone(),
                    time: self.time_col.clone(),
                },
                delimiter,
            },
            algo,
            als,
            bpr,
            neighbors: self.neighbors,
            split,
            k: self.k,
            seed: self.seed,
            threads: self.threads,
            experiment: self.experiment.clone(),
            run_name: self.run_name.clone(),
            register: self.register.clone(),
            max_eval_users: self.max_eval_users,
        })
    }
}

pub async fn recommender(args: RecommenderArgs) -> anyhow::Result<()> {
    let job = args.job()?;
    let tracker: Box<dyn Tracker> = match &args.tracking_uri {
        Some(uri) => Box::new(crate::remote::RemoteTracker::new(uri)?),
        None => {
            let dir = args.data_dir.clone().unwrap_or_else(|| PathBuf::from("plinth-data"));
            Box::new(crate::open_platform(&dir).await?)
        }
    };
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
    let progress = move |stage: &str, done: usize, total: usize| {
        if let Ok(guard) = shown.lock()
            && let Some(b) = guard.as_ref()
        {
            b.set_message(stage.to_string());
            b.set_length(total as u64);
            b.set_position(done as u64);
        }
    };
    let report = train_recommender(tracker.as_ref(), job, &progress).await.context("training failed")?;
    if let Ok(guard) = bar.lock()
        && let Some(b) = guard.as_ref()
    {
        b.finish_and_clear();
    }
    let metrics: serde_json::Map<String, serde_json::Value> =
        report.metrics.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    if args.json {
        let out = json!({
            "experiment_id": report.experiment_id,
            "run_id": report.run_id,
            "model_name": report.model_name,
            "model_version": report.model_version.map(|v| v.to_string()),
            "metrics": metrics,
            "data": report.stats,
        });
        println!("{out}");
    } else {
        println!("run {} (experiment {})", report.run_id, report.experiment_id);
        for (k, v) in &report.metrics {
            println!("  {k:<20} {v:.4}");
        }
        if let (Some(name), Some(v)) = (&report.model_name, report.model_version) {
            println!("registered {name} version {v}");
        }
    }
    Ok(())
}
