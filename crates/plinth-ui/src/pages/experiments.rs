//! The experiments list, with search; create, rename, delete, restore.

use crate::Acting;
use axum::extract::Path;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use plinth_core::experiments::{LifecycleStage, ViewType};
use plinth_core::query::{ExperimentClause, ExperimentQuery, ExperimentSortKey, Sort, TextMatch};
use plinth_engine::ExperimentSearch;
use serde::Deserialize;

use crate::{Form, PageResult, Query, UiError, page, query, time};

#[derive(Deserialize, Default)]
pub struct ListParams {
    #[serde(default)]
    q: String,
    #[serde(default)]
    view: String,
    #[serde(default)]
    offset: i64,
}

const PAGE: i64 = 100;

pub async fn list(Acting(platform): Acting, Query(p): Query<ListParams>) -> PageResult {
    let view = match p.view.as_str() {
        "deleted" => ViewType::DeletedOnly,
        "all" => ViewType::All,
        _ => ViewType::ActiveOnly,
    };
    let needle = p.q.trim();
    let filter = if needle.is_empty() { vec![] } else { vec![ExperimentClause::Name(TextMatch::contains(needle))] };
    let found = platform
        .search_experiments(ExperimentSearch {
            view,
            query: ExperimentQuery {
                filter,
                order_by: vec![Sort::desc(ExperimentSortKey::LastUpdateTime)],
                max_results: PAGE,
                offset: p.offset.max(0),
            },
        })
        .await?;
    let next = found.next_offset.map(|o| query(&[("q", &p.q), ("view", &p.view), ("offset", &o.to_string())]));
    let counts: std::collections::HashMap<String, i64> =
        platform.count_runs(found.items.iter().map(|e| e.experiment_id.clone()).collect()).await?.into_iter().collect();
    Ok(page(
        "Experiments",
        html! {
            h1 { "Experiments" }
            form.toolbar method="get" action="/ui/experiments" {
                input type="search" name="q" value=(p.q) placeholder="Search by name";
                select name="view" {
                    option value="active" selected[view == ViewType::ActiveOnly] { "Active" }
                    option value="deleted" selected[view == ViewType::DeletedOnly] { "Deleted" }
                    option value="all" selected[view == ViewType::All] { "All" }
                }
                button type="submit" { "Search" }
            }
            div.scroll {
                table {
                    thead { tr { th { "Name" } th { "ID" } th.num { "Runs" } th { "Last updated" } th { "Created" } th { "State" } th { "" } } }
                    tbody {
                        @for e in &found.items {
                            tr {
                                td { a href=(format!("/ui/experiments/{}", e.experiment_id)) { (e.name) } }
                                td.muted { (e.experiment_id) }
                                td.num { (counts.get(&e.experiment_id).copied().unwrap_or(0)) }
                                td { (time(e.last_update_time)) }
                                td { (time(e.creation_time)) }
                                td { (e.lifecycle_stage.as_str()) }
                                td {
                                    form.inline method="post" action=(format!("/ui/experiments/{}/edit", e.experiment_id)) {
                                        (crate::csrf::field())
                                        @if e.lifecycle_stage == LifecycleStage::Active {
                                            input type="hidden" name="action" value="delete";
                                            button.secondary type="submit" { "Delete" }
                                        } @else {
                                            input type="hidden" name="action" value="restore";
                                            button.secondary type="submit" { "Restore" }
                                        }
                                    }
                                }
                            }
                        }
                        @if found.items.is_empty() {
                            tr { td colspan="7" .muted { "No experiments match." } }
                        }
                    }
                }
            }
            @if let Some(next) = next {
                div.pager { a href=(format!("/ui/experiments?{next}")) { "Next page →" } }
            }
            h2 { "New experiment" }
            form.toolbar method="post" action="/ui/experiments" {
                (crate::csrf::field())
                input type="text" name="name" placeholder="Name" required;
                button type="submit" { "Create" }
            }
        },
    ))
}

#[derive(Deserialize)]
pub struct CreateForm {
    name: String,
}

pub async fn create(crate::Acting(platform): crate::Acting, Form(f): Form<CreateForm>) -> Result<Response, UiError> {
    let id = platform.create_experiment(f.name.trim().to_string(), None, vec![]).await?;
    Ok(Redirect::to(&format!("/ui/experiments/{id}")).into_response())
}

#[derive(Deserialize)]
pub struct EditForm {
    action: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    confirm: Option<String>,
}

pub async fn edit(
    crate::Acting(platform): crate::Acting,
    Path(id): Path<String>,
    Form(f): Form<EditForm>,
) -> Result<Response, UiError> {
    if f.action == "delete" && f.confirm.as_deref() != Some("yes") {
        // A delete is asked for first, saying what it takes away.
        let experiment = platform.get_experiment(&id).await?;
        let runs = platform.count_runs(vec![id.clone()]).await?.first().map_or(0, |(_, n)| *n);
        return Ok(page(
            "Confirm delete",
            html! {
                div.crumbs { a href="/ui/experiments" { "Experiments" } " / " }
                h1 { "Confirm" }
                div.card {
                    p #change { "Delete experiment " strong { (experiment.name) } " and its " (runs) " active run(s)?" }
                    p.muted { "Deleted experiments are listed under 'deleted' and can be restored." }
                    form.inline method="post" action=(format!("/ui/experiments/{id}/edit")) {
                        (crate::csrf::field())
                        input type="hidden" name="action" value="delete";
                        input type="hidden" name="confirm" value="yes";
                        button type="submit" #confirm { "Delete" }
                    }
                    " "
                    a href=(format!("/ui/experiments/{id}")) { "Cancel" }
                }
            },
        )
        .into_response());
    }
    match f.action.as_str() {
        "rename" => platform.rename_experiment(&id, f.name.trim().to_string()).await?,
        "delete" => platform.delete_experiment(&id).await?,
        "restore" => platform.restore_experiment(&id).await?,
        other => return Err(UiError::bad_request(format!("unknown action '{other}'"))),
    }
    let to = if f.action == "rename" { format!("/ui/experiments/{id}") } else { "/ui/experiments?view=all".into() };
    Ok(Redirect::to(&to).into_response())
}
