//! Recommendation algorithms and their evaluation: interaction data,
//! deterministic splits, ranking metrics, and the engines (implicit ALS, BPR,
//! item-item kNN, popularity); the tabular models; the statistics of online
//! experiments ([`abtest`]). Synchronous and deterministic for a seed and a
//! thread count; no IO beyond reading interaction files.

pub mod abtest;
pub mod als;
pub mod bpr;
pub mod csr;
pub mod data;
mod error;
pub mod interactions;
pub mod interleave;
pub mod knn;
pub mod metrics;
pub mod model;
mod parquet_input;
pub mod popularity;
pub mod simd;
pub mod split;
pub mod tabular;
mod topk;

pub use error::{Error, Proceed, Result};
