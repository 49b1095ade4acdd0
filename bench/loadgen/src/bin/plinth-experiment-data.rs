//! Writes a simulated online experiment into a data dir's exposure store
//! for `bench/analysis.sh`, through the same segment writer the server uses
//! (`plinth_serving`'s logs, so the layout and encoding are the server's):
//! `--units` units split 50/50 between variants `a` and `b` of
//! `--deployment`, each first exposed between 48 and 24 hours ago (an
//! exposure showing ten titles; 0.1% of them failed), with
//! `--exposures` exposures and `--events` events in all (`play` with minutes
//! watched, 80%, and `click`). Event times fall within a day either side of
//! the unit's first exposure; a unit's minutes follow its own propensity
//! (so CUPED has something to remove) and `b` lifts them after exposure by
//! `--effect`. Every event has an id, and 1% are stored twice (retries); half
//! name the deployment and half name none (its workspace's). Not a test.

use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use plinth_artifacts::ArtifactStore;
use plinth_serving::events::{Event, EventLog, unscoped};
use plinth_serving::segments::SegmentConfig;
use plinth_serving::{Exposure, ExposureLog};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

#[derive(Parser)]
struct Args {
    /// The exposure store: `<data-dir>/exposures`.
    #[arg(long)]
    dir: std::path::PathBuf,
    #[arg(long, default_value = "bench")]
    deployment: String,
    #[arg(long, default_value_t = 2_000_000)]
    units: u64,
    #[arg(long, default_value_t = 10_000_000)]
    exposures: u64,
    #[arg(long, default_value_t = 50_000_000)]
    events: u64,
    #[arg(long, default_value_t = 0.02)]
    effect: f64,
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

const HOUR: i64 = 3_600_000;
/// Records handed to the writer between flushes (each flush writes a segment per hour and partition).
const CHUNK: usize = 2_000_000;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    std::fs::create_dir_all(&args.dir)?;
    let store = ArtifactStore::local(&args.dir).context("opening the exposure store")?;
    let config = SegmentConfig { store, retention: Duration::from_secs(30 * 24 * 3600) };
    let exposure_log = ExposureLog::open(config.clone());
    let event_log = EventLog::open(config);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as i64;
    let mut rng = StdRng::seed_from_u64(args.seed);
    let (mut exposures, mut events) = (Vec::new(), Vec::new());
    let (mut written_exposures, mut written_events) = (0u64, 0u64);
    let per_unit_exposures = args.exposures as f64 / args.units as f64;
    let per_unit_events = args.events as f64 / args.units as f64 / 1.01;
    let unscoped = unscoped("default");
    for u in 0..args.units {
        let unit = format!("user-{u}");
        let treated = rng.random::<f64>() < 0.5;
        let variant = if treated { "b" } else { "a" };
        let first = now - 48 * HOUR + (rng.random::<f64>() * 24.0 * HOUR as f64) as i64;
        // Whole counts whose mean is the target: floor plus a coin for the fraction.
        let count = |rng: &mut StdRng, mean: f64| {
            let m = mean * 2.0 * rng.random::<f64>();
            m.floor() as u64 + u64::from(rng.random::<f64>() < m.fract())
        };
        let n_exposures = count(&mut rng, per_unit_exposures).max(1);
        for k in 0..n_exposures {
            let time_ms = if k == 0 { first } else { first + (rng.random::<f64>() * 24.0 * HOUR as f64) as i64 };
            exposures.push(Exposure {
                time_ms,
                deployment: args.deployment.clone(),
                variant: variant.into(),
                model: "bench-analysis".into(),
                model_version: 1 + i64::from(treated),
                unit: unit.clone(),
                request_id: format!("r{u}-{k}"),
                endpoint: "recommend".into(),
                latency_us: 1000 + (rng.random::<f64>() * 19_000.0) as u64,
                shadow: false,
                fallback: rng.random::<f64>() < 0.01,
                items: (0..10).map(|_| format!("title-{}", (rng.random::<f64>() * 5000.0) as u32).into()).collect(),
                rankers: Vec::new(),
                error: rng.random::<f64>() < 0.001,
            });
        }
        let propensity = 0.5 + 2.0 * rng.random::<f64>();
        for k in 0..count(&mut rng, per_unit_events) {
            let time_ms = first + ((rng.random::<f64>() * 2.0 - 1.0) * 24.0 * HOUR as f64) as i64;
            let play = rng.random::<f64>() < 0.8;
            let lift = if treated && time_ms >= first { 1.0 + args.effect } else { 1.0 };
            let event = Event {
                time_ms: time_ms.min(now),
                deployment: if k % 2 == 0 { args.deployment.clone() } else { unscoped.clone() },
                unit: unit.clone(),
                kind: if play { "play" } else { "click" }.into(),
                item: Some(format!("title-{}", (rng.random::<f64>() * 5000.0) as u32)),
                value: play.then(|| propensity * lift * (5.0 + 55.0 * rng.random::<f64>())),
                event_id: Some(format!("e{u}-{k}")),
            };
            if rng.random::<f64>() < 0.01 {
                events.push(event.clone());
            }
            events.push(event);
        }
        if exposures.len() >= CHUNK {
            written_exposures += exposures.len() as u64;
            exposure_log.append(std::mem::take(&mut exposures)).await;
            exposure_log.flush().await;
        }
        if events.len() >= CHUNK {
            written_events += events.len() as u64;
            event_log.append(std::mem::take(&mut events)).await;
            event_log.flush().await;
        }
        if u % 200_000 == 0 {
            eprintln!("  {u} of {} units written", args.units);
        }
    }
    written_exposures += exposures.len() as u64;
    written_events += events.len() as u64;
    exposure_log.append(exposures).await;
    exposure_log.flush().await;
    event_log.append(events).await;
    event_log.flush().await;
    println!("{{\"units\": {}, \"exposures\": {written_exposures}, \"events\": {written_events}}}", args.units);
    Ok(())
}
