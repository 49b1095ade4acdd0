//! Registered models: the list, and one model's versions with their
//! aliases, tags, source runs and the deployments that serve them. An alias
//! is set or moved from the page after a confirmation step.

use crate::Acting;
use axum::extract::Path;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use plinth_core::deployments::ModelTarget;
use plinth_core::query::{
    ModelVersionClause, ModelVersionQuery, ModelVersionSortKey, RegisteredModelClause, RegisteredModelQuery,
    RegisteredModelSortKey, Sort, TextMatch,
};
use serde::Deserialize;

use crate::{Form, PageResult, Query, UiError, page, query, time};

const PAGE: i64 = 100;

#[derive(Deserialize, Default)]
pub struct ListParams {
    #[serde(default)]
    q: String,
    #[serde(default)]
    offset: i64,
}

pub async fn list(Acting(platform): Acting, Query(p): Query<ListParams>) -> PageResult {
    let needle = p.q.trim();
    let filter =
        if needle.is_empty() { vec![] } else { vec![RegisteredModelClause::Name(TextMatch::contains(needle))] };
    let found = platform
        .search_registered_models(RegisteredModelQuery {
            filter,
            order_by: vec![Sort::asc(RegisteredModelSortKey::Name)],
            max_results: PAGE,
            offset: p.offset.max(0),
        })
        .await?;
    let next = found.next_offset.map(|o| query(&[("q", &p.q), ("offset", &o.to_string())]));
    Ok(page(
        "Models",
        html! {
            h1 { "Registered models" }
            form.toolbar method="get" action="/ui/models" {
                input type="search" name="q" value=(p.q) placeholder="Search by name";
                button type="submit" { "Search" }
            }
            div.scroll {
                table {
                    thead { tr { th { "Name" } th { "Latest version" } th { "Aliases" } th { "Updated" } } }
                    tbody {
                        @for m in &found.items {
                            tr {
                                td { a href=(format!("/ui/models/{}", m.name)) { (m.name) } }
                                td { @if let Some(v) = m.latest_versions.iter().map(|v| v.version).max() { (v) } }
                                td { @for a in &m.aliases { span.badge { "@" (a.alias) " → v" (a.version) } } }
                                td { (time(m.last_updated_timestamp)) }
                            }
                        }
                        @if found.items.is_empty() { tr { td colspan="4" .muted { "No registered models." } } }
                    }
                }
            }
            @if let Some(next) = next { div.pager { a href=(format!("/ui/models?{next}")) { "Next page →" } } }
        },
    ))
}

pub async fn detail(Acting(platform): Acting, Path(name): Path<String>) -> PageResult {
    let model = platform.get_registered_model(&name).await?;
    let versions = platform
        .search_model_versions(ModelVersionQuery {
            filter: vec![ModelVersionClause::Name(TextMatch::Eq(name.clone()))],
            order_by: vec![Sort::desc(ModelVersionSortKey::Version)],
            max_results: 200,
            offset: 0,
        })
        .await?
        .items;
    let deployments = platform.list_deployments().await?;
    let history = super::history::of(&platform, plinth_core::audit::resource::model(&name)).await?;
    // Per version: the deployments (and variants) whose model reference resolves to it.
    let serving = |version: i64, aliases: &[String]| -> Vec<String> {
        deployments
            .iter()
            .flat_map(|d| d.variants.iter().chain(d.shadow.as_ref()).map(move |v| (d, v)))
            .filter(|(_, v)| {
                v.model.name == name
                    && match &v.model.target {
                        ModelTarget::Version(n) => *n == version,
                        ModelTarget::Alias(a) => aliases.contains(a),
                    }
            })
            .map(|(d, v)| format!("{} / {}", d.name, v.name))
            .collect()
    };
    Ok(page(
        &name,
        html! {
            div.crumbs { a href="/ui/models" { "Models" } " / " }
            h1 { (model.name) }
            @if let Some(d) = &model.description { @if !d.is_empty() { p { (d) } } }
            @if !model.tags.is_empty() {
                p { @for t in &model.tags { span.badge { (t.key) "=" (t.value) } } }
            }
            div.scroll {
                table #versions {
                    thead { tr { th { "Version" } th { "Aliases" } th { "Stage" } th { "Run" } th { "Tags" } th { "Served by" } th { "Created" } } }
                    tbody {
                        @for v in &versions {
                            tr {
                                td { (v.version) }
                                td { @for a in &v.aliases { span.badge { "@" (a) } } }
                                td { (format!("{:?}", v.current_stage)) }
                                td { @if let Some(r) = &v.run_id { a href=(format!("/ui/runs/{r}")) { (r.get(..8).unwrap_or(r)) } } }
                                td { @for t in &v.tags { span.badge { (t.key) "=" (t.value) } } }
                                td { @for d in serving(v.version, &v.aliases) { a href="/ui/deployments" { (d) } " " } }
                                td { (time(v.creation_timestamp)) }
                            }
                        }
                    }
                }
            }
            h2 { "Set or move an alias" }
            form.toolbar method="post" action=(format!("/ui/models/{name}/alias")) {
                (crate::csrf::field())
                input type="text" name="alias" placeholder="champion" required;
                select name="version" {
                    @for v in &versions { option value=(v.version) { "version " (v.version) } }
                }
                button type="submit" { "Set alias…" }
            }
            (super::history::section(&history))
        },
    ))
}

#[derive(Deserialize)]
pub struct AliasForm {
    alias: String,
    version: i64,
    #[serde(default)]
    confirm: Option<String>,
}

/// First a confirmation page saying what will change; then the change.
pub async fn alias(
    crate::Acting(platform): crate::Acting,
    Path(name): Path<String>,
    Form(f): Form<AliasForm>,
) -> Result<Response, UiError> {
    let alias = f.alias.trim().to_string();
    if f.confirm.as_deref() == Some("yes") {
        platform.set_alias(&name, &alias, f.version).await?;
        return Ok(Redirect::to(&format!("/ui/models/{name}")).into_response());
    }
    // Checked before asking: the version exists and the alias name is valid.
    platform.get_model_version(&name, &f.version.to_string()).await?;
    if alias.is_empty() || alias.len() > 256 {
        return Err(UiError::bad_request("an alias needs a name of at most 256 characters"));
    }
    let current = platform.get_model_version_by_alias(&name, &alias).await.ok().map(|v| v.version);
    // The deployments (and variants) that follow this alias and will switch.
    let switching: Vec<String> = platform
        .list_deployments()
        .await?
        .iter()
        .flat_map(|d| d.variants.iter().chain(d.shadow.as_ref()).map(move |v| (d, v)))
        .filter(|(_, v)| v.model.name == name && v.model.target == ModelTarget::Alias(alias.clone()))
        .map(|(d, v)| format!("{} / {}", d.name, v.name))
        .collect();
    let change = match current {
        Some(v) if v == f.version => format!("@{alias} already points to version {v}."),
        Some(v) => format!("Move @{alias} of {name} from version {v} to version {}?", f.version),
        None => format!("Set @{alias} of {name} to version {}?", f.version),
    };
    Ok(page(
        "Confirm alias",
        html! {
            div.crumbs { a href="/ui/models" { "Models" } " / " a href=(format!("/ui/models/{name}")) { (name) } " / " }
            h1 { "Confirm" }
            div.card {
                p #change { (change) }
                @if switching.is_empty() {
                    p.muted { "No deployment serves @" (alias) " now." }
                } @else {
                    p { "These deployments serve @" (alias) " and switch to the new version within a second:" }
                    ul #switching { @for d in &switching { li { (d) } } }
                }
                form.inline method="post" action=(format!("/ui/models/{name}/alias")) {
                    (crate::csrf::field())
                    input type="hidden" name="alias" value=(alias);
                    input type="hidden" name="version" value=(f.version);
                    input type="hidden" name="confirm" value="yes";
                    button type="submit" #confirm { "Confirm" }
                }
                " "
                a href=(format!("/ui/models/{name}")) { "Cancel" }
            }
        },
    )
    .into_response())
}
