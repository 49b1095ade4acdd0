//! Workspaces: the teams of one platform. Experiments, registered models,
//! deployments and jobs belong to exactly one; roles and grants are kept per
//! workspace. `default` always exists and cannot be deleted: a client that
//! names no workspace works in it, as before workspaces existed.
//!
//! Names follow MLflow's `WorkspaceNameValidator` (Kubernetes namespace
//! names), with its messages, so its client and Plinth refuse the same names.

use crate::{Error, Result};

pub use crate::access::DEFAULT_WORKSPACE;

/// The request header that names the workspace (MLflow's `WORKSPACE_HEADER_NAME`).
pub const WORKSPACE_HEADER: &str = "X-MLFLOW-WORKSPACE";

const MIN_LEN: usize = 2;
const MAX_LEN: usize = 63;
const PATTERN: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
const RESERVED: &[&str] = &["workspaces", "api", "ajax-api", "static-files"];
/// Longest description kept (MLflow keeps no limit; a page of text is plenty).
pub const MAX_DESCRIPTION_CHARS: usize = 5000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspace {
    pub name: String,
    pub description: Option<String>,
    /// Where new experiments of the workspace keep their artifacts (`{root}/{id}`),
    /// instead of the server's root.
    pub default_artifact_root: Option<String>,
    pub creation_time: i64,
    pub last_update_time: i64,
}

/// What `update` changes: `None` keeps a field, an empty string clears one
/// (MLflow's update rule).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkspaceUpdate {
    pub description: Option<String>,
    pub default_artifact_root: Option<String>,
}

/// What happens to a workspace's resources when it is deleted (MLflow's
/// `WorkspaceDeletionMode`). Plinth deletes empty workspaces only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeletionMode {
    Restrict,
    Cascade,
    SetDefault,
}

impl DeletionMode {
    pub fn parse(s: &str) -> Result<DeletionMode> {
        match s {
            "RESTRICT" => Ok(DeletionMode::Restrict),
            "CASCADE" => Ok(DeletionMode::Cascade),
            "SET_DEFAULT" => Ok(DeletionMode::SetDefault),
            other => Err(Error::invalid(format!(
                "Invalid deletion mode '{other}'. Must be one of: SET_DEFAULT, CASCADE, RESTRICT"
            ))),
        }
    }
}

fn pattern_ok(name: &str) -> bool {
    let b = name.as_bytes();
    let inner = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    match (b.first(), b.last()) {
        (Some(first), Some(last)) => inner(first) && inner(last) && b.iter().all(|c| inner(c) || *c == b'-'),
        _ => false,
    }
}

/// A name for a new workspace, checked as MLflow checks it.
pub fn validate_name(name: &str) -> Result<()> {
    let len = name.chars().count();
    if !(MIN_LEN..=MAX_LEN).contains(&len) {
        return Err(Error::invalid(format!(
            "Workspace name '{name}' must be between {MIN_LEN} and {MAX_LEN} characters."
        )));
    }
    if !pattern_ok(name) {
        return Err(Error::invalid(format!(
            "Workspace name '{name}' must match the pattern {PATTERN} (lowercase alphanumeric with optional internal hyphens)."
        )));
    }
    if RESERVED.contains(&name) {
        return Err(Error::invalid(format!("Workspace name '{name}' is reserved and cannot be used.")));
    }
    Ok(())
}

/// A workspace a request names (its header, a path): `default`, or a valid name.
/// Surrounding blanks are dropped and an empty value means `default`, as
/// MLflow's server reads its header.
pub fn normalize(raw: Option<&str>) -> Result<String> {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(DEFAULT_WORKSPACE.to_string()),
        Some(DEFAULT_WORKSPACE) => Ok(DEFAULT_WORKSPACE.to_string()),
        Some(name) => {
            validate_name(name)?;
            Ok(name.to_string())
        }
    }
}

/// A workspace's own artifact root: a location its clients write to directly
/// (`s3://…`, `gs://…`, `file:///…`). This server's proxied scheme is refused:
/// the proxy lays artifacts out by experiment id and checks the path's
/// experiment, so a prefix there would leave them unchecked or unreachable.
pub fn validate_artifact_root(root: &str) -> Result<()> {
    if root.is_empty() {
        return Ok(());
    }
    if root.starts_with("mlflow-artifacts:") {
        return Err(Error::invalid(format!(
            "Invalid default_artifact_root '{root}': give a location clients write to directly (s3://, gs://, file://…); this server's proxied artifacts (mlflow-artifacts:) are laid out by experiment id."
        )));
    }
    if !root.contains("://") {
        return Err(Error::invalid(format!(
            "Invalid default_artifact_root '{root}': give a URI with its scheme (s3://bucket/prefix, file:///dir, …)."
        )));
    }
    Ok(())
}

pub fn validate_description(description: &str) -> Result<()> {
    if description.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(Error::invalid(format!(
            "Workspace description must be at most {MAX_DESCRIPTION_CHARS} characters."
        )));
    }
    Ok(())
}

pub mod msg {
    use super::DEFAULT_WORKSPACE;

    pub fn not_found(name: &str) -> String {
        format!("Workspace '{name}' not found")
    }
    pub fn exists(name: &str) -> String {
        format!("Workspace '{name}' already exists.")
    }
    pub fn default_undeletable() -> String {
        format!("Cannot delete the reserved '{DEFAULT_WORKSPACE}' workspace")
    }
    pub fn not_empty(name: &str, table: &str, count: i64) -> String {
        format!(
            "Cannot delete workspace '{name}': table '{table}' still contains {count} resource(s). Remove or reassign them before deleting the workspace."
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_as_mlflow_checks_them() {
        for ok in ["team-a", "ab", "a1", "recs-2026", &"a".repeat(63)] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in ["a", "-ab", "ab-", "Team", "a_b", "a.b", "", "api", "workspaces", &"a".repeat(64)] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
        assert!(validate_name("a").unwrap_err().to_string().contains("between 2 and 63"));
        assert!(validate_name("api").unwrap_err().to_string().contains("reserved"));
    }

    #[test]
    fn a_request_without_a_workspace_is_in_default() {
        assert_eq!(normalize(None).unwrap(), "default");
        assert_eq!(normalize(Some("  ")).unwrap(), "default");
        assert_eq!(normalize(Some(" team-a ")).unwrap(), "team-a");
        assert!(normalize(Some("Team A")).is_err());
        assert!(DeletionMode::parse("nope").is_err());
        assert!(validate_artifact_root("s3://bucket/team-a").is_ok() && validate_artifact_root("").is_ok());
        assert!(validate_artifact_root("mlflow-artifacts:/teams/a").is_err());
        assert!(validate_artifact_root("/tmp/x").is_err());
    }
}
