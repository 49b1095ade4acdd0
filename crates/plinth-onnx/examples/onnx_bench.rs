//! Times `OnnxModel::run` on one model file with random FP32 rows, without
//! HTTP: `cargo run --release -p plinth-onnx --example onnx_bench -- model.onnx [rows...]`.
//! The model's first input must be FP32 `[n, features]`.

use std::time::Instant;

use plinth_onnx::{Array, DataType, Dim, OnnxModel, Values};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: onnx_bench MODEL.onnx [ROWS...]")?;
    let rows: Vec<usize> = args.map(|a| a.parse()).collect::<Result<_, _>>()?;
    let started = Instant::now();
    let model = OnnxModel::load(&std::fs::read(&path)?)?;
    println!("load (parse, optimize, smoke run): {:.1} ms", started.elapsed().as_secs_f64() * 1e3);
    let input = &model.inputs[0];
    let Some(&Dim::Fixed(features)) = input.shape.get(1) else { return Err("input is not [n, features]".into()) };
    if input.datatype != DataType::F32 {
        return Err("input is not FP32".into());
    }
    for n in if rows.is_empty() { vec![1, 100] } else { rows } {
        let mut seed = 0x9E37_79B9u32;
        let values = (0..n * features)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                (seed as f32 / u32::MAX as f32) * 4.0 - 2.0
            })
            .collect();
        let batch = [Array {
            name: input.name.clone(),
            datatype: DataType::F32,
            shape: vec![n, features],
            values: Values::F32(values),
        }];
        let reps = (20_000 / n).max(20);
        let t = Instant::now();
        for _ in 0..reps {
            model.run(&batch)?;
        }
        let per = t.elapsed().as_secs_f64() / reps as f64;
        println!("{n:>6} rows: {:>9.1} µs per run, {:>7.2} µs per row", per * 1e6, per * 1e6 / n as f64);
    }
    Ok(())
}
