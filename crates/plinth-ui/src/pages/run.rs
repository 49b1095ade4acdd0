//! One run: status and duration, params, latest metrics, tags, lineage
//! (parent and child runs, datasets, logged and registered models), every
//! stepped metric as a line chart, and the artifact browser with previews
//! (text, JSON, CSV's first rows, images) and downloads.
//!
//! Previews never execute content: text is escaped into `<pre>`/tables,
//! images are `<img>` (an SVG in `<img>` runs no script), and downloads are
//! `attachment`s with `nosniff` and a sandboxing CSP.

use crate::Acting;
use axum::body::Body;
use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use maud::{Markup, html};
use plinth_core::query::{KeyTest, ModelVersionClause, ModelVersionQuery, RunClause, RunQuery, TextMatch};
use plinth_core::runs::{PARENT_RUN_TAG, Run};
use serde::Deserialize;

use crate::charts::{Series, lines};
use crate::{PageResult, Query, UiError, duration, number, page, query, time};

/// Metric histories drawn on a run's page.
const MAX_CHARTS: usize = 24;
/// Points read per metric history.
const MAX_POINTS: i64 = 5000;
/// Bytes of a file read for its preview.
const PREVIEW_BYTES: usize = 256 * 1024;
/// CSV rows shown.
const PREVIEW_ROWS: usize = 50;

pub async fn detail(Acting(platform): Acting, Path(id): Path<String>) -> PageResult {
    let run = platform.get_run(&id).await?;
    let info = &run.info;
    let experiment = platform.get_experiment(&info.experiment_id).await?;
    let parent = run.data.tags.iter().find(|t| t.key == PARENT_RUN_TAG).map(|t| t.value.clone());
    let children = platform
        .search_runs(plinth_engine::RunSearch {
            experiment_ids: vec![info.experiment_id.clone()],
            query: RunQuery {
                filter: vec![RunClause::Tag {
                    key: PARENT_RUN_TAG.into(),
                    test: KeyTest::Value(TextMatch::Eq(info.run_id.clone())),
                }],
                max_results: 100,
                ..Default::default()
            },
            ..Default::default()
        })
        .await?
        .items;
    let versions = platform
        .search_model_versions(ModelVersionQuery {
            filter: vec![ModelVersionClause::RunId(TextMatch::Eq(info.run_id.clone()))],
            max_results: 100,
            ..Default::default()
        })
        .await?
        .items;
    let mut charts = Vec::new();
    for m in run.data.metrics.iter().take(MAX_CHARTS) {
        let history = platform.get_metric_history(&info.run_id, &m.key, MAX_POINTS, 0).await?.items;
        if history.len() > 1 {
            let points = history.iter().map(|h| (h.step as f64, h.value)).collect();
            charts.push(lines(&m.key, "step", &m.key, &[Series { name: m.key.clone(), points }]));
        }
    }
    let (_, artifacts) = platform.list_run_artifacts(&info.run_id, "").await?;
    let mut tags: Vec<_> = run.data.tags.iter().filter(|t| !t.key.starts_with("mlflow.")).collect();
    tags.sort_by(|a, b| a.key.cmp(&b.key));
    let mut params = run.data.params.clone();
    params.sort_by(|a, b| a.key.cmp(&b.key));
    let mut metrics = run.data.metrics.clone();
    metrics.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(page(
        &info.run_name,
        html! {
            div.crumbs {
                a href="/ui/experiments" { "Experiments" } " / "
                a href=(format!("/ui/experiments/{}", info.experiment_id)) { (experiment.name) } " / "
            }
            h1 { (info.run_name) }
            div.card {
                table.kv {
                    tr { td { "Status" } td class=(format!("status-{}", info.status.as_str())) { (info.status.as_str()) } }
                    tr { td { "Run ID" } td { code { (info.run_id) } } }
                    tr { td { "Started" } td { (time(info.start_time)) } }
                    @if let Some(end) = info.end_time {
                        tr { td { "Duration" } td { (duration(end - info.start_time)) } }
                    }
                    @if !info.user_id.is_empty() { tr { td { "User" } td { (info.user_id) } } }
                }
            }
            (lineage(&run, parent.as_deref(), &children, &versions))
            @if !charts.is_empty() {
                h2 { "Metric history" }
                div.grid { @for c in charts { div { (c) } } }
            }
            div.grid {
                div {
                    h2 { "Metrics" }
                    table.kv {
                        @for m in &metrics { tr { td { (m.key) } td.num { (number(m.value)) } } }
                        @if metrics.is_empty() { tr { td.muted { "none" } } }
                    }
                }
                div {
                    h2 { "Parameters" }
                    table.kv {
                        @for p in &params { tr { td { (p.key) } td { (p.value) } } }
                        @if params.is_empty() { tr { td.muted { "none" } } }
                    }
                }
                div {
                    h2 { "Tags" }
                    table.kv {
                        @for t in &tags { tr { td { (t.key) } td { (t.value) } } }
                        @if tags.is_empty() { tr { td.muted { "none" } } }
                    }
                }
            }
            h2 { "Artifacts" }
            (listing(&info.run_id, &artifacts))
        },
    ))
}

fn lineage(
    run: &Run,
    parent: Option<&str>,
    children: &[Run],
    versions: &[plinth_core::registry::ModelVersion],
) -> Markup {
    let datasets = &run.inputs.datasets;
    let models: Vec<&str> = run.outputs.iter().chain(&run.inputs.models).map(|m| m.model_id.as_str()).collect();
    html! {
        @if parent.is_some() || !children.is_empty() || !datasets.is_empty() || !models.is_empty() || !versions.is_empty() {
            h2 { "Lineage" }
            div.card {
                table.kv {
                    @if let Some(p) = parent {
                        tr { td { "Parent run" } td { a href=(format!("/ui/runs/{p}")) { (p) } } }
                    }
                    @if !children.is_empty() {
                        tr { td { "Child runs" } td {
                            @for c in children { a href=(format!("/ui/runs/{}", c.info.run_id)) { (c.info.run_name) } " " }
                        } }
                    }
                    @for d in datasets {
                        tr { td { "Dataset" } td { (d.dataset.name) " " span.muted { (d.dataset.digest) " · " (d.dataset.source_type) } } }
                    }
                    @for m in &models {
                        tr { td { "Logged model" } td { code { (m) } } }
                    }
                    @for v in versions {
                        tr { td { "Registered as" } td {
                            a href=(format!("/ui/models/{}", v.name)) { (v.name) } " version " (v.version)
                            @for a in &v.aliases { " " span.badge { "@" (a) } }
                        } }
                    }
                }
            }
        }
    }
}

fn listing(run_id: &str, entries: &[plinth_artifacts::Entry]) -> Markup {
    html! {
        div.scroll {
            table {
                thead { tr { th { "Path" } th.num { "Size" } th { "" } } }
                tbody {
                    @for e in entries {
                        tr {
                            td { a href=(format!("/ui/runs/{run_id}/artifacts?{}", query(&[("path", &e.path)]))) {
                                (e.path) @if e.is_dir { "/" }
                            } }
                            td.num { @if let Some(n) = e.size { (n) } }
                            td { @if !e.is_dir {
                                a href=(format!("/ui/runs/{run_id}/download?{}", query(&[("path", &e.path)]))) { "download" }
                            } }
                        }
                    }
                    @if entries.is_empty() { tr { td colspan="3" .muted { "No artifacts." } } }
                }
            }
        }
    }
}

#[derive(Deserialize)]
pub struct PathParam {
    #[serde(default)]
    path: String,
    #[serde(default)]
    inline: Option<String>,
}

enum Preview {
    Image,
    Json,
    Csv(u8),
    Text,
    None,
}

fn preview_kind(path: &str) -> Preview {
    let name = path.rsplit('/').next().unwrap_or(path).to_ascii_lowercase();
    let ext = name.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    match ext {
        "png" | "jpg" | "jpeg" | "gif" | "svg" | "webp" => Preview::Image,
        "json" => Preview::Json,
        "csv" => Preview::Csv(b','),
        "tsv" => Preview::Csv(b'\t'),
        "txt" | "log" | "md" | "yaml" | "yml" | "py" | "toml" | "ini" | "cfg" | "sql" | "html" | "xml" | "js" => {
            Preview::Text
        }
        _ if name == "mlmodel" || name == "requirements.txt" || name == "conda.yaml" => Preview::Text,
        _ => Preview::None,
    }
}

fn image_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).as_deref() {
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("svg") => "image/svg+xml",
        Some("webp") => "image/webp",
        _ => "application/octet-stream",
    }
}

/// A directory's listing or a file's preview.
pub async fn artifacts(Acting(platform): Acting, Path(id): Path<String>, Query(p): Query<PathParam>) -> PageResult {
    let run = platform.get_run(&id).await?;
    let (_, entries) = platform.list_run_artifacts(&id, &p.path).await?;
    let is_dir = !entries.is_empty();
    let body = if is_dir || p.path.is_empty() {
        listing(&id, &entries)
    } else {
        let download = format!("/ui/runs/{id}/download?{}", query(&[("path", &p.path)]));
        let content = match preview_kind(&p.path) {
            Preview::Image => html! { img src=(format!("{download}&inline=1")) alt=(p.path) style="max-width:100%"; },
            Preview::None => html! { p.muted { "No preview for this type of file." } },
            kind => {
                let bytes = head(&platform, &id, &p.path).await?;
                let text = String::from_utf8_lossy(&bytes);
                match kind {
                    Preview::Json if p.path.rsplit('/').next() == Some("feature_importance.json") => {
                        importance_chart(&text)
                    }
                    Preview::Json => {
                        let pretty = serde_json::from_str::<serde_json::Value>(&text)
                            .ok()
                            .and_then(|v| serde_json::to_string_pretty(&v).ok())
                            .unwrap_or_else(|| text.to_string());
                        html! { pre { (pretty) } }
                    }
                    Preview::Csv(delimiter) => csv_table(&text, delimiter),
                    _ => html! { pre { (text) } },
                }
            }
        };
        html! { p { a href=(download) { "Download" } } (content) }
    };
    Ok(page(
        &p.path,
        html! {
            div.crumbs { a href=(format!("/ui/runs/{id}")) { (run.info.run_name) } " / artifacts / " }
            h1 { @if p.path.is_empty() { "Artifacts" } @else { (p.path) } }
            (body)
        },
    ))
}

/// `feature_importance.json` (`[{"feature": …, "<measure>": …}]`, as
/// tabular training writes it) as a bar chart, most important first; the
/// raw JSON below it. Anything else falls back to the JSON.
fn importance_chart(text: &str) -> Markup {
    let parsed: Option<(String, Vec<(String, f64)>)> =
        serde_json::from_str::<Vec<serde_json::Map<String, serde_json::Value>>>(text).ok().and_then(|rows| {
            let measure = rows.first()?.keys().find(|k| *k != "feature")?.clone();
            let items = rows
                .iter()
                .map(|r| Some((r.get("feature")?.as_str()?.to_string(), r.get(&measure)?.as_f64()?)))
                .collect::<Option<Vec<_>>>()?;
            Some((measure, items))
        });
    match parsed {
        Some((measure, items)) => html! {
            (crate::charts::bars("Feature importance", &measure, &items))
            details { summary { "JSON" } pre { (text) } }
        },
        None => html! { pre { (text) } },
    }
}

/// The first bytes of an artifact.
async fn head(platform: &plinth_engine::Platform, run_id: &str, path: &str) -> Result<Vec<u8>, UiError> {
    let (_, mut stream) = platform.open_run_artifact(run_id, path).await?;
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| UiError::bad_request(format!("cannot read {path}: {e}")))?;
        out.extend_from_slice(&chunk);
        if out.len() >= PREVIEW_BYTES {
            out.truncate(PREVIEW_BYTES);
            break;
        }
    }
    Ok(out)
}

/// The first rows of a CSV/TSV (quoted fields kept whole by the `csv`
/// crate); a row cut by the preview's byte limit ends the table.
fn csv_table(text: &str, delimiter: u8) -> Markup {
    let rows: Vec<Vec<String>> = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes())
        .records()
        .map_while(Result::ok)
        .take(PREVIEW_ROWS + 1)
        .map(|r| r.iter().map(str::to_string).collect())
        .collect();
    html! {
        div.scroll {
            table {
                @if let Some((header, body)) = rows.split_first() {
                    thead { tr { @for h in header { th { (h) } } } }
                    tbody { @for r in body { tr { @for c in r { td { (c) } } } } }
                }
            }
        }
        p.muted { "First " (rows.len().saturating_sub(1)) " rows." }
    }
}

/// The file itself: an attachment, or an image shown inline, never
/// interpreted by the browser as a page.
pub async fn download(
    Acting(platform): Acting,
    Path(id): Path<String>,
    Query(p): Query<PathParam>,
) -> Result<Response, UiError> {
    let (size, stream) = platform.open_run_artifact(&id, &p.path).await?;
    let name = p.path.rsplit('/').next().unwrap_or("artifact").replace(['"', '\\', '\r', '\n'], "_");
    let inline = p.inline.is_some() && matches!(preview_kind(&p.path), Preview::Image);
    let (content_type, disposition) = if inline {
        (image_type(&p.path), "inline".to_string())
    } else {
        ("application/octet-stream", format!("attachment; filename=\"{name}\""))
    };
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (header::CONTENT_DISPOSITION, disposition),
            (header::CONTENT_LENGTH, size.to_string()),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_string()),
            (header::CONTENT_SECURITY_POLICY, "sandbox; default-src 'none'; style-src 'unsafe-inline'".to_string()),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feature_importance_is_a_chart() {
        let doc = r#"[{"feature": "budget", "gain": 12.5}, {"feature": "<genre>", "gain": 3.0}]"#;
        let html = importance_chart(doc).into_string();
        assert!(html.contains("<svg") && html.contains("budget") && html.contains("gain"), "{html}");
        assert!(html.contains("&lt;genre&gt;") && !html.contains("<genre>"), "escaped: {html}");
        let html = importance_chart("not json").into_string();
        assert!(!html.contains("<svg") && html.contains("not json"));
    }
}
