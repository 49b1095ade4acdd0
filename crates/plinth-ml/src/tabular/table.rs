//! Tabular files as typed columns: CSV (header required; delimiter detected)
//! or Parquet. A text column whose every present value is a number is
//! numeric, unless named categorical; missing values (empty, `NA`, `NaN`,
//! `null`, `None`, `?`) are `NaN` in numeric columns and `None` in text
//! ones. Errors name the file, line and column.

use std::fs::File;
use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, RecordBatchReader};
use arrow_schema::DataType;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::data::{Format, detect_delimiter};
use crate::parquet_input::{id_at, num_at, time_at};
use crate::{Error, Result};

#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    /// Missing values are `NaN`.
    Numeric(Vec<f64>),
    Text(Vec<Option<String>>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub values: Values,
}

impl Column {
    pub fn len(&self) -> usize {
        match &self.values {
            Values::Numeric(v) => v.len(),
            Values::Text(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// Where it came from, for messages.
    pub source: String,
    pub columns: Vec<Column>,
    pub rows: usize,
}

#[derive(Debug, Clone, Default)]
pub struct TableOptions {
    pub format: Format,
    /// `None`: detected from the header line.
    pub delimiter: Option<u8>,
    /// Read as text even if every value is a number.
    pub categorical: Vec<String>,
    /// Must be numbers: a value that is not is an error naming its line.
    pub numeric: Vec<String>,
}

const MISSING: &[&str] = &["", "NA", "N/A", "NaN", "nan", "null", "NULL", "None", "?"];

pub fn is_missing(s: &str) -> bool {
    MISSING.contains(&s.trim())
}

/// A number, or `None` if the text is not one (missing values are `NaN`).
pub fn parse_number(s: &str) -> Option<f64> {
    if is_missing(s) {
        return Some(f64::NAN);
    }
    s.trim().parse::<f64>().ok()
}

impl Table {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    pub fn names(&self) -> Vec<&str> {
        self.columns.iter().map(|c| c.name.as_str()).collect()
    }

    /// The rows at `indices`, in that order.
    pub fn take(&self, indices: &[usize]) -> Table {
        let columns = self
            .columns
            .iter()
            .map(|c| Column {
                name: c.name.clone(),
                values: match &c.values {
                    Values::Numeric(v) => Values::Numeric(indices.iter().map(|&i| v[i]).collect()),
                    Values::Text(v) => Values::Text(indices.iter().map(|&i| v[i].clone()).collect()),
                },
            })
            .collect();
        Table { source: self.source.clone(), columns, rows: indices.len() }
    }
}

pub fn read_table(path: &Path, opts: &TableOptions) -> Result<Table> {
    let parquet = match opts.format {
        Format::Parquet => true,
        Format::Text => false,
        Format::Auto => path.extension().is_some_and(|e| e == "parquet" || e == "pq"),
    };
    let table = if parquet { read_parquet(path)? } else { read_csv(path, opts)? };
    for name in opts.categorical.iter().chain(&opts.numeric) {
        if table.column(name).is_none() {
            return Err(Error::Data(format!(
                "{}: no column '{name}' (columns: {})",
                table.source,
                table.names().join(", ")
            )));
        }
    }
    retype(table, opts)
}

/// Applies the overrides: named categorical columns become text, named
/// numeric ones must parse.
fn retype(mut table: Table, opts: &TableOptions) -> Result<Table> {
    for c in &mut table.columns {
        if opts.categorical.contains(&c.name)
            && let Values::Numeric(v) = &c.values
        {
            c.values = Values::Text(v.iter().map(|x| (!x.is_nan()).then(|| format_number(*x))).collect());
        }
        if opts.numeric.contains(&c.name)
            && let Values::Text(v) = &c.values
        {
            let mut out = Vec::with_capacity(v.len());
            for (row, s) in v.iter().enumerate() {
                let s = s.as_deref().unwrap_or("");
                out.push(parse_number(s).ok_or_else(|| {
                    Error::Data(format!(
                        "{}: row {}, column '{}': '{s}' is not a number",
                        table.source,
                        row + 1,
                        c.name
                    ))
                })?);
            }
            c.values = Values::Numeric(out);
        }
    }
    Ok(table)
}

/// Integers without a trailing `.0`, so `3` read as a number names level "3".
fn format_number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 { format!("{}", x as i64) } else { x.to_string() }
}

fn read_csv(path: &Path, opts: &TableOptions) -> Result<Table> {
    let source = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| Error::Data(format!("{source}: {e}")))?;
    let first = text.lines().next().unwrap_or_default();
    let delimiter = opts.delimiter.unwrap_or_else(|| detect_delimiter(first));
    let mut reader = csv::ReaderBuilder::new().delimiter(delimiter).has_headers(true).from_reader(text.as_bytes());
    let names: Vec<String> = reader
        .headers()
        .map_err(|e| Error::Data(format!("{source}: bad header: {e}")))?
        .iter()
        .map(|s| s.trim().to_string())
        .collect();
    if names.is_empty() || names.iter().all(String::is_empty) {
        return Err(Error::Data(format!("{source}: the file has no header line")));
    }
    if let Some(dup) = names.iter().enumerate().find(|(i, n)| names[..*i].contains(n)).map(|(_, n)| n) {
        return Err(Error::Data(format!("{source}: column '{dup}' appears twice in the header")));
    }
    let mut raw: Vec<Vec<Option<String>>> = vec![Vec::new(); names.len()];
    for record in reader.records() {
        let record = record.map_err(|e| Error::Data(format!("{source}: {e}")))?;
        for (col, field) in raw.iter_mut().zip(record.iter()) {
            col.push((!is_missing(field)).then(|| field.trim().to_string()));
        }
    }
    let rows = raw.first().map_or(0, Vec::len);
    let columns = names
        .into_iter()
        .zip(raw)
        .map(|(name, values)| {
            let numbers: Option<Vec<f64>> = if opts.categorical.contains(&name) {
                None
            } else {
                values.iter().map(|v| v.as_deref().map_or(Some(f64::NAN), |s| s.parse::<f64>().ok())).collect()
            };
            let all_missing = values.iter().all(Option::is_none);
            match numbers {
                Some(n) if !all_missing => Column { name, values: Values::Numeric(n) },
                _ => Column { name, values: Values::Text(values) },
            }
        })
        .collect();
    Ok(Table { source, columns, rows })
}

fn read_parquet(path: &Path) -> Result<Table> {
    let source = path.display().to_string();
    let bad = |e: &dyn std::fmt::Display| Error::Data(format!("{source}: {e}"));
    let file = File::open(path).map_err(|e| bad(&e))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| bad(&e))?.build().map_err(|e| bad(&e))?;
    let schema = reader.schema();
    let mut columns: Vec<Column> = schema
        .fields()
        .iter()
        .map(|f| {
            let values = match f.data_type() {
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Dictionary(_, _) => {
                    Values::Text(Vec::new())
                }
                _ => Values::Numeric(Vec::new()),
            };
            Column { name: f.name().clone(), values }
        })
        .collect();
    let mut rows = 0;
    for batch in reader {
        let batch = batch.map_err(|e| bad(&e))?;
        for (col, array) in columns.iter_mut().zip(batch.columns()) {
            push_arrow(&source, col, array)?;
        }
        rows += batch.num_rows();
    }
    Ok(Table { source, columns, rows })
}

fn push_arrow(source: &str, col: &mut Column, array: &ArrayRef) -> Result<()> {
    let unsupported = || {
        Error::Data(format!("{source}: column '{}' has type {}, which is not supported", col.name, array.data_type()))
    };
    match &mut col.values {
        Values::Text(out) => {
            if let DataType::Dictionary(_, _) = array.data_type() {
                let dict = array.as_any_dictionary();
                let keys = dict.normalized_keys();
                let values = dict.values();
                for (row, key) in keys.iter().enumerate() {
                    out.push(if array.is_null(row) { None } else { id_at(values, *key) });
                }
            } else {
                out.extend((0..array.len()).map(|row| id_at(array, row)));
            }
        }
        Values::Numeric(out) => match array.data_type() {
            DataType::Boolean => {
                let b = array.as_boolean();
                out.extend((0..array.len()).map(|r| if b.is_null(r) { f64::NAN } else { b.value(r) as u8 as f64 }));
            }
            DataType::Timestamp(_, _) => {
                out.extend((0..array.len()).map(|r| time_at(array, r).map_or(f64::NAN, |t| t as f64)));
            }
            dt if dt.is_numeric() => {
                out.extend((0..array.len()).map(|r| num_at(array, r).unwrap_or(f64::NAN)));
            }
            _ => return Err(unsupported()),
        },
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn csv(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::Builder::new().suffix(".csv").tempfile().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn infers_numbers_text_and_missing_values() {
        let f = csv("age,genre,score,empty\n34,drama,1.5,\nNA,\"comedy, romantic\",2,\n51,,?,\n");
        let t = read_table(f.path(), &TableOptions::default()).unwrap();
        assert_eq!(t.rows, 3);
        let age = &t.column("age").unwrap().values;
        let Values::Numeric(v) = age else { panic!("{age:?}") };
        assert!(v[0] == 34.0 && v[1].is_nan() && v[2] == 51.0);
        assert_eq!(
            t.column("genre").unwrap().values,
            Values::Text(vec![Some("drama".into()), Some("comedy, romantic".into()), None])
        );
        assert!(matches!(t.column("score").unwrap().values, Values::Numeric(_)));
        assert_eq!(t.column("empty").unwrap().values, Values::Text(vec![None, None, None]));
    }

    #[test]
    fn overrides_force_a_type_and_name_bad_values() {
        let f = csv("zip\tprice\n10115\t3\n80331\tfree\n");
        let opts = TableOptions { categorical: vec!["zip".into()], ..Default::default() };
        let t = read_table(f.path(), &opts).unwrap();
        assert_eq!(t.column("zip").unwrap().values, Values::Text(vec![Some("10115".into()), Some("80331".into())]));
        let opts = TableOptions { numeric: vec!["price".into()], ..Default::default() };
        let err = read_table(f.path(), &opts).unwrap_err().to_string();
        assert!(err.contains("row 2, column 'price': 'free' is not a number"), "{err}");
        let opts = TableOptions { numeric: vec!["nope".into()], ..Default::default() };
        assert!(read_table(f.path(), &opts).unwrap_err().to_string().contains("no column 'nope'"));
    }

    #[test]
    fn malformed_files_are_errors_with_a_place() {
        let ragged = csv("a,b\n1,2\n3\n");
        let err = read_table(ragged.path(), &TableOptions::default()).unwrap_err().to_string();
        assert!(err.contains("line: 3") && err.contains("1 fields"), "{err}");
        let dup = csv("a,a\n1,2\n");
        assert!(read_table(dup.path(), &TableOptions::default()).unwrap_err().to_string().contains("appears twice"));
    }

    #[test]
    fn take_keeps_the_chosen_rows_in_order() {
        let f = csv("x,y\n1,a\n2,b\n3,c\n");
        let t = read_table(f.path(), &TableOptions::default()).unwrap().take(&[2, 0]);
        assert_eq!(t.rows, 2);
        assert_eq!(t.column("x").unwrap().values, Values::Numeric(vec![3.0, 1.0]));
        assert_eq!(t.column("y").unwrap().values, Values::Text(vec![Some("c".into()), Some("a".into())]));
    }
}
