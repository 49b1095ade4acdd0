//! `/ui/platform`: how the platform is used, for the people who run it —
//! active users, what gets made per day, lead times to serving, stale
//! served models, job outcomes, requests per deployment (`Serving::usage`).

use axum::extract::{Query, State};
use maud::html;
use plinth_core::usage::{DAY_MS, UsageQuery};
use plinth_serving::Serving;
use serde::Deserialize;

use crate::charts::{Series, bars, lines_over};
use crate::{PageResult, UiError, duration, page, time};

#[derive(Deserialize)]
pub struct Params {
    days: Option<i64>,
    stale_days: Option<i64>,
}

pub async fn show(
    State(s): State<Serving>,
    crate::Acting(platform): crate::Acting,
    Query(p): Query<Params>,
) -> PageResult {
    // The platform owners' report: it names every team's models and deployments.
    platform.need_workspace_admin().await?;
    let query = UsageQuery {
        days: p.days.unwrap_or(30),
        stale_days: p.stale_days.unwrap_or(30),
        now: s.now_ms(),
        workspace: None,
    };
    query.check().map_err(|e| UiError::bad_request(e.to_string()))?;
    let u = s.usage(query.clone()).await?;
    let today = query.now.div_euclid(DAY_MS);
    let x = |day_ms: i64| (day_ms / DAY_MS - today) as f64;
    let series = |name: &str, f: fn(&plinth_core::usage::DayUsage) -> i64| Series {
        name: name.to_string(),
        points: u.daily.iter().map(|d| (x(d.day), f(d) as f64)).collect(),
    };
    let axis = Some((-(query.days as f64 - 1.0), 0.0));
    let x_label = "day (0 = today, UTC)";
    let lead: Vec<(String, f64)> =
        u.lead_times.iter().map(|l| (l.model.clone(), l.registration_to_deploy_ms() as f64 / 3_600_000.0)).collect();
    let served_requests: Vec<(String, f64)> =
        u.requests.iter().map(|r| (r.deployment.clone(), r.requests as f64)).collect();
    let share = |x: Option<f64>| x.map_or("–".to_string(), |v| format!("{:.0}%", v * 100.0));
    let ms = |x: Option<i64>| x.map_or("–".to_string(), duration);
    Ok(page(
        "Platform",
        html! {
            h1 { "Platform" }
            p.muted { "Usage over the last " (query.days) " days, from the audit trail and the store; generated " (time(query.now)) "." }
            div.scroll { table #usage-summary {
                tbody {
                    tr { th { "Active users (today / 7 days / " (query.days) " days)" }
                         td { (u.active_users_1d) " / " (u.active_users_7d) " / " (u.active_users_window) } }
                    tr { th { "Users, registered models, deployments" } td { (u.users) ", " (u.registered_models) ", " (u.deployments) } }
                    tr { th { "Median lead time: first run → first deployment" } td { (ms(u.median_run_to_deploy_ms)) } }
                    tr { th { "Median lead time: registration → first deployment" } td { (ms(u.median_registration_to_deploy_ms)) } }
                    tr { th { "Served models not retrained in " (query.stale_days) " days" } td { (share(u.stale_share)) } }
                    tr { th { "Jobs: submitted, failed, failure rate, median duration" }
                         td { (u.jobs.submitted) ", " (u.jobs.failed) ", " (share(u.jobs.failure_rate)) ", " (ms(u.jobs.median_duration_ms)) } }
                }
            } }
            div.charts {
                (lines_over("Active users per day", x_label, "users", &[series("active users", |d| d.active_users)], axis))
                (lines_over("Made per day", x_label, "count", &[
                    series("runs", |d| d.runs_created),
                    series("registered versions", |d| d.versions_registered),
                    series("deployments", |d| d.deployments_created),
                    series("jobs", |d| d.jobs_submitted),
                ], axis))
                @if !lead.is_empty() { (bars("Registration → first deployment", "hours", &lead)) }
                @if !served_requests.is_empty() { (bars("Requests served (live replicas, since start)", "requests", &served_requests)) }
            }
            h2 { "Served models" }
            div.scroll { table #served {
                thead { tr { th { "Deployment" } th { "Variant" } th { "Model" } th.num { "Version" } th { "Registered" } th { "Stale" } } }
                tbody {
                    @for m in &u.served {
                        tr {
                            td { a href=(format!("/ui/deployments/{}", m.deployment)) { (m.deployment) } }
                            td { (m.variant) }
                            td { a href=(format!("/ui/models/{}", m.model)) { (m.model) } }
                            td.num { (m.version) }
                            td { (time(m.registered_time)) }
                            td { @if m.stale { span.badge { "stale" } } }
                        }
                    }
                    @if u.served.is_empty() { tr { td colspan="6" .muted { "Nothing is served." } } }
                }
            } }
            h2 { "Weekly active users" }
            div.scroll { table #weekly {
                thead { tr { th { "Week of" } th.num { "Active users" } } }
                tbody { @for w in &u.weekly { tr { td { (time(w.week)) } td.num { (w.active_users) } } } }
            } }
        },
    ))
}
