//! The exposure log: one record per served request (who saw which variant
//! and model version, when, how fast), gathered off the hot path by a
//! background task and written as Parquet segments (a [`SegmentLog`]) under
//! the deployment's name — in a local directory (`<data-dir>/exposures` by
//! default) or a bucket that replicas on many hosts share.

use std::sync::Arc;
use std::time::Duration;

use arrow_array::builder::{ListBuilder, StringBuilder};
use arrow_array::{Array, ArrayRef, BooleanArray, Int64Array, ListArray, StringArray, UInt64Array};
use arrow_schema::{DataType, Field, Schema};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

pub use crate::segments::FLUSH_EVERY;
use crate::segments::{self, Record, SegmentConfig, SegmentError, SegmentLog, column};

/// Exposures are kept this long unless told otherwise.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

pub type ExposureLog = SegmentLog<Exposure>;
pub type ExposureConfig = SegmentConfig;
pub type ExposureError = SegmentError;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exposure {
    pub time_ms: i64,
    pub deployment: String,
    pub variant: String,
    pub model: String,
    pub model_version: i64,
    pub unit: String,
    pub request_id: String,
    pub endpoint: String,
    /// From the request's arrival (its head read by the server) to its
    /// answer; for a shadow, the shadow's own work.
    pub latency_us: u64,
    pub shadow: bool,
    /// The user was unknown to the model and got popular items.
    pub fallback: bool,
    /// What was shown: a recommendation's item ids in rank order (empty for
    /// other endpoints and for records of versions before it was kept).
    #[serde(default)]
    pub items: Vec<Arc<str>>,
    /// An interleaved exposure: per item, the variant whose ranking
    /// contributed it (empty otherwise).
    #[serde(default)]
    pub rankers: Vec<Arc<str>>,
    /// The request failed on our side: the unit was exposed to a failure
    /// (the analysis' error-rate guardrail). A caller's mistake is not an exposure.
    #[serde(default)]
    pub error: bool,
}

/// Which records to return, newest first.
#[derive(Debug, Clone, Default)]
pub struct ExposureQuery {
    pub variant: Option<String>,
    pub unit: Option<String>,
    pub since_ms: Option<i64>,
    pub limit: usize,
}

impl ExposureQuery {
    fn keeps(&self, e: &Exposure) -> bool {
        self.variant.as_ref().is_none_or(|v| &e.variant == v)
            && self.unit.as_ref().is_none_or(|u| &e.unit == u)
            && self.since_ms.is_none_or(|t| e.time_ms >= t)
    }
}

impl Record for Exposure {
    const KIND: &'static str = "exposures";
    const ROOT: &'static str = "";
    fn time_ms(&self) -> i64 {
        self.time_ms
    }
    fn partition(&self) -> &str {
        &self.deployment
    }
    fn encode(records: &[Self]) -> Result<Bytes, String> {
        encode(records)
    }
    fn decode(bytes: Bytes, partition: &str) -> Result<Vec<Self>, String> {
        decode(bytes, partition)
    }
}

impl SegmentLog<Exposure> {
    /// The newest `q.limit` matching records of every writer, newest first.
    pub async fn query(&self, deployment: &str, q: &ExposureQuery) -> Result<Vec<Exposure>, ExposureError> {
        self.newest(deployment, q.since_ms, q.limit, |e| q.keeps(e)).await
    }

    /// Moves a directory of the JSON-lines log of earlier versions
    /// (`<deployment>[@<n>].jsonl`) into segments, renaming each file it
    /// took to `.jsonl.imported`. Torn lines are skipped.
    pub async fn import_jsonl(&self, dir: &std::path::Path) -> std::io::Result<usize> {
        let Ok(entries) = std::fs::read_dir(dir) else { return Ok(0) };
        let mut imported = 0;
        for entry in entries {
            let path = entry?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("jsonl") {
                continue;
            }
            let text = tokio::fs::read_to_string(&path).await?;
            for line in text.lines() {
                if let Ok(e) = serde_json::from_str::<Exposure>(line) {
                    self.record(e);
                    imported += 1;
                }
            }
            self.flush().await;
            let mut done = path.clone().into_os_string();
            done.push(".imported");
            tokio::fs::rename(&path, done).await?;
        }
        if imported > 0 {
            tracing::info!(records = imported, dir = %dir.display(), "moved the JSON-lines exposure log into segments");
        }
        Ok(imported)
    }
}

fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("time_ms", DataType::Int64, false),
        Field::new("variant", DataType::Utf8, false),
        Field::new("model", DataType::Utf8, false),
        Field::new("model_version", DataType::Int64, false),
        Field::new("unit", DataType::Utf8, false),
        Field::new("request_id", DataType::Utf8, false),
        Field::new("endpoint", DataType::Utf8, false),
        Field::new("latency_us", DataType::UInt64, false),
        Field::new("shadow", DataType::Boolean, false),
        Field::new("fallback", DataType::Boolean, false),
        Field::new("items", DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true))), false),
        Field::new("rankers", DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true))), false),
        Field::new("error", DataType::Boolean, false),
    ]))
}

/// One segment: the records as one Parquet row group (zstd).
fn encode(records: &[Exposure]) -> Result<Bytes, String> {
    let strings =
        |f: fn(&Exposure) -> &str| -> ArrayRef { Arc::new(StringArray::from_iter_values(records.iter().map(f))) };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(records.iter().map(|e| e.time_ms))),
        strings(|e| &e.variant),
        strings(|e| &e.model),
        Arc::new(Int64Array::from_iter_values(records.iter().map(|e| e.model_version))),
        strings(|e| &e.unit),
        strings(|e| &e.request_id),
        strings(|e| &e.endpoint),
        Arc::new(UInt64Array::from_iter_values(records.iter().map(|e| e.latency_us))),
        Arc::new(BooleanArray::from_iter(records.iter().map(|e| Some(e.shadow)))),
        Arc::new(BooleanArray::from_iter(records.iter().map(|e| Some(e.fallback)))),
        lists(records, |e| &e.items),
        lists(records, |e| &e.rankers),
        Arc::new(BooleanArray::from_iter(records.iter().map(|e| Some(e.error)))),
    ];
    segments::parquet(schema(), columns)
}

/// A list-of-text column.
fn lists(records: &[Exposure], f: fn(&Exposure) -> &Vec<Arc<str>>) -> ArrayRef {
    let mut lists = ListBuilder::new(StringBuilder::new());
    for e in records {
        for s in f(e) {
            lists.values().append_value(&**s);
        }
        lists.append(true);
    }
    Arc::new(lists.finish())
}

/// Row `i` of a list-of-text column (empty when the segment has no such column).
fn list_at(lists: Option<&ListArray>, i: usize) -> Result<Vec<Arc<str>>, String> {
    match lists {
        Some(lists) if !lists.is_null(i) => {
            let list = lists.value(i);
            let list = list.as_any().downcast_ref::<StringArray>().ok_or("a list column is not text")?;
            Ok(list.iter().map(|s| Arc::from(s.unwrap_or_default())).collect())
        }
        _ => Ok(Vec::new()),
    }
}

fn decode(bytes: Bytes, deployment: &str) -> Result<Vec<Exposure>, String> {
    let mut out = Vec::new();
    for batch in segments::batches(bytes)? {
        let time = column::<Int64Array>(&batch, "time_ms")?;
        let variant = column::<StringArray>(&batch, "variant")?;
        let model = column::<StringArray>(&batch, "model")?;
        let version = column::<Int64Array>(&batch, "model_version")?;
        let unit = column::<StringArray>(&batch, "unit")?;
        let request = column::<StringArray>(&batch, "request_id")?;
        let endpoint = column::<StringArray>(&batch, "endpoint")?;
        let latency = column::<UInt64Array>(&batch, "latency_us")?;
        let shadow = column::<BooleanArray>(&batch, "shadow")?;
        let fallback = column::<BooleanArray>(&batch, "fallback")?;
        // Absent from segments written before they were kept.
        let items = column::<ListArray>(&batch, "items").ok();
        let rankers = column::<ListArray>(&batch, "rankers").ok();
        let error = column::<BooleanArray>(&batch, "error").ok();
        for i in 0..batch.num_rows() {
            out.push(Exposure {
                time_ms: time.value(i),
                deployment: deployment.to_string(),
                variant: variant.value(i).to_string(),
                model: model.value(i).to_string(),
                model_version: version.value(i),
                unit: unit.value(i).to_string(),
                request_id: request.value(i).to_string(),
                endpoint: endpoint.value(i).to_string(),
                latency_us: latency.value(i),
                shadow: shadow.value(i),
                fallback: fallback.value(i),
                items: list_at(items, i)?,
                rankers: list_at(rankers, i)?,
                error: error.is_some_and(|e| e.value(i)),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use plinth_artifacts::ArtifactStore;

    use super::*;
    use crate::segments::{HOUR_MS, Writer, hour_name};

    fn exposure(variant: &str, unit: &str, t: i64) -> Exposure {
        Exposure {
            time_ms: t,
            deployment: "recs".into(),
            variant: variant.into(),
            model: "m".into(),
            model_version: 1,
            unit: unit.into(),
            request_id: format!("r{t}"),
            endpoint: "recommend".into(),
            latency_us: 10,
            shadow: false,
            fallback: t % 5 == 0,
            items: if t % 2 == 0 { vec![format!("i{t}").into(), "i0".into()] } else { Vec::new() },
            rankers: if t % 4 == 0 { vec!["a".into(), "b".into()] } else { Vec::new() },
            error: t % 7 == 3,
        }
    }

    fn all(limit: usize) -> ExposureQuery {
        ExposureQuery { limit, ..Default::default() }
    }

    fn times(found: &[Exposure]) -> Vec<i64> {
        found.iter().map(|e| e.time_ms).collect()
    }

    #[tokio::test]
    async fn records_are_written_as_segments_and_queried_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::local(dir.path()).unwrap();
        let config = ExposureConfig { store: store.clone(), retention: DEFAULT_RETENTION };
        let log = ExposureLog::open(config.clone());
        // Two hours apart: two hour directories (the last one now).
        let now = plinth_core::ids::now_ms();
        let base = now - now.rem_euclid(HOUR_MS) - 2 * HOUR_MS;
        for t in 0..10 {
            log.record(exposure(if t % 2 == 0 { "a" } else { "b" }, &format!("u{}", t % 3), base + t * 1000));
        }
        log.record(exposure("a", "u9", base + 2 * HOUR_MS));
        let found = log.query("recs", &all(100)).await.unwrap();
        assert_eq!(found.len(), 11);
        assert_eq!(found[0], exposure("a", "u9", base + 2 * HOUR_MS), "every field comes back");
        assert_eq!(times(&found[1..]), (0..10).rev().map(|t| base + t * 1000).collect::<Vec<_>>());
        let q =
            ExposureQuery { variant: Some("a".into()), since_ms: Some(base + 4000), limit: 2, ..Default::default() };
        assert_eq!(times(&log.query("recs", &q).await.unwrap()), [base + 2 * HOUR_MS, base + 8000]);
        let q = ExposureQuery { unit: Some("u1".into()), limit: 100, ..Default::default() };
        assert_eq!(log.query("recs", &q).await.unwrap().len(), 3);
        assert!(log.query("other", &q).await.unwrap().is_empty());

        // A second process over the same store writes segments of its own; queries read both.
        let other = ExposureLog::open(config);
        other.record(exposure("b", "u8", base + 50_000));
        other.flush().await;
        let found = log.query("recs", &all(3)).await.unwrap();
        assert_eq!(times(&found), [base + 2 * HOUR_MS, base + 50_000, base + 9000]);
        let hour = dir.path().join("recs").join(hour_name(base / HOUR_MS));
        let writers: std::collections::HashSet<String> = std::fs::read_dir(hour)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().split('-').next().unwrap_or_default().to_string())
            .collect();
        assert_eq!(writers.len(), 2, "a segment per writer: {writers:?}");
    }

    #[tokio::test]
    async fn the_old_json_lines_log_is_moved_into_segments() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("recs@1.jsonl");
        // Recent records (older ones would be past the retention, and swept).
        let t0 = plinth_core::ids::now_ms() - 10_000;
        let lines: Vec<String> = (0..3).map(|t| serde_json::to_string(&exposure("a", "u", t0 + t)).unwrap()).collect();
        std::fs::write(&old, format!("{}\n{{\"time_ms\": 1", lines.join("\n"))).unwrap();
        let log = ExposureLog::open(ExposureConfig {
            store: ArtifactStore::local(dir.path()).unwrap(),
            retention: DEFAULT_RETENTION,
        });
        assert_eq!(log.import_jsonl(dir.path()).await.unwrap(), 3, "the torn last line is skipped");
        assert!(!old.exists() && dir.path().join("recs@1.jsonl.imported").exists());
        assert_eq!(times(&log.query("recs", &all(10)).await.unwrap()), [t0 + 2, t0 + 1, t0]);
        assert_eq!(log.import_jsonl(dir.path()).await.unwrap(), 0, "once");
    }

    #[tokio::test]
    async fn expired_hours_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::local(dir.path()).unwrap();
        let writer = Writer::<Exposure> { store: store.clone(), id: "w".into(), seq: 0, pending: Vec::new() };
        let mut writer = writer;
        let now = plinth_core::ids::now_ms();
        writer.pending = vec![exposure("a", "u", now - 3 * HOUR_MS), exposure("a", "u", now)];
        writer.flush().await;
        writer.sweep(Duration::from_secs(3600)).await;
        let log = ExposureLog::reader(store);
        assert_eq!(times(&log.query("recs", &all(10)).await.unwrap()), [now]);
    }
}
