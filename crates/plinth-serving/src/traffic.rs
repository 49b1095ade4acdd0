//! Traffic over a recent window of a deployment's exposure log, per variant:
//! exposures, fallbacks, latency percentiles and a series per time bucket.
//! The one computation behind the UI's deployment page and the API's
//! `deployments/traffic`; only the log's storage underneath may change.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::exposure::{Exposure, ExposureQuery};
use crate::{Error, Result, Serving};

/// The most records one window reads; beyond this the oldest are not
/// counted and [`Traffic::truncated`] says so.
pub const MAX_WINDOW_RECORDS: usize = 1_000_000;
/// The longest window one call covers (a day), and the most buckets in it.
pub const MAX_WINDOW_MS: i64 = 86_400_000;
pub const MAX_BUCKETS: i64 = 1_440;

/// Latency percentiles in milliseconds, nearest rank.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
}

/// One time bucket of one variant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrafficBucket {
    pub start_ms: i64,
    pub requests: u64,
    /// None when the bucket had no request.
    pub p95_ms: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VariantTraffic {
    pub variant: String,
    /// Mirrored traffic of the shadow variant.
    pub shadow: bool,
    pub exposures: u64,
    /// Exposures answered with the popularity fallback (unknown user).
    pub fallbacks: u64,
    /// None when the variant had no exposure in the window.
    pub latency_ms: Option<Percentiles>,
    /// Every bucket of the window, oldest first, empty ones included.
    pub buckets: Vec<TrafficBucket>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Traffic {
    pub deployment: String,
    pub since_ms: i64,
    pub until_ms: i64,
    pub bucket_ms: i64,
    /// The window held more than [`MAX_WINDOW_RECORDS`] exposures.
    pub truncated: bool,
    /// Exposures served to callers (shadows apart), and their latency.
    pub served: u64,
    pub served_latency_ms: Option<Percentiles>,
    /// The deployment's variants in its order, its shadow, then any variant
    /// that served in the window but is no longer part of it.
    pub variants: Vec<VariantTraffic>,
}

/// The nearest-rank quantile `q` of sorted latencies, in milliseconds.
fn quantile(sorted_us: &[u64], q: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let at = ((sorted_us.len() as f64 - 1.0) * q).round() as usize;
    sorted_us[at.min(sorted_us.len() - 1)] as f64 / 1000.0
}

fn percentiles(mut latencies_us: Vec<u64>) -> Option<Percentiles> {
    if latencies_us.is_empty() {
        return None;
    }
    latencies_us.sort_unstable();
    Some(Percentiles {
        p50: quantile(&latencies_us, 0.5),
        p95: quantile(&latencies_us, 0.95),
        p99: quantile(&latencies_us, 0.99),
    })
}

impl Traffic {
    /// Aggregates `records` (any order) into buckets of `bucket_ms` from
    /// `since_ms` to `until_ms`; `order` lists the (variant, shadow) pairs
    /// to report first, in that order.
    pub fn of(
        deployment: &str,
        records: &[Exposure],
        order: &[(String, bool)],
        since_ms: i64,
        until_ms: i64,
        bucket_ms: i64,
    ) -> Traffic {
        let bucket_ms = bucket_ms.max(1);
        let first = since_ms.div_euclid(bucket_ms);
        let last = until_ms.div_euclid(bucket_ms).max(first);
        struct Acc {
            fallbacks: u64,
            all: Vec<u64>,
            buckets: BTreeMap<i64, Vec<u64>>,
        }
        let mut by: BTreeMap<(String, bool), Acc> = BTreeMap::new();
        let mut served = Vec::new();
        for e in records.iter().filter(|e| e.time_ms >= since_ms && e.time_ms <= until_ms) {
            if !e.shadow {
                served.push(e.latency_us);
            }
            let acc = by.entry((e.variant.clone(), e.shadow)).or_insert_with(|| Acc {
                fallbacks: 0,
                all: Vec::new(),
                buckets: BTreeMap::new(),
            });
            acc.fallbacks += u64::from(e.fallback);
            acc.all.push(e.latency_us);
            acc.buckets.entry(e.time_ms.div_euclid(bucket_ms)).or_default().push(e.latency_us);
        }
        let mut keys: Vec<(String, bool)> = order.to_vec();
        keys.extend(by.keys().filter(|k| !order.contains(k)).cloned());
        let variants = keys
            .into_iter()
            .map(|key| {
                let acc = by.remove(&key);
                let buckets = (first..=last)
                    .map(|b| {
                        let latencies = acc.as_ref().and_then(|a| a.buckets.get(&b));
                        TrafficBucket {
                            start_ms: b * bucket_ms,
                            requests: latencies.map_or(0, |l| l.len() as u64),
                            p95_ms: latencies.and_then(|l| percentiles(l.clone())).map(|p| p.p95),
                        }
                    })
                    .collect();
                let (exposures, fallbacks, latency_ms) = match acc {
                    Some(a) => (a.all.len() as u64, a.fallbacks, percentiles(a.all)),
                    None => (0, 0, None),
                };
                VariantTraffic { variant: key.0, shadow: key.1, exposures, fallbacks, latency_ms, buckets }
            })
            .collect();
        Traffic {
            deployment: deployment.to_string(),
            since_ms,
            until_ms,
            bucket_ms,
            truncated: records.len() >= MAX_WINDOW_RECORDS,
            served: served.len() as u64,
            served_latency_ms: percentiles(served),
            variants,
        }
    }
}

impl Serving {
    /// The deployment's traffic over the last `window_ms` up to `now_ms`, in
    /// buckets of `bucket_ms`. The log is read off the async threads.
    pub async fn traffic(&self, name: &str, now_ms: i64, window_ms: i64, bucket_ms: i64) -> Result<Traffic> {
        if !(1..=MAX_WINDOW_MS).contains(&window_ms) {
            return Err(Error::Invalid(format!("window_ms must be in 1..={MAX_WINDOW_MS}, got {window_ms}")));
        }
        if bucket_ms < 1 || window_ms / bucket_ms > MAX_BUCKETS {
            return Err(Error::Invalid(format!(
                "bucket_ms must be at least 1 and give at most {MAX_BUCKETS} buckets, got {bucket_ms}"
            )));
        }
        let live = self.live(name).await?;
        let mut order: Vec<(String, bool)> = live.spec.variants.iter().map(|v| (v.name.clone(), false)).collect();
        order.extend(live.spec.shadow.iter().map(|s| (s.name.clone(), true)));
        let since_ms = now_ms - window_ms;
        let query = ExposureQuery { since_ms: Some(since_ms), limit: MAX_WINDOW_RECORDS, ..Default::default() };
        let records = self.exposures().query(name, &query).await?;
        Ok(Traffic::of(name, &records, &order, since_ms, now_ms, bucket_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exposure(variant: &str, shadow: bool, time_ms: i64, latency_us: u64, fallback: bool) -> Exposure {
        Exposure {
            time_ms,
            deployment: "d".into(),
            variant: variant.into(),
            model: "m".into(),
            model_version: 1,
            unit: "u".into(),
            request_id: "r".into(),
            endpoint: "recommend".into(),
            latency_us,
            shadow,
            fallback,
            items: Vec::new(),
            rankers: Vec::new(),
            error: false,
        }
    }

    #[test]
    fn buckets_percentiles_and_order() {
        let records: Vec<Exposure> = (0..100)
            .map(|i| exposure("a", false, 60_000 + i * 100, (i as u64 + 1) * 1000, i % 10 == 0))
            .chain([exposure("b", true, 130_000, 5000, false), exposure("gone", false, 1, 1000, false)])
            .collect();
        let order = vec![("a".to_string(), false), ("c".to_string(), false), ("b".to_string(), true)];
        let t = Traffic::of("d", &records, &order, 0, 179_999, 60_000);
        let names: Vec<(&str, bool)> = t.variants.iter().map(|v| (v.variant.as_str(), v.shadow)).collect();
        assert_eq!(names, [("a", false), ("c", false), ("b", true), ("gone", false)]);
        let a = &t.variants[0];
        assert_eq!((a.exposures, a.fallbacks), (100, 10));
        assert_eq!(a.latency_ms.map(|p| (p.p50, p.p95, p.p99)), Some((51.0, 95.0, 99.0)));
        let requests: Vec<u64> = a.buckets.iter().map(|b| b.requests).collect();
        assert_eq!(requests, [0, 100, 0], "every bucket of the window, empty ones too");
        assert_eq!(a.buckets[0].p95_ms, None, "no latency in an empty bucket");
        assert_eq!(t.variants[1].latency_ms, None, "a variant without traffic");
        assert_eq!(t.variants[2].buckets[2].requests, 1);
        assert!(!t.truncated);
        assert_eq!(t.served, 101, "shadows apart; inside the window only");
    }
}
