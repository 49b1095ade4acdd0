//! `plinth events import FILE`: outcome events logged elsewhere (CSV/TSV or
//! Parquet, one event a row) sent to a running server's `POST /v1/events` in
//! batches; every refused row is reported with its row number and reason,
//! and the command fails if any was.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Context, bail};
use plinth_ml::tabular::table::{Table, TableOptions, Values, read_table};
use serde_json::{Map, Value, json};

use crate::client::{Target, http_client};

#[derive(Debug, clap::Subcommand)]
pub enum EventsCommand {
    /// Send outcome events from a file (CSV/TSV or Parquet; columns unit, kind and optionally time in epoch
    /// milliseconds, item, value, deployment, event_id) to a running server's /v1/events.
    Import(ImportArgs),
}

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The file: .parquet/.pq is read as Parquet, anything else as delimited text with a header line.
    file: PathBuf,
    /// The deployment of rows that name none (default: none, so they count for every deployment that exposed
    /// the unit).
    #[arg(long)]
    deployment: Option<String>,
    /// Events per request (at most 10000).
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    #[command(flatten)]
    target: Target,
}

const ID_COLUMNS: [&str; 5] = ["unit", "kind", "item", "deployment", "event_id"];
const COLUMNS: [&str; 7] = ["unit", "kind", "time", "item", "value", "deployment", "event_id"];

/// The file as a table whose id columns are text (read again as text if any came back numeric, so `007`
/// stays `007`).
fn read(file: &std::path::Path) -> anyhow::Result<Table> {
    let table = read_table(file, &TableOptions::default())?;
    let numeric_ids: Vec<String> = ID_COLUMNS
        .iter()
        .filter(|c| matches!(table.column(c).map(|c| &c.values), Some(Values::Numeric(_))))
        .map(|c| c.to_string())
        .collect();
    if numeric_ids.is_empty() {
        return Ok(table);
    }
    Ok(read_table(file, &TableOptions { categorical: numeric_ids, ..TableOptions::default() })?)
}

/// Row `i` as an event object (a missing cell is an absent field).
fn event(table: &Table, i: usize, deployment: Option<&str>) -> Value {
    let mut e = Map::new();
    for column in &table.columns {
        let value = match &column.values {
            Values::Text(v) => v[i].clone().map(Value::String),
            Values::Numeric(v) if v[i].is_nan() => None,
            // Times are whole milliseconds; other numbers go as they are.
            Values::Numeric(v) if column.name == "time" && v[i].fract() == 0.0 => Some(json!(v[i] as i64)),
            Values::Numeric(v) => Some(json!(v[i])),
        };
        if let Some(value) = value {
            e.insert(column.name.clone(), value);
        }
    }
    if let Some(d) = deployment {
        e.entry("deployment").or_insert_with(|| json!(d));
    }
    Value::Object(e)
}

pub async fn run(cmd: EventsCommand) -> anyhow::Result<()> {
    let EventsCommand::Import(a) = cmd;
    if !(1..=10_000).contains(&a.batch) {
        bail!("--batch must be 1-10000, got {}", a.batch);
    }
    let table = read(&a.file)?;
    let unknown: Vec<&str> = table.names().into_iter().filter(|n| !COLUMNS.contains(n)).collect();
    if !unknown.is_empty() {
        bail!("{}: unknown columns {} (an event has {})", table.source, unknown.join(", "), COLUMNS.join(", "));
    }
    for required in ["unit", "kind"] {
        if table.column(required).is_none() {
            bail!("{}: no column '{required}' (columns: {})", table.source, table.names().join(", "));
        }
    }
    let http = http_client(std::time::Duration::from_secs(120))?;
    let url = format!("{}/v1/events", a.target.tracking_uri.trim_end_matches('/'));
    let bar = std::io::stderr().is_terminal().then(|| indicatif::ProgressBar::new(table.rows as u64));
    let (mut accepted, mut rejected) = (0u64, 0u64);
    for start in (0..table.rows).step_by(a.batch) {
        let end = (start + a.batch).min(table.rows);
        let batch: Vec<Value> = (start..end).map(|i| event(&table, i, a.deployment.as_deref())).collect();
        let resp = http.post(&url).json(&batch).send().await.with_context(|| format!("cannot reach {url}"))?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() && body.get("rejected").is_none() {
            bail!("{url} answered {status}: {}", body["error"].as_str().unwrap_or("no reason given"));
        }
        accepted += body["accepted"].as_u64().unwrap_or(0);
        for r in body["rejected"].as_array().into_iter().flatten() {
            rejected += 1;
            if rejected <= 20 {
                // Rows counted from 1, the header line not counted.
                let row = start + r["index"].as_u64().unwrap_or(0) as usize + 1;
                eprintln!("row {row}: {}", r["reason"].as_str().unwrap_or("refused"));
            }
        }
        if let Some(b) = &bar {
            b.set_position(end as u64);
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    println!("{accepted} events accepted, {rejected} refused, from {}", table.source);
    if rejected > 0 {
        bail!(
            "{rejected} of {} rows were refused{}",
            table.rows,
            if rejected > 20 { " (the first 20 shown)" } else { "" }
        );
    }
    Ok(())
}
