//! Platform usage: the numbers a platform's owners set goals on — who is
//! active, what gets made, how long a model takes from its first run to
//! serving, how many served models are stale, how jobs fare. Computed from
//! the audit trail and the store (`plinth-engine`'s `usage.rs`), with the
//! serving counters added by `plinth-serving`.

use crate::audit::Action;
use crate::{Error, Result};

pub const DAY_MS: i64 = 86_400_000;

/// How many records `actor` made of `action` on `day` (days since the epoch, UTC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityRow {
    pub day: i64,
    pub workspace: String,
    pub actor: String,
    pub action: Action,
    pub count: i64,
}

/// The trail's name of a user, whatever credential they used (the forms
/// `Principal::actor` writes): "bob (token t1)" and "bob (serving key k1)" are "bob".
pub fn user_of_actor(actor: &str) -> &str {
    let credential = [" (token ", " (serving key "].iter().filter_map(|mark| actor.rfind(mark)).max();
    match credential {
        Some(i) if actor.ends_with(')') => &actor[..i],
        _ => actor,
    }
}

/// What a usage report covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageQuery {
    /// Days back from `now`, today included (1 to 366).
    pub days: i64,
    /// A served model whose version was registered longer ago than this is stale (1 to 3,650).
    pub stale_days: i64,
    pub now: i64,
    /// One workspace's usage; `None`: the whole platform's, with a line per workspace.
    pub workspace: Option<String>,
}

impl UsageQuery {
    pub fn check(&self) -> Result<()> {
        if !(1..=366).contains(&self.days) {
            return Err(Error::invalid(format!("Invalid value {} for parameter 'days': give 1 to 366", self.days)));
        }
        if !(1..=3650).contains(&self.stale_days) {
            return Err(Error::invalid(format!(
                "Invalid value {} for parameter 'stale_days': give 1 to 3650",
                self.stale_days
            )));
        }
        Ok(())
    }

    /// The first day (days since the epoch) the report covers.
    pub fn first_day(&self) -> i64 {
        self.now.div_euclid(DAY_MS) - (self.days - 1)
    }
}

/// One day's activity (`day`: its start, ms since the epoch, UTC).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DayUsage {
    pub day: i64,
    pub active_users: i64,
    /// Workspaces someone changed something in.
    pub active_workspaces: i64,
    pub runs_created: i64,
    pub versions_registered: i64,
    pub deployments_created: i64,
    pub jobs_submitted: i64,
    /// Every recorded change.
    pub changes: i64,
}

/// One week's distinct active users (`week`: its Monday, ms since the epoch, UTC).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WeekUsage {
    pub week: i64,
    pub active_users: i64,
    pub active_workspaces: i64,
}

/// One workspace's activity over the window.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkspaceUsage {
    pub workspace: String,
    pub active_users: i64,
    pub runs_created: i64,
    pub versions_registered: i64,
    pub deployments_created: i64,
    pub jobs_submitted: i64,
    pub changes: i64,
}

/// How long a model took to reach serving.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeadTime {
    pub workspace: String,
    pub model: String,
    /// The start of the run its first version came from, when known.
    pub first_run_time: Option<i64>,
    /// When its first version was registered.
    pub registered_time: i64,
    /// When a deployment first served it, and which.
    pub deployed_time: i64,
    pub deployment: String,
}

impl LeadTime {
    pub fn run_to_deploy_ms(&self) -> Option<i64> {
        self.first_run_time.map(|t| self.deployed_time - t)
    }
    pub fn registration_to_deploy_ms(&self) -> i64 {
        self.deployed_time - self.registered_time
    }
}

/// A model version a deployment's variant serves now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedModel {
    pub workspace: String,
    pub deployment: String,
    pub variant: String,
    pub model: String,
    pub version: i64,
    /// When the served version was registered: the last retraining that reached serving.
    pub registered_time: i64,
    pub stale: bool,
}

/// Jobs submitted in the window, by outcome.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobUsage {
    pub submitted: i64,
    pub succeeded: i64,
    pub failed: i64,
    pub cancelled: i64,
    pub unfinished: i64,
    /// Failed over finished (succeeded + failed); `None` when none finished.
    pub failure_rate: Option<f64>,
    /// Of succeeded and failed jobs, from start to end.
    pub mean_duration_ms: Option<f64>,
    pub median_duration_ms: Option<i64>,
}

/// Requests a deployment has answered, as the live serving processes count them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentRequests {
    pub deployment: String,
    pub requests: i64,
    pub errors: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Usage {
    pub query: UsageQuery,
    /// One entry per day of the window, oldest first (days without activity too).
    pub daily: Vec<DayUsage>,
    /// The weeks the window touches, oldest first.
    pub weekly: Vec<WeekUsage>,
    /// Distinct users active in the last day, the last 7 days, and the window.
    pub active_users_1d: i64,
    pub active_users_7d: i64,
    pub active_users_window: i64,
    /// Distinct workspaces active in the last day, the last 7 days, and the window.
    pub active_workspaces_1d: i64,
    pub active_workspaces_7d: i64,
    pub active_workspaces_window: i64,
    /// Workspaces that exist (the report's one, when it is one workspace's).
    pub workspaces: i64,
    /// Each workspace's activity in the window, by name (the report's one only, when it is one workspace's).
    pub per_workspace: Vec<WorkspaceUsage>,
    pub users: i64,
    pub registered_models: i64,
    pub deployments: i64,
    pub lead_times: Vec<LeadTime>,
    pub median_run_to_deploy_ms: Option<i64>,
    pub median_registration_to_deploy_ms: Option<i64>,
    pub served: Vec<ServedModel>,
    /// Stale served models over served ones; `None` when nothing is served.
    pub stale_share: Option<f64>,
    pub jobs: JobUsage,
    pub requests: Vec<DeploymentRequests>,
}

/// The middle value (the lower of the two middle ones), of values in any order.
pub fn median(mut values: Vec<i64>) -> Option<i64> {
    values.sort_unstable();
    values.get(values.len().checked_sub(1)? / 2).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actors_are_users_by_any_credential() {
        assert_eq!(user_of_actor("bob (token 1a2b)"), "bob");
        assert_eq!(user_of_actor("bob"), "bob");
        assert_eq!(user_of_actor("svc (serving key k1)"), "svc");
        assert_eq!(user_of_actor("local:root"), "local:root");
    }

    #[test]
    fn medians_and_windows() {
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![5, 1, 3]), Some(3));
        assert_eq!(median(vec![4, 1, 3, 2]), Some(2));
        let q = UsageQuery { days: 7, stale_days: 30, now: 10 * DAY_MS + 5, workspace: None };
        assert_eq!(q.first_day(), 4);
        assert!(q.check().is_ok());
        assert!(UsageQuery { days: 0, ..q.clone() }.check().is_err());
        assert!(UsageQuery { stale_days: 0, ..q }.check().is_err());
    }
}
