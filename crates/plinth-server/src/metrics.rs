//! Prometheus metrics: one process-wide recorder, rendered at `/metrics`.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Latency buckets (seconds): 50 µs to 10 s.
const BUCKETS: &[f64] =
    &[0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// Installs the recorder once per process (tests start many servers).
pub fn install() {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new().set_buckets(BUCKETS).ok()?.build_recorder();
        let handle = recorder.handle();
        match metrics::set_global_recorder(recorder) {
            Ok(()) => Some(handle),
            Err(e) => {
                tracing::warn!(error = %e, "a metrics recorder is already installed; /metrics stays empty");
                None
            }
        }
    });
}

/// The Prometheus text exposition of everything recorded so far.
pub fn render() -> String {
    HANDLE.get().and_then(|h| h.as_ref()).map(|h| h.render()).unwrap_or_default()
}

/// How often the usage gauges are recomputed.
pub const USAGE_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// The usage report as Prometheus gauges (`plinth_usage_*`), over its window
/// (30 days by default) and its last 7 days.
pub fn record_usage(u: &plinth_core::usage::Usage) {
    use metrics::gauge;
    let window = format!("{}d", u.query.days);
    gauge!("plinth_usage_active_users", "window" => "1d").set(u.active_users_1d as f64);
    gauge!("plinth_usage_active_users", "window" => "7d").set(u.active_users_7d as f64);
    gauge!("plinth_usage_active_users", "window" => window.clone()).set(u.active_users_window as f64);
    gauge!("plinth_usage_active_workspaces", "window" => "1d").set(u.active_workspaces_1d as f64);
    gauge!("plinth_usage_active_workspaces", "window" => "7d").set(u.active_workspaces_7d as f64);
    gauge!("plinth_usage_active_workspaces", "window" => window.clone()).set(u.active_workspaces_window as f64);
    gauge!("plinth_usage_workspaces").set(u.workspaces as f64);
    for w in &u.per_workspace {
        gauge!("plinth_usage_workspace_changes", "workspace" => w.workspace.clone(), "window" => window.clone())
            .set(w.changes as f64);
    }
    let week = &u.daily[u.daily.len().saturating_sub(7)..];
    let sum = |f: fn(&plinth_core::usage::DayUsage) -> i64| week.iter().map(f).sum::<i64>() as f64;
    gauge!("plinth_usage_runs_created", "window" => "7d").set(sum(|d| d.runs_created));
    gauge!("plinth_usage_versions_registered", "window" => "7d").set(sum(|d| d.versions_registered));
    gauge!("plinth_usage_deployments_created", "window" => "7d").set(sum(|d| d.deployments_created));
    gauge!("plinth_usage_users").set(u.users as f64);
    gauge!("plinth_usage_registered_models").set(u.registered_models as f64);
    gauge!("plinth_usage_deployments").set(u.deployments as f64);
    if let Some(ms) = u.median_run_to_deploy_ms {
        gauge!("plinth_usage_lead_time_seconds", "from" => "first_run").set(ms as f64 / 1000.0);
    }
    if let Some(ms) = u.median_registration_to_deploy_ms {
        gauge!("plinth_usage_lead_time_seconds", "from" => "registration").set(ms as f64 / 1000.0);
    }
    if let Some(share) = u.stale_share {
        gauge!("plinth_usage_stale_share", "stale_days" => u.query.stale_days.to_string()).set(share);
    }
    if let Some(rate) = u.jobs.failure_rate {
        gauge!("plinth_usage_job_failure_rate", "window" => window.clone()).set(rate);
    }
    if let Some(ms) = u.jobs.median_duration_ms {
        gauge!("plinth_usage_job_duration_seconds", "window" => window, "stat" => "median").set(ms as f64 / 1000.0);
    }
    for r in &u.requests {
        gauge!("plinth_usage_requests", "deployment" => r.deployment.clone()).set(r.requests as f64);
    }
}
