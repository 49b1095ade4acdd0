//! Train/test splits of a table: random (seeded) or by time (the last
//! fraction of rows by a column's order is the test set).

use rand::SeedableRng;
use rand::seq::SliceRandom;

use super::table::{Table, Values};
use crate::{Error, Result};

fn check(fraction: f64) -> Result<()> {
    if !(fraction > 0.0 && fraction < 1.0) {
        return Err(Error::Param(format!("the test fraction must be between 0 and 1, got {fraction}")));
    }
    Ok(())
}

fn cut(table: &Table, order: Vec<usize>, fraction: f64) -> Result<(Table, Table)> {
    let test = ((order.len() as f64) * fraction).round() as usize;
    if test == 0 || test == order.len() {
        return Err(Error::Data(format!(
            "{}: {} rows cannot be split {:.0}% / {:.0}%",
            table.source,
            order.len(),
            (1.0 - fraction) * 100.0,
            fraction * 100.0
        )));
    }
    let (train, held) = order.split_at(order.len() - test);
    let mut train = train.to_vec();
    let mut held = held.to_vec();
    train.sort_unstable();
    held.sort_unstable();
    Ok((table.take(&train), table.take(&held)))
}

/// A seeded random split: `fraction` of the rows go to the test set.
pub fn random(table: &Table, fraction: f64, seed: u64) -> Result<(Table, Table)> {
    check(fraction)?;
    let mut order: Vec<usize> = (0..table.rows).collect();
    order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
    cut(table, order, fraction)
}

/// The latest `fraction` of rows by `column` (numbers, or text such as ISO
/// dates, which sort as written) are the test set. Rows missing the time
/// are an error.
pub fn by_time(table: &Table, column: &str, fraction: f64) -> Result<(Table, Table)> {
    check(fraction)?;
    let col = table.column(column).ok_or_else(|| {
        Error::Data(format!("{}: no time column '{column}' (columns: {})", table.source, table.names().join(", ")))
    })?;
    let mut order: Vec<usize> = (0..table.rows).collect();
    let missing =
        |row: usize| Error::Data(format!("{}: row {}: the time '{column}' is missing", table.source, row + 1));
    match &col.values {
        Values::Numeric(v) => {
            if let Some(row) = v.iter().position(|t| t.is_nan()) {
                return Err(missing(row));
            }
            order.sort_by(|&a, &b| v[a].total_cmp(&v[b]).then(a.cmp(&b)));
        }
        Values::Text(v) => {
            if let Some(row) = v.iter().position(Option::is_none) {
                return Err(missing(row));
            }
            order.sort_by(|&a, &b| v[a].cmp(&v[b]).then(a.cmp(&b)));
        }
    }
    cut(table, order, fraction)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tabular::table::Column;

    fn table(t: Values) -> Table {
        let rows = match &t {
            Values::Numeric(v) => v.len(),
            Values::Text(v) => v.len(),
        };
        Table {
            source: "t".into(),
            columns: vec![
                Column { name: "t".into(), values: t },
                Column { name: "id".into(), values: Values::Numeric((0..rows).map(|i| i as f64).collect()) },
            ],
            rows,
        }
    }

    #[test]
    fn time_split_holds_out_the_latest_rows() {
        let t = table(Values::Text(["2024-03", "2024-01", "2024-04", "2024-02"].map(|s| Some(s.to_string())).to_vec()));
        let (train, test) = by_time(&t, "t", 0.5).unwrap();
        assert_eq!(train.column("id").unwrap().values, Values::Numeric(vec![1.0, 3.0]));
        assert_eq!(test.column("id").unwrap().values, Values::Numeric(vec![0.0, 2.0]));
    }

    #[test]
    fn random_split_is_seeded_and_partitions_the_rows() {
        let t = table(Values::Numeric((0..100).map(f64::from).collect()));
        let (a, b) = random(&t, 0.2, 7).unwrap();
        assert_eq!((a.rows, b.rows), (80, 20));
        assert_eq!(random(&t, 0.2, 7).unwrap().1, b);
        let Values::Numeric(mut all) = a.column("id").unwrap().values.clone() else { unreachable!() };
        let Values::Numeric(held) = &b.column("id").unwrap().values else { unreachable!() };
        all.extend(held);
        all.sort_by(f64::total_cmp);
        assert_eq!(all, (0..100).map(f64::from).collect::<Vec<_>>());
    }

    #[test]
    fn bad_splits_are_errors() {
        let t = table(Values::Numeric(vec![1.0, f64::NAN, 3.0]));
        assert!(random(&t, 1.5, 0).is_err());
        assert!(by_time(&t, "t", 0.3).unwrap_err().to_string().contains("row 2"));
        assert!(by_time(&t, "nope", 0.3).is_err());
        let one = table(Values::Numeric(vec![1.0]));
        assert!(random(&one, 0.2, 0).is_err());
    }
}
