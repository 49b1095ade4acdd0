//! The experiment's join of exposures and events, columnar and parallel:
//! the work behind [`crate::Serving::analyze`].
//!
//! Segments are decoded with only the columns the join reads
//! ([`segments::projected`]), on every core (rayon). Rows are then
//! partitioned by a hash of their unit into [`SHARDS`] shards, exposures and
//! events alike, so each shard joins its own units with a small hash map
//! (no lock, no map shared between threads) and ends as per-variant
//! [`Moments`], which pool exactly across shards. Strings are borrowed from
//! the decoded columns, never copied per row; memory is about the decoded
//! columns plus four bytes a kept row.

use std::collections::{HashMap, HashSet};

use arrow_array::{Array, BooleanArray, Float64Array, Int64Array, RecordBatch, StringViewArray, UInt64Array};
use bytes::Bytes;
use plinth_ml::abtest::Moments;
use rayon::prelude::*;

use crate::analysis::Aggregate;
use crate::segments::{column, projected};

/// Shards the units are split into (a power of two: the hash's top bits).
const SHARDS: usize = 256;
const SHARD_BITS: u32 = SHARDS.trailing_zeros();

/// What the join needs to know.
pub(crate) struct JoinSpec {
    /// The deployment's variants, in order (at most 16).
    pub variants: Vec<String>,
    pub event: String,
    pub aggregate: Aggregate,
    pub window_ms: i64,
    pub since_ms: Option<i64>,
    pub until_ms: i64,
    /// Events after this are left out.
    pub events_until_ms: i64,
    pub cuped: bool,
    /// Units first exposed from this time on count in [`Joined::srm_units`]:
    /// when the current weights took effect.
    pub weights_since_ms: i64,
}

/// The join's result, per variant in the deployment's order.
pub(crate) struct Joined {
    pub moments: Vec<Moments>,
    pub exposures: Vec<u64>,
    pub fallbacks: Vec<u64>,
    /// Exposures that failed on our side.
    pub errors: Vec<u64>,
    pub p95_latency_ms: Vec<Option<f64>>,
    /// Units exposed to another variant than their first.
    pub several: u64,
    /// Units first exposed under the current weights (from `weights_since_ms` on), per variant.
    pub srm_units: Vec<u64>,
}

/// A unit as its shard sees it.
struct Unit {
    variant: u8,
    /// The variants it was exposed to (bit per variant).
    seen: u32,
    first_ms: i64,
    exposures_in_window: f64,
    post: f64,
    pre: f64,
}

struct ExposureColumns<'a> {
    time: &'a Int64Array,
    variant: &'a StringViewArray,
    unit: &'a StringViewArray,
    shadow: &'a BooleanArray,
    latency: &'a UInt64Array,
    fallback: &'a BooleanArray,
    /// Absent from segments written before failures were exposures.
    error: Option<&'a BooleanArray>,
}

impl<'a> ExposureColumns<'a> {
    fn of(batch: &'a RecordBatch) -> Result<Self, String> {
        Ok(ExposureColumns {
            time: column(batch, "time_ms")?,
            variant: column(batch, "variant")?,
            unit: column(batch, "unit")?,
            shadow: column(batch, "shadow")?,
            latency: column(batch, "latency_us")?,
            fallback: column(batch, "fallback")?,
            error: column(batch, "error").ok(),
        })
    }
}

struct EventColumns<'a> {
    time: &'a Int64Array,
    unit: &'a StringViewArray,
    kind: &'a StringViewArray,
    value: &'a Float64Array,
    id: &'a StringViewArray,
}

impl<'a> EventColumns<'a> {
    fn of(batch: &'a RecordBatch) -> Result<Self, String> {
        Ok(EventColumns {
            time: column(batch, "time_ms")?,
            unit: column(batch, "unit")?,
            kind: column(batch, "kind")?,
            value: column(batch, "value")?,
            id: column(batch, "event_id")?,
        })
    }
}

/// A string's 128-bit key (XXH3-128: stable across processes and
/// versions). Distinct units share a key with probability about n²/2¹²⁹:
/// below 10⁻²⁰ for 10⁹ of them.
type Key = [u64; 2];

fn key(s: &str) -> Key {
    let k = twox_hash::XxHash3_128::oneshot(s.as_bytes());
    [k as u64, (k >> 64) as u64]
}

/// An event id's key within its unit (XXH3-64, never 0): two of one unit's
/// ids share one with probability about k²/2⁶⁵ for its k events.
fn id_key(s: &str) -> u64 {
    twox_hash::XxHash3_64::oneshot(s.as_bytes()) | 1
}

/// The shard of a unit's key (its top bits).
fn shard(unit: Key) -> usize {
    (unit[1] >> (64 - SHARD_BITS)) as usize
}

/// An exposure that takes part, as its shard keeps it.
#[derive(Clone, Copy)]
struct Exposed {
    unit: Key,
    time_ms: i64,
    variant: u8,
}

/// An event of the metric's kind, as its shard keeps it.
#[derive(Clone, Copy)]
pub(crate) struct Happened {
    unit: Key,
    /// The event id's key (0: none).
    id: u64,
    time_ms: i64,
    amount: f64,
}

/// One segment's rows that take part, grouped by shard: shard `s` is
/// `rows[offsets[s]..offsets[s + 1]]` (one allocation a segment).
pub(crate) struct Sharded<T> {
    rows: Vec<T>,
    offsets: Vec<usize>,
}

impl<T: Copy> Sharded<T> {
    /// Groups `rows` by `shard_of` (a counting sort: stable, so the read order stays within a shard).
    fn of(rows: Vec<T>, shard_of: impl Fn(&T) -> usize) -> Sharded<T> {
        let mut offsets = vec![0usize; SHARDS + 1];
        for r in &rows {
            offsets[shard_of(r) + 1] += 1;
        }
        for s in 0..SHARDS {
            offsets[s + 1] += offsets[s];
        }
        let mut next = offsets.clone();
        let mut grouped: Vec<T> = Vec::with_capacity(rows.len());
        // Every slot is written exactly once below; filled from a copy of the first row.
        if let Some(&first) = rows.first() {
            grouped.resize(rows.len(), first);
        }
        for r in rows {
            let s = shard_of(&r);
            grouped[next[s]] = r;
            next[s] += 1;
        }
        Sharded { rows: grouped, offsets }
    }

    fn shard(&self, s: usize) -> &[T] {
        &self.rows[self.offsets[s]..self.offsets[s + 1]]
    }
}

/// One exposure segment's share: its rows that take part, by shard, and
/// per variant the latencies and fallbacks.
pub(crate) struct ExposureShards {
    rows: Sharded<Exposed>,
    latencies: Vec<Vec<u64>>,
    fallbacks: Vec<u64>,
    errors: Vec<u64>,
}

/// Decodes one exposure segment and groups its rows by shard.
pub(crate) fn exposure_shards(spec: &JoinSpec, bytes: Bytes) -> Result<ExposureShards, String> {
    let nvar = spec.variants.len();
    let batches = projected(bytes, &["time_ms", "variant", "unit", "shadow", "latency_us", "fallback", "error"])?;
    let mut rows = Vec::with_capacity(batches.iter().map(RecordBatch::num_rows).sum());
    let mut latencies = vec![Vec::new(); nvar];
    let mut fallbacks = vec![0; nvar];
    let mut errors = vec![0; nvar];
    for batch in &batches {
        let c = ExposureColumns::of(batch)?;
        for i in 0..batch.num_rows() {
            let t = c.time.value(i);
            if c.shadow.value(i) || spec.since_ms.is_some_and(|s| t < s) || t > spec.until_ms {
                continue;
            }
            let name = c.variant.value(i);
            let Some(v) = spec.variants.iter().position(|n| n == name) else { continue };
            latencies[v].push(c.latency.value(i));
            fallbacks[v] += u64::from(c.fallback.value(i));
            errors[v] += u64::from(c.error.is_some_and(|e| e.value(i)));
            rows.push(Exposed { unit: key(c.unit.value(i)), time_ms: t, variant: v as u8 });
        }
    }
    Ok(ExposureShards { rows: Sharded::of(rows, |e| shard(e.unit)), latencies, fallbacks, errors })
}

/// Decodes one event segment and groups its events of the metric's kind by shard.
pub(crate) fn event_shards(spec: &JoinSpec, bytes: Bytes) -> Result<Sharded<Happened>, String> {
    let batches = projected(bytes, &["time_ms", "unit", "kind", "value", "event_id"])?;
    let mut rows = Vec::with_capacity(batches.iter().map(RecordBatch::num_rows).sum());
    for batch in &batches {
        let c = EventColumns::of(batch)?;
        for i in 0..batch.num_rows() {
            if c.kind.value(i) != spec.event.as_str() || c.time.value(i) > spec.events_until_ms {
                continue;
            }
            let amount = match spec.aggregate {
                Aggregate::Sum if !c.value.is_null(i) => c.value.value(i),
                Aggregate::Sum => 0.0,
                _ => 1.0,
            };
            let id = if c.id.is_null(i) { 0 } else { id_key(c.id.value(i)) };
            rows.push(Happened { unit: key(c.unit.value(i)), id, time_ms: c.time.value(i), amount });
        }
    }
    Ok(Sharded::of(rows, |e| shard(e.unit)))
}

/// Every segment's share joined: the per-variant figures.
pub(crate) fn combine(spec: &JoinSpec, exposures: Vec<ExposureShards>, events: Vec<Sharded<Happened>>) -> Joined {
    let nvar = spec.variants.len();
    // Each shard joins its own units.
    let shards: Vec<(Vec<Moments>, u64, Vec<u64>)> = (0..SHARDS)
        .into_par_iter()
        .map(|s| join_shard(spec, exposures.iter().map(|e| e.rows.shard(s)), events.iter().map(|e| e.shard(s))))
        .collect();
    let mut moments = vec![Moments::of([]); nvar];
    let mut several = 0;
    let mut srm_units = vec![0u64; nvar];
    for (shard_moments, shard_several, shard_srm) in &shards {
        for (pooled, m) in moments.iter_mut().zip(shard_moments) {
            *pooled = pooled.pooled(m);
        }
        several += shard_several;
        for (total, n) in srm_units.iter_mut().zip(shard_srm) {
            *total += n;
        }
    }

    // Guardrails per variant.
    let mut served = vec![0u64; nvar];
    let mut fallbacks = vec![0u64; nvar];
    let mut errors = vec![0u64; nvar];
    let mut p95_latency_ms = Vec::with_capacity(nvar);
    for v in 0..nvar {
        let mut latencies: Vec<u64> = exposures.iter().flat_map(|r| r.latencies[v].iter().copied()).collect();
        served[v] = latencies.len() as u64;
        fallbacks[v] = exposures.iter().map(|r| r.fallbacks[v]).sum();
        errors[v] = exposures.iter().map(|r| r.errors[v]).sum();
        p95_latency_ms.push((!latencies.is_empty()).then(|| {
            // Nearest rank, as the traffic page's.
            let at = (((latencies.len() - 1) as f64) * 0.95).round() as usize;
            let at = at.min(latencies.len() - 1);
            *latencies.select_nth_unstable(at).1 as f64 / 1000.0
        }));
    }
    Joined { moments, exposures: served, fallbacks, errors, p95_latency_ms, several, srm_units }
}

/// One shard: its units' first exposure, their events in the attribution
/// window and before it, and the per-variant moments of their metric.
fn join_shard<'a>(
    spec: &JoinSpec,
    exposures: impl Iterator<Item = &'a [Exposed]> + Clone,
    events: impl Iterator<Item = &'a [Happened]>,
) -> (Vec<Moments>, u64, Vec<u64>) {
    let exposed: usize = exposures.clone().map(<[Exposed]>::len).sum();
    let mut units: HashMap<Key, Unit, foldhash::fast::RandomState> =
        HashMap::with_capacity_and_hasher(exposed / 2, Default::default());
    // First exposure (the earliest; on a tie the first read) and the variants seen.
    for e in exposures.clone().flatten() {
        let unit = units.entry(e.unit).or_insert(Unit {
            variant: e.variant,
            seen: 0,
            first_ms: e.time_ms,
            exposures_in_window: 0.0,
            post: 0.0,
            pre: 0.0,
        });
        unit.seen |= 1 << e.variant;
        if e.time_ms < unit.first_ms {
            unit.first_ms = e.time_ms;
            unit.variant = e.variant;
        }
    }
    if spec.aggregate == Aggregate::Ratio {
        for e in exposures.flatten() {
            if let Some(unit) = units.get_mut(&e.unit)
                && unit.variant == e.variant
                && e.time_ms < unit.first_ms + spec.window_ms
            {
                unit.exposures_in_window += 1.0;
            }
        }
    }
    // Events: in the window after the first exposure, or (the covariate) the same length before it; an event
    // id counts once per unit.
    let events: Vec<&[Happened]> = events.collect();
    let mut seen_ids: HashSet<(Key, u64), foldhash::fast::RandomState> =
        HashSet::with_capacity_and_hasher(events.iter().map(|e| e.len()).sum(), Default::default());
    for e in events.into_iter().flatten() {
        let Some(unit) = units.get_mut(&e.unit) else { continue };
        let since_first = e.time_ms - unit.first_ms;
        let post = (0..spec.window_ms).contains(&since_first);
        if !post && !(-spec.window_ms..0).contains(&since_first) {
            continue;
        }
        if e.id != 0 && !seen_ids.insert((e.unit, e.id)) {
            continue;
        }
        if post {
            unit.post += e.amount;
        } else {
            unit.pre += e.amount;
        }
    }
    let several = units.values().filter(|u| u.seen & !(1 << u.variant) != 0).count() as u64;
    let mut srm_units = vec![0u64; spec.variants.len()];
    for u in units.values().filter(|u| u.first_ms >= spec.weights_since_ms) {
        srm_units[usize::from(u.variant)] += 1;
    }
    let moments = (0..spec.variants.len())
        .map(|v| {
            Moments::of(units.values().filter(|u| usize::from(u.variant) == v).map(|u| {
                let (numer, denom, pre) = match spec.aggregate {
                    Aggregate::Count | Aggregate::Sum => (u.post, 1.0, u.pre),
                    Aggregate::Conversion => (f64::from(u.post > 0.0), 1.0, f64::from(u.pre > 0.0)),
                    Aggregate::Ratio => (u.post, u.exposures_in_window, u.pre),
                };
                [numer, denom, if spec.cuped { pre } else { 0.0 }, 1.0]
            }))
        })
        .collect();
    (moments, several, srm_units)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Event;
    use crate::exposure::Exposure;
    use crate::segments::Record;

    fn exposure(variant: &str, unit: &str, time_ms: i64, shadow: bool) -> Exposure {
        Exposure {
            time_ms,
            deployment: "recs".into(),
            variant: variant.into(),
            model: "m".into(),
            model_version: 1,
            unit: unit.into(),
            request_id: format!("r{time_ms}"),
            endpoint: "recommend".into(),
            latency_us: time_ms as u64,
            shadow,
            fallback: false,
            items: Vec::new(),
            rankers: Vec::new(),
            error: time_ms == 1050,
        }
    }

    fn event(unit: &str, kind: &str, time_ms: i64, value: f64, id: Option<&str>) -> Event {
        Event {
            time_ms,
            deployment: "recs".into(),
            unit: unit.into(),
            kind: kind.into(),
            item: None,
            value: Some(value),
            event_id: id.map(String::from),
        }
    }

    /// Decodes the segments and joins them, as `Serving::analyze` does.
    fn join(spec: &JoinSpec, exposures: Vec<Bytes>, events: Vec<Bytes>) -> Result<Joined, String> {
        let exposures = exposures.into_iter().map(|b| exposure_shards(spec, b)).collect::<Result<_, _>>()?;
        let events = events.into_iter().map(|b| event_shards(spec, b)).collect::<Result<_, _>>()?;
        Ok(combine(spec, exposures, events))
    }

    fn spec(aggregate: Aggregate) -> JoinSpec {
        JoinSpec {
            variants: vec!["a".into(), "b".into()],
            event: "play".into(),
            aggregate,
            window_ms: 100,
            since_ms: None,
            until_ms: i64::MAX,
            events_until_ms: i64::MAX,
            cuped: true,
            weights_since_ms: i64::MIN,
        }
    }

    #[test]
    fn first_exposures_windows_and_event_ids() {
        let exposures = Exposure::encode(&[
            exposure("a", "u1", 1000, false),
            exposure("a", "u1", 1050, false),
            exposure("b", "u1", 1060, false),
            exposure("a", "u1", 1300, false),
            exposure("a", "u2", 1900, true),
            exposure("b", "u2", 2000, false),
        ])
        .unwrap();
        let events = Event::encode(&[
            event("u1", "play", 990, 5.0, None),
            event("u1", "play", 1010, 2.0, Some("x")),
            event("u1", "click", 1010, 7.0, None),
            event("u1", "play", 1100, 9.0, None),
            event("u2", "play", 1950, 1.0, None),
            event("u2", "play", 2050, 3.0, Some("x")),
            event("u9", "play", 2050, 3.0, None),
        ])
        .unwrap();
        // The retry of u1's "x" lands in another segment (another replica).
        let retried = Event::encode(&[event("u1", "play", 1020, 2.0, Some("x"))]).unwrap();
        let run =
            |aggregate| join(&spec(aggregate), vec![exposures.clone()], vec![events.clone(), retried.clone()]).unwrap();
        let sum = run(Aggregate::Sum);
        assert_eq!((sum.moments[0].n, sum.moments[1].n), (1.0, 1.0));
        assert_eq!(sum.moments[0].mean, [2.0, 1.0, 5.0, 1.0], "u1: the id counted once, the covariate before");
        assert_eq!(sum.moments[1].mean, [3.0, 1.0, 1.0, 1.0]);
        assert_eq!(sum.several, 1);
        assert_eq!(sum.srm_units, [1, 1], "every unit under the weights since ever");
        let reweighted = JoinSpec { weights_since_ms: 1500, ..spec(Aggregate::Sum) };
        let srm = join(&reweighted, vec![exposures.clone()], vec![events.clone()]).unwrap().srm_units;
        assert_eq!(srm, [0, 1], "u1 came before the weights changed; u2 after");
        assert_eq!(sum.exposures, [3, 2], "the shadow is not an exposure");
        assert_eq!(sum.errors, [1, 0], "a failure is an exposure to it");
        assert_eq!(sum.p95_latency_ms, [Some(1.3), Some(2.0)]);
        assert_eq!(run(Aggregate::Count).moments[0].mean, [1.0, 1.0, 1.0, 1.0]);
        assert_eq!(run(Aggregate::Ratio).moments[0].mean, [1.0, 2.0, 1.0, 1.0], "two exposures of a in the window");
        let as_of = JoinSpec { events_until_ms: 1015, ..spec(Aggregate::Sum) };
        let earlier = join(&as_of, vec![exposures.clone()], vec![events.clone(), retried.clone()]).unwrap();
        assert_eq!(earlier.moments[0].mean, [2.0, 1.0, 5.0, 1.0]);
        assert_eq!(earlier.moments[1].mean, [0.0, 1.0, 0.0, 1.0], "u2's events came after");
        let since = JoinSpec { since_ms: Some(1950), ..spec(Aggregate::Sum) };
        let later = join(&since, vec![exposures], vec![events]).unwrap();
        assert_eq!((later.moments[0].n, later.moments[1].n), (0.0, 1.0));
    }

    /// Many units over several segments, against the join written plainly.
    #[test]
    fn equals_a_plain_join() {
        let mut seed = 7u64;
        let mut next = |n: u64| {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) % n
        };
        let mut exposures = Vec::new();
        let mut events = Vec::new();
        for i in 0..20_000 {
            let unit = format!("u{}", next(3000));
            let variant = if next(10) < 6 { "a" } else { "b" };
            exposures.push(exposure(variant, &unit, next(10_000) as i64, next(20) == 0));
            let id = (next(4) == 0).then(|| format!("e{}", next(50)));
            let kind = if next(5) == 0 { "click" } else { "play" };
            events.push(event(&unit, kind, next(10_000) as i64, next(100) as f64, id.as_deref()));
            if i % 7 == 0 {
                events.push(events[events.len() - 1].clone());
            }
        }
        for aggregate in [Aggregate::Count, Aggregate::Sum, Aggregate::Conversion, Aggregate::Ratio] {
            let spec = JoinSpec { window_ms: 2_000, ..spec(aggregate) };
            let segments = |all: &[Exposure]| all.chunks(3000).map(|c| Exposure::encode(c).unwrap()).collect();
            let event_segments = events.chunks(5000).map(|c| Event::encode(c).unwrap()).collect();
            let joined = join(&spec, segments(&exposures), event_segments).unwrap();

            // Plainly: first exposure by time (ties: the first written), then every event in order.
            let mut first: HashMap<&str, (i64, usize)> = HashMap::new();
            for e in exposures.iter().filter(|e| !e.shadow) {
                let v = usize::from(e.variant == "b");
                let f = first.entry(&e.unit).or_insert((e.time_ms, v));
                if e.time_ms < f.0 {
                    *f = (e.time_ms, v);
                }
            }
            let mut per_unit: HashMap<&str, [f64; 3]> = HashMap::new();
            for e in exposures.iter().filter(|e| !e.shadow) {
                let (t, v) = first[e.unit.as_str()];
                if usize::from(e.variant == "b") == v && e.time_ms < t + 2_000 {
                    per_unit.entry(&e.unit).or_default()[2] += 1.0;
                }
            }
            let mut ids = HashSet::new();
            for e in events.iter().filter(|e| e.kind == "play") {
                let Some(&(t, _)) = first.get(e.unit.as_str()) else { continue };
                let d = e.time_ms - t;
                let slot = if (0..2_000).contains(&d) {
                    0
                } else if (-2_000..0).contains(&d) {
                    1
                } else {
                    continue;
                };
                if let Some(id) = &e.event_id
                    && !ids.insert((e.unit.as_str(), id.as_str()))
                {
                    continue;
                }
                per_unit.entry(&e.unit).or_default()[slot] +=
                    if aggregate == Aggregate::Sum { e.value.unwrap_or(0.0) } else { 1.0 };
            }
            for v in 0..2 {
                let rows = first.iter().filter(|(_, f)| f.1 == v).map(|(u, _)| {
                    let [post, pre, exposed] = per_unit.get(u).copied().unwrap_or_default();
                    match aggregate {
                        Aggregate::Conversion => [f64::from(post > 0.0), 1.0, f64::from(pre > 0.0), 1.0],
                        Aggregate::Ratio => [post, exposed, pre, 1.0],
                        _ => [post, 1.0, pre, 1.0],
                    }
                });
                let expected = Moments::of(rows);
                let got = &joined.moments[v];
                assert_eq!(got.n, expected.n, "{aggregate:?}");
                for i in 0..4 {
                    assert!((got.mean[i] - expected.mean[i]).abs() < 1e-9, "{aggregate:?} mean {i}");
                    for j in 0..4 {
                        assert!((got.cov[i][j] - expected.cov[i][j]).abs() < 1e-7, "{aggregate:?} cov {i} {j}");
                    }
                }
            }
        }
    }
}
