//! `plinth import`: register a model trained elsewhere so Plinth serves it.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use plinth_engine::imports::import_lightgbm;

use crate::train::{RunFlags, print_report};

#[derive(Subcommand)]
pub enum ImportCommand {
    /// A LightGBM model in its text format (Booster.save_model); served natively, matching LightGBM's predictions.
    Lightgbm(LightgbmArgs),
}

#[derive(Args)]
pub struct LightgbmArgs {
    /// The model file.
    file: PathBuf,
    /// Experiment to track the import in (default "imports").
    #[arg(long)]
    experiment: Option<String>,
    #[command(flatten)]
    run: RunFlags,
}

pub async fn run(cmd: ImportCommand) -> anyhow::Result<()> {
    let ImportCommand::Lightgbm(args) = cmd;
    let tracker = args.run.tracker().await?;
    let experiment = args.experiment.as_deref().unwrap_or("imports");
    let mut report =
        import_lightgbm(tracker.as_ref(), &args.file, experiment, args.run.run_name.clone(), args.run.register.clone())
            .await
            .context("import failed")?;
    args.run.apply_alias(tracker.as_ref(), &mut report).await?;
    print_report(&report, args.run.json);
    Ok(())
}
