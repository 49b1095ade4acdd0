//! Deployments: each variant's weight, model and loaded version, requests,
//! errors and mean latency since the server started, from the live serving
//! state (the same figures `GET /api/2.0/plinth/deployments/get` reports).

use axum::extract::State;
use maud::{Markup, html};
use plinth_serving::Serving;
use serde_json::Value;

use crate::{PageResult, number, page, time};

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
    let statuses: Vec<Value> = names.iter().filter_map(|n| s.get(n)).map(|live| live.status()).collect();
    Ok(page(
        "Deployments",
        html! {
            h1 { "Deployments" }
            @if statuses.is_empty() {
                p.muted { "No deployments. Create one with " code { "plinth deploy create" } "." }
            }
            @for d in &statuses {
                div.card {
                    h2 { (d["name"].as_str().unwrap_or_default()) " " span.badge { (d["state"].as_str().unwrap_or_default()) } }
                    p.muted { "Updated " (time(d["updated_time"].as_i64().unwrap_or(0))) }
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
                }
            }
        },
    ))
}
