//! Reading interaction files: CSV/TSV with or without a header, streamed
//! record by record. Errors name the file, line and column.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use crate::interactions::{Event, IdMap, Interactions};
use crate::{Error, Result};

/// Which columns hold what: a header name or a 0-based position.
#[derive(Debug, Clone, Default)]
pub struct Columns {
    pub user: Option<String>,
    pub item: Option<String>,
    pub weight: Option<String>,
    pub time: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Format {
    /// From the extension: `.parquet`/`.pq` are Parquet, anything else text.
    #[default]
    Auto,
    Text,
    Parquet,
}

#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    pub columns: Columns,
    pub format: Format,
    /// `None`: detected from the first line (tab, comma, semicolon, pipe, `::`).
    pub delimiter: Option<u8>,
}

pub(crate) const USER_NAMES: &[&str] = &["user", "userid", "user_id", "uid", "customer_id"];
pub(crate) const ITEM_NAMES: &[&str] =
    &["item", "itemid", "item_id", "movieid", "movie_id", "artistid", "artist_id", "iid", "product_id"];
pub(crate) const WEIGHT_NAMES: &[&str] = &["weight", "rating", "score", "count", "plays", "value"];
pub(crate) const TIME_NAMES: &[&str] = &["timestamp", "time", "ts", "datetime", "date"];

pub(crate) fn detect_delimiter(line: &str) -> u8 {
    for d in [b'\t', b',', b';', b'|'] {
        if line.as_bytes().contains(&d) {
            return d;
        }
    }
    b','
}

struct Layout {
    user: usize,
    item: usize,
    weight: Option<usize>,
    time: Option<usize>,
    names: Vec<String>,
}

fn resolve(
    spec: &Option<String>,
    header: Option<&[String]>,
    known: &[&str],
    default: Option<usize>,
    what: &str,
    file: &str,
) -> Result<Option<usize>> {
    match spec {
        // `--weight-col none` (or `--time-col none`): no such column.
        Some(s) if s == "none" && (what == "weight" || what == "time") => Ok(None),
        Some(s) => {
            if let Some(h) = header
                && let Some(i) = h.iter().position(|c| c == s)
            {
                return Ok(Some(i));
            }
            if let Ok(i) = s.parse::<usize>() {
                return Ok(Some(i));
            }
            Err(Error::Data(format!(
                "{file}: no {what} column '{s}'{}",
                header.map(|h| format!(" (columns: {})", h.join(", "))).unwrap_or_default()
            )))
        }
        None => {
            if let Some(h) = header {
                if let Some(i) = h.iter().position(|c| known.contains(&c.to_ascii_lowercase().as_str())) {
                    return Ok(Some(i));
                }
                return Ok(default.filter(|&d| d < h.len() && what != "time" && what != "weight"));
            }
            Ok(default)
        }
    }
}

/// Reads `path` (CSV, TSV or Parquet) into interactions; ids become strings.
pub fn read_interactions(path: &Path, options: &ReadOptions, into: Option<(IdMap, IdMap)>) -> Result<Interactions> {
    let parquet = match options.format {
        Format::Parquet => true,
        Format::Text => false,
        Format::Auto => path.extension().is_some_and(|e| e == "parquet" || e == "pq"),
    };
    if parquet {
        return crate::parquet_input::read_parquet(path, options, into);
    }
    let name = path.display().to_string();
    let file = File::open(path).map_err(|e| Error::Data(format!("{name}: cannot open: {e}")))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut first = String::new();
    reader.read_line(&mut first).map_err(|e| Error::Data(format!("{name}: cannot read: {e}")))?;
    if first.trim().is_empty() {
        return Err(Error::Data(format!("{name}: the file is empty")));
    }
    let double_colon = first.contains("::");
    let delimiter = options.delimiter.unwrap_or_else(|| if double_colon { b':' } else { detect_delimiter(&first) });
    let split_first: Vec<String> = if double_colon {
        first.trim_end().split("::").map(str::to_string).collect()
    } else {
        first.trim_end().split(delimiter as char).map(|s| s.trim().to_string()).collect()
    };
    // A header if the would-be user/item/weight fields are not all numbers.
    let has_header = split_first.iter().take(3).any(|f| f.parse::<f64>().is_err())
        && split_first.iter().any(|f| {
            let l = f.to_ascii_lowercase();
            USER_NAMES.contains(&l.as_str())
                || ITEM_NAMES.contains(&l.as_str())
                || options.columns.user.as_deref() == Some(f)
        });
    let header = has_header.then_some(split_first.as_slice());
    let cols = &options.columns;
    let layout = Layout {
        user: resolve(&cols.user, header, USER_NAMES, Some(0), "user", &name)?.unwrap_or(0),
        item: resolve(&cols.item, header, ITEM_NAMES, Some(1), "item", &name)?.unwrap_or(1),
        weight: resolve(
            &cols.weight,
            header,
            WEIGHT_NAMES,
            if header.is_none() && split_first.len() > 2 { Some(2) } else { None },
            "weight",
            &name,
        )?,
        time: resolve(
            &cols.time,
            header,
            TIME_NAMES,
            if header.is_none() && split_first.len() > 3 { Some(3) } else { None },
            "time",
            &name,
        )?,
        names: header.map(|h| h.to_vec()).unwrap_or_default(),
    };
    let (users, items) = into.unwrap_or_default();
    let col_name_of = |i: usize| layout.names.get(i).cloned().unwrap_or_else(|| format!("column {i}"));
    let mut out = Interactions { users, items, events: Vec::new(), weight_column: layout.weight.map(col_name_of) };
    let col_name =
        // 0-based, as --user-col/--item-col/--weight-col/--time-col take positions.
        |i: usize| layout.names.get(i).map(|n| format!("{i} ('{n}')")).unwrap_or_else(|| format!("{i}"));
    let mut line_no = 1usize;
    let handle = |line: &str, line_no: usize, out: &mut Interactions| -> Result<()> {
        let trimmed = line.trim_end_matches(['\r', '\n']);
        if trimmed.trim().is_empty() {
            return Ok(());
        }
        let fields: Vec<&str> =
            if double_colon { trimmed.split("::").collect() } else { split_record(trimmed, delimiter) };
        let get = |i: usize| -> Result<&str> {
            fields.get(i).map(|s| s.trim()).ok_or_else(|| {
                Error::Data(format!(
                    "{name}:{line_no}: missing column {} (the line has {} columns)",
                    col_name(i),
                    fields.len()
                ))
            })
        };
        let user = get(layout.user)?;
        let item = get(layout.item)?;
        if user.is_empty() || item.is_empty() {
            return Err(Error::Data(format!("{name}:{line_no}: empty user or item id")));
        }
        let weight = match layout.weight {
            Some(i) => {
                let raw = get(i)?;
                let w: f32 = raw.parse().map_err(|_| {
                    Error::Data(format!("{name}:{line_no}: column {}: '{raw}' is not a number", col_name(i)))
                })?;
                if !w.is_finite() {
                    return Err(Error::Data(format!(
                        "{name}:{line_no}: column {}: '{raw}' is not finite",
                        col_name(i)
                    )));
                }
                w
            }
            None => 1.0,
        };
        let time = match layout.time {
            Some(i) => {
                let raw = get(i)?;
                raw.parse::<i64>().or_else(|_| raw.parse::<f64>().map(|f| f as i64)).map_err(|_| {
                    Error::Data(format!("{name}:{line_no}: column {}: '{raw}' is not a timestamp", col_name(i)))
                })?
            }
            None => line_no as i64,
        };
        let user = out.users.intern(user);
        let item = out.items.intern(item);
        out.events.push(Event { user, item, weight, time });
        Ok(())
    };
    if !has_header {
        handle(&first, line_no, &mut out)?;
    }
    let mut buf = String::new();
    loop {
        buf.clear();
        let n =
            reader.read_line(&mut buf).map_err(|e| Error::Data(format!("{name}:{}: cannot read: {e}", line_no + 1)))?;
        if n == 0 {
            break;
        }
        line_no += 1;
        handle(&buf, line_no, &mut out)?;
    }
    if out.events.is_empty() {
        return Err(Error::Data(format!("{name}: no interactions found")));
    }
    Ok(out)
}

/// Splits one record, honouring double quotes (CSV).
fn split_record(line: &str, delimiter: u8) -> Vec<&str> {
    if !line.contains('"') {
        return line.split(delimiter as char).collect();
    }
    let mut out = Vec::new();
    let bytes = line.as_bytes();
    let (mut start, mut quoted) = (0, false);
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'"' {
            quoted = !quoted;
        } else if b == delimiter && !quoted {
            out.push(line[start..i].trim_matches('"'));
            start = i + 1;
        }
    }
    out.push(line[start..].trim_matches('"'));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    struct TempPath(tempfile::TempPath);

    impl std::ops::Deref for TempPath {
        type Target = std::path::Path;
        fn deref(&self) -> &std::path::Path {
            &self.0
        }
    }

    fn write(content: &str) -> TempPath {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(content.as_bytes()).unwrap();
        TempPath(f.into_temp_path())
    }

    #[test]
    fn reads_tsv_without_header_and_csv_with_header() {
        let f = write("1\t10\t5\t100\n2\t10\t3\t101\n1\t11\t4\t102\n");
        let d = read_interactions(&f, &ReadOptions::default(), None).unwrap();
        assert_eq!((d.users.len(), d.items.len(), d.events.len()), (2, 2, 3));
        assert_eq!(d.events[0].weight, 5.0);
        assert_eq!(d.events[2].time, 102);
        let f = write("userId,movieId,rating,timestamp\nu1,m1,4.5,10\nu2,m1,3.0,11\n");
        let d = read_interactions(&f, &ReadOptions::default(), None).unwrap();
        assert_eq!(d.users.ids(), &["u1".to_string(), "u2".to_string()]);
        assert_eq!(d.events[0].weight, 4.5);
    }

    #[test]
    fn errors_name_file_line_and_column() {
        let f = write("user,item,rating\na,b,1\na,c,lots\n");
        let e = read_interactions(&f, &ReadOptions::default(), None).unwrap_err().to_string();
        assert!(e.contains(":3:") && e.contains("'rating'") && e.contains("lots"), "{e}");
        let f = write("");
        assert!(read_interactions(&f, &ReadOptions::default(), None).unwrap_err().to_string().contains("empty"));
        let f = write("user,item\na,b\n");
        let opts = ReadOptions {
            columns: Columns { weight: Some("rating".into()), ..Default::default() },
            ..Default::default()
        };
        let e = read_interactions(&f, &opts, None).unwrap_err().to_string();
        assert!(e.contains("no weight column 'rating'"), "{e}");
        let f = write("1\t2\t3\n4\t5\n");
        let e = read_interactions(&f, &ReadOptions::default(), None).unwrap_err().to_string();
        assert!(e.contains(":2:") && e.contains("missing column"), "{e}");
    }
}
