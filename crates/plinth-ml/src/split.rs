//! Deterministic train/test splits of aggregated interactions.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};

use crate::interactions::Event;
use crate::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Split {
    /// Per user, a random fraction of their items is held out.
    Random(f64),
    /// Per user, the last N items by time are held out.
    Last(usize),
    /// Globally, the latest fraction of events by time is held out.
    Time(f64),
    /// Nothing is held out: train on everything (for production models;
    /// evaluate with a separate test file, if at all).
    None,
}

impl Split {
    /// Parses `random:0.2`, `last:1`, `time:0.2`, `none`.
    pub fn parse(s: &str) -> Result<Split> {
        let bad = || {
            Error::Param(format!("invalid split '{s}': expected random:<fraction>, last:<n>, time:<fraction> or none"))
        };
        if s == "none" {
            return Ok(Split::None);
        }
        let (kind, value) = s.split_once(':').ok_or_else(bad)?;
        let frac = || value.parse::<f64>().ok().filter(|f| *f > 0.0 && *f < 1.0).ok_or_else(bad);
        match kind {
            "random" => Ok(Split::Random(frac()?)),
            "time" => Ok(Split::Time(frac()?)),
            "last" => value.parse::<usize>().ok().filter(|n| *n > 0).map(Split::Last).ok_or_else(bad),
            _ => Err(bad()),
        }
    }
}

impl Split {
    /// The flag's own spelling (`random:0.2`), as params record it.
    pub fn name(&self) -> String {
        match self {
            Split::Random(f) => format!("random:{f}"),
            Split::Last(n) => format!("last:{n}"),
            Split::Time(f) => format!("time:{f}"),
            Split::None => "none".to_string(),
        }
    }
}

/// Splits aggregated events (one per user-item pair) into (train, test).
pub fn split(events: &[Event], split: Split, seed: u64) -> (Vec<Event>, Vec<Event>) {
    match split {
        Split::None => (events.to_vec(), Vec::new()),
        Split::Time(frac) => {
            let mut times: Vec<i64> = events.iter().map(|e| e.time).collect();
            times.sort_unstable();
            let cut_index = ((1.0 - frac) * times.len() as f64).floor() as usize;
            let cut = times.get(cut_index.min(times.len().saturating_sub(1))).copied().unwrap_or(i64::MAX);
            events.iter().partition(|e| e.time < cut)
        }
        Split::Random(_) | Split::Last(_) => {
            let mut by_user = events.to_vec();
            by_user.sort_by_key(|e| (e.user, e.time, e.item));
            let mut rng = StdRng::seed_from_u64(seed);
            let (mut train, mut test) = (Vec::new(), Vec::new());
            for group in by_user.chunk_by(|a, b| a.user == b.user) {
                let n = group.len();
                let held = match split {
                    Split::Random(frac) => ((n as f64) * frac).round() as usize,
                    Split::Last(k) => k,
                    Split::Time(_) | Split::None => 0,
                };
                // Every user keeps at least one training interaction.
                let held = held.min(n.saturating_sub(1));
                let mut order: Vec<usize> = (0..n).collect();
                if let Split::Random(_) = split {
                    order.shuffle(&mut rng);
                    let _ = rng.random::<u32>();
                } else {
                    order.reverse();
                }
                let mut is_test = vec![false; n];
                for &i in order.iter().take(held) {
                    is_test[i] = true;
                }
                for (i, e) in group.iter().enumerate() {
                    if is_test[i] { test.push(*e) } else { train.push(*e) }
                }
            }
            (train, test)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events() -> Vec<Event> {
        let mut v = Vec::new();
        for u in 0..10u32 {
            for i in 0..10u32 {
                v.push(Event { user: u, item: i, weight: 1.0, time: (u * 100 + i) as i64 });
            }
        }
        v
    }

    #[test]
    fn random_split_is_per_user_and_deterministic() {
        let (train, test) = split(&events(), Split::Random(0.2), 42);
        assert_eq!((train.len(), test.len()), (80, 20));
        for u in 0..10 {
            assert_eq!(test.iter().filter(|e| e.user == u).count(), 2);
        }
        assert_eq!(split(&events(), Split::Random(0.2), 42).1, test);
        assert_ne!(split(&events(), Split::Random(0.2), 7).1, test);
    }

    #[test]
    fn none_keeps_everything_and_names_round_trip() {
        let (train, test) = split(&events(), Split::None, 0);
        assert_eq!((train.len(), test.len()), (100, 0));
        for s in ["random:0.2", "last:3", "time:0.25", "none"] {
            assert_eq!(Split::parse(s).unwrap().name(), s);
        }
    }

    #[test]
    fn last_split_holds_out_latest() {
        let (_, test) = split(&events(), Split::Last(1), 0);
        assert_eq!(test.len(), 10);
        assert!(test.iter().all(|e| e.item == 9));
    }

    #[test]
    fn time_split_is_a_global_cut() {
        let (train, test) = split(&events(), Split::Time(0.2), 0);
        let max_train = train.iter().map(|e| e.time).max().unwrap();
        assert!(test.iter().all(|e| e.time > max_train));
        assert_eq!(test.len(), 20);
    }

    #[test]
    fn parses_specs() {
        assert_eq!(Split::parse("random:0.2").unwrap(), Split::Random(0.2));
        assert_eq!(Split::parse("last:1").unwrap(), Split::Last(1));
        for bad in ["random:1.5", "last:0", "time", "foo:1"] {
            assert!(Split::parse(bad).is_err(), "{bad}");
        }
    }
}
