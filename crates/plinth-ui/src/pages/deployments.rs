//! Deployments: each variant's weight, model and loaded version, requests,
//! errors and mean latency since the server started (the live serving
//! state, as `GET /api/2.0/plinth/deployments/get` reports it), and, from
//! the exposure log, the last hour per variant: requests per second and
//! latency percentiles per minute as charts, exposure counts and p50/p95/p99,
//! and errors per minute from the live counters.

use std::collections::BTreeMap;

use axum::extract::State;
use maud::{Markup, html};
use plinth_core::ids::now_ms;
use plinth_serving::Serving;
use plinth_serving::exposure::{Exposure, ExposureQuery};
use serde_json::Value;

use crate::charts::{Series, lines};
use crate::{PageResult, UiError, number, page, time};

/// The window the charts cover, and the exposure records read for it.
const WINDOW_MS: i64 = 3_600_000;
const MAX_RECORDS: usize = 1_000_000;
const BUCKET_MS: i64 = 60_000;

fn sorted(mut v: Vec<u64>) -> Vec<u64> {
    v.sort_unstable();
    v
}

fn percentile(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let at = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[at] as f64 / 1000.0
}

/// Per variant (shadow records apart): latencies per minute bucket.
struct Window {
    variants: BTreeMap<String, BTreeMap<i64, Vec<u64>>>,
}

impl Window {
    fn of(records: &[Exposure]) -> Window {
        let mut variants: BTreeMap<String, BTreeMap<i64, Vec<u64>>> = BTreeMap::new();
        for e in records {
            let name = if e.shadow { format!("{} (shadow)", e.variant) } else { e.variant.clone() };
            variants.entry(name).or_default().entry(e.time_ms / BUCKET_MS).or_default().push(e.latency_us);
        }
        Window { variants }
    }

    fn charts(&self, start: i64, status: &Value) -> Vec<Markup> {
        let minutes = |bucket: &i64| (bucket * BUCKET_MS - start) as f64 / 60_000.0;
        let rate: Vec<Series> = self
            .variants
            .iter()
            .map(|(v, buckets)| Series {
                name: v.clone(),
                points: buckets.iter().map(|(b, l)| (minutes(b), l.len() as f64 / 60.0)).collect(),
            })
            .collect();
        let p95: Vec<Series> = self
            .variants
            .iter()
            .map(|(v, buckets)| Series {
                name: v.clone(),
                points: buckets.iter().map(|(b, l)| (minutes(b), percentile(&sorted(l.clone()), 0.95))).collect(),
            })
            .collect();
        // Errors per minute per variant, from the live counters (failed
        // requests are not in the exposure log); minutes without any are 0.
        let slots =
            status["variants"].as_array().into_iter().flatten().chain(status.get("shadow").filter(|s| !s.is_null()));
        let errors: Vec<Series> = slots
            .map(|v| {
                let per_minute: BTreeMap<i64, f64> = v["errors_per_minute"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|p| Some((p[0].as_i64()? / BUCKET_MS, p[1].as_f64()?)))
                    .collect();
                let first = start / BUCKET_MS + 1;
                let points =
                    (first..first + 60).map(|b| (minutes(&b), per_minute.get(&b).copied().unwrap_or(0.0))).collect();
                Series { name: v["name"].as_str().unwrap_or_default().to_string(), points }
            })
            .collect();
        vec![
            lines("Requests per second (per minute)", "minutes in the last hour", "requests/s", &rate),
            lines("p95 latency (per minute)", "minutes in the last hour", "ms", &p95),
            lines("Errors per minute", "minutes in the last hour", "errors", &errors),
        ]
    }

    fn table(&self) -> Markup {
        html! {
            table {
                thead { tr { th { "Variant" } th.num { "Exposures" } th.num { "p50 ms" } th.num { "p95 ms" } th.num { "p99 ms" } } }
                tbody {
                    @for (v, buckets) in &self.variants {
                        @let all = sorted(buckets.values().flatten().copied().collect());
                        tr {
                            td { (v) }
                            td.num { (all.len()) }
                            td.num { (number(percentile(&all, 0.5))) }
                            td.num { (number(percentile(&all, 0.95))) }
                            td.num { (number(percentile(&all, 0.99))) }
                        }
                    }
                }
            }
        }
    }
}

fn variant_row(v: &Value, role: &str) -> Markup {
    let requests = v["requests"].as_u64().unwrap_or(0);
    let errors = v["errors"].as_u64().unwrap_or(0);
    html! {
        tr {
            td { (v["name"].as_str().unwrap_or_default()) @if role == "shadow" { " " span.badge { "shadow" } } }
            td.num { (v["weight"].as_u64().unwrap_or(0)) }
            td { (v["model"].as_str().unwrap_or_default()) }
            td.num { (v["model_version"].as_i64().unwrap_or(0)) }
            td.num { (requests) }
            td.num { (errors) }
            td.num { (number(if requests > 0 { errors as f64 / requests as f64 * 100.0 } else { 0.0 })) "%" }
            td.num { (number(v["mean_latency_us"].as_f64().unwrap_or(0.0) / 1000.0)) " ms" }
            td { (time(v["loaded_time"].as_i64().unwrap_or(0))) }
        }
    }
}

pub async fn list(State(s): State<Serving>) -> PageResult {
    let mut names = s.names();
    names.sort();
    let start = now_ms() - WINDOW_MS;
    let mut deployments = Vec::new();
    for name in names {
        let Some(live) = s.get(&name) else { continue };
        let log = s.exposures().clone();
        let query = ExposureQuery { since_ms: Some(start), limit: MAX_RECORDS, ..Default::default() };
        let records = tokio::task::spawn_blocking(move || log.query(&name, &query))
            .await
            .map_err(|e| UiError::bad_request(e.to_string()))?
            .map_err(|e| UiError::bad_request(format!("cannot read the exposure log: {e}")))?;
        deployments.push((live.status(), Window::of(&records)));
    }
    Ok(page(
        "Deployments",
        html! {
            h1 { "Deployments" }
            @if deployments.is_empty() {
                p.muted { "No deployments. Create one with " code { "plinth deploy create" } "." }
            }
            @for (d, window) in &deployments {
                div.card {
                    h2 { (d["name"].as_str().unwrap_or_default()) " " span.badge { (d["state"].as_str().unwrap_or_default()) } }
                    p.muted { "Updated " (time(d["updated_time"].as_i64().unwrap_or(0))) ". Totals since the server started:" }
                    div.scroll {
                        table {
                            thead { tr {
                                th { "Variant" } th.num { "Weight" } th { "Model" } th.num { "Version" }
                                th.num { "Requests" } th.num { "Errors" } th.num { "Error rate" } th.num { "Mean latency" } th { "Loaded" }
                            } }
                            tbody {
                                @for v in d["variants"].as_array().into_iter().flatten() { (variant_row(v, "variant")) }
                                @if !d["shadow"].is_null() { (variant_row(&d["shadow"], "shadow")) }
                            }
                        }
                    }
                    h2 { "Last hour (exposure log)" }
                    @if window.variants.is_empty() {
                        p.muted { "No requests in the last hour." }
                    } @else {
                        div.scroll { (window.table()) }
                        div.grid { @for c in window.charts(start, d) { div { (c) } } }
                    }
                }
            }
        },
    ))
}
