//! From a table to model inputs: which columns are features, how each is
//! encoded, and the target. The [`Schema`] is fitted on the training table
//! and kept with the model, so a test file or a served request is encoded
//! exactly as training was: same feature order, same category codes, same
//! class labels. Categories unseen in training become missing and are
//! counted.

use serde::{Deserialize, Serialize};

use super::table::{Table, Values};
use crate::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    Binary,
    Multiclass,
    Regression,
}

impl std::str::FromStr for Task {
    type Err = Error;
    fn from_str(s: &str) -> Result<Task> {
        match s {
            "binary" => Ok(Task::Binary),
            "multiclass" => Ok(Task::Multiclass),
            "regression" => Ok(Task::Regression),
            other => Err(Error::Param(format!("unknown task '{other}': binary, multiclass or regression"))),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Feature {
    Numeric {
        name: String,
    },
    /// Codes are positions in `levels` (most frequent first).
    Categorical {
        name: String,
        levels: Vec<String>,
    },
}

impl Feature {
    pub fn name(&self) -> &str {
        match self {
            Feature::Numeric { name } | Feature::Categorical { name, .. } => name,
        }
    }
}

/// Which columns are features: all but the target (and `drop`), or exactly `only`.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub only: Option<Vec<String>>,
    pub drop: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schema {
    pub task: Task,
    pub target: String,
    pub features: Vec<Feature>,
    /// Class labels in code order (classification only).
    pub classes: Vec<String>,
}

/// Encoded rows: `x` row-major `[rows, features]`, missing as `NaN`.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    pub x: Vec<f64>,
    pub y: Vec<f64>,
    pub rows: usize,
    /// Per categorical feature with unseen values: (feature, how many).
    pub unseen: Vec<(String, usize)>,
}

fn labels(table: &Table, target: &str) -> Result<Vec<Option<String>>> {
    let col = table.column(target).ok_or_else(|| {
        Error::Data(format!("{}: no target column '{target}' (columns: {})", table.source, table.names().join(", ")))
    })?;
    Ok(match &col.values {
        Values::Text(v) => v.clone(),
        Values::Numeric(v) => v.iter().map(|x| (!x.is_nan()).then(|| number_label(*x))).collect(),
    })
}

fn number_label(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 { format!("{}", x as i64) } else { x.to_string() }
}

/// Levels by descending frequency, ties by name.
fn levels_of(values: &[Option<String>]) -> Vec<String> {
    let mut counts: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for v in values.iter().flatten() {
        *counts.entry(v).or_default() += 1;
    }
    let mut levels: Vec<(&str, usize)> = counts.into_iter().collect();
    levels.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    levels.into_iter().map(|(l, _)| l.to_string()).collect()
}

/// Checks the target of a whole table (before any split, so rows are
/// numbered as in the file): present in every row and, for regression, a
/// finite number.
pub fn check_target(table: &Table, target: &str, task: Task) -> Result<()> {
    if let Some(row) = labels(table, target)?.iter().position(Option::is_none) {
        return Err(Error::Data(format!("{}: row {}: the target '{target}' is missing", table.source, row + 1)));
    }
    if task == Task::Regression {
        regression_target(table, target)?;
    }
    Ok(())
}

impl Schema {
    /// Fits features and classes on the training table.
    pub fn fit(table: &Table, target: &str, task: Task, selection: &Selection) -> Result<Schema> {
        let missing_target = labels(table, target)?.iter().position(Option::is_none);
        if let Some(row) = missing_target {
            return Err(Error::Data(format!("{}: row {}: the target '{target}' is missing", table.source, row + 1)));
        }
        let classes = match task {
            Task::Regression => {
                let y = regression_target(table, target)?;
                if y.iter().all(|v| *v == y[0]) {
                    return Err(Error::Data(format!(
                        "{}: the target '{target}' is constant ({}); there is nothing to learn",
                        table.source, y[0]
                    )));
                }
                Vec::new()
            }
            Task::Binary | Task::Multiclass => {
                let mut classes: Vec<String> = levels_of(&labels(table, target)?);
                // Numeric labels in numeric order, text labels alphabetically.
                classes.sort_by(|a, b| match (a.parse::<f64>(), b.parse::<f64>()) {
                    (Ok(x), Ok(y)) => x.total_cmp(&y),
                    _ => a.cmp(b),
                });
                match (task, classes.len()) {
                    (_, 0 | 1) => {
                        return Err(Error::Data(format!(
                            "{}: the target '{target}' has {} class(es); classification needs at least two",
                            table.source,
                            classes.len()
                        )));
                    }
                    (Task::Binary | Task::Multiclass, n)
                        if n > 50 && n * 5 > table.rows && classes.iter().any(|c| c.contains('.')) =>
                    {
                        // Many distinct fractional values: a continuous target.
                        return Err(Error::Data(format!(
                            "{}: the target '{target}' looks continuous ({n} distinct values, such as '{}'); use --task \
                             regression",
                            table.source, classes[0]
                        )));
                    }
                    (Task::Binary, n) if n > 2 => {
                        return Err(Error::Data(format!(
                            "{}: the target '{target}' has {n} classes; use --task multiclass",
                            table.source
                        )));
                    }
                    _ => classes,
                }
            }
        };
        let chosen: Vec<&str> = match &selection.only {
            Some(only) => only.iter().map(String::as_str).collect(),
            None => {
                table.names().into_iter().filter(|n| *n != target && !selection.drop.iter().any(|d| d == n)).collect()
            }
        };
        for name in chosen.iter().chain(selection.drop.iter().map(String::as_str).collect::<Vec<_>>().iter()) {
            if table.column(name).is_none() {
                return Err(Error::Data(format!(
                    "{}: no column '{name}' (columns: {})",
                    table.source,
                    table.names().join(", ")
                )));
            }
        }
        if chosen.contains(&target) {
            return Err(Error::Param(format!("the target '{target}' cannot also be a feature")));
        }
        if chosen.is_empty() {
            return Err(Error::Data(format!("{}: no feature columns are left", table.source)));
        }
        let features = chosen
            .iter()
            .filter_map(|name| table.column(name))
            .map(|c| match &c.values {
                Values::Numeric(_) => Feature::Numeric { name: c.name.clone() },
                Values::Text(v) => Feature::Categorical { name: c.name.clone(), levels: levels_of(v) },
            })
            .collect();
        Ok(Schema { task, target: target.to_string(), features, classes })
    }

    /// Encodes features (and the target, when `with_target`) as training did.
    pub fn encode(&self, table: &Table, with_target: bool) -> Result<Encoded> {
        let (rows, nf) = (table.rows, self.features.len());
        let mut x = vec![f64::NAN; rows * nf];
        let mut unseen = Vec::new();
        for (j, f) in self.features.iter().enumerate() {
            let col = table.column(f.name()).ok_or_else(|| {
                Error::Data(format!("{}: column '{}', a feature of the model, is missing", table.source, f.name()))
            })?;
            match (f, &col.values) {
                (Feature::Numeric { .. }, Values::Numeric(v)) => {
                    for (i, &value) in v.iter().enumerate() {
                        x[i * nf + j] = value;
                    }
                }
                (Feature::Numeric { name }, Values::Text(v)) => {
                    // Training saw numbers here: say where the first non-number is.
                    for (i, s) in v.iter().enumerate() {
                        match s.as_deref().map(str::parse::<f64>) {
                            None => {}
                            Some(Ok(value)) => x[i * nf + j] = value,
                            Some(Err(_)) => {
                                return Err(Error::Data(format!(
                                    "{}: row {}, column '{name}': '{}' is not a number",
                                    table.source,
                                    i + 1,
                                    s.as_deref().unwrap_or_default()
                                )));
                            }
                        }
                    }
                }
                (Feature::Categorical { name, levels }, values) => {
                    let index: std::collections::HashMap<&str, usize> =
                        levels.iter().enumerate().map(|(k, l)| (l.as_str(), k)).collect();
                    let mut misses = 0;
                    let text = |i: usize| match values {
                        Values::Text(v) => v[i].clone(),
                        Values::Numeric(v) => (!v[i].is_nan()).then(|| number_label(v[i])),
                    };
                    for i in 0..rows {
                        if let Some(s) = text(i) {
                            match index.get(s.as_str()) {
                                Some(&k) => x[i * nf + j] = k as f64,
                                None => misses += 1,
                            }
                        }
                    }
                    if misses > 0 {
                        unseen.push((name.clone(), misses));
                    }
                }
            }
        }
        let y = if with_target { self.encode_target(table)? } else { Vec::new() };
        Ok(Encoded { x, y, rows, unseen })
    }

    fn encode_target(&self, table: &Table) -> Result<Vec<f64>> {
        if self.task == Task::Regression {
            return regression_target(table, &self.target);
        }
        let labels = labels(table, &self.target)?;
        labels
            .iter()
            .enumerate()
            .map(|(row, l)| {
                let l = l.as_deref().ok_or_else(|| {
                    Error::Data(format!("{}: row {}: the target '{}' is missing", table.source, row + 1, self.target))
                })?;
                self.classes.iter().position(|c| c == l).map(|k| k as f64).ok_or_else(|| {
                    Error::Data(format!(
                        "{}: row {}: class '{l}' of '{}' was not in the training data ({})",
                        table.source,
                        row + 1,
                        self.target,
                        self.classes.join(", ")
                    ))
                })
            })
            .collect()
    }
}

fn regression_target(table: &Table, target: &str) -> Result<Vec<f64>> {
    let col =
        table.column(target).ok_or_else(|| Error::Data(format!("{}: no target column '{target}'", table.source)))?;
    let Values::Numeric(y) = &col.values else {
        return Err(Error::Data(format!(
            "{}: the target '{target}' is not numeric; regression needs numbers",
            table.source
        )));
    };
    if let Some(row) = y.iter().position(|v| !v.is_finite()) {
        return Err(Error::Data(format!(
            "{}: row {}: the target '{target}' is {} (missing, NaN or infinite)",
            table.source,
            row + 1,
            y[row]
        )));
    }
    Ok(y.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tabular::table::Column;

    fn table(cols: Vec<(&str, Values)>) -> Table {
        let rows = cols[0].1.clone();
        let rows = match rows {
            Values::Numeric(v) => v.len(),
            Values::Text(v) => v.len(),
        };
        Table {
            source: "t.csv".into(),
            columns: cols.into_iter().map(|(n, values)| Column { name: n.into(), values }).collect(),
            rows,
        }
    }
    fn text(v: &[Option<&str>]) -> Values {
        Values::Text(v.iter().map(|s| s.map(str::to_string)).collect())
    }

    #[test]
    fn encodes_categories_by_frequency_and_counts_unseen_ones() {
        let train = table(vec![
            ("genre", text(&[Some("drama"), Some("comedy"), Some("drama"), None])),
            ("budget", Values::Numeric(vec![1.0, f64::NAN, 3.0, 4.0])),
            ("hit", text(&[Some("yes"), Some("no"), Some("yes"), Some("no")])),
        ]);
        let s = Schema::fit(&train, "hit", Task::Binary, &Selection::default()).unwrap();
        assert_eq!(s.classes, vec!["no", "yes"]);
        assert_eq!(
            s.features[0],
            Feature::Categorical { name: "genre".into(), levels: vec!["drama".into(), "comedy".into()] }
        );
        let e = s.encode(&train, true).unwrap();
        assert_eq!(e.y, vec![1.0, 0.0, 1.0, 0.0]);
        let want = [0.0, 1.0, 1.0, f64::NAN, 0.0, 3.0, f64::NAN, 4.0];
        assert!(e.x.iter().zip(want).all(|(a, b)| a == &b || (a.is_nan() && b.is_nan())), "{:?}", e.x);
        let test = table(vec![
            ("budget", Values::Numeric(vec![2.0])),
            ("genre", text(&[Some("horror")])),
            ("hit", text(&[Some("yes")])),
        ]);
        let e = s.encode(&test, true).unwrap();
        assert!(e.x[0].is_nan() && e.x[1] == 2.0, "columns follow the schema's order, not the file's");
        assert_eq!(e.unseen, vec![("genre".to_string(), 1)]);
    }

    #[test]
    fn bad_targets_and_columns_are_errors() {
        let t = table(vec![("x", Values::Numeric(vec![1.0, 2.0])), ("y", Values::Numeric(vec![5.0, 5.0]))]);
        let err = |r: Result<Schema>| r.unwrap_err().to_string();
        assert!(err(Schema::fit(&t, "y", Task::Regression, &Selection::default())).contains("constant"));
        assert!(err(Schema::fit(&t, "z", Task::Regression, &Selection::default())).contains("no target column 'z'"));
        assert!(err(Schema::fit(&t, "y", Task::Binary, &Selection::default())).contains("1 class"));
        let nan = table(vec![("x", Values::Numeric(vec![1.0, 2.0])), ("y", Values::Numeric(vec![5.0, f64::INFINITY]))]);
        assert!(err(Schema::fit(&nan, "y", Task::Regression, &Selection::default())).contains("row 2"));
        let three =
            table(vec![("x", Values::Numeric(vec![1.0, 2.0, 3.0])), ("y", text(&[Some("a"), Some("b"), Some("c")]))]);
        assert!(err(Schema::fit(&three, "y", Task::Binary, &Selection::default())).contains("--task multiclass"));
        let only = Selection { only: Some(vec!["nope".into()]), drop: vec![] };
        assert!(err(Schema::fit(&three, "y", Task::Multiclass, &only)).contains("no column 'nope'"));
        let s = Schema::fit(&three, "y", Task::Multiclass, &Selection::default()).unwrap();
        let unknown = table(vec![("x", Values::Numeric(vec![1.0])), ("y", text(&[Some("d")]))]);
        assert!(s.encode(&unknown, true).unwrap_err().to_string().contains("class 'd'"));
        let words = table(vec![("x", text(&[Some("1"), Some("many")])), ("y", text(&[Some("a"), Some("b")]))]);
        let e = s.encode(&words, false).unwrap_err().to_string();
        assert!(e.contains("row 2, column 'x': 'many' is not a number"), "{e}");
        let missing = table(vec![("y", text(&[Some("a")]))]);
        assert!(s.encode(&missing, false).unwrap_err().to_string().contains("column 'x', a feature of the model"));
    }

    #[test]
    fn numeric_class_labels_sort_numerically_and_the_schema_round_trips() {
        let t = table(vec![("x", Values::Numeric(vec![1.0, 2.0, 3.0])), ("y", Values::Numeric(vec![10.0, 9.0, 2.0]))]);
        let s = Schema::fit(&t, "y", Task::Multiclass, &Selection::default()).unwrap();
        assert_eq!(s.classes, vec!["2", "9", "10"]);
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<Schema>(&json).unwrap(), s);
    }
}
