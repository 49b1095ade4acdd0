//! Times Plinth's GBDT on raw little-endian f64 files (row-major features,
//! one target per row), binary logistic, and prints train time, predict
//! time and test AUC:
//! `cargo run --release -p plinth-ml --example gbdt_bench -- TRAIN_X TRAIN_Y TEST_X TEST_Y FEATURES THREADS [LEAVES DEPTH]`.

use std::time::Instant;

use plinth_ml::tabular::gbdt::{Gbdt, GbdtParams, Objective};
use plinth_ml::tabular::metrics;

fn read(path: &str) -> Result<Vec<f64>, Box<dyn std::error::Error>> {
    let bytes = std::fs::read(path)?;
    Ok(bytes.chunks_exact(8).map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])).collect())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    if a.len() < 6 {
        return Err("usage: gbdt_bench TRAIN_X TRAIN_Y TEST_X TEST_Y FEATURES THREADS [LEAVES DEPTH]".into());
    }
    let (xtr, ytr, xte, yte) = (read(&a[0])?, read(&a[1])?, read(&a[2])?, read(&a[3])?);
    let features: usize = a[4].parse()?;
    let threads: usize = a[5].parse()?;
    let leaves: usize = a.get(6).map_or(Ok(63), |s| s.parse())?;
    let depth: usize = a.get(7).map_or(Ok(6), |s| s.parse())?;
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build()?;
    let params =
        GbdtParams { rounds: 100, learning_rate: 0.1, max_leaves: leaves, max_depth: depth, ..Default::default() };
    pool.install(|| -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let t = Instant::now();
        let binned = plinth_ml::tabular::binning::Binned::fit(&xtr, ytr.len(), features, params.max_bins);
        let binning = t.elapsed().as_secs_f64();
        drop(binned);
        let t = Instant::now();
        let model = Gbdt::train(&xtr, ytr.len(), features, &ytr, Objective::Logistic, &params, &mut |_| {})?;
        let train = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let p = model.predict(&xte, yte.len());
        let predict = t.elapsed().as_secs_f64();
        let auc = metrics::auc(&yte, &p).unwrap_or(f64::NAN);
        println!(
            "plinth gbdt threads={threads} leaves={leaves} depth={depth}: train {train:.2}s (binning alone {binning:.2}s), predict {} rows {predict:.3}s, auc {auc:.5}",
            yte.len()
        );
        Ok(())
    })
    .map_err(|e| e.to_string().into())
}
