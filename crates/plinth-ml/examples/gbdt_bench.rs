//! Times Plinth's GBDT on raw little-endian f64 files (row-major features,
//! one target per row) and prints one JSON line: training seconds (binning
//! included), seconds to predict up to 100,000 test rows, and the test AUC
//! (binary) or RMSE (regression). `bench/tabular.sh` drives it beside
//! LightGBM.
//!
//! `gbdt_bench TRAIN_X TRAIN_Y TEST_X TEST_Y FEATURES THREADS TASK ROUNDS LEAVES DEPTH LEARNING_RATE`

use std::time::Instant;

use plinth_ml::tabular::gbdt::{Gbdt, GbdtParams, Objective};
use plinth_ml::tabular::metrics;

type Failure = Box<dyn std::error::Error + Send + Sync>;

fn read(path: &str) -> Result<Vec<f64>, Failure> {
    let bytes = std::fs::read(path)?;
    Ok(bytes.chunks_exact(8).map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])).collect())
}

fn main() -> Result<(), Failure> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    if a.len() != 11 {
        return Err(
            "usage: gbdt_bench TRAIN_X TRAIN_Y TEST_X TEST_Y FEATURES THREADS TASK ROUNDS LEAVES DEPTH LR".into()
        );
    }
    let (xtr, ytr, xte, yte) = (read(&a[0])?, read(&a[1])?, read(&a[2])?, read(&a[3])?);
    let features: usize = a[4].parse()?;
    let threads: usize = a[5].parse()?;
    let objective = match a[6].as_str() {
        "binary" => Objective::Logistic,
        "regression" => Objective::Squared,
        other => return Err(format!("task {other}: binary or regression").into()),
    };
    let params = GbdtParams {
        rounds: a[7].parse()?,
        max_leaves: a[8].parse()?,
        max_depth: a[9].parse()?,
        learning_rate: a[10].parse()?,
        ..Default::default()
    };
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build()?;
    pool.install(|| -> Result<(), Failure> {
        let t = Instant::now();
        let model = Gbdt::train(&xtr, ytr.len(), features, &ytr, objective, &params, &mut |_| {})?;
        let train = t.elapsed().as_secs_f64();
        let timed = yte.len().min(100_000);
        let t = Instant::now();
        let _ = model.predict(&xte[..timed * features], timed);
        let predict = t.elapsed().as_secs_f64();
        let p = model.predict(&xte, yte.len());
        let quality = match objective {
            Objective::Logistic => ("auc", metrics::auc(&yte, &p).unwrap_or(f64::NAN)),
            _ => ("rmse", metrics::rmse(&yte, &p)),
        };
        println!(
            "{{\"train_s\": {train:.4}, \"predict_s\": {predict:.4}, \"predict_rows\": {timed}, \"{}\": {:.6}}}",
            quality.0, quality.1
        );
        Ok(())
    })
}
