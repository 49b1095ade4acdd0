//! Append-only logs of records as time-partitioned Parquet segments in an
//! object store — a local directory or a bucket that replicas on many hosts
//! share. The exposure log ([`crate::exposure`]) and the outcome events
//! ([`crate::events`]) are two such logs.
//!
//! Layout: `<partition>/<YYYYMMDDHH>/<writer>-<seq>.parquet`, the hour of the
//! records' time (UTC); the partition is a deployment's name (or, for events
//! that name none, their workspace's: [`crate::events::unscoped`]). Every process writes
//! under its own writer id (random per start), so no two processes ever
//! write the same object; a segment is written whole, once, and never
//! changed (readers cache them). A read lists the hours it needs and reads
//! every writer's segments. Records reach the store at most [`FLUSH_EVERY`]
//! after they were handed over (a read flushes this process's first), so
//! another replica sees them within about a second; a crash loses at most
//! that last second. Hours older than the retention are removed by every
//! writer's hourly sweep.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::Schema;
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use plinth_artifacts::{ArtifactPath, ArtifactStore};
use tokio::sync::{mpsc, oneshot};

/// Batches waiting for the writer; beyond this they are dropped (and
/// counted) rather than slowing requests down.
const QUEUE: usize = 65_536;
/// Records a writer holds at most while its store is failing.
const PENDING: usize = 1_000_000;
/// How often gathered records are written out as segments.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Parsed segments kept in memory (they never change); past it the cache starts over.
const CACHED_RECORDS: usize = 2_000_000;
pub const HOUR_MS: i64 = 3_600_000;

/// A record kept in a segment log.
pub trait Record: Clone + Send + Sync + 'static {
    /// What the log holds, for logs and metric names (`exposures`, `events`).
    const KIND: &'static str;
    /// The directory of the store the log's partitions live in (`""`: its root).
    const ROOT: &'static str;
    fn time_ms(&self) -> i64;
    /// The partition the record is written under.
    fn partition(&self) -> &str;
    /// One segment's bytes (records in time order).
    fn encode(records: &[Self]) -> Result<Bytes, String>;
    fn decode(bytes: Bytes, partition: &str) -> Result<Vec<Self>, String>;
}

#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    #[error("segment store: {0}")]
    Store(#[from] plinth_artifacts::Error),
    #[error("segment {path}: {message}")]
    Segment { path: String, message: String },
}

impl SegmentError {
    pub fn kind(&self) -> plinth_core::ErrorKind {
        match self {
            SegmentError::Store(e) => e.kind(),
            SegmentError::Segment { .. } => plinth_core::ErrorKind::Internal,
        }
    }
}

enum Msg<R> {
    /// One record (the exposure log's hot path: no batch allocated per request).
    Record(R),
    Records(Vec<R>),
    Flush(oneshot::Sender<()>),
}

/// Where a log's segments go and how long they stay.
#[derive(Clone)]
pub struct SegmentConfig {
    pub store: ArtifactStore,
    pub retention: Duration,
}

pub struct SegmentLog<R> {
    tx: mpsc::Sender<Msg<R>>,
    store: ArtifactStore,
    cache: Arc<Mutex<HashMap<String, Arc<Vec<R>>>>>,
}

impl<R> Clone for SegmentLog<R> {
    fn clone(&self) -> Self {
        SegmentLog { tx: self.tx.clone(), store: self.store.clone(), cache: self.cache.clone() }
    }
}

impl<R: Record> SegmentLog<R> {
    /// Starts this process's writer (a tokio task) over `config.store`.
    pub fn open(config: SegmentConfig) -> SegmentLog<R> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let writer = Writer::<R> {
            store: config.store.clone(),
            id: format!("w{}", plinth_core::ids::new_run_id()),
            seq: 0,
            pending: Vec::new(),
        };
        tokio::spawn(writer.run(rx, config.retention));
        SegmentLog { tx, store: config.store, cache: Arc::default() }
    }

    /// Queues a record; never blocks.
    pub fn record(&self, r: R) {
        self.queue(Msg::Record(r), 1);
    }

    /// Queues records; never blocks (a full queue drops them, counted).
    pub fn record_all(&self, records: Vec<R>) {
        let n = records.len() as u64;
        self.queue(Msg::Records(records), n);
    }

    fn queue(&self, msg: Msg<R>, n: u64) {
        match self.tx.try_send(msg) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                metrics::counter!(format!("plinth_{}_dropped_total", R::KIND)).increment(n)
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// Queues records, waiting while the queue is full (for callers who
    /// answer only once their records are accepted).
    pub async fn append(&self, records: Vec<R>) -> bool {
        self.tx.send(Msg::Records(records)).await.is_ok()
    }

    /// Waits (briefly) until everything queued so far is in the store.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Flush(tx)).await.is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(10), rx).await;
        }
    }

    /// The hours of `partition` from `since_ms` (every stored hour when
    /// `None`), oldest first.
    async fn hours(&self, base: &ArtifactPath, since_ms: Option<i64>) -> Result<Vec<String>, SegmentError> {
        let mut hours: Vec<String> = match since_ms {
            // Only the hours the window covers (one more for clocks a little ahead).
            Some(since) => {
                let now = plinth_core::ids::now_ms().max(since);
                (since.div_euclid(HOUR_MS)..=now.div_euclid(HOUR_MS) + 1).map(hour_name).collect()
            }
            None => list(&self.store, base)
                .await?
                .into_iter()
                .filter(|e| e.is_dir && is_hour(&e.path))
                .map(|e| e.path)
                .collect(),
        };
        hours.sort();
        Ok(hours)
    }

    /// Every segment of one hour of `partition`.
    async fn hour(&self, base: &ArtifactPath, hour: &str, partition: &str) -> Result<Vec<Arc<Vec<R>>>, SegmentError> {
        let dir = base.join(&ArtifactPath::parse(hour)?);
        let mut out = Vec::new();
        for seg in list(&self.store, &dir).await? {
            if seg.is_dir || !seg.path.ends_with(".parquet") {
                continue;
            }
            let path = dir.join(&ArtifactPath::parse(&seg.path)?);
            out.push(self.segment(&path, partition).await?);
        }
        Ok(out)
    }

    /// Every segment of `partition` from `since_ms`'s hour on (all when
    /// `None`), oldest hour first, each read from the store and handed to
    /// `decode` off the async workers — [`READ_AHEAD`] segments in flight, so
    /// reading and decoding overlap — for readers that decode only the
    /// columns they need ([`projected`]) instead of whole records. The
    /// results come back in the segments' order.
    pub async fn read_segments<T: Send + 'static>(
        &self,
        partition: &str,
        since_ms: Option<i64>,
        decode: impl Fn(Bytes) -> Result<T, String> + Clone + Send + 'static,
    ) -> Result<Vec<T>, SegmentError> {
        use futures::StreamExt as _;
        self.flush().await;
        let base = base::<R>(partition)?;
        let mut paths = Vec::new();
        for hour in self.hours(&base, since_ms).await? {
            let dir = base.join(&ArtifactPath::parse(&hour)?);
            for seg in list(&self.store, &dir).await? {
                if !seg.is_dir && seg.path.ends_with(".parquet") {
                    paths.push(dir.join(&ArtifactPath::parse(&seg.path)?));
                }
            }
        }
        let decoded = futures::stream::iter(paths)
            .map(|path| {
                let decode = decode.clone();
                async move {
                    let bytes = match self.store.read(&path).await {
                        Ok(bytes) => bytes,
                        // Removed by a retention sweep since the listing.
                        Err(plinth_artifacts::Error::NotFound(_)) => return Ok(None),
                        Err(e) => return Err(SegmentError::from(e)),
                    };
                    let fail = |message| SegmentError::Segment { path: path.as_str().to_string(), message };
                    // On rayon's threads (one a core, each reusing its own memory), not tokio's blocking pool.
                    let (tx, rx) = oneshot::channel();
                    rayon::spawn(move || {
                        // A decoder that panics on a corrupt segment fails this read, not the process.
                        let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| decode(bytes)))
                            .unwrap_or_else(|_| Err("the decoder panicked".into()));
                        let _ = tx.send(decoded);
                    });
                    match rx.await {
                        Ok(Ok(t)) => Ok(Some(t)),
                        Ok(Err(message)) => Err(fail(message)),
                        Err(_) => Err(fail("the decoder stopped".into())),
                    }
                }
            })
            .buffered(READ_AHEAD);
        let decoded: Vec<Result<Option<T>, SegmentError>> = decoded.collect().await;
        decoded.into_iter().filter_map(Result::transpose).collect()
    }

    /// The newest `limit` records of `partition` that `keep`, newest first.
    pub async fn newest(
        &self,
        partition: &str,
        since_ms: Option<i64>,
        limit: usize,
        keep: impl Fn(&R) -> bool,
    ) -> Result<Vec<R>, SegmentError> {
        self.flush().await;
        let base = base::<R>(partition)?;
        let mut found = Vec::new();
        // Newest hour first; an hour holds only its own records, so once enough are found the older ones can wait.
        for hour in self.hours(&base, since_ms).await?.iter().rev() {
            for records in self.hour(&base, hour, partition).await? {
                found.extend(records.iter().filter(|r| keep(r)).cloned());
            }
            if found.len() >= limit {
                break;
            }
        }
        // Within a segment in time order; across segments and writers, by time (stable on ties).
        found.sort_by_key(|r| std::cmp::Reverse(r.time_ms()));
        found.truncate(limit);
        Ok(found)
    }

    /// A segment's records, read once and then from the cache.
    async fn segment(&self, path: &ArtifactPath, partition: &str) -> Result<Arc<Vec<R>>, SegmentError> {
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
        let partition = partition.to_string();
        let decoded = tokio::task::spawn_blocking(move || R::decode(bytes, &partition))
            .await
            .map_err(|e| SegmentError::Segment { path: key.clone(), message: e.to_string() })?
            .map_err(|message| SegmentError::Segment { path: key.clone(), message })?;
        let records = Arc::new(decoded);
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.values().map(|r| r.len()).sum::<usize>() + records.len() > CACHED_RECORDS {
            cache.clear();
        }
        cache.insert(key, records.clone());
        Ok(records)
    }

    #[cfg(test)]
    pub(crate) fn reader(store: ArtifactStore) -> SegmentLog<R> {
        SegmentLog { tx: mpsc::channel(1).0, store, cache: Arc::default() }
    }
}

/// Where `partition`'s hours are.
fn base<R: Record>(partition: &str) -> Result<ArtifactPath, SegmentError> {
    Ok(ArtifactPath::parse(R::ROOT)?.join(&ArtifactPath::parse(partition)?))
}

/// Whether a directory's name is an hour's (`YYYYMMDDHH`).
fn is_hour(name: &str) -> bool {
    name.len() == 10 && name.bytes().all(|b| b.is_ascii_digit())
}

/// A directory's entries; a directory that does not exist (yet) has none.
async fn list(store: &ArtifactStore, dir: &ArtifactPath) -> Result<Vec<plinth_artifacts::Entry>, SegmentError> {
    match store.list(dir, &ArtifactPath::root()).await {
        Ok(entries) => Ok(entries),
        Err(plinth_artifacts::Error::NotFound(_)) => Ok(Vec::new()),
        Err(e) => Err(e.into()),
    }
}

/// `YYYYMMDDHH` (UTC) of the hour `hour` hours after the epoch.
pub(crate) fn hour_name(hour: i64) -> String {
    let (y, mo, d, h, _, _) = plinth_core::ids::utc(hour * HOUR_MS);
    format!("{y:04}{mo:02}{d:02}{h:02}")
}

/// This process's writer: gathers records and writes them as segments.
pub(crate) struct Writer<R> {
    pub(crate) store: ArtifactStore,
    pub(crate) id: String,
    pub(crate) seq: u64,
    pub(crate) pending: Vec<R>,
}

impl<R: Record> Writer<R> {
    async fn run(mut self, mut rx: mpsc::Receiver<Msg<R>>, retention: Duration) {
        let mut tick = tokio::time::interval(FLUSH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut sweep = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tokio::select! {
                msg = rx.recv() => match msg {
                    Some(Msg::Record(r)) => self.pending.push(r),
                    Some(Msg::Records(records)) => self.pending.extend(records),
                    Some(Msg::Flush(done)) => {
                        // Group commit: whatever else is queued by now goes in the same write, and every caller
                        // waiting on it is answered after it.
                        let mut waiting = vec![done];
                        while let Ok(msg) = rx.try_recv() {
                            match msg {
                                Msg::Record(r) => self.pending.push(r),
                                Msg::Records(records) => self.pending.extend(records),
                                Msg::Flush(done) => waiting.push(done),
                            }
                        }
                        self.flush().await;
                        for done in waiting {
                            let _ = done.send(());
                        }
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

    /// Writes what has gathered, a segment per partition and hour. A write
    /// that fails keeps its records for the next try (bounded).
    pub(crate) async fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let mut groups: HashMap<(String, i64), Vec<R>> = HashMap::new();
        for r in self.pending.drain(..) {
            groups.entry((r.partition().to_string(), r.time_ms().div_euclid(HOUR_MS))).or_default().push(r);
        }
        for ((partition, hour), mut records) in groups {
            records.sort_by_key(|r| r.time_ms());
            self.seq += 1;
            let name = format!("{partition}/{}/{}-{:010}.parquet", hour_name(hour), self.id, self.seq);
            let name = if R::ROOT.is_empty() { name } else { format!("{}/{name}", R::ROOT) };
            // Encoding is CPU work: off the async workers.
            let records = Arc::new(records);
            let shared = records.clone();
            let bytes =
                tokio::task::spawn_blocking(move || R::encode(&shared)).await.unwrap_or_else(|e| Err(e.to_string()));
            let written = match (ArtifactPath::parse(&name), bytes) {
                (Ok(path), Ok(bytes)) => self.store.put(&path, bytes).await.map_err(|e| e.to_string()),
                (Err(e), _) => Err(e.to_string()),
                (_, Err(e)) => Err(e),
            };
            if let Err(e) = written {
                tracing::warn!(segment = %name, error = %e, kind = R::KIND, "cannot write a segment; keeping it for the next try");
                if self.pending.len() + records.len() <= PENDING {
                    self.pending.extend(Arc::unwrap_or_clone(records));
                } else {
                    metrics::counter!(format!("plinth_{}_dropped_total", R::KIND)).increment(records.len() as u64);
                }
            }
        }
    }

    /// Removes every partition's hours that ended before the retention.
    pub(crate) async fn sweep(&self, retention: Duration) {
        let cutoff = hour_name((plinth_core::ids::now_ms() - retention.as_millis() as i64).div_euclid(HOUR_MS));
        let Ok(root) = ArtifactPath::parse(R::ROOT) else { return };
        let Ok(partitions) = list(&self.store, &root).await else { return };
        for d in partitions.into_iter().filter(|e| e.is_dir) {
            let Ok(base) = base::<R>(&d.path) else { continue };
            let Ok(hours) = list(&self.store, &base).await else { continue };
            // Only hours: another log's root beside the partitions is left alone.
            for h in hours.into_iter().filter(|h| h.is_dir && is_hour(&h.path) && h.path < cutoff) {
                let Ok(path) = ArtifactPath::parse(&h.path).map(|p| base.join(&p)) else { continue };
                if let Err(e) = self.store.delete(&path).await {
                    tracing::warn!(hour = %path.as_str(), error = %e, kind = R::KIND, "cannot remove expired records");
                }
            }
        }
    }
}

/// One segment's bytes: `columns` as one Parquet row group (LZ4: fast to
/// decode, which analyses over millions of rows are bound by).
pub(crate) fn parquet(schema: Arc<Schema>, columns: Vec<ArrayRef>) -> Result<Bytes, String> {
    let batch = RecordBatch::try_new(schema.clone(), columns).map_err(|e| e.to_string())?;
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::LZ4_RAW)
        .build();
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, schema, Some(props)).map_err(|e| e.to_string())?;
    writer.write(&batch).map_err(|e| e.to_string())?;
    writer.close().map_err(|e| e.to_string())?;
    Ok(Bytes::from(out))
}

/// A segment's record batches.
pub(crate) fn batches(bytes: Bytes) -> Result<Vec<RecordBatch>, String> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes).and_then(|b| b.build()).map_err(|e| e.to_string())?;
    reader.map(|b| b.map_err(|e| e.to_string())).collect()
}

/// Rows per batch when a reader decodes columns ([`projected`]).
const PROJECTED_BATCH: usize = 64 * 1024;
/// Segments read and decoded at once by [`SegmentLog::read_segments`].
const READ_AHEAD: usize = 8;

/// Only `columns` of a segment, in batches of up to 64 Ki rows, text read
/// as string views (`Utf8View`: short strings inline, longer ones pointing
/// into the decoded page, so no string is copied per row). A segment
/// written before a column existed simply lacks it: readers check.
pub fn projected(bytes: Bytes, columns: &[&str]) -> Result<Vec<RecordBatch>, String> {
    use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
    let err = |e: parquet::errors::ParquetError| e.to_string();
    let meta = ArrowReaderMetadata::load(&bytes, ArrowReaderOptions::new()).map_err(err)?;
    let fields: Vec<arrow_schema::Field> = meta
        .schema()
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            arrow_schema::DataType::Utf8 => f.as_ref().clone().with_data_type(arrow_schema::DataType::Utf8View),
            _ => f.as_ref().clone(),
        })
        .collect();
    let options = ArrowReaderOptions::new().with_schema(Arc::new(Schema::new(fields)));
    let meta = ArrowReaderMetadata::try_new(meta.metadata().clone(), options).map_err(err)?;
    let builder = ParquetRecordBatchReaderBuilder::new_with_metadata(bytes, meta);
    let mask = parquet::arrow::ProjectionMask::columns(builder.parquet_schema(), columns.iter().copied());
    let reader = builder.with_projection(mask).with_batch_size(PROJECTED_BATCH).build().map_err(err)?;
    reader.map(|b| b.map_err(|e| e.to_string())).collect()
}

/// A batch's column `name` as the array type `T`.
pub fn column<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> Result<&'a T, String> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or_else(|| format!("no column '{name}' of the expected type"))
}
