//! Training jobs: what is queued, running (with its progress) and done, with
//! the run and model version each produced or the error it ended with.

use axum::extract::State;
use maud::html;
use plinth_core::jobs::JobStatus;
use plinth_engine::jobs::JobRunner;

use crate::{PageResult, duration, page, time};

pub async fn list(State(jobs): State<JobRunner>, crate::Acting(platform): crate::Acting) -> PageResult {
    let by = platform.actor();
    let all = jobs.list(by, 200).await?;
    let mut rows = Vec::with_capacity(all.len());
    for job in all {
        let progress = if job.status == JobStatus::Running { jobs.get(by, &job.job_id).await?.1 } else { None };
        rows.push((job, progress));
    }
    Ok(page(
        "Jobs",
        html! {
            h1 { "Training jobs" }
            p.muted { "Submit with " code { "plinth jobs submit" } " or " code { "POST /api/2.0/plinth/jobs/train-…" } "." }
            div.scroll {
                table {
                    thead { tr {
                        th { "Job" } th { "Kind" } th { "Status" } th { "Progress" } th { "Created" }
                        th { "Duration" } th { "Run" } th { "Model" } th { "Error" }
                    } }
                    tbody {
                        @for (job, progress) in &rows {
                            tr {
                                td { code { (job.job_id) } }
                                td { (job.kind) }
                                td { span.badge { (job.status.as_str()) } }
                                td { @if let Some((stage, done, total)) = progress { (stage) " " (done) "/" (total) } }
                                td { (time(job.created_time)) }
                                td { @if let (Some(s), Some(f)) = (job.started_time, job.finished_time) { (duration(f - s)) } }
                                td {
                                    @if let Some(run) = job.result.as_ref().and_then(|r| r["run_id"].as_str()) {
                                        a href=(format!("/ui/runs/{run}")) { (run) }
                                    }
                                }
                                td {
                                    @if let (Some(m), Some(v)) = (
                                        job.result.as_ref().and_then(|r| r["model_name"].as_str()),
                                        job.result.as_ref().and_then(|r| r["model_version"].as_str()),
                                    ) {
                                        a href=(format!("/ui/models/{m}")) { (m) " v" (v) }
                                    }
                                }
                                td { @if let Some(e) = &job.error { span.error-text { (e) } } }
                            }
                        }
                        @if rows.is_empty() { tr { td colspan="9" .muted { "No jobs yet." } } }
                    }
                }
            }
        },
    ))
}
