//! The exposure log: one JSON line per served request (who saw which variant
//! and model version, when, how fast), appended by a background thread so the
//! hot path never waits on disk. Queried by reading the files back.
//!
//! Several processes may share the directory (replicas over one data dir):
//! each takes the lowest free writer number `n` — an exclusive lock on
//! `writer-<n>.lock`, held while it lives, released by the kernel if it dies —
//! and appends to its own file, `<deployment>.jsonl` for writer 0 and
//! `<deployment>@<n>.jsonl` for the others (`@` is never in a deployment's
//! name). A query reads every writer's file.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, SyncSender, TrySendError, sync_channel};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Records waiting for the writer; beyond this they are dropped (and counted)
/// rather than slowing requests down.
const QUEUE: usize = 65_536;
/// How often buffered records are written out.
const FLUSH_EVERY: Duration = Duration::from_millis(200);
/// How long the writer lets records gather after waking.
const BATCH_WAIT: Duration = Duration::from_millis(10);

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

enum Msg {
    Record(Exposure),
    Flush(Sender<()>),
}

#[derive(Clone)]
pub struct ExposureLog {
    tx: SyncSender<Msg>,
    dir: PathBuf,
}

/// The lowest writer number no live process holds, and its lock (kept open
/// for the process's life).
fn take_writer_number(dir: &Path) -> std::io::Result<(usize, File)> {
    for n in 0..1024 {
        let lock =
            OpenOptions::new().create(true).truncate(false).write(true).open(dir.join(format!("writer-{n}.lock")))?;
        match lock.try_lock() {
            Ok(()) => return Ok((n, lock)),
            Err(std::fs::TryLockError::WouldBlock) => continue,
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
    }
    Err(std::io::Error::other("more than 1024 processes write this exposure log"))
}

impl ExposureLog {
    pub fn open(dir: PathBuf) -> std::io::Result<ExposureLog> {
        std::fs::create_dir_all(&dir)?;
        let (writer, lock) = take_writer_number(&dir)?;
        let (tx, rx) = sync_channel(QUEUE);
        let writer_dir = dir.clone();
        std::thread::Builder::new().name("plinth-exposures".into()).spawn(move || {
            let _held = lock;
            write_loop(&writer_dir, writer, rx)
        })?;
        Ok(ExposureLog { tx, dir })
    }

    /// Queues a record; never blocks.
    pub fn record(&self, e: Exposure) {
        match self.tx.try_send(Msg::Record(e)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => metrics::counter!("plinth_exposures_dropped_total").increment(1),
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// Waits (briefly) until everything queued so far is in the files.
    pub fn flush(&self) {
        let (tx, rx) = std::sync::mpsc::channel();
        if self.tx.send(Msg::Flush(tx)).is_ok() {
            let _ = rx.recv_timeout(Duration::from_secs(5));
        }
    }

    /// The newest `q.limit` matching records of every writer, newest first.
    pub fn query(&self, deployment: &str, q: &ExposureQuery) -> std::io::Result<Vec<Exposure>> {
        self.flush();
        let mut found = Vec::new();
        for path in files_of(&self.dir, deployment)? {
            let file = match File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let mut newest = std::collections::VecDeque::new();
            for line in BufReader::new(file).lines() {
                let line = line?;
                // A torn last line after a crash is skipped, not an error.
                let Ok(e) = serde_json::from_str::<Exposure>(&line) else { continue };
                let keep = q.variant.as_ref().is_none_or(|v| &e.variant == v)
                    && q.unit.as_ref().is_none_or(|u| &e.unit == u)
                    && q.since_ms.is_none_or(|t| e.time_ms >= t);
                if keep {
                    newest.push_back(e);
                    if newest.len() > q.limit {
                        newest.pop_front();
                    }
                }
            }
            found.extend(newest);
        }
        // Each file is in time order; across writers, by time (stable: a file's order kept on ties).
        found.sort_by_key(|e| std::cmp::Reverse(e.time_ms));
        found.truncate(q.limit);
        Ok(found)
    }
}

/// Writer `n`'s file for `deployment`. Deployment names are validated:
/// letters, digits, '-', '_', '.'.
fn file_for(dir: &Path, deployment: &str, writer: usize) -> PathBuf {
    match writer {
        0 => dir.join(format!("{deployment}.jsonl")),
        n => dir.join(format!("{deployment}@{n}.jsonl")),
    }
}

/// Every writer's file for `deployment`.
fn files_of(dir: &Path, deployment: &str) -> std::io::Result<Vec<PathBuf>> {
    let (whole, prefix) = (format!("{deployment}.jsonl"), format!("{deployment}@"));
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        if name == whole || (name.starts_with(&prefix) && name.ends_with(".jsonl")) {
            out.push(dir.join(name));
        }
    }
    out.sort();
    Ok(out)
}

/// Opens for appending; a torn last line (a crash mid-write) is ended first,
/// so the next record starts on a line of its own.
fn open_for_append(path: &Path) -> std::io::Result<File> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = OpenOptions::new().create(true).read(true).append(true).open(path)?;
    let len = f.metadata()?.len();
    if len > 0 {
        let mut last = [0u8; 1];
        f.seek(SeekFrom::Start(len - 1))?;
        f.read_exact(&mut last)?;
        if last[0] != b'\n' {
            f.write_all(b"\n")?;
        }
    }
    Ok(f)
}

fn write_loop(dir: &Path, writer: usize, rx: Receiver<Msg>) {
    let mut files: HashMap<String, BufWriter<File>> = HashMap::new();
    let flush_all = |files: &mut HashMap<String, BufWriter<File>>| {
        for f in files.values_mut() {
            if let Err(e) = f.flush() {
                tracing::warn!(error = %e, "exposure log flush failed");
            }
        }
    };
    let handle = |msg: Msg, files: &mut HashMap<String, BufWriter<File>>| match msg {
        Msg::Record(e) => {
            if !files.contains_key(&e.deployment) {
                match open_for_append(&file_for(dir, &e.deployment, writer)) {
                    Ok(f) => {
                        files.insert(e.deployment.clone(), BufWriter::new(f));
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, deployment = %e.deployment, "cannot open exposure log");
                        return;
                    }
                }
            }
            if let (Some(f), Ok(line)) = (files.get_mut(&e.deployment), serde_json::to_string(&e))
                && let Err(err) = writeln!(f, "{line}")
            {
                tracing::warn!(error = %err, "exposure log write failed");
            }
        }
        Msg::Flush(done) => {
            flush_all(files);
            let _ = done.send(());
        }
    };
    let mut flushed = std::time::Instant::now();
    loop {
        match rx.recv_timeout(FLUSH_EVERY) {
            Ok(msg) => handle(msg, &mut files),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                flush_all(&mut files);
                return;
            }
        }
        // Under load, let records gather rather than waking this thread
        // (a context switch) for every request; then write them all.
        std::thread::sleep(BATCH_WAIT);
        for msg in rx.try_iter() {
            handle(msg, &mut files);
        }
        // In the files at most FLUSH_EVERY after being served, busy or not.
        if flushed.elapsed() >= FLUSH_EVERY {
            flush_all(&mut files);
            flushed = std::time::Instant::now();
        }
    }
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
            fallback: false,
        }
    }

    #[test]
    fn records_are_appended_and_queried_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let log = ExposureLog::open(dir.path().to_path_buf()).unwrap();
        for t in 0..10 {
            log.record(exposure(if t % 2 == 0 { "a" } else { "b" }, &format!("u{}", t % 3), t));
        }
        let all = log.query("recs", &ExposureQuery { limit: 100, ..Default::default() }).unwrap();
        assert_eq!(all.iter().map(|e| e.time_ms).collect::<Vec<_>>(), (0..10).rev().collect::<Vec<_>>());
        let q = ExposureQuery { variant: Some("a".into()), since_ms: Some(4), limit: 2, ..Default::default() };
        assert_eq!(log.query("recs", &q).unwrap().iter().map(|e| e.time_ms).collect::<Vec<_>>(), [8, 6]);
        let q = ExposureQuery { unit: Some("u1".into()), limit: 100, ..Default::default() };
        assert_eq!(log.query("recs", &q).unwrap().len(), 3);
        assert!(log.query("other", &q).unwrap().is_empty());
        // A torn line (crash mid-write) is skipped.
        std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join("recs.jsonl"))
            .and_then(|mut f| f.write_all(b"{\"time_ms\": 1"))
            .unwrap();
        assert_eq!(log.query("recs", &ExposureQuery { limit: 100, ..Default::default() }).unwrap().len(), 10);
        // A new writer (after a restart) starts on a fresh line.
        drop(log);
        let log = ExposureLog::open(dir.path().to_path_buf()).unwrap();
        log.record(exposure("a", "u9", 99));
        let all = log.query("recs", &ExposureQuery { limit: 100, ..Default::default() }).unwrap();
        assert_eq!((all.len(), all[0].time_ms), (11, 99));
        // A second process on the same directory writes its own file; queries read both.
        let other = ExposureLog::open(dir.path().to_path_buf()).unwrap();
        other.record(exposure("b", "u8", 50));
        other.flush();
        assert!(files_of(dir.path(), "recs").unwrap().len() >= 2, "a file per writer");
        let all = log.query("recs", &ExposureQuery { limit: 100, ..Default::default() }).unwrap();
        assert_eq!(all.iter().map(|e| e.time_ms).take(3).collect::<Vec<_>>(), [99, 50, 9]);
        let newest = log.query("recs", &ExposureQuery { limit: 2, ..Default::default() }).unwrap();
        assert_eq!(newest.iter().map(|e| e.time_ms).collect::<Vec<_>>(), [99, 50]);
    }
}
