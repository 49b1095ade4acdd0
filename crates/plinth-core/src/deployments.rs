//! Deployments: a name that serves registered models to traffic, split over
//! weighted variants (A/B), optionally mirrored to a shadow variant.
//!
//! Assignment is deterministic and needs no shared state, so every replica
//! agrees: a unit id (a user id, or a client-chosen id) hashes with the
//! deployment's salt into one of [`BUCKETS`] buckets, and each bucket goes to
//! the variant with the highest weighted rendezvous score for it. Raising one
//! variant's weight only raises its own scores, so it only gains buckets:
//! nobody moves between the other variants.

use serde::{Deserialize, Serialize};

use crate::policy::{MetricDef, Policy};
use crate::{Error, Result};

pub const BUCKETS: u32 = 10_000;
const MAX_VARIANTS: usize = 16;

/// A registered model pinned to a version or following an alias:
/// `recs@champion`, `recs/3` (also with an `models:/` prefix).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelRef {
    pub name: String,
    #[serde(flatten)]
    pub target: ModelTarget,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelTarget {
    Alias(String),
    Version(i64),
}

impl ModelRef {
    pub fn parse(s: &str) -> Result<ModelRef> {
        let bad =
            || Error::invalid(format!("Invalid model reference '{s}': expected <name>@<alias> or <name>/<version>"));
        let body = s.strip_prefix("models:/").unwrap_or(s);
        if let Some((name, alias)) = body.rsplit_once('@') {
            if name.is_empty() || alias.is_empty() || alias.contains('/') {
                return Err(bad());
            }
            return Ok(ModelRef { name: name.to_string(), target: ModelTarget::Alias(alias.to_string()) });
        }
        let (name, version) = body.rsplit_once('/').ok_or_else(bad)?;
        let version: i64 = version.parse().map_err(|_| bad())?;
        if name.is_empty() || version < 1 {
            return Err(bad());
        }
        Ok(ModelRef { name: name.to_string(), target: ModelTarget::Version(version) })
    }
}

impl std::fmt::Display for ModelRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.target {
            ModelTarget::Alias(a) => write!(f, "{}@{a}", self.name),
            ModelTarget::Version(v) => write!(f, "{}/{v}", self.name),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Variant {
    pub name: String,
    pub model: ModelRef,
    /// Relative share of traffic; 0 takes no traffic but stays loaded.
    pub weight: u32,
}

/// How a deployment's variants share its traffic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrafficMode {
    /// Each unit is assigned one variant by weight (an A/B test).
    #[default]
    Split,
    /// Both of two recommender variants rank for every request and the
    /// answer merges their lists by team-draft interleaving (the first
    /// variant is the control); weights do not apply.
    Interleave,
}

impl TrafficMode {
    pub fn parse(s: &str) -> Result<TrafficMode> {
        match s {
            "split" => Ok(TrafficMode::Split),
            "interleave" => Ok(TrafficMode::Interleave),
            other => Err(Error::invalid(format!("Invalid mode '{other}': use split or interleave"))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TrafficMode::Split => "split",
            TrafficMode::Interleave => "interleave",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    pub name: String,
    /// Mixed into the bucket hash; defaults to the name. Changing it
    /// reshuffles every unit, so it is fixed at creation.
    pub salt: String,
    pub variants: Vec<Variant>,
    /// Gets a copy of each request off the hot path; never answers.
    pub shadow: Option<Variant>,
    #[serde(default)]
    pub mode: TrafficMode,
    /// Named metrics its analyses and policy refer to.
    #[serde(default)]
    pub metrics: Vec<MetricDef>,
    /// What the platform does with its experiment on its own.
    #[serde(default)]
    pub policy: Option<Policy>,
    pub created_time: i64,
    pub updated_time: i64,
    /// The workspace it belongs to: its models are that workspace's. Its name
    /// is its endpoint's address, so names are unique across workspaces.
    pub workspace: String,
}

impl Deployment {
    /// Where its traffic goes, as the audit trail keeps it:
    /// `a=m@champion:90, b=m/4:10, shadow c=m@challenger`.
    pub fn traffic(&self) -> String {
        let mut parts: Vec<String> =
            self.variants.iter().map(|v| format!("{}={}:{}", v.name, v.model, v.weight)).collect();
        if let Some(s) = &self.shadow {
            parts.push(format!("shadow {}={}", s.name, s.model));
        }
        match self.mode {
            TrafficMode::Split => parts.join(", "),
            TrafficMode::Interleave => format!("interleave {}", parts.join(", ")),
        }
    }
}

/// What one serving process (`replica`) has counted for one variant (or the
/// shadow) of a deployment since it started. Each process publishes its own,
/// so that any replica can show the totals of every live one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VariantCounters {
    pub deployment: String,
    pub variant: String,
    pub replica: String,
    pub requests: i64,
    pub errors: i64,
    pub fallbacks: i64,
    pub latency_us_total: i64,
    /// When the process published these.
    pub updated_time: i64,
}

fn valid_name(kind: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !name.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "Invalid {kind} name '{name}': use 1-128 letters, digits, '-', '_' or '.', not starting with '.'"
        )))
    }
}

impl Deployment {
    /// Checks names, weights and variant count.
    pub fn validate(&self) -> Result<()> {
        valid_name("deployment", &self.name)?;
        if self.variants.is_empty() || self.variants.len() > MAX_VARIANTS {
            return Err(Error::invalid(format!("A deployment needs 1 to {MAX_VARIANTS} variants")));
        }
        let mut names = std::collections::HashSet::new();
        for v in self.variants.iter().chain(&self.shadow) {
            valid_name("variant", &v.name)?;
            if !names.insert(v.name.as_str()) {
                return Err(Error::invalid(format!("Duplicate variant name '{}'", v.name)));
            }
            if v.weight > 1_000_000 {
                return Err(Error::invalid(format!("Variant '{}': weight must be at most 1000000", v.name)));
            }
        }
        if self.variants.iter().all(|v| v.weight == 0) {
            return Err(Error::invalid("At least one variant needs a weight above 0"));
        }
        let mut metric_names = std::collections::HashSet::new();
        if self.metrics.len() > 32 {
            return Err(Error::invalid("A deployment has at most 32 named metrics"));
        }
        for m in &self.metrics {
            m.validate()?;
            if !metric_names.insert(m.name.as_str()) {
                return Err(Error::invalid(format!("Duplicate metric name '{}'", m.name)));
            }
        }
        if let Some(p) = &self.policy {
            p.validate(self)?;
        }
        if self.mode == TrafficMode::Interleave && self.variants.len() != 2 {
            return Err(Error::invalid(
                "An interleaved deployment needs exactly two variants: the control first, then the challenger",
            ));
        }
        Ok(())
    }

    /// The variant index for every bucket.
    pub fn assignment_table(&self) -> Vec<u8> {
        (0..BUCKETS).map(|b| assign_bucket(&self.salt, &self.variants, b) as u8).collect()
    }
}

/// The bucket of a unit id under a salt.
pub fn bucket(salt: &str, unit: &str) -> u32 {
    (hash(&[salt.as_bytes(), b"\0", unit.as_bytes()]) % BUCKETS as u64) as u32
}

/// Weighted rendezvous hashing: the variant maximizing `weight / -ln(u)`,
/// `u` uniform in (0, 1) from (salt, variant name, bucket).
fn assign_bucket(salt: &str, variants: &[Variant], bucket: u32) -> usize {
    let mut best = (0usize, f64::NEG_INFINITY);
    for (i, v) in variants.iter().enumerate() {
        if v.weight == 0 {
            continue;
        }
        let h = hash(&[salt.as_bytes(), b"\0", v.name.as_bytes(), b"\0", &bucket.to_le_bytes()]);
        let u = ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        let score = v.weight as f64 / -u.ln();
        if score > best.1 {
            best = (i, score);
        }
    }
    best.0
}

/// FNV-1a 64 with a SplitMix64 finalizer: stable across platforms and
/// releases (assignments must never change under a user's feet).
fn hash(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in *part {
            h ^= b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn variant(name: &str, weight: u32) -> Variant {
        Variant { name: name.into(), model: ModelRef::parse("m@champion").unwrap(), weight }
    }

    fn deployment(variants: Vec<Variant>) -> Deployment {
        Deployment {
            name: "recs".into(),
            salt: "recs".into(),
            variants,
            shadow: None,
            mode: TrafficMode::Split,
            metrics: Vec::new(),
            policy: None,
            created_time: 0,
            updated_time: 0,
            workspace: "default".into(),
        }
    }

    #[test]
    fn model_refs() {
        assert_eq!(
            ModelRef::parse("recs@champion").unwrap(),
            ModelRef { name: "recs".into(), target: ModelTarget::Alias("champion".into()) }
        );
        assert_eq!(ModelRef::parse("models:/recs/3").unwrap().target, ModelTarget::Version(3));
        assert_eq!(ModelRef::parse("a/b@c").unwrap().name, "a/b");
        for bad in ["recs", "@x", "recs@", "recs/0", "recs/x", "/3"] {
            assert!(ModelRef::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(ModelRef::parse("recs/3").unwrap().to_string(), "recs/3");
    }

    #[test]
    fn shares_follow_weights() {
        let d = deployment(vec![variant("a", 80), variant("b", 20)]);
        let table = d.assignment_table();
        let a = table.iter().filter(|&&v| v == 0).count() as f64 / BUCKETS as f64;
        assert!((a - 0.8).abs() < 0.02, "{a}");
    }

    #[test]
    fn raising_a_weight_only_moves_buckets_to_that_variant() {
        let before = deployment(vec![variant("a", 30), variant("b", 30), variant("c", 40)]).assignment_table();
        let after = deployment(vec![variant("a", 30), variant("b", 60), variant("c", 40)]).assignment_table();
        let mut moved = 0;
        for (x, y) in before.iter().zip(&after) {
            if x != y {
                assert_eq!(*y, 1, "a bucket may only move to the raised variant");
                moved += 1;
            }
        }
        assert!(moved > 1000, "{moved}");
    }

    #[test]
    fn buckets_are_stable_and_spread() {
        assert_eq!(bucket("recs", "user-42"), bucket("recs", "user-42"));
        assert_ne!(bucket("recs", "user-42"), bucket("other", "user-42"));
        let mut counts = vec![0u32; 10];
        for u in 0..100_000 {
            counts[(bucket("s", &u.to_string()) / 1000) as usize] += 1;
        }
        assert!(counts.iter().all(|&c| (9_000..11_000).contains(&c)), "{counts:?}");
        // Pinned: changing the hash would reassign every user.
        assert_eq!((bucket("recs", "alice"), bucket("recs", "bob")), (670, 9152));
    }

    #[test]
    fn validation() {
        assert!(deployment(vec![variant("a", 1)]).validate().is_ok());
        assert!(deployment(vec![]).validate().is_err());
        assert!(deployment(vec![variant("a", 0)]).validate().is_err());
        assert!(deployment(vec![variant("a", 1), variant("a", 1)]).validate().is_err());
        assert!(deployment(vec![variant("a b", 1)]).validate().is_err());
        let mut d = deployment(vec![variant("a", 1)]);
        d.name = "../x".into();
        assert!(d.validate().is_err());
    }
}
