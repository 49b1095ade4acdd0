//! Tabular data for the content-analytics models: reading CSV/Parquet into
//! typed columns, splitting, fitting the encoding kept with a model, and the
//! metrics each task reports. The training engines build on this.

pub mod binning;
pub mod gbdt;
pub mod lightgbm;
pub mod linear;
pub mod metrics;
pub mod model;
pub mod prepare;
pub mod split;
pub mod table;
