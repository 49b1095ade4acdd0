//! Comparing 2 to 200 runs: overlaid metric histories, a table of params
//! and metrics with the rows that differ highlighted, and a scatter of any
//! param or metric against any other.

use crate::Acting;
use std::collections::BTreeSet;

use axum::extract::RawQuery;
use maud::html;
use plinth_core::runs::Run;
use plinth_engine::Platform;

use crate::charts::{Series, lines, scatter};
use crate::page as shell;
use crate::{PageResult, UiError, number, pairs, query};

pub const MAX_RUNS: usize = 200;
/// Histories overlaid by default (more can be picked).
const DEFAULT_CHARTS: usize = 4;
const MAX_POINTS: i64 = 2000;

fn value(run: &Run, id: &str) -> Option<String> {
    let (kind, key) = id.split_once('.')?;
    match kind {
        "metrics" => run.data.metrics.iter().find(|m| m.key == key).map(|m| number(m.value)),
        "params" => run.data.params.iter().find(|p| p.key == key).map(|p| p.value.clone()),
        _ => None,
    }
}

fn numeric(run: &Run, id: &str) -> Option<f64> {
    let (kind, key) = id.split_once('.')?;
    match kind {
        "metrics" => run.data.metrics.iter().find(|m| m.key == key).map(|m| m.value),
        "params" => run.data.params.iter().find(|p| p.key == key).and_then(|p| p.value.trim().parse().ok()),
        _ => None,
    }
}

async fn render(platform: Platform, raw: Option<String>) -> PageResult {
    let q = pairs(raw);
    let ids: Vec<&str> = {
        let mut seen = BTreeSet::new();
        q.iter().filter(|(k, _)| k == "run").map(|(_, v)| v.as_str()).filter(|v| seen.insert(*v)).collect()
    };
    if ids.len() < 2 || ids.len() > MAX_RUNS {
        return Err(UiError::bad_request(format!(
            "select between 2 and {MAX_RUNS} runs to compare ({} selected)",
            ids.len()
        )));
    }
    let mut runs = Vec::with_capacity(ids.len());
    for id in &ids {
        runs.push(platform.get_run(id).await?);
    }
    let metric_keys: BTreeSet<String> =
        runs.iter().flat_map(|r| r.data.metrics.iter().map(|m| m.key.clone())).collect();
    let param_keys: BTreeSet<String> = runs.iter().flat_map(|r| r.data.params.iter().map(|p| p.key.clone())).collect();
    let chosen: Vec<String> = {
        let picked: Vec<String> = q.iter().filter(|(k, _)| k == "metric").map(|(_, v)| v.clone()).collect();
        if picked.is_empty() {
            // The metrics that matter first (quality measures that differ between the runs).
            let mut keys: Vec<&String> = metric_keys.iter().collect();
            keys.sort_by_key(|k| crate::pages::runs::metric_rank(k, &runs));
            keys.into_iter().take(DEFAULT_CHARTS).cloned().collect()
        } else {
            picked
        }
    };
    let mut charts = Vec::new();
    for key in &chosen {
        let mut series = Vec::new();
        for run in &runs {
            let history = platform.get_metric_history(&run.info.run_id, key, MAX_POINTS, 0).await?.items;
            series.push(Series {
                name: run.info.run_name.clone(),
                points: history.iter().map(|h| (h.step as f64, h.value)).collect(),
            });
        }
        if series.iter().all(|s| s.points.len() <= 1) {
            // One value per run is not a history: the table below has it.
            charts.push(html! { p.muted.single { (key) ": one value per run, shown in the table below." } });
        } else {
            charts.push(lines(key, "step", key, &series));
        }
    }
    let axes: Vec<String> = metric_keys
        .iter()
        .map(|k| format!("metrics.{k}"))
        .chain(param_keys.iter().map(|k| format!("params.{k}")))
        .collect();
    let pick = |name: &str, default: Option<&String>| {
        q.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).or_else(|| default.cloned()).unwrap_or_default()
    };
    // Defaults: a numeric param against a metric.
    let numeric_axis = |a: &&String| runs.iter().any(|r| numeric(r, a).is_some());
    let x = pick("x", axes.iter().filter(numeric_axis).find(|a| a.starts_with("params.")).or(axes.first()));
    let y = pick("y", axes.iter().filter(numeric_axis).find(|a| a.starts_with("metrics.") && **a != x).or(axes.get(1)));
    let points: Vec<Series> = runs
        .iter()
        .filter_map(|r| {
            Some(Series { name: r.info.run_name.clone(), points: vec![(numeric(r, &x)?, numeric(r, &y)?)] })
        })
        .collect();
    let scatter_chart = scatter(&format!("{y} against {x}"), &x, &y, &points);
    let rows: Vec<(String, Vec<Option<String>>)> = param_keys
        .iter()
        .map(|k| format!("params.{k}"))
        .chain(metric_keys.iter().map(|k| format!("metrics.{k}")))
        .map(|id| {
            let values = runs.iter().map(|r| value(r, &id)).collect();
            (id, values)
        })
        .collect();
    let keep: Vec<(&str, &str)> = ids.iter().map(|id| ("run", *id)).collect();
    Ok(shell(
        "Compare runs",
        html! {
            div.crumbs { a href="/ui/experiments" { "Experiments" } " / " }
            h1 { "Comparing " (runs.len()) " runs" }
            form.toolbar method="get" action="/ui/compare" {
                @for id in &ids { input type="hidden" name="run" value=(id); }
                label { "Metric histories " select name="metric" multiple size="4" {
                    @for k in &metric_keys { option value=(k) selected[chosen.contains(k)] { (k) } }
                } }
                label { "x " select name="x" { @for a in &axes { option value=(a) selected[*a == x] { (a) } } } }
                label { "y " select name="y" { @for a in &axes { option value=(a) selected[*a == y] { (a) } } } }
                button type="submit" { "Update" }
            }
            div.grid {
                @for c in charts { div { (c) } }
                div { (scatter_chart) }
            }
            h2 { "Parameters and metrics" }
            p.muted { "Rows whose values differ between runs are highlighted." }
            div.scroll {
                table.diff #compare {
                    thead { tr {
                        th { "" }
                        @for r in &runs { th { a href=(format!("/ui/runs/{}", r.info.run_id)) { (r.info.run_name) } } }
                    } }
                    tbody {
                        @for (id, values) in &rows {
                            @let differs = values.iter().collect::<BTreeSet<_>>().len() > 1;
                            tr {
                                th { (id) }
                                @for v in values { td.changed[differs] { (v.clone().unwrap_or_default()) } }
                            }
                        }
                    }
                }
            }
            p.muted { "Link to this comparison: " a href=(format!("/ui/compare?{}", query(&keep))) { "permalink" } }
        },
    ))
}

pub async fn page(Acting(platform): Acting, RawQuery(raw): RawQuery) -> PageResult {
    render(platform, raw).await
}
