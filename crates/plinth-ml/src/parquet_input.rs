//! Reading interactions from Parquet, record batch by record batch. Ids may
//! be string or integer columns; weights any numeric type; times integers or
//! timestamps.

use std::fs::File;
use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType, UInt8Type, UInt16Type, UInt32Type,
    UInt64Type,
};
use arrow_array::{Array, ArrayRef};
use arrow_schema::{DataType, TimeUnit};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::data::{ITEM_NAMES, ReadOptions, TIME_NAMES, USER_NAMES, WEIGHT_NAMES};
use crate::interactions::{Event, IdMap, Interactions};
use crate::{Error, Result};

fn find(
    names: &[String],
    spec: &Option<String>,
    known: &[&str],
    what: &str,
    file: &str,
    required: bool,
) -> Result<Option<usize>> {
    if let Some(s) = spec {
        if s == "none" && !required {
            return Ok(None);
        }
        if let Some(i) = names.iter().position(|n| n == s) {
            return Ok(Some(i));
        }
        if let Ok(i) = s.parse::<usize>()
            && i < names.len()
        {
            return Ok(Some(i));
        }
        return Err(Error::Data(format!("{file}: no {what} column '{s}' (columns: {})", names.join(", "))));
    }
    match names.iter().position(|n| known.contains(&n.to_ascii_lowercase().as_str())) {
        Some(i) => Ok(Some(i)),
        None if required => Err(Error::Data(format!(
            "{file}: cannot tell which column holds the {what} (columns: {}); name it with --{what}-col",
            names.join(", ")
        ))),
        None => Ok(None),
    }
}

pub(crate) fn id_at(col: &ArrayRef, row: usize) -> Option<String> {
    if col.is_null(row) {
        return None;
    }
    Some(match col.data_type() {
        DataType::Utf8 => col.as_string::<i32>().value(row).to_string(),
        DataType::LargeUtf8 => col.as_string::<i64>().value(row).to_string(),
        DataType::Utf8View => col.as_string_view().value(row).to_string(),
        DataType::Int8 => col.as_primitive::<Int8Type>().value(row).to_string(),
        DataType::Int16 => col.as_primitive::<Int16Type>().value(row).to_string(),
        DataType::Int32 => col.as_primitive::<Int32Type>().value(row).to_string(),
        DataType::Int64 => col.as_primitive::<Int64Type>().value(row).to_string(),
        DataType::UInt8 => col.as_primitive::<UInt8Type>().value(row).to_string(),
        DataType::UInt16 => col.as_primitive::<UInt16Type>().value(row).to_string(),
        DataType::UInt32 => col.as_primitive::<UInt32Type>().value(row).to_string(),
        DataType::UInt64 => col.as_primitive::<UInt64Type>().value(row).to_string(),
        _ => return None,
    })
}

pub(crate) fn num_at(col: &ArrayRef, row: usize) -> Option<f64> {
    if col.is_null(row) {
        return None;
    }
    Some(match col.data_type() {
        DataType::Float32 => col.as_primitive::<Float32Type>().value(row) as f64,
        DataType::Float64 => col.as_primitive::<Float64Type>().value(row),
        DataType::Int8 => col.as_primitive::<Int8Type>().value(row) as f64,
        DataType::Int16 => col.as_primitive::<Int16Type>().value(row) as f64,
        DataType::Int32 => col.as_primitive::<Int32Type>().value(row) as f64,
        DataType::Int64 => col.as_primitive::<Int64Type>().value(row) as f64,
        DataType::UInt8 => col.as_primitive::<UInt8Type>().value(row) as f64,
        DataType::UInt16 => col.as_primitive::<UInt16Type>().value(row) as f64,
        DataType::UInt32 => col.as_primitive::<UInt32Type>().value(row) as f64,
        DataType::UInt64 => col.as_primitive::<UInt64Type>().value(row) as f64,
        _ => return None,
    })
}

pub(crate) fn time_at(col: &ArrayRef, row: usize) -> Option<i64> {
    if col.is_null(row) {
        return None;
    }
    Some(match col.data_type() {
        DataType::Timestamp(TimeUnit::Second, _) => col.as_primitive::<TimestampSecondType>().value(row),
        DataType::Timestamp(TimeUnit::Millisecond, _) => col.as_primitive::<TimestampMillisecondType>().value(row),
        DataType::Timestamp(TimeUnit::Microsecond, _) => col.as_primitive::<TimestampMicrosecondType>().value(row),
        DataType::Timestamp(TimeUnit::Nanosecond, _) => col.as_primitive::<TimestampNanosecondType>().value(row),
        _ => num_at(col, row)? as i64,
    })
}

pub fn read_parquet(path: &Path, options: &ReadOptions, into: Option<(IdMap, IdMap)>) -> Result<Interactions> {
    let name = path.display().to_string();
    let file = File::open(path).map_err(|e| Error::Data(format!("{name}: cannot open: {e}")))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| Error::Data(format!("{name}: not a readable Parquet file: {e}")))?;
    let names: Vec<String> = builder.schema().fields().iter().map(|f| f.name().clone()).collect();
    let cols = &options.columns;
    let user = find(&names, &cols.user, USER_NAMES, "user", &name, true)?.unwrap_or(0);
    let item = find(&names, &cols.item, ITEM_NAMES, "item", &name, true)?.unwrap_or(1);
    let weight = find(&names, &cols.weight, WEIGHT_NAMES, "weight", &name, false)?;
    let time = find(&names, &cols.time, TIME_NAMES, "time", &name, false)?;
    let reader =
        builder.with_batch_size(65_536).build().map_err(|e| Error::Data(format!("{name}: cannot read: {e}")))?;
    let (users, items) = into.unwrap_or_default();
    let weight_column = weight.and_then(|i| names.get(i).cloned());
    let mut out = Interactions { users, items, events: Vec::new(), weight_column };
    let mut row_base = 0usize;
    for batch in reader {
        let batch =
            batch.map_err(|e| Error::Data(format!("{name}: cannot read row group after row {row_base}: {e}")))?;
        let (u, i) = (batch.column(user), batch.column(item));
        let w = weight.map(|c| batch.column(c));
        let t = time.map(|c| batch.column(c));
        for row in 0..batch.num_rows() {
            let at = row_base + row + 1;
            let bad = |col: usize, why: &str| Error::Data(format!("{name}: row {at}: column '{}': {why}", names[col]));
            let uid = id_at(u, row).ok_or_else(|| bad(user, "missing or not a string/integer id"))?;
            let iid = id_at(i, row).ok_or_else(|| bad(item, "missing or not a string/integer id"))?;
            let wv = match (w, weight) {
                (Some(c), Some(idx)) => {
                    let v = num_at(c, row).ok_or_else(|| bad(idx, "missing or not a number"))?;
                    if !v.is_finite() {
                        return Err(bad(idx, "not finite"));
                    }
                    v as f32
                }
                _ => 1.0,
            };
            let tv = match (t, time) {
                (Some(c), Some(idx)) => time_at(c, row).ok_or_else(|| bad(idx, "missing or not a timestamp"))?,
                _ => at as i64,
            };
            let user = out.users.intern(&uid);
            let item = out.items.intern(&iid);
            out.events.push(Event { user, item, weight: wv, time: tv });
        }
        row_base += batch.num_rows();
    }
    if out.events.is_empty() {
        return Err(Error::Data(format!("{name}: no interactions found")));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{Float32Array, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray};
    use arrow_schema::{Field, Schema};
    use parquet::arrow::ArrowWriter;

    use super::*;
    use crate::data::{Columns, Format, read_interactions};

    fn write(path: &Path, users: Vec<Option<&str>>, items: Vec<i64>, ratings: Vec<f32>) {
        let n = items.len();
        let schema = Arc::new(Schema::new(vec![
            Field::new("user_id", DataType::Utf8, true),
            Field::new("item_id", DataType::Int64, false),
            Field::new("rating", DataType::Float32, false),
            Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), false),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(users)),
                Arc::new(Int64Array::from(items)),
                Arc::new(Float32Array::from(ratings)),
                Arc::new(TimestampMillisecondArray::from((0..n as i64).collect::<Vec<_>>())),
            ],
        )
        .unwrap();
        let mut w = ArrowWriter::try_new(File::create(path).unwrap(), schema, None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
    }

    #[test]
    fn reads_typed_columns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.parquet");
        write(&path, vec![Some("a"), Some("b"), Some("a")], vec![10, 10, 11], vec![4.0, 3.5, 1.0]);
        let opts =
            ReadOptions { columns: Columns { time: Some("ts".into()), ..Default::default() }, ..Default::default() };
        let d = read_interactions(&path, &opts, None).unwrap();
        assert_eq!(d.users.ids(), &["a".to_string(), "b".to_string()]);
        assert_eq!(d.items.ids(), &["10".to_string(), "11".to_string()]);
        assert_eq!(d.events[1].weight, 3.5);
        assert_eq!(d.events[2].time, 2);
        // Explicit format works whatever the extension.
        let other = dir.path().join("x.data");
        std::fs::copy(&path, &other).unwrap();
        let opts = ReadOptions { format: Format::Parquet, ..Default::default() };
        assert_eq!(read_interactions(&other, &opts, None).unwrap().events.len(), 3);
    }

    #[test]
    fn bad_parquet_input_names_row_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.parquet");
        write(&path, vec![Some("a"), None], vec![1, 2], vec![1.0, 2.0]);
        let e = read_interactions(&path, &ReadOptions::default(), None).unwrap_err().to_string();
        assert!(e.contains("row 2") && e.contains("'user_id'"), "{e}");
        let opts = ReadOptions {
            columns: Columns { weight: Some("stars".into()), ..Default::default() },
            ..Default::default()
        };
        let e = read_interactions(&path, &opts, None).unwrap_err().to_string();
        assert!(e.contains("no weight column 'stars'"), "{e}");
        std::fs::write(dir.path().join("broken.parquet"), b"nope").unwrap();
        let e = read_interactions(&dir.path().join("broken.parquet"), &ReadOptions::default(), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a readable Parquet file"), "{e}");
    }
}
