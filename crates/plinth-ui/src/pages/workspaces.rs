//! The workspaces a user may work in, and switching between them: the
//! choice is a cookie (`plinth_workspace`, `HttpOnly`, `SameSite=Strict`)
//! that every page's `Acting` reads, as the API reads `X-MLFLOW-WORKSPACE`.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use crate::{Form, PageResult, UiError, csrf, page};

/// The cookie that holds the UI's workspace.
pub const COOKIE: &str = "plinth_workspace";

pub async fn list(crate::Signed(platform): crate::Signed) -> PageResult {
    let all = platform.list_workspaces().await?;
    let current = csrf::workspace();
    Ok(page(
        "Workspaces",
        html! {
            h1 { "Workspaces" }
            p.muted { "Each team's experiments, models, deployments and jobs live in its workspace. "
                "The API takes it from the " code { "X-MLFLOW-WORKSPACE" } " header (" code { "mlflow.set_workspace" } ")." }
            table {
                thead { tr { th { "Workspace" } th { "Description" } th {} } }
                tbody {
                    @for w in &all {
                        tr {
                            td { strong { (w.name) } }
                            td { (w.description.as_deref().unwrap_or("")) }
                            td {
                                @if w.name == current {
                                    span.badge { "current" }
                                } @else {
                                    form method="post" action="/ui/workspaces" {
                                        (csrf::field())
                                        input type="hidden" name="workspace" value=(w.name);
                                        button type="submit" { "Work here" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    ))
}

#[derive(Deserialize)]
pub struct Switch {
    workspace: String,
}

/// Works in another workspace from now on (one the user may see).
pub async fn switch(crate::Signed(platform): crate::Signed, Form(f): Form<Switch>) -> Result<Response, UiError> {
    let name =
        plinth_core::workspaces::normalize(Some(&f.workspace)).map_err(|e| UiError::bad_request(e.to_string()))?;
    platform.enter_workspace(&name).await?;
    let mut response = Redirect::to("/ui/experiments").into_response();
    let cookie = format!("{COOKIE}={name}; Path=/; HttpOnly; SameSite=Strict");
    let value =
        HeaderValue::from_str(&cookie).map_err(|_| UiError::bad_request("That workspace name cannot be kept."))?;
    response.headers_mut().append(header::SET_COOKIE, value);
    Ok(response)
}
