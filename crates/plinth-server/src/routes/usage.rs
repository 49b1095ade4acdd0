//! `GET /api/2.0/plinth/usage?days=30&stale_days=30[&workspace=team-a]`: how
//! the platform is used — active users and workspaces per day and week, each
//! workspace's activity, lead times to serving, stale served models, job
//! outcomes, requests per deployment (`plinth_core::usage`); the whole
//! platform's, or one workspace's.

use axum::routing::get;
use axum::{Json, Router};
use plinth_core::usage::{Usage, UsageQuery};
use serde_json::{Value, json};

use crate::args::Args;
use crate::error::ApiResult;
use crate::state::{Api, AppState};

pub fn router() -> Router<AppState> {
    Router::new().route("/usage", get(usage))
}

/// The platform owners' report: administrators only (it names every team's models and deployments).
async fn usage(s: Api, a: Args) -> ApiResult {
    s.platform.need_workspace_admin().await?;
    let query = UsageQuery {
        days: a.opt_i64("days")?.unwrap_or(30),
        stale_days: a.opt_i64("stale_days")?.unwrap_or(30),
        now: s.platform.now_ms(),
        workspace: a.opt_str("workspace")?.map(|w| plinth_core::workspaces::normalize(Some(&w))).transpose()?,
    };
    let usage = s.serving.usage(query).await?;
    Ok(Json(usage_json(&usage)))
}

pub fn usage_json(u: &Usage) -> Value {
    json!({
        "days": u.query.days,
        "stale_days": u.query.stale_days,
        "generated_time": u.query.now,
        "workspace": u.query.workspace,
        "active_users": {"day": u.active_users_1d, "week": u.active_users_7d, "window": u.active_users_window},
        "active_workspaces": {
            "day": u.active_workspaces_1d, "week": u.active_workspaces_7d, "window": u.active_workspaces_window,
        },
        "totals": {
            "users": u.users,
            "workspaces": u.workspaces,
            "registered_models": u.registered_models,
            "deployments": u.deployments,
        },
        "workspaces": u.per_workspace.iter().map(|w| json!({
            "workspace": w.workspace,
            "active_users": w.active_users,
            "runs_created": w.runs_created,
            "versions_registered": w.versions_registered,
            "deployments_created": w.deployments_created,
            "jobs_submitted": w.jobs_submitted,
            "changes": w.changes,
        })).collect::<Vec<_>>(),
        "daily": u.daily.iter().map(|d| json!({
            "day": d.day,
            "active_users": d.active_users,
            "active_workspaces": d.active_workspaces,
            "runs_created": d.runs_created,
            "versions_registered": d.versions_registered,
            "deployments_created": d.deployments_created,
            "jobs_submitted": d.jobs_submitted,
            "changes": d.changes,
        })).collect::<Vec<_>>(),
        "weekly": u.weekly.iter().map(|w| json!({
            "week": w.week, "active_users": w.active_users, "active_workspaces": w.active_workspaces,
        })).collect::<Vec<_>>(),
        "lead_times": u.lead_times.iter().map(|l| json!({
            "workspace": l.workspace,
            "model": l.model,
            "deployment": l.deployment,
            "first_run_time": l.first_run_time,
            "registered_time": l.registered_time,
            "deployed_time": l.deployed_time,
            "run_to_deploy_ms": l.run_to_deploy_ms(),
            "registration_to_deploy_ms": l.registration_to_deploy_ms(),
        })).collect::<Vec<_>>(),
        "median_run_to_deploy_ms": u.median_run_to_deploy_ms,
        "median_registration_to_deploy_ms": u.median_registration_to_deploy_ms,
        "served": u.served.iter().map(|s| json!({
            "workspace": s.workspace,
            "deployment": s.deployment,
            "variant": s.variant,
            "model": s.model,
            "version": s.version,
            "registered_time": s.registered_time,
            "stale": s.stale,
        })).collect::<Vec<_>>(),
        "stale_share": u.stale_share,
        "jobs": {
            "submitted": u.jobs.submitted,
            "succeeded": u.jobs.succeeded,
            "failed": u.jobs.failed,
            "cancelled": u.jobs.cancelled,
            "unfinished": u.jobs.unfinished,
            "failure_rate": u.jobs.failure_rate,
            "mean_duration_ms": u.jobs.mean_duration_ms,
            "median_duration_ms": u.jobs.median_duration_ms,
        },
        "requests": u.requests.iter().map(|r| json!({
            "deployment": r.deployment, "requests": r.requests, "errors": r.errors,
        })).collect::<Vec<_>>(),
    })
}
