//! MLflow's rules for metadata writes, and the words MLflow's server uses
//! for them, stated once for every store backend.
//!
//! A backend reads what a rule needs inside its own transaction, asks the
//! rule, and writes only what the rule allows; it never words a refusal
//! itself. So a second backend (PostgreSQL) refuses the same writes with the
//! same codes and messages as SQLite, and the conformance suite
//! (`plinth_store::conformance`) checks that it does.

use std::collections::HashMap;

use crate::experiments::{DEFAULT_EXPERIMENT_ID, LifecycleStage, Tag};
use crate::registry::Stage;
use crate::runs::Param;
use crate::{Error, Result, validation};

/// What does not exist: `RESOURCE_DOES_NOT_EXIST`, in MLflow's words.
pub mod missing {
    use crate::Error;

    pub fn experiment(experiment_id: &str) -> Error {
        Error::not_found(format!("No Experiment with id={experiment_id} exists"))
    }
    pub fn experiment_tag(experiment_id: &str, key: &str) -> Error {
        Error::not_found(format!("No tag with name: {key} in experiment with id {experiment_id}"))
    }
    pub fn run(run_id: &str) -> Error {
        Error::not_found(format!("Run with id={run_id} not found"))
    }
    pub fn run_tag(run_id: &str, key: &str) -> Error {
        Error::not_found(format!("No tag with name: {key} in run with id {run_id}"))
    }
    pub fn logged_model(model_id: &str) -> Error {
        Error::not_found(format!("Logged model with ID '{model_id}' not found."))
    }
    pub fn logged_model_tag(model_id: &str, key: &str) -> Error {
        Error::not_found(format!("No tag with key '{key}' found for model with ID '{model_id}'."))
    }
    pub fn registered_model(name: &str) -> Error {
        Error::not_found(format!("Registered Model with name={name} not found"))
    }
    pub fn registered_model_tag(name: &str, key: &str) -> Error {
        Error::not_found(format!("No tag with key '{key}' on registered model '{name}'"))
    }
    pub fn alias(alias: &str) -> Error {
        Error::not_found(format!("Registered model alias {alias} not found."))
    }
    pub fn model_version(name: &str, version: i64) -> Error {
        Error::not_found(format!("Model Version (name={name}, version={version}) not found"))
    }
    pub fn model_version_tag(name: &str, version: i64, key: &str) -> Error {
        Error::not_found(format!("No tag with key '{key}' on model version {name}/{version}"))
    }
    pub fn deployment(name: &str) -> Error {
        Error::not_found(format!("Deployment '{name}' not found."))
    }
    pub fn user(username: &str) -> Error {
        Error::not_found(format!("User with username={username} not found"))
    }
    pub fn token(token_id: &str) -> Error {
        Error::not_found(format!("Token with id={token_id} not found"))
    }
    pub fn job(job_id: &str) -> Error {
        Error::not_found(format!("Job '{job_id}' not found"))
    }
}

/// What is already taken: `RESOURCE_ALREADY_EXISTS`.
pub mod taken {
    use crate::Error;
    use crate::experiments::LifecycleStage;

    /// An experiment name in use; `stage` is the holder's (a deleted one still holds it).
    pub fn experiment(name: &str, stage: LifecycleStage) -> Error {
        let hint =
            if stage == LifecycleStage::Deleted { " (it is deleted: restore it or delete it permanently)" } else { "" };
        Error::exists(format!("Experiment(name={name}) already exists.{hint}"))
    }
    pub fn run(run_id: &str) -> Error {
        Error::exists(format!("Run '{run_id}' already exists"))
    }
    pub fn registered_model(name: &str) -> Error {
        Error::exists(format!("Registered Model (name={name}) already exists."))
    }
    pub fn user(username: &str) -> Error {
        Error::exists(format!("User (username={username}) already exists."))
    }
    pub fn deployment(name: &str) -> Error {
        Error::exists(format!("Deployment '{name}' already exists."))
    }
}

/// Writes to a run (logging, tags, inputs, updates) need it active.
pub fn require_active_run(run_id: &str, stage: LifecycleStage) -> Result<()> {
    match stage {
        LifecycleStage::Active => Ok(()),
        LifecycleStage::Deleted => {
            Err(Error::invalid(format!("The run {run_id} must be in the 'active' state. Current state is deleted.")))
        }
    }
}

/// New runs and renames need the experiment active.
pub fn require_active_experiment(experiment_id: &str, stage: LifecycleStage) -> Result<()> {
    match stage {
        LifecycleStage::Active => Ok(()),
        LifecycleStage::Deleted => Err(Error::invalid(format!(
            "The experiment {experiment_id} must be in the 'active' state. Current state is deleted."
        ))),
    }
}

/// Deleting or restoring an experiment: the default one is never deleted,
/// and the stage must change.
pub fn check_experiment_lifecycle(experiment_id: &str, current: LifecycleStage, target: LifecycleStage) -> Result<()> {
    if experiment_id == DEFAULT_EXPERIMENT_ID && target == LifecycleStage::Deleted {
        return Err(Error::invalid(
            "Cannot delete the default experiment '0'. This is an internally reserved experiment.",
        ));
    }
    if current == target {
        let verb = match target {
            LifecycleStage::Deleted => "delete",
            LifecycleStage::Active => "restore",
        };
        return Err(Error::invalid(format!("Cannot {verb} experiment {experiment_id}: it is already {target}")));
    }
    Ok(())
}

/// One batch may not give one param key two values.
pub fn check_param_batch(params: &[Param]) -> Result<()> {
    let mut seen: HashMap<&str, &str> = HashMap::new();
    for p in params {
        if let Some(prev) = seen.insert(&p.key, &p.value)
            && prev != p.value
        {
            return Err(Error::invalid(format!(
                "Duplicate parameter keys have been submitted: '{}' with values '{prev}' and '{}'",
                p.key, p.value
            )));
        }
    }
    Ok(())
}

/// What to do with a param given what the run already has under its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamWrite {
    Insert,
    /// The same value again: nothing to write.
    Unchanged,
}

/// Params are immutable: logging a key again is allowed only with the same value.
pub fn param_write(run_id: &str, param: &Param, logged: Option<&str>) -> Result<ParamWrite> {
    match logged {
        None => Ok(ParamWrite::Insert),
        Some(old) if old == param.value => Ok(ParamWrite::Unchanged),
        Some(old) => Err(Error::invalid(format!(
            "Changing param values is not allowed. Param with key='{}' was already logged with value='{old}' for \
             run ID='{run_id}'. Attempted logging new value '{}'.",
            param.key, param.value
        ))),
    }
}

/// The tag after appending `entry` to the JSON list it holds (MLflow 2's
/// `mlflow.log-model.history`). A value that is not a JSON list (set by
/// hand) starts a new list. The result obeys the run-tag limits.
pub fn appended_tag_list(key: &str, current: Option<&str>, entry: serde_json::Value) -> Result<Tag> {
    let mut list: Vec<serde_json::Value> = current.and_then(|v| serde_json::from_str(v).ok()).unwrap_or_default();
    list.push(entry);
    let tag = Tag::new(key, serde_json::Value::Array(list).to_string());
    validation::validate_run_tag(&tag.key, &tag.value)?;
    Ok(tag)
}

/// Why a job is failed instead of started again: it was running each time a
/// server stopped, `attempts` times (it may be what stops them).
pub fn job_interrupted_too_often(attempts: i64) -> String {
    format!("interrupted {attempts} times: the server stopped while it ran each time; not retried")
}

/// Cancelling a job that has ended.
pub fn job_already_ended(job_id: &str, status: crate::jobs::JobStatus) -> Error {
    Error::InvalidState(format!("Job {job_id} has already ended ({})", status.as_str()))
}

/// Whether moving a version to `stage` archives the versions now in it.
pub fn transition_archives_others(stage: Stage, archive_existing: bool) -> bool {
    archive_existing && matches!(stage, Stage::Staging | Stage::Production)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_are_immutable() {
        let p = Param::new("lr", "0.1");
        assert_eq!(param_write("r", &p, None).ok(), Some(ParamWrite::Insert));
        assert_eq!(param_write("r", &p, Some("0.1")).ok(), Some(ParamWrite::Unchanged));
        assert!(param_write("r", &p, Some("0.2")).is_err_and(|e| e.to_string().contains("Changing param values")));
        assert!(check_param_batch(&[p.clone(), Param::new("lr", "0.2")]).is_err());
        assert!(check_param_batch(&[p.clone(), p]).is_ok());
    }

    #[test]
    fn experiment_lifecycle() {
        use LifecycleStage::*;
        assert!(check_experiment_lifecycle("0", Active, Deleted).is_err());
        assert!(check_experiment_lifecycle("3", Deleted, Deleted).is_err());
        assert!(check_experiment_lifecycle("3", Active, Deleted).is_ok());
        assert!(check_experiment_lifecycle("0", Deleted, Active).is_ok());
    }

    #[test]
    fn tag_lists_grow_or_restart() {
        let first = appended_tag_list("h", None, serde_json::json!({"a": 1})).map(|t| t.value).ok();
        assert_eq!(first.as_deref(), Some(r#"[{"a":1}]"#));
        let next = appended_tag_list("h", first.as_deref(), serde_json::json!(2)).map(|t| t.value).ok();
        assert_eq!(next.as_deref(), Some(r#"[{"a":1},2]"#));
        let restarted = appended_tag_list("h", Some("by hand"), serde_json::json!(3)).map(|t| t.value).ok();
        assert_eq!(restarted.as_deref(), Some("[3]"));
    }

    #[test]
    fn only_staging_and_production_archive() {
        assert!(transition_archives_others(Stage::Production, true));
        assert!(!transition_archives_others(Stage::Production, false));
        assert!(!transition_archives_others(Stage::Archived, true));
    }
}
