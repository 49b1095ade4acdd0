//! Outcome events: what units did after they were served (`play`, `click`,
//! `conversion`, minutes watched), posted by the services around Plinth
//! (`POST /v1/events`) or imported, and kept as a [`SegmentLog`] beside the
//! exposure log (under [`Event::ROOT`] in the same store), partitioned by the
//! deployment an event names, or, when it names none, by the workspace it was
//! posted in ([`unscoped`]: such events count for every deployment of that
//! workspace that exposed the unit, and for no other workspace's).
//!
//! An event may carry an `event_id`; a retried batch stores it again, and
//! the analysis counts each `(unit, event_id)` once ([`crate::join`]), so
//! retries are idempotent whichever replica took them.

use std::sync::Arc;

use arrow_array::{Array, ArrayRef, Float64Array, Int64Array, StringArray};
use arrow_schema::{DataType, Field, Schema};
use bytes::Bytes;
use serde::Serialize;

use crate::segments::{self, Record, SegmentLog, column};

/// The partition of the events posted in `workspace` that name no
/// deployment (`~<workspace>`: a name no deployment can have).
pub fn unscoped(workspace: &str) -> String {
    format!("~{workspace}")
}

/// Whether `partition` holds events that name no deployment.
fn is_unscoped(partition: &str) -> bool {
    partition.starts_with('~')
}
/// How far ahead of the server's clock an event's time may be (clocks drift).
pub const MAX_FUTURE_MS: i64 = 5 * 60 * 1000;
/// Events per request at most.
pub const MAX_BATCH: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub time_ms: i64,
    /// The deployment it names, or the [`unscoped`] partition of its workspace.
    pub deployment: String,
    pub unit: String,
    pub kind: String,
    pub item: Option<String>,
    pub value: Option<f64>,
    pub event_id: Option<String>,
}

/// An event as posted, before it is checked.
#[derive(Debug, Clone, Default)]
pub struct EventInput {
    pub unit: Option<String>,
    pub kind: Option<String>,
    pub time_ms: Option<i64>,
    pub item: Option<String>,
    pub value: Option<f64>,
    pub deployment: Option<String>,
    pub event_id: Option<String>,
}

/// Whether `kind` is an event kind's name: 1–64 letters, digits, `_`, `-`, `.`.
pub fn valid_kind(kind: &str) -> bool {
    plinth_core::policy::valid_event_kind(kind)
}

impl EventInput {
    /// The event, or why it is refused; `now_ms` stamps one without a time,
    /// `oldest_ms` is the retention's start, `workspace` is where it was
    /// posted (the partition of an event that names no deployment).
    pub fn check(self, now_ms: i64, oldest_ms: i64, workspace: &str) -> Result<Event, String> {
        let unit = self.unit.filter(|u| !u.is_empty()).ok_or("'unit' is required")?;
        if unit.len() > 256 {
            return Err("'unit' is longer than 256 bytes".into());
        }
        let kind = self.kind.ok_or("'kind' is required")?;
        if !valid_kind(&kind) {
            return Err(format!("'kind' must be 1-64 letters, digits, '_', '-' or '.', got '{kind}'"));
        }
        let time_ms = self.time_ms.unwrap_or(now_ms);
        if time_ms > now_ms + MAX_FUTURE_MS {
            return Err(format!("'time' {time_ms} is in the future (the server's clock reads {now_ms})"));
        }
        if time_ms < oldest_ms {
            return Err(format!("'time' {time_ms} is older than the retention (events from {oldest_ms} are kept)"));
        }
        if let Some(v) = self.value
            && !v.is_finite()
        {
            return Err("'value' must be a finite number".into());
        }
        if self.item.as_ref().is_some_and(|i| i.is_empty() || i.len() > 256) {
            return Err("'item' must be 1-256 bytes".into());
        }
        if self.event_id.as_ref().is_some_and(|i| i.is_empty() || i.len() > 128) {
            return Err("'event_id' must be 1-128 bytes".into());
        }
        Ok(Event {
            time_ms,
            deployment: self.deployment.unwrap_or_else(|| unscoped(workspace)),
            unit,
            kind,
            item: self.item,
            value: self.value,
            event_id: self.event_id,
        })
    }
}

pub type EventLog = SegmentLog<Event>;

impl Record for Event {
    const KIND: &'static str = "events";
    const ROOT: &'static str = "~events";
    fn time_ms(&self) -> i64 {
        self.time_ms
    }
    fn partition(&self) -> &str {
        &self.deployment
    }
    fn encode(records: &[Self]) -> Result<Bytes, String> {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from_iter_values(records.iter().map(|e| e.time_ms))),
            Arc::new(StringArray::from_iter_values(records.iter().map(|e| e.unit.as_str()))),
            Arc::new(StringArray::from_iter_values(records.iter().map(|e| e.kind.as_str()))),
            Arc::new(StringArray::from_iter(records.iter().map(|e| e.item.as_deref()))),
            Arc::new(Float64Array::from_iter(records.iter().map(|e| e.value))),
            Arc::new(StringArray::from_iter(records.iter().map(|e| e.event_id.as_deref()))),
        ];
        segments::parquet(schema(), columns)
    }
    fn decode(bytes: Bytes, partition: &str) -> Result<Vec<Self>, String> {
        let mut out = Vec::new();
        for batch in segments::batches(bytes)? {
            let time = column::<Int64Array>(&batch, "time_ms")?;
            let unit = column::<StringArray>(&batch, "unit")?;
            let kind = column::<StringArray>(&batch, "kind")?;
            let item = column::<StringArray>(&batch, "item")?;
            let value = column::<Float64Array>(&batch, "value")?;
            let id = column::<StringArray>(&batch, "event_id")?;
            let text = |a: &StringArray, i: usize| (!a.is_null(i)).then(|| a.value(i).to_string());
            for i in 0..batch.num_rows() {
                out.push(Event {
                    time_ms: time.value(i),
                    deployment: partition.to_string(),
                    unit: unit.value(i).to_string(),
                    kind: kind.value(i).to_string(),
                    item: text(item, i),
                    value: (!value.is_null(i)).then(|| value.value(i)),
                    event_id: text(id, i),
                });
            }
        }
        Ok(out)
    }
}

fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("time_ms", DataType::Int64, false),
        Field::new("unit", DataType::Utf8, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("item", DataType::Utf8, true),
        Field::new("value", DataType::Float64, true),
        Field::new("event_id", DataType::Utf8, true),
    ]))
}

/// What became of a posted batch.
#[derive(Debug, Clone, Serialize)]
pub struct EventReport {
    pub accepted: u64,
    pub rejected: Vec<Rejected>,
}

/// One refused event: its index in the batch and why.
#[derive(Debug, Clone, Serialize)]
pub struct Rejected {
    pub index: usize,
    pub reason: String,
}

impl crate::Serving {
    /// Checks each event and stores the good ones (in the store when this
    /// returns); the others are reported with the reason. An event that
    /// names a deployment must name one that exists; one that names none
    /// belongs to `workspace` (the caller's, checked by the caller).
    pub async fn post_events(
        &self,
        batch: Vec<Result<EventInput, String>>,
        workspace: &str,
    ) -> crate::Result<EventReport> {
        let now = self.now_ms();
        let oldest = now - self.retention().as_millis() as i64;
        let mut known: std::collections::HashMap<String, bool> = std::collections::HashMap::new();
        let mut good = Vec::with_capacity(batch.len());
        let mut rejected = Vec::new();
        for (index, input) in batch.into_iter().enumerate() {
            let checked = input.and_then(|i| i.check(now, oldest, workspace));
            let event = match checked {
                Ok(e) if !is_unscoped(&e.deployment) => {
                    let exists = match known.get(&e.deployment) {
                        Some(&exists) => exists,
                        None => {
                            let exists = self.live(&e.deployment).await.is_ok();
                            known.insert(e.deployment.clone(), exists);
                            exists
                        }
                    };
                    if exists { Ok(e) } else { Err(format!("deployment '{}' does not exist", e.deployment)) }
                }
                other => other,
            };
            match event {
                Ok(e) => good.push(e),
                Err(reason) => rejected.push(Rejected { index, reason }),
            }
        }
        let accepted = good.len() as u64;
        if !good.is_empty() {
            if !self.events().append(good).await {
                return Err(crate::Error::Internal("the event writer has stopped".into()));
            }
            self.events().flush().await;
        }
        metrics::counter!("plinth_events_accepted_total").increment(accepted);
        metrics::counter!("plinth_events_rejected_total").increment(rejected.len() as u64);
        Ok(EventReport { accepted, rejected })
    }
}

#[cfg(test)]
mod tests {
    use plinth_artifacts::ArtifactStore;

    use super::*;
    use crate::exposure::{DEFAULT_RETENTION, Exposure, ExposureLog};
    use crate::segments::SegmentConfig;

    fn input(unit: &str, kind: &str) -> EventInput {
        EventInput { unit: Some(unit.into()), kind: Some(kind.into()), ..Default::default() }
    }

    #[test]
    fn bad_events_say_why() {
        let now = 1_000_000_000_000;
        let ok = input("u1", "play").check(now, 0, "team-a").unwrap();
        assert_eq!((ok.time_ms, ok.deployment.as_str()), (now, "~team-a"));
        let refused = [
            (EventInput { kind: Some("play".into()), ..Default::default() }, "'unit' is required"),
            (input("", "play"), "'unit' is required"),
            (input("u", ""), "'kind' must"),
            (input("u", "pl ay"), "'kind' must"),
            (EventInput { time_ms: Some(now + 3_600_000), ..input("u", "play") }, "in the future"),
            (EventInput { time_ms: Some(5), ..input("u", "play") }, "older than the retention"),
            (EventInput { value: Some(f64::NAN), ..input("u", "play") }, "finite"),
            (EventInput { event_id: Some(String::new()), ..input("u", "play") }, "'event_id'"),
        ];
        for (event, why) in refused {
            let e = event.check(now, 10, "default").unwrap_err();
            assert!(e.contains(why), "{e}");
        }
    }

    #[tokio::test]
    async fn events_and_exposures_share_a_store_without_touching_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let config = SegmentConfig { store: ArtifactStore::local(dir.path()).unwrap(), retention: DEFAULT_RETENTION };
        let events = EventLog::open(config.clone());
        let exposures = ExposureLog::open(config);
        let now = plinth_core::ids::now_ms();
        let mut play = input("u1", "play").check(now, 0, "default").unwrap();
        play.value = Some(12.5);
        play.item = Some("i9".into());
        let named =
            EventInput { deployment: Some("recs".into()), ..input("u2", "click") }.check(now, 0, "default").unwrap();
        events.record_all(vec![play.clone(), named.clone()]);
        exposures.record(Exposure {
            time_ms: now,
            deployment: "recs".into(),
            variant: "a".into(),
            model: "m".into(),
            model_version: 1,
            unit: "u1".into(),
            request_id: "r".into(),
            endpoint: "recommend".into(),
            latency_us: 1,
            shadow: false,
            fallback: false,
            items: Vec::new(),
            rankers: Vec::new(),
            error: false,
        });
        let any: Vec<Event> = events.newest(&unscoped("default"), None, 10, |_| true).await.unwrap();
        assert_eq!(any, [play]);
        let recs: Vec<Event> = events.newest("recs", Some(now), 10, |_| true).await.unwrap();
        assert_eq!(recs, [named]);
        let served = exposures.query("recs", &crate::ExposureQuery { limit: 10, ..Default::default() }).await.unwrap();
        assert_eq!(served.len(), 1);
        assert!(dir.path().join("~events").join("recs").is_dir() && dir.path().join("recs").is_dir());
    }
}
