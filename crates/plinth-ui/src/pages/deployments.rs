//! Deployments. The list (`/ui/deployments`) has a summary per deployment
//! and links to its page (`/ui/deployments/{name}`): each variant's weight,
//! model and loaded version, requests, errors and mean latency since the
//! server started (the live serving state, as `GET
//! /api/2.0/plinth/deployments/get` reports it), and, from the exposure log,
//! the last hour per variant: requests per second, p95 latency and errors
//! per minute as charts on one shared time axis (one colour per variant in
//! every chart; a minute without requests is a gap in the latency line, not
//! a line drawn across it), exposure counts and p50/p95/p99.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use maud::{Markup, html};
use plinth_serving::traffic::TrafficBucket;
use plinth_serving::{DeploymentStatus, Serving, Traffic, VariantStatus, VariantTraffic};

use crate::charts::{Series, lines_over};
use crate::{PageResult, UiError, number, page, time};

/// The window the charts cover, and their bucket.
const WINDOW_MS: i64 = 3_600_000;
const BUCKET_MS: i64 = 60_000;

fn label(v: &VariantTraffic) -> String {
    if v.shadow { format!("{} (shadow)", v.variant) } else { v.variant.clone() }
}

/// Requests per second, p95 latency and errors per minute, one series per
/// variant (in the traffic's fixed order, so each keeps its colour in every
/// chart) and a point per minute of the window.
fn charts(t: &Traffic, status: &DeploymentStatus) -> Vec<Markup> {
    let minutes = |ms: i64| (ms - t.since_ms) as f64 / 60_000.0;
    let Some(first) = t.variants.first() else { return vec![] };
    let axis = match (first.buckets.first(), first.buckets.last()) {
        (Some(a), Some(b)) => Some((minutes(a.start_ms), minutes(b.start_ms))),
        _ => None,
    };
    let per_bucket = |value: &dyn Fn(&VariantTraffic, &TrafficBucket) -> f64| -> Vec<Series> {
        t.variants
            .iter()
            .map(|v| Series {
                name: label(v),
                points: v.buckets.iter().map(|b| (minutes(b.start_ms), value(v, b))).collect(),
            })
            .collect()
    };
    let per_second = t.bucket_ms as f64 / 1000.0;
    // A minute without requests had none: the rate is 0 there, but no latency: a gap.
    let rate = per_bucket(&|_, b| b.requests as f64 / per_second);
    let p95 = per_bucket(&|_, b| b.p95_ms.unwrap_or(f64::NAN));
    // Errors per minute per variant, from the live counters (failed
    // requests are not in the exposure log); minutes without any are 0.
    let mut errors_of: BTreeMap<(String, bool), BTreeMap<i64, f64>> = BTreeMap::new();
    let variants = status.variants.iter().map(|v| (v, false));
    for (v, shadow) in variants.chain(status.shadow.iter().map(|s| (s, true))) {
        let minutes = v.live.iter().flat_map(|l| &l.errors_per_minute);
        errors_of
            .insert((v.name.clone(), shadow), minutes.map(|&(at, n)| (at.div_euclid(t.bucket_ms), n as f64)).collect());
    }
    let errors = per_bucket(&|v, b| {
        errors_of
            .get(&(v.variant.clone(), v.shadow))
            .and_then(|m| m.get(&b.start_ms.div_euclid(t.bucket_ms)))
            .copied()
            .unwrap_or(0.0)
    });
    let x = "minutes in the last hour";
    vec![
        lines_over("Requests per second (per minute)", x, "requests/s", &rate, axis),
        lines_over("p95 latency, end to end (per minute)", x, "ms", &p95, axis),
        lines_over("Errors per minute", x, "errors", &errors, axis),
    ]
}

fn traffic_table(t: &Traffic) -> Markup {
    html! {
        table {
            thead { tr {
                th { "Variant" } th.num { "Exposures" } th.num { "Fallbacks" }
                th.num { "p50 ms" } th.num { "p95 ms" } th.num { "p99 ms" }
            } }
            tbody {
                @for v in &t.variants {
                    tr {
                        td { (label(v)) }
                        td.num { (v.exposures) }
                        td.num { (v.fallbacks) }
                        @match v.latency_ms {
                            Some(p) => { td.num { (number(p.p50)) } td.num { (number(p.p95)) } td.num { (number(p.p99)) } }
                            None => { td.num { "—" } td.num { "—" } td.num { "—" } }
                        }
                    }
                }
            }
        }
        @if t.truncated {
            p.muted { "More exposures than one window reads: the oldest of the hour are not counted." }
        }
    }
}

/// Requests and errors a variant served (none while it loads).
fn counts(v: &VariantStatus) -> (u64, u64) {
    v.live.as_ref().map_or((0, 0), |l| (l.requests, l.errors))
}

fn variant_row(v: &VariantStatus, role: &str) -> Markup {
    let (requests, errors) = counts(v);
    html! {
        tr {
            td { (v.name) @if role == "shadow" { " " span.badge { "shadow" } } }
            td.num { (v.weight) }
            td { (v.model) }
            @match &v.live {
                Some(l) => {
                    td.num { (l.model_version) }
                    td.num { (requests) }
                    td.num { (errors) }
                    td.num { (number(if requests > 0 { errors as f64 / requests as f64 * 100.0 } else { 0.0 })) "%" }
                    td.num { (number(l.mean_latency_us as f64 / 1000.0)) " ms" }
                    td { (time(l.loaded_time)) }
                }
                None => { td.num { "—" } td.num { "—" } td.num { "—" } td.num { "—" } td.num { "—" } td { "loading" } }
            }
        }
    }
}

/// The last hour of `name`'s traffic.
async fn last_hour(s: &Serving, name: &str) -> Result<Traffic, UiError> {
    Ok(s.traffic(name, s.now_ms(), WINDOW_MS, BUCKET_MS).await?)
}

/// Deployment names are URL-safe (letters, digits, `-`, `_`, `.`), so they go
/// into links as they are.
pub async fn list(State(s): State<Serving>, crate::Acting(platform): crate::Acting) -> PageResult {
    // Every stored deployment of the caller's workspace they may read (one created through another replica a
    // moment ago too), in name order.
    let mut rows = Vec::new();
    for d in platform.list_deployments().await? {
        let Ok(live) = s.live(&d.name).await else { continue };
        rows.push((s.status(&live.spec).await, last_hour(&s, &d.name).await?));
    }
    Ok(page(
        "Deployments",
        html! {
            h1 { "Deployments" }
            @if rows.is_empty() {
                p.muted { "No deployments. Create one with " code { "plinth deploy create" } "." }
            } @else {
                div.scroll {
                    table {
                        thead { tr {
                            th { "Deployment" } th { "State" } th { "Variants" } th { "Shadow" }
                            th.num { "Requests (last hour)" } th.num { "p95 ms (last hour)" }
                            th.num { "Error rate (since start)" } th { "Updated" }
                        } }
                        tbody {
                            @for (d, t) in &rows {
                                @let name = &d.name;
                                @let requests: u64 = d.variants.iter().map(|v| counts(v).0).sum();
                                @let errors: u64 = d.variants.iter().map(|v| counts(v).1).sum();
                                tr {
                                    td { a href=(format!("/ui/deployments/{name}")) { (name) } }
                                    td { span.badge { (d.state.as_str()) } }
                                    td {
                                        @for (i, v) in d.variants.iter().enumerate() {
                                            @if i > 0 { ", " }
                                            (v.name) " "
                                            span.muted { "(" (v.model) ", " (v.weight) ")" }
                                        }
                                    }
                                    td { @if let Some(sh) = &d.shadow { (sh.name) } @else { "—" } }
                                    td.num { (t.served) }
                                    td.num { @match t.served_latency_ms { Some(p) => (number(p.p95)), None => "—" } }
                                    td.num { (number(if requests > 0 { errors as f64 / requests as f64 * 100.0 } else { 0.0 })) "%" }
                                    td { (time(d.updated_time)) }
                                }
                            }
                        }
                    }
                }
            }
        },
    ))
}

pub async fn detail(
    State(s): State<Serving>,
    crate::Acting(platform): crate::Acting,
    Path(name): Path<String>,
) -> PageResult {
    let hidden = !platform.can_read_deployment(&name).await?;
    let live = match s.live(&name).await {
        Ok(live) if !hidden => live,
        _ => return Err(UiError::not_found(format!("No deployment named '{name}'"))),
    };
    let history = super::history::of(&platform, plinth_core::audit::resource::deployment(&name)).await?;
    let d = s.status(&live.spec).await;
    let traffic = last_hour(&s, &name).await?;
    Ok(page(
        &name,
        html! {
            p.muted { a href="/ui/deployments" { "Deployments" } " / " (name) }
            h1 { (name) " " span.badge { (d.state.as_str()) } }
            p { a href=(format!("/ui/deployments/{name}/experiment")) { "Experiment: analyse an outcome metric →" } }
            p.muted { "Updated " (time(d.updated_time)) ". Totals since start, every live replica's:" }
            div.scroll {
                table {
                    thead { tr {
                        th { "Variant" } th.num { "Weight" } th { "Model" } th.num { "Version" }
                        th.num { "Requests" } th.num { "Errors" } th.num { "Error rate" } th.num { "Mean latency" } th { "Loaded" }
                    } }
                    tbody {
                        @for v in &d.variants { (variant_row(v, "variant")) }
                        @if let Some(shadow) = &d.shadow { (variant_row(shadow, "shadow")) }
                    }
                }
            }
            h2 { "Last hour (exposure log)" }
            @if traffic.variants.iter().all(|v| v.exposures == 0) {
                p.muted { "No requests in the last hour." }
            } @else {
                div.scroll { (traffic_table(&traffic)) }
                p.muted { "Latency is end to end: from the request's arrival (its head read) to its answer, reading the body, queueing and ranking or inference included." }
                div.grid { @for c in charts(&traffic, &d) { div { (c) } } }
            }
            (super::history::section(&history))
        },
    ))
}
