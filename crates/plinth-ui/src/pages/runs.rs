//! An experiment's runs: a table with chosen metric, param and tag columns,
//! sorted, filtered (the API's filter grammar) and paged by the store, so a
//! page reads only its own rows whatever the experiment's size. Runs are
//! selected for comparison with checkboxes (a plain GET form).

use crate::Acting;
use std::collections::BTreeSet;

use axum::extract::{Path, RawQuery};
use maud::{Markup, html};
use plinth_core::experiments::{LifecycleStage, ViewType};
use plinth_core::query::Query;
use plinth_core::runs::Run;
use plinth_engine::RunSearch;

use crate::{PageResult, duration, number, page, pairs, query, time};

/// Rows per page a user may pick.
pub const PAGE_SIZES: [i64; 4] = [25, 50, 100, 200];
/// Columns picked for the user when none are chosen.
const DEFAULT_METRICS: usize = 6;
const DEFAULT_PARAMS: usize = 4;

#[derive(Default, Clone)]
struct TableParams {
    filter: String,
    /// `metrics.auc DESC`, `params.algo`, `attributes.start_time DESC`...
    order: String,
    /// Comma-separated `metrics.x`, `params.y`, `tags.z` (or repeated `col`).
    cols: String,
    offset: i64,
    size: Option<i64>,
}

impl TableParams {
    fn parse(raw: Option<String>) -> TableParams {
        let mut p = TableParams::default();
        let mut checked = Vec::new();
        for (k, v) in pairs(raw) {
            match k.as_str() {
                "filter" => p.filter = v,
                "order" => p.order = v,
                "cols" => p.cols = v,
                "col" => checked.push(v),
                "offset" => p.offset = v.parse().unwrap_or(0),
                "size" => p.size = v.parse().ok(),
                _ => {}
            }
        }
        if !checked.is_empty() {
            p.cols = checked.join(",");
        }
        p
    }
}

/// What a column shows of a run.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum ColumnKind {
    Metric,
    Param,
    Tag,
}

impl ColumnKind {
    /// The entity prefix in the filter and order grammar, and in the page's URL.
    fn prefix(self) -> &'static str {
        match self {
            ColumnKind::Metric => "metrics",
            ColumnKind::Param => "params",
            ColumnKind::Tag => "tags",
        }
    }

    fn label(self) -> &'static str {
        match self {
            ColumnKind::Metric => "metric",
            ColumnKind::Param => "param",
            ColumnKind::Tag => "tag",
        }
    }
}

/// A chosen column: its kind and key.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Column {
    kind: ColumnKind,
    key: String,
}

impl Column {
    fn parse(s: &str) -> Option<Column> {
        let (kind, key) = s.split_once('.')?;
        let kind = match kind {
            "metrics" => ColumnKind::Metric,
            "params" => ColumnKind::Param,
            "tags" => ColumnKind::Tag,
            _ => return None,
        };
        (!key.is_empty()).then(|| Column { kind, key: key.to_string() })
    }

    fn id(&self) -> String {
        format!("{}.{}", self.kind.prefix(), self.key)
    }

    /// The key as the order-by grammar takes it (backquoted unless plain).
    fn order_key(&self) -> String {
        let plain = self.key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if plain { self.id() } else { format!("{}.`{}`", self.kind.prefix(), self.key.replace('`', "")) }
    }

    fn value(&self, run: &Run) -> Option<String> {
        match self.kind {
            ColumnKind::Metric => run.data.metrics.iter().find(|m| m.key == self.key).map(|m| number(m.value)),
            ColumnKind::Param => run.data.params.iter().find(|p| p.key == self.key).map(|p| p.value.clone()),
            ColumnKind::Tag => run.data.tags.iter().find(|t| t.key == self.key).map(|t| t.value.clone()),
        }
    }
}

pub async fn table(Acting(platform): Acting, Path(id): Path<String>, RawQuery(raw): RawQuery) -> PageResult {
    let p = TableParams::parse(raw);
    let experiment = platform.get_experiment(&id).await?;
    let size = p.size.filter(|n| PAGE_SIZES.contains(n)).unwrap_or(50);
    let order_by = if p.order.trim().is_empty() { vec![] } else { vec![p.order.trim().to_string()] };
    // The user writes the API's filter grammar; a bad filter or order shows
    // the parser's message above an empty table.
    let searched = match Query::parse(p.filter.trim(), &order_by, size, p.offset.max(0)) {
        Ok(query) => {
            let search = RunSearch { experiment_ids: vec![id.clone()], view: ViewType::ActiveOnly, query };
            platform.search_runs(search).await
        }
        Err(e) => Err(e.into()),
    };
    let (runs, next, error) = match searched {
        Ok(found) => (found.items, found.next_offset, None),
        Err(e @ plinth_engine::Error::Domain(_)) => (vec![], None, Some(e.to_string())),
        Err(e) => return Err(e.into()),
    };
    let mut columns: Vec<Column> = p.cols.split(',').filter_map(|c| Column::parse(c.trim())).collect();
    // Keys present on this page, offered as columns.
    let mut available: BTreeSet<Column> = BTreeSet::new();
    for run in &runs {
        available.extend(run.data.metrics.iter().map(|m| Column { kind: ColumnKind::Metric, key: m.key.clone() }));
        available.extend(run.data.params.iter().map(|m| Column { kind: ColumnKind::Param, key: m.key.clone() }));
        available.extend(
            run.data
                .tags
                .iter()
                .filter(|t| !t.key.starts_with("mlflow."))
                .map(|m| Column { kind: ColumnKind::Tag, key: m.key.clone() }),
        );
    }
    if columns.is_empty() {
        let mut metrics: Vec<&Column> = available.iter().filter(|c| c.kind == ColumnKind::Metric).collect();
        metrics.sort_by_key(|c| metric_rank(&c.key, &runs));
        columns.extend(metrics.into_iter().take(DEFAULT_METRICS).cloned());
        columns.extend(available.iter().filter(|c| c.kind == ColumnKind::Param).take(DEFAULT_PARAMS).cloned());
    }
    let cols = columns.iter().map(Column::id).collect::<Vec<_>>().join(",");
    let link = |order: &str, offset: i64| {
        let size = size.to_string();
        let offset = offset.to_string();
        let q =
            query(&[("filter", &p.filter), ("order", order), ("cols", &cols), ("size", &size), ("offset", &offset)]);
        format!("/ui/experiments/{id}?{q}")
    };
    let sort_link = |key: &str| {
        let desc = format!("{key} DESC");
        let next = if p.order.trim() == desc { format!("{key} ASC") } else { desc };
        link(&next, 0)
    };
    let arrow = |key: &str| {
        let o = p.order.trim();
        if o == format!("{key} DESC") {
            " ↓"
        } else if o == format!("{key} ASC") || o == key {
            " ↑"
        } else {
            ""
        }
    };
    let deleted = experiment.lifecycle_stage == LifecycleStage::Deleted;
    Ok(page(
        &experiment.name,
        html! {
            div.crumbs { a href="/ui/experiments" { "Experiments" } " / " }
            h1 { (experiment.name) @if deleted { " " span.badge { "deleted" } } }
            form.toolbar method="get" action=(format!("/ui/experiments/{id}")) {
                input.wide #filter type="search" name="filter" value=(p.filter) aria-label="Filter runs"
                    placeholder="metrics.ndcg_at_10 > 0.3 and params.algo = 'als'";
                input type="hidden" name="order" value=(p.order);
                input type="hidden" name="cols" value=(cols);
                select name="size" {
                    @for n in PAGE_SIZES { option value=(n) selected[n == size] { (n) " per page" } }
                }
                button type="submit" { "Filter" }
            }
            @if let Some(e) = &error { div.error role="alert" { (e) } }
            form method="get" action="/ui/compare" {
                div.toolbar {
                    button type="submit" { "Compare selected" }
                    span.muted { (runs.len()) " runs on this page" @if p.offset > 0 { ", from " (p.offset + 1) } }
                }
                div.scroll {
                    table #runs {
                        thead {
                            tr {
                                th { "" }
                                th { a href=(sort_link("attributes.run_name")) { "Run" (arrow("attributes.run_name")) } }
                                th { a href=(sort_link("attributes.start_time")) { "Started" (arrow("attributes.start_time")) } }
                                th { "Duration" }
                                th { "Status" }
                                @for c in &columns {
                                    th.num[c.kind == ColumnKind::Metric] {
                                        a href=(sort_link(&c.order_key())) title=(c.id()) {
                                            span.muted { (c.kind.label()) " " } (c.key) (arrow(&c.order_key()))
                                        }
                                    }
                                }
                            }
                        }
                        tbody {
                            @for (run, depth) in nested(&runs) { (row(run, depth, &columns)) }
                            @if runs.is_empty() && error.is_none() {
                                tr { td colspan=(5 + columns.len()) .muted { "No runs match." } }
                            }
                        }
                    }
                }
            }
            div.pager {
                @if p.offset > 0 { a href=(link(&p.order, (p.offset - size).max(0))) { "← Previous" } }
                @if let Some(n) = next { a href=(link(&p.order, n)) { "Next →" } }
            }
            details {
                summary { "Columns" }
                form method="get" action=(format!("/ui/experiments/{id}")) {
                    input type="hidden" name="filter" value=(p.filter);
                    input type="hidden" name="order" value=(p.order);
                    div.cols {
                        @for c in &available {
                            label {
                                input type="checkbox" name="col" value=(c.id()) checked[columns.contains(c)];
                                " " (c.id())
                            }
                            br;
                        }
                    }
                    button type="submit" { "Show" }
                }
                form.toolbar method="get" action=(format!("/ui/experiments/{id}")) {
                    input type="hidden" name="filter" value=(p.filter);
                    input type="hidden" name="order" value=(p.order);
                    span.muted { "Or type them, comma-separated:" }
                    input.wide type="text" name="cols" value=(cols);
                    button type="submit" { "Show" }
                }
            }
            (rename_form(&id, &experiment.name))
        },
    ))
}

/// The page's runs with each child right under its parent (when both are
/// on the page), as (run, depth); the store's order is kept otherwise, and
/// every run appears once (tags that form a cycle cannot hide a run).
fn nested(runs: &[Run]) -> Vec<(&Run, usize)> {
    const PARENT: &str = "mlflow.parentRunId";
    fn parent_of(r: &Run) -> Option<&str> {
        r.data.tags.iter().find(|t| t.key == PARENT).map(|t| t.value.as_str())
    }
    fn place<'a>(run: &'a Run, depth: usize, runs: &'a [Run], placed: &mut Vec<bool>, out: &mut Vec<(&'a Run, usize)>) {
        out.push((run, depth));
        for (i, child) in runs.iter().enumerate() {
            if !placed[i] && parent_of(child) == Some(run.info.run_id.as_str()) {
                placed[i] = true;
                place(child, depth + 1, runs, placed, out);
            }
        }
    }
    let on_page: std::collections::HashSet<&str> = runs.iter().map(|r| r.info.run_id.as_str()).collect();
    let mut placed = vec![false; runs.len()];
    let mut out = Vec::with_capacity(runs.len());
    for pass in 0..2 {
        for (i, run) in runs.iter().enumerate() {
            // First the runs whose parent is not on the page, then any left over.
            let root = pass == 1 || !parent_of(run).is_some_and(|p| on_page.contains(p));
            if !placed[i] && root {
                placed[i] = true;
                place(run, 0, runs, &mut placed, &mut out);
            }
        }
    }
    out
}

fn row(run: &Run, depth: usize, columns: &[Column]) -> Markup {
    let info = &run.info;
    html! {
        tr.child[depth > 0] {
            td { input type="checkbox" name="run" value=(info.run_id) aria-label=(format!("select {}", info.run_name)); }
            td style=(format!("padding-left: {}px", 8 + 18 * depth)) {
                @if depth > 0 { span.muted { "↳ " } }
                a href=(format!("/ui/runs/{}", info.run_id)) { (info.run_name) }
            }
            td { (time(info.start_time)) }
            td { @if let Some(end) = info.end_time { (duration(end - info.start_time)) } }
            td class=(format!("status-{}", info.status.as_str())) { (info.status.as_str()) }
            @for c in columns {
                td.num[c.kind == ColumnKind::Metric] { (c.value(run).unwrap_or_default()) }
            }
        }
    }
}

fn rename_form(id: &str, name: &str) -> Markup {
    html! {
        details {
            summary { "Rename or delete this experiment" }
            form.toolbar method="post" action=(format!("/ui/experiments/{id}/edit")) {
                (crate::csrf::field())
                input type="hidden" name="action" value="rename";
                input type="text" name="name" value=(name) required;
                button type="submit" { "Rename" }
            }
            form.toolbar method="post" action=(format!("/ui/experiments/{id}/edit")) {
                (crate::csrf::field())
                input type="hidden" name="action" value="delete";
                button.danger type="submit" { "Delete experiment" }
            }
        }
    }
}

/// Which metrics a runs table shows first when none are chosen: quality
/// measures (nDCG, AUC, RMSE…) before counters, and metrics that differ
/// between the runs on the page before ones that are the same everywhere
/// (an all-zero counter says nothing); then by name.
pub(crate) fn metric_rank(key: &str, runs: &[plinth_core::runs::Run]) -> (bool, bool, String) {
    const QUALITY: &[&str] = &[
        "ndcg",
        "auc",
        "accuracy",
        "f1",
        "rmse",
        "mae",
        "r2",
        "precision",
        "recall",
        "map_at",
        "hit_rate",
        "logloss",
        "log_loss",
        "loss",
        "coverage",
        "score",
    ];
    let lower = key.to_ascii_lowercase();
    let quality = QUALITY.iter().any(|q| lower.contains(q));
    let mut values = runs.iter().filter_map(|r| r.data.metrics.iter().find(|m| m.key == key).map(|m| m.value));
    let first = values.next();
    let constant = values.all(|v| Some(v) == first || (v.is_nan() && first.is_some_and(f64::is_nan)));
    (!quality, constant, key.to_string())
}

#[cfg(test)]
mod tests {
    use plinth_core::experiments::{LifecycleStage, Tag};
    use plinth_core::runs::{Run, RunInfo, RunStatus};

    use super::nested;

    fn run(id: &str, parent: Option<&str>) -> Run {
        let mut r = Run {
            info: RunInfo {
                run_id: id.into(),
                run_name: id.into(),
                experiment_id: "1".into(),
                user_id: String::new(),
                status: RunStatus::Finished,
                start_time: 0,
                end_time: None,
                artifact_uri: String::new(),
                lifecycle_stage: LifecycleStage::Active,
            },
            data: Default::default(),
            inputs: Default::default(),
            outputs: Vec::new(),
        };
        if let Some(p) = parent {
            r.data.tags.push(Tag::new("mlflow.parentRunId", p));
        }
        r
    }

    #[test]
    fn children_sit_under_their_parents() {
        let runs =
            vec![run("c1", Some("p")), run("x", None), run("p", None), run("g", Some("c1")), run("o", Some("gone"))];
        let order: Vec<(&str, usize)> = nested(&runs).iter().map(|(r, d)| (r.info.run_id.as_str(), *d)).collect();
        assert_eq!(order, vec![("x", 0), ("p", 0), ("c1", 1), ("g", 2), ("o", 0)]);
        // A cycle hides nothing.
        let cycle = vec![run("a", Some("b")), run("b", Some("a"))];
        assert_eq!(nested(&cycle).len(), 2);
    }
}
