//! `plinth train tabular`: arguments → a checked job → the engine's use case.

use std::path::PathBuf;

use anyhow::Context;
use plinth_engine::tabular::{TabularSpec, train_tabular};

use crate::train::{RunFlags, finish, print_report, terminal_progress};

#[derive(Debug, clap::Args)]
pub struct TabularArgs {
    /// Training data: CSV (with a header) or Parquet.
    #[arg(long)]
    data: PathBuf,
    /// Evaluate on this file instead of a split of --data.
    #[arg(long, conflicts_with = "split")]
    test_data: Option<PathBuf>,
    /// random:<fraction> (default random:0.2) or time:<column>:<fraction> (the latest rows).
    #[arg(long)]
    split: Option<String>,
    /// The column to predict.
    #[arg(long)]
    target: String,
    /// binary, multiclass or regression.
    #[arg(long)]
    task: String,
    /// Only these columns are features (comma-separated).
    #[arg(long, value_delimiter = ',', conflicts_with = "drop")]
    features: Option<Vec<String>>,
    /// Every column but the target and these is a feature.
    #[arg(long, value_delimiter = ',')]
    drop: Vec<String>,
    /// Read these columns as categories even if they hold numbers.
    #[arg(long, value_delimiter = ',')]
    categorical: Vec<String>,
    /// These columns must hold numbers (a value that is not is an error).
    #[arg(long, value_delimiter = ',')]
    numeric: Vec<String>,
    /// csv or parquet (detected from the extension when omitted).
    #[arg(long)]
    format: Option<String>,
    /// gbdt (gradient-boosted trees) or linear (ridge / logistic / multinomial
    /// regression; --rounds caps its solver iterations, --l2 its penalty).
    #[arg(long, default_value = "gbdt")]
    algo: String,
    /// Boosting rounds (gbdt, default 100), or the most solver iterations (linear, default 200).
    #[arg(long)]
    rounds: Option<usize>,
    /// Shrinkage of each tree (gbdt, default 0.1).
    #[arg(long)]
    learning_rate: Option<f64>,
    /// Deepest a tree may grow (0: no limit; default 0, leaves bound the size).
    #[arg(long)]
    max_depth: Option<usize>,
    /// Leaves per tree (default 31).
    #[arg(long)]
    max_leaves: Option<usize>,
    /// Rows a leaf must keep (default 20).
    #[arg(long)]
    min_leaf: Option<usize>,
    /// L2 penalty: on leaf values (gbdt, default 0) or on weights (linear, default 0.0001).
    #[arg(long)]
    l2: Option<f64>,
    /// Stop when the loss on a tenth of the training rows has not improved for N rounds.
    #[arg(long)]
    early_stopping: Option<usize>,
    /// Random seed of the split (default 42).
    #[arg(long)]
    seed: Option<u64>,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Experiment to track the run in (default "tabular").
    #[arg(long)]
    experiment: Option<String>,
    #[command(flatten)]
    run: RunFlags,
}

impl TabularArgs {
    /// The flags as the engine's request; it holds the defaults and the checks.
    fn spec(&self) -> TabularSpec {
        TabularSpec {
            data: self.data.display().to_string(),
            test_data: self.test_data.as_ref().map(|p| p.display().to_string()),
            split: self.split.clone(),
            target: self.target.clone(),
            task: self.task.clone(),
            features: self.features.clone(),
            drop: self.drop.clone(),
            categorical: self.categorical.clone(),
            numeric: self.numeric.clone(),
            format: self.format.clone(),
            algo: Some(self.algo.clone()),
            rounds: self.rounds,
            learning_rate: self.learning_rate,
            max_depth: self.max_depth,
            max_leaves: self.max_leaves,
            min_leaf: self.min_leaf,
            l2: self.l2,
            early_stopping: self.early_stopping,
            seed: self.seed,
            threads: self.threads,
            experiment: self.experiment.clone(),
            run_name: self.run.run_name.clone(),
            register: self.run.register.clone(),
        }
    }
}

pub async fn run(args: TabularArgs) -> anyhow::Result<()> {
    let job = args.spec().into_job(|p| Ok(PathBuf::from(p)))?;
    let tracker = args.run.tracker().await?;
    let (progress, bar) = terminal_progress();
    let report = train_tabular(tracker.as_ref(), job, progress).await.context("training failed");
    finish(&bar);
    let mut report = report?;
    args.run.apply_alias(tracker.as_ref(), &mut report).await?;
    print_report(&report, args.run.json);
    Ok(())
}
