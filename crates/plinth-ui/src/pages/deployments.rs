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
use plinth_core::ids::now_ms;
use plinth_serving::exposure::{Exposure, ExposureQuery};
use plinth_serving::{DeploymentStatus, Serving, VariantStatus};

use crate::charts::{Series, lines_over};
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

    /// The variants in a fixed order, so each keeps its colour in every
    /// chart: the deployment's variants, its shadow, then any that served in
    /// the window but are no longer part of it.
    fn names(&self, status: &DeploymentStatus) -> Vec<String> {
        let mut names: Vec<String> = status.variants.iter().map(|v| v.name.clone()).collect();
        if let Some(shadow) = &status.shadow {
            names.push(format!("{} (shadow)", shadow.name));
        }
        for seen in self.variants.keys() {
            if !names.contains(seen) {
                names.push(seen.clone());
            }
        }
        names
    }

    fn charts(&self, start: i64, end: i64, status: &DeploymentStatus) -> Vec<Markup> {
        let minutes = |bucket: i64| (bucket * BUCKET_MS - start) as f64 / 60_000.0;
        let buckets: Vec<i64> = (start / BUCKET_MS..=end / BUCKET_MS).collect();
        let axis = Some((minutes(buckets[0]), minutes(*buckets.last().unwrap_or(&buckets[0]))));
        let names = self.names(status);
        let empty = BTreeMap::new();
        let of = |name: &str| self.variants.get(name).unwrap_or(&empty);
        // One series per variant, a point per minute of the window.
        let per_minute = |value: &dyn Fn(&str, i64) -> f64| -> Vec<Series> {
            names
                .iter()
                .map(|v| Series {
                    name: v.clone(),
                    points: buckets.iter().map(|&b| (minutes(b), value(v, b))).collect(),
                })
                .collect()
        };
        // A minute without requests had none: the rate is 0 there ...
        let rate = per_minute(&|v, b| of(v).get(&b).map_or(0.0, |l| l.len() as f64 / 60.0));
        // ... but no latency: a gap.
        let p95 = per_minute(&|v, b| of(v).get(&b).map_or(f64::NAN, |l| percentile(&sorted(l.clone()), 0.95)));
        // Errors per minute per variant, from the live counters (failed
        // requests are not in the exposure log); minutes without any are 0.
        let mut per_variant: BTreeMap<String, BTreeMap<i64, f64>> = BTreeMap::new();
        let variants = status.variants.iter().map(|v| (v, false));
        for (v, shadow) in variants.chain(status.shadow.iter().map(|s| (s, true))) {
            let name = if shadow { format!("{} (shadow)", v.name) } else { v.name.clone() };
            let minutes = v.live.iter().flat_map(|l| &l.errors_per_minute);
            per_variant.insert(name, minutes.map(|&(at, n)| (at / BUCKET_MS, n as f64)).collect());
        }
        let errors = per_minute(&|v, b| per_variant.get(v).and_then(|m| m.get(&b)).copied().unwrap_or(0.0));
        let x = "minutes in the last hour";
        vec![
            lines_over("Requests per second (per minute)", x, "requests/s", &rate, axis),
            lines_over("p95 latency, end to end (per minute)", x, "ms", &p95, axis),
            lines_over("Errors per minute", x, "errors", &errors, axis),
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

/// The exposure records of the last hour for `name`.
async fn window(s: &Serving, name: &str, start: i64) -> Result<Window, UiError> {
    let log = s.exposures().clone();
    let name = name.to_string();
    let query = ExposureQuery { since_ms: Some(start), limit: MAX_RECORDS, ..Default::default() };
    let records = tokio::task::spawn_blocking(move || log.query(&name, &query))
        .await
        .map_err(UiError::internal)?
        .map_err(|e| UiError::internal(format!("cannot read the exposure log: {e}")))?;
    Ok(Window::of(&records))
}

/// Deployment names are URL-safe (letters, digits, `-`, `_`, `.`), so they go
/// into links as they are.
pub async fn list(State(s): State<Serving>) -> PageResult {
    let mut names = s.names();
    names.sort();
    let start = now_ms() - WINDOW_MS;
    let mut rows = Vec::new();
    for name in names {
        let Some(live) = s.get(&name) else { continue };
        rows.push((live.status(), window(&s, &name, start).await?));
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
                            @for (d, w) in &rows {
                                @let name = &d.name;
                                @let all = sorted(w.variants.values().flat_map(|b| b.values().flatten().copied()).collect());
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
                                    td.num { (all.len()) }
                                    td.num { @if all.is_empty() { "—" } @else { (number(percentile(&all, 0.95))) } }
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

pub async fn detail(State(s): State<Serving>, Path(name): Path<String>) -> PageResult {
    let live = s.get(&name).ok_or_else(|| UiError::not_found(format!("No deployment named '{name}'")))?;
    let end = now_ms();
    let start = end - WINDOW_MS;
    let d = live.status();
    let window = window(&s, &name, start).await?;
    Ok(page(
        &name,
        html! {
            p.muted { a href="/ui/deployments" { "Deployments" } " / " (name) }
            h1 { (name) " " span.badge { (d.state.as_str()) } }
            p.muted { "Updated " (time(d.updated_time)) ". Totals since the server started:" }
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
            @if window.variants.is_empty() {
                p.muted { "No requests in the last hour." }
            } @else {
                div.scroll { (window.table()) }
                p.muted { "Latency is end to end: from the request's arrival (its head read) to its answer, reading the body, queueing and ranking or inference included." }
                div.grid { @for c in window.charts(start, end, &d) { div { (c) } } }
            }
        },
    ))
}
