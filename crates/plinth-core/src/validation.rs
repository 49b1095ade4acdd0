//! MLflow's limits and naming rules, so clients get the same answers they
//! would from MLflow (and nothing unbounded reaches storage).

use crate::{Error, Result};

pub const MAX_PARAMS_TAGS_PER_BATCH: usize = 100;
pub const MAX_METRICS_PER_BATCH: usize = 1000;
pub const MAX_ENTITIES_PER_BATCH: usize = 1000;
pub const MAX_BATCH_LOG_REQUEST_SIZE: usize = 1_000_000;
pub const MAX_PARAM_VAL_LENGTH: usize = 6000;
pub const MAX_TAG_VAL_LENGTH: usize = 8000;
pub const MAX_EXPERIMENT_NAME_LENGTH: usize = 500;
pub const MAX_EXPERIMENT_TAG_VAL_LENGTH: usize = 20000;
pub const MAX_ENTITY_KEY_LENGTH: usize = 250;
pub const MAX_MODEL_REGISTRY_TAG_VALUE_LENGTH: usize = 100_000;
pub const MAX_DATASET_NAME_SIZE: usize = 500;
pub const MAX_DATASET_DIGEST_SIZE: usize = 36;
pub const MAX_DATASET_SOURCE_SIZE: usize = 65535;
pub const MAX_DATASET_SCHEMA_SIZE: usize = 1_048_575;
pub const MAX_DATASET_PROFILE_SIZE: usize = 16_777_215;
pub const MAX_RESULTS_RUNS: i64 = 50_000;
pub const MAX_RESULTS_EXPERIMENTS: i64 = 50_000;
pub const MAX_RESULTS_REGISTRY: i64 = 200_000;

/// What a metric, param or tag key is: `name`, `key` in messages.
#[derive(Debug, Clone, Copy)]
pub enum KeyKind {
    Metric,
    Param,
    Tag,
}

impl KeyKind {
    fn noun(self) -> &'static str {
        match self {
            KeyKind::Metric => "metric name",
            KeyKind::Param => "param key",
            KeyKind::Tag => "tag key",
        }
    }
}

/// Keys may only hold alphanumerics, `_ - . / : ` and spaces, may not be
/// empty, and must stay the same under path normalisation (no `..`, no
/// leading `/`, no `//`): MLflow treats them as file names in places.
pub fn validate_key(kind: KeyKind, key: &str) -> Result<()> {
    let noun = kind.noun();
    if key.is_empty() {
        return Err(Error::invalid(format!("Invalid {noun} '': it must not be empty")));
    }
    if key.chars().count() > MAX_ENTITY_KEY_LENGTH {
        return Err(Error::invalid(format!(
            "Invalid {noun} '{}...': it exceeds the maximum length of {MAX_ENTITY_KEY_LENGTH}",
            truncate(key, 40)
        )));
    }
    if !key.chars().all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | ' ' | ':')) {
        return Err(Error::invalid(format!(
            "Invalid {noun} '{key}': names may only contain alphanumerics, underscores (_), dashes (-), periods (.), spaces ( ), colons (:) and slashes (/)."
        )));
    }
    if !is_normal_path(key) {
        return Err(Error::invalid(format!(
            "Invalid {noun} '{key}': names may be treated as files in certain cases, and must not resolve to other names when treated as such."
        )));
    }
    Ok(())
}

/// True when `p` is unchanged by POSIX path normalisation and does not climb
/// out (`..`) or start at the root.
fn is_normal_path(p: &str) -> bool {
    if p.starts_with('/') || p == "." {
        return false;
    }
    p.split('/').all(|seg| !seg.is_empty() && seg != "." && seg != "..")
}

pub fn validate_value_len(what: &str, key: &str, value: &str, max: usize) -> Result<()> {
    if value.len() > max {
        return Err(Error::invalid(format!(
            "{what} '{key}' had length {}, which exceeded length limit of {max}",
            value.len()
        )));
    }
    Ok(())
}

pub fn validate_param(key: &str, value: &str) -> Result<()> {
    validate_key(KeyKind::Param, key)?;
    validate_value_len("Param value", key, value, MAX_PARAM_VAL_LENGTH)
}

pub fn validate_run_tag(key: &str, value: &str) -> Result<()> {
    validate_key(KeyKind::Tag, key)?;
    validate_value_len("Tag value", key, value, MAX_TAG_VAL_LENGTH)
}

pub fn validate_experiment_tag(key: &str, value: &str) -> Result<()> {
    validate_key(KeyKind::Tag, key)?;
    validate_value_len("Experiment tag value", key, value, MAX_EXPERIMENT_TAG_VAL_LENGTH)
}

pub fn validate_registry_tag(key: &str, value: &str) -> Result<()> {
    validate_key(KeyKind::Tag, key)?;
    validate_value_len("Tag value", key, value, MAX_MODEL_REGISTRY_TAG_VALUE_LENGTH)
}

pub fn validate_metric_name(key: &str) -> Result<()> {
    validate_key(KeyKind::Metric, key)
}

/// A non-empty name of bounded length (experiments, registered models, aliases).
pub fn validate_name(what: &str, name: &str, max: usize) -> Result<()> {
    if name.trim().is_empty() {
        return Err(Error::invalid(format!("Invalid {what} name: it must be a non-empty string")));
    }
    if name.chars().count() > max {
        return Err(Error::invalid(format!(
            "Invalid {what} name '{}...': it exceeds the maximum length of {max}",
            truncate(name, 40)
        )));
    }
    if name.chars().any(|c| c.is_control()) {
        return Err(Error::invalid(format!("Invalid {what} name: control characters are not allowed")));
    }
    Ok(())
}

pub fn validate_experiment_name(name: &str) -> Result<()> {
    validate_name("experiment", name, MAX_EXPERIMENT_NAME_LENGTH)
}

/// Registered model names: non-empty, and no `/` or `:` since they appear in
/// `models:/<name>/<version>` URIs.
pub fn validate_model_name(name: &str) -> Result<()> {
    validate_name("registered model", name, 256)?;
    if name.contains('/') || name.contains(':') {
        return Err(Error::invalid(format!("Invalid registered model name '{name}': it must not contain '/' or ':'")));
    }
    Ok(())
}

pub fn validate_max_results(max_results: i64, limit: i64) -> Result<()> {
    if max_results <= 0 || max_results > limit {
        return Err(Error::invalid(format!(
            "Invalid value {max_results} for parameter 'max_results' supplied. It must be at most {limit}, and greater than 0."
        )));
    }
    Ok(())
}

/// The batch limits of `log-batch`.
pub fn validate_batch_counts(metrics: usize, params: usize, tags: usize) -> Result<()> {
    if metrics > MAX_METRICS_PER_BATCH {
        return Err(Error::invalid(format!(
            "A batch logging request can contain at most {MAX_METRICS_PER_BATCH} metrics. Got {metrics} metrics."
        )));
    }
    if params + tags > MAX_PARAMS_TAGS_PER_BATCH {
        return Err(Error::invalid(format!(
            "A batch logging request can contain at most {MAX_PARAMS_TAGS_PER_BATCH} params and tags combined. Got {} params and tags.",
            params + tags
        )));
    }
    if metrics + params + tags > MAX_ENTITIES_PER_BATCH {
        return Err(Error::invalid(format!(
            "A batch logging request can contain at most {MAX_ENTITIES_PER_BATCH} metrics, params and tags in total."
        )));
    }
    Ok(())
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_key(key: &str, ok: bool) {
        assert_eq!(validate_key(KeyKind::Metric, key).is_ok(), ok, "{key:?}");
    }

    #[test]
    fn keys_follow_mlflow_rules() {
        check_key("loss", true);
        check_key("val/loss:1 a-b_c.d", true);
        check_key("", false);
        check_key("../x", false);
        check_key("/abs", false);
        check_key("a//b", false);
        check_key("a/./b", false);
        check_key("bad;char", false);
        check_key(&"k".repeat(251), false);
        check_key(&"k".repeat(250), true);
    }

    #[test]
    fn value_limits() {
        assert!(validate_param("p", &"x".repeat(6000)).is_ok());
        assert!(validate_param("p", &"x".repeat(6001)).is_err());
        assert!(validate_run_tag("t", &"x".repeat(8001)).is_err());
    }

    #[test]
    fn batch_limits() {
        assert!(validate_batch_counts(1000, 50, 50).is_err());
        assert!(validate_batch_counts(1000, 0, 0).is_ok());
        assert!(validate_batch_counts(1001, 0, 0).is_err());
        assert!(validate_batch_counts(0, 60, 41).is_err());
    }

    #[test]
    fn model_names() {
        assert!(validate_model_name("recs").is_ok());
        assert!(validate_model_name("a/b").is_err());
        assert!(validate_model_name(" ").is_err());
    }
}
