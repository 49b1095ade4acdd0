//! A trained tabular model, whichever engine made it, behind one interface:
//! what training stores, serving loads and evaluation predicts with.

use serde::{Deserialize, Serialize};

use super::gbdt::{Gbdt, Objective};
use super::linear::Linear;
use super::prepare::Schema;

/// Stored externally tagged: `{"gbdt": {...}}` or `{"linear": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TabularModel {
    Gbdt(Gbdt),
    Linear(Linear),
}

impl TabularModel {
    pub fn algo(&self) -> &'static str {
        match self {
            TabularModel::Gbdt(_) => "gbdt",
            TabularModel::Linear(_) => "linear",
        }
    }

    pub fn objective(&self) -> Objective {
        match self {
            TabularModel::Gbdt(m) => m.objective,
            TabularModel::Linear(m) => m.objective,
        }
    }

    pub fn features(&self) -> usize {
        match self {
            TabularModel::Gbdt(m) => m.features,
            TabularModel::Linear(m) => m.features(),
        }
    }

    /// Values (regression), P(class 1) (binary), or class probabilities
    /// `[rows, classes]` (multiclass) for a row-major `[rows, features]`
    /// matrix (NaN: missing).
    pub fn predict(&self, x: &[f64], rows: usize) -> Vec<f64> {
        match self {
            TabularModel::Gbdt(m) => m.predict(x, rows),
            TabularModel::Linear(m) => m.predict(x, rows),
        }
    }

    /// Per feature: total split gain (trees) or largest absolute weight on
    /// the standardized input (linear), with the measure's name.
    pub fn importance(&self) -> (&'static str, Vec<f64>) {
        match self {
            TabularModel::Gbdt(m) => ("gain", m.importance_gain()),
            TabularModel::Linear(m) => ("abs_weight", m.importance()),
        }
    }
}

/// The stored model file: the encoding the model was trained with and the
/// model, `{"schema": ..., "gbdt" | "linear": ...}`. Training writes it,
/// serving reads it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TabularFile {
    pub schema: Schema,
    #[serde(flatten)]
    pub model: TabularModel,
}

impl TabularFile {
    /// Whether the model takes exactly the schema's features.
    pub fn consistent(&self) -> bool {
        self.model.features() == self.schema.features.len()
    }
}
