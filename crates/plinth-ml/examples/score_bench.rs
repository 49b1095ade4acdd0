//! Scoring one user against 10,000 items with 64 factors: row-major dot
//! products vs the blocked layout. `cargo run --release --example score_bench -p plinth-ml`
use std::time::Instant;

use plinth_ml::simd::{ItemBlocks, score_rows};

fn main() {
    let (n, f) = (10_000, 64);
    let items: Vec<f32> = (0..n * f).map(|k| ((k * 7) % 13) as f32 * 0.1 - 0.5).collect();
    let x: Vec<f32> = (0..f).map(|j| 1.0 - j as f32 * 0.01).collect();
    let blocks = ItemBlocks::new(&items, f);
    let mut out = vec![0f32; n];
    let reps = 2000;
    let t = Instant::now();
    for _ in 0..reps {
        score_rows(&items, &x, &mut out);
    }
    println!("row-major dot: {:.1} us", t.elapsed().as_secs_f64() * 1e6 / reps as f64);
    let t = Instant::now();
    for _ in 0..reps {
        blocks.score(&x, &mut out);
    }
    println!("blocked:       {:.1} us", t.elapsed().as_secs_f64() * 1e6 / reps as f64);
    let xs: Vec<&[f32]> = (0..16).map(|_| x.as_slice()).collect();
    let mut outs_data = vec![vec![0f32; n]; 16];
    let t = Instant::now();
    for _ in 0..reps / 16 {
        let mut outs: Vec<&mut [f32]> = outs_data.iter_mut().map(|o| o.as_mut_slice()).collect();
        blocks.score_many(&xs, &mut outs);
    }
    println!("blocked, 16 users per pass: {:.1} us per user", t.elapsed().as_secs_f64() * 1e6 / reps as f64);
}
