//! The exposure log: one record per served request (who saw which variant
//! and model version, when, how fast), gathered off the hot path by a
//! background task and written as Parquet segments to an object store — a
//! local directory (`<data-dir>/exposures` by default) or a bucket that
//! replicas on many hosts share.
//!
//! Layout: `<deployment>/<YYYYMMDDHH>/<writer>-<seq>.parquet`, the hour of the
//! records' time (UTC). Every process writes under its own writer id (random
//! per start), so no two processes ever write the same object; a segment is
//! written whole, once, and never changed (readers cache them). A query lists
//! the hours it needs and reads every writer's segments. Records reach the
//! store at most [`FLUSH_EVERY`] after being served (a query flushes this
//! process's first), so another replica sees them within about a second; a
//! crash loses at most that last second. Hours older than the retention are
//! removed by every writer's hourly sweep.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow_array::{Array, ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray, UInt64Array};
use arrow_schema::{DataType, Field, Schema};
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use plinth_artifacts::{ArtifactPath, ArtifactStore};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

/// Records waiting for the writer; beyond this they are dropped (and counted)
/// rather than slowing requests down.
const QUEUE: usize = 65_536;
/// How often gathered records are written out as segments.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Parsed segments kept in memory (they never change); past it the cache starts over.
const CACHED_RECORDS: usize = 2_000_000;
/// Exposures are kept this long unless told otherwise.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);
const HOUR_MS: i64 = 3_600_000;

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

#[derive(Debug, thiserror::Error)]
pub enum ExposureError {
    #[error("exposure store: {0}")]
    Store(#[from] plinth_artifacts::Error),
    #[error("exposure segment {path}: {message}")]
    Segment { path: String, message: String },
}

impl ExposureError {
    pub fn kind(&self) -> plinth_core::ErrorKind {
        match self {
            ExposureError::Store(e) => e.kind(),
            ExposureError::Segment { .. } => plinth_core::ErrorKind::Internal,
        }
    }
}

enum Msg {
    Record(Exposure),
    Flush(oneshot::Sender<()>),
}

/// Where exposures go and how long they stay.
#[derive(Clone)]
pub struct ExposureConfig {
    pub store: ArtifactStore,
    pub retention: Duration,
}

#[derive(Clone)]
pub struct ExposureLog {
    tx: mpsc::Sender<Msg>,
    store: ArtifactStore,
    cache: Arc<Mutex<HashMap<String, Arc<Vec<Exposure>>>>>,
}

impl ExposureLog {
    /// Starts this process's writer (a tokio task) over `config.store`.
    pub fn open(config: ExposureConfig) -> ExposureLog {
        let (tx, rx) = mpsc::channel(QUEUE);
        let writer = Writer {
            store: config.store.clone(),
            id: format!("w{}", plinth_core::ids::new_run_id()),
            seq: 0,
            pending: Vec::new(),
        };
        tokio::spawn(writer.run(rx, config.retention));
        ExposureLog { tx, store: config.store, cache: Arc::default() }
    }

    /// Queues a record; never blocks.
    pub fn record(&self, e: Exposure) {
        match self.tx.try_send(Msg::Record(e)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => metrics::counter!("plinth_exposures_dropped_total").increment(1),
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// Waits (briefly) until everything queued so far is in the store.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Flush(tx)).await.is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(10), rx).await;
        }
    }

    /// The newest `q.limit` matching records of every writer, newest first.
    pub async fn query(&self, deployment: &str, q: &ExposureQuery) -> Result<Vec<Exposure>, ExposureError> {
        self.flush().await;
        let base = ArtifactPath::parse(deployment)?;
        let mut hours: Vec<String> = match q.since_ms {
            // Only the hours the window covers (one more for clocks a little ahead).
            Some(since) => {
                let now = plinth_core::ids::now_ms().max(since);
                (since.div_euclid(HOUR_MS)..=now.div_euclid(HOUR_MS) + 1).map(hour_name).collect()
            }
            None => list(&self.store, &base).await?.into_iter().filter(|e| e.is_dir).map(|e| e.path).collect(),
        };
        hours.sort();
        let mut found = Vec::new();
        // Newest hour first; an hour holds only its own records, so once enough are found the older ones can wait.
        for hour in hours.iter().rev() {
            let dir = base.join(&ArtifactPath::parse(hour)?);
            for seg in list(&self.store, &dir).await? {
                if seg.is_dir || !seg.path.ends_with(".parquet") {
                    continue;
                }
                let path = dir.join(&ArtifactPath::parse(&seg.path)?);
                let records = self.segment(&path, deployment).await?;
                found.extend(records.iter().filter(|e| q.keeps(e)).cloned());
            }
            if found.len() >= q.limit {
                break;
            }
        }
        // Within a segment in time order; across segments and writers, by time (stable on ties).
        found.sort_by_key(|e| std::cmp::Reverse(e.time_ms));
        found.truncate(q.limit);
        Ok(found)
    }

    /// A segment's records, read once and then from the cache.
    async fn segment(&self, path: &ArtifactPath, deployment: &str) -> Result<Arc<Vec<Exposure>>, ExposureError> {
        let key = path.as_str().to_string();
        if let Some(hit) = self.cache.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return Ok(hit.clone());
        }
        let bytes = match self.store.read(path).await {
            Ok(b) => b,
            // Removed by a retention sweep since the listing.
            Err(plinth_artifacts::Error::NotFound(_)) => return Ok(Arc::default()),
            Err(e) => return Err(e.into()),
        };
        let deployment = deployment.to_string();
        let decoded = tokio::task::spawn_blocking(move || decode(bytes, &deployment))
            .await
            .map_err(|e| ExposureError::Segment { path: key.clone(), message: e.to_string() })?
            .map_err(|message| ExposureError::Segment { path: key.clone(), message })?;
        let records = Arc::new(decoded);
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.values().map(|r| r.len()).sum::<usize>() + records.len() > CACHED_RECORDS {
            cache.clear();
        }
        cache.insert(key, records.clone());
        Ok(records)
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

/// A directory's entries; a directory that does not exist (yet) has none.
async fn list(store: &ArtifactStore, dir: &ArtifactPath) -> Result<Vec<plinth_artifacts::Entry>, ExposureError> {
    match store.list(dir, &ArtifactPath::root()).await {
        Ok(entries) => Ok(entries),
        Err(plinth_artifacts::Error::NotFound(_)) => Ok(Vec::new()),
        Err(e) => Err(e.into()),
    }
}

/// `YYYYMMDDHH` (UTC) of the hour `hour` hours after the epoch.
fn hour_name(hour: i64) -> String {
    let (y, mo, d, h, _, _) = plinth_core::ids::utc(hour * HOUR_MS);
    format!("{y:04}{mo:02}{d:02}{h:02}")
}

/// This process's writer: gathers records and writes them as segments.
struct Writer {
    store: ArtifactStore,
    id: String,
    seq: u64,
    pending: Vec<Exposure>,
}

impl Writer {
    async fn run(mut self, mut rx: mpsc::Receiver<Msg>, retention: Duration) {
        let mut tick = tokio::time::interval(FLUSH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut sweep = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tokio::select! {
                msg = rx.recv() => match msg {
                    Some(Msg::Record(e)) => self.pending.push(e),
                    Some(Msg::Flush(done)) => {
                        self.flush().await;
                        let _ = done.send(());
                    }
                    None => {
                        self.flush().await;
                        return;
                    }
                },
                _ = tick.tick() => self.flush().await,
                _ = sweep.tick() => self.sweep(retention).await,
            }
        }
    }

    /// Writes what has gathered, a segment per deployment and hour. A write
    /// that fails keeps its records for the next try (bounded by the queue).
    async fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let mut groups: HashMap<(String, i64), Vec<Exposure>> = HashMap::new();
        for e in self.pending.drain(..) {
            groups.entry((e.deployment.clone(), e.time_ms.div_euclid(HOUR_MS))).or_default().push(e);
        }
        for ((deployment, hour), mut records) in groups {
            records.sort_by_key(|e| e.time_ms);
            self.seq += 1;
            let name = format!("{deployment}/{}/{}-{:010}.parquet", hour_name(hour), self.id, self.seq);
            let written = match (ArtifactPath::parse(&name), encode(&records)) {
                (Ok(path), Ok(bytes)) => self.store.put(&path, bytes).await.map_err(|e| e.to_string()),
                (Err(e), _) => Err(e.to_string()),
                (_, Err(e)) => Err(e),
            };
            if let Err(e) = written {
                tracing::warn!(segment = %name, error = %e, "cannot write exposures; keeping them for the next try");
                if self.pending.len() + records.len() <= QUEUE {
                    self.pending.extend(records);
                } else {
                    metrics::counter!("plinth_exposures_dropped_total").increment(records.len() as u64);
                }
            }
        }
    }

    /// Removes every deployment's hours that ended before the retention.
    async fn sweep(&self, retention: Duration) {
        let cutoff = hour_name((plinth_core::ids::now_ms() - retention.as_millis() as i64).div_euclid(HOUR_MS));
        let Ok(deployments) = list(&self.store, &ArtifactPath::root()).await else { return };
        for d in deployments.into_iter().filter(|e| e.is_dir) {
            let Ok(base) = ArtifactPath::parse(&d.path) else { continue };
            let Ok(hours) = list(&self.store, &base).await else { continue };
            for h in hours.into_iter().filter(|h| h.is_dir && h.path < cutoff) {
                let Ok(path) = ArtifactPath::parse(&h.path).map(|p| base.join(&p)) else { continue };
                if let Err(e) = self.store.delete(&path).await {
                    tracing::warn!(hour = %path.as_str(), error = %e, "cannot remove expired exposures");
                }
            }
        }
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
    ];
    let batch = RecordBatch::try_new(schema(), columns).map_err(|e| e.to_string())?;
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::ZSTD(Default::default()))
        .build();
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, schema(), Some(props)).map_err(|e| e.to_string())?;
    writer.write(&batch).map_err(|e| e.to_string())?;
    writer.close().map_err(|e| e.to_string())?;
    Ok(Bytes::from(out))
}

fn decode(bytes: Bytes, deployment: &str) -> Result<Vec<Exposure>, String> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes).and_then(|b| b.build()).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| e.to_string())?;
        fn column<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> Result<&'a T, String> {
            batch
                .column_by_name(name)
                .and_then(|c| c.as_any().downcast_ref::<T>())
                .ok_or_else(|| format!("no column '{name}' of the expected type"))
        }
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
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let writer = Writer { store: store.clone(), id: "w".into(), seq: 0, pending: Vec::new() };
        let mut writer = writer;
        let now = plinth_core::ids::now_ms();
        writer.pending = vec![exposure("a", "u", now - 3 * HOUR_MS), exposure("a", "u", now)];
        writer.flush().await;
        writer.sweep(Duration::from_secs(3600)).await;
        let log = ExposureLog { tx: mpsc::channel(1).0, store, cache: Arc::default() };
        assert_eq!(times(&log.query("recs", &all(10)).await.unwrap()), [now]);
    }
}
