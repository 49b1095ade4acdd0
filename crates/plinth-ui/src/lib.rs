//! The web UI: pages rendered on the server (maud, which escapes every
//! interpolated string), one stylesheet embedded in the binary, no script
//! and nothing fetched from elsewhere. Every list is paged by the store, so
//! a page costs the same with 100 runs or 100,000.
//!
//! `/` redirects to the experiments; `/ui/experiments[/{id}]`,
//! `/ui/runs/{id}[/artifacts|/download]`, `/ui/compare?run=…`,
//! `/ui/models[/{name}]`, `/ui/deployments[/{name}[/experiment]]`, `/ui/jobs`, `/ui/platform`; with
//! `--auth`, `/login` and `/logout`.

mod charts;
mod csrf;
mod pages;

use axum::Router;
use axum::extract::FromRef;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{DOCTYPE, Markup, html};
use plinth_engine::Platform;
use plinth_engine::jobs::JobRunner;
use plinth_serving::Serving;

pub use pages::login::{SESSION_COOKIE, sign_in_page};
pub use pages::runs::PAGE_SIZES;

/// A cookie's value from a request's `Cookie` headers.
pub fn cookie(headers: &axum::http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
        .filter(|v| !v.is_empty())
}

const STYLE: &str = include_str!("../assets/style.css");

/// What the pages read, side by side: the platform (tracking and registry),
/// the serving runtime (deployments) and the job runner. Handlers take the
/// part they need (`State<Platform>`, `State<Serving>`, `State<JobRunner>`).
#[derive(Clone)]
pub struct UiState {
    pub platform: Platform,
    pub serving: Serving,
    pub jobs: JobRunner,
    /// Whether callers sign in (`--auth`).
    pub auth: bool,
}

/// The platform acting for the page's caller and request id, in the
/// workspace the UI's cookie names: what every page works with, so it shows
/// that workspace's work as the caller may see it, and the audit trail names
/// who changed something. A workspace the caller may not enter (gone, or not
/// theirs) is a page saying so, with the way to another.
pub(crate) struct Acting(pub Platform);

impl axum::extract::FromRequestParts<UiState> for Acting {
    type Rejection = UiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, s: &UiState) -> Result<Self, Self::Rejection> {
        let principal = parts.extensions.get::<std::sync::Arc<plinth_core::auth::Principal>>().cloned();
        let platform = s.platform.acting(actor(principal, &parts.headers));
        let workspace = csrf::workspace_of(&parts.headers);
        match platform.enter_workspace(&workspace).await {
            Ok(p) => Ok(Acting(p)),
            Err(e) if e.kind() == plinth_core::ErrorKind::NotFound => {
                Err(UiError::not_found(format!("{e}. Choose another workspace at /ui/workspaces.")))
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// The platform acting for the page's caller in `default`, whatever the
/// cookie says: the workspaces page, which must work when the cookie's
/// workspace is gone.
pub(crate) struct Signed(pub Platform);

impl axum::extract::FromRequestParts<UiState> for Signed {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, s: &UiState) -> Result<Self, Self::Rejection> {
        let principal = parts.extensions.get::<std::sync::Arc<plinth_core::auth::Principal>>().cloned();
        Ok(Signed(s.platform.acting(actor(principal, &parts.headers))))
    }
}

/// A request's actor: `principal` (anonymous when auth is off) with the
/// request's `X-Request-Id`.
pub(crate) fn actor(
    principal: Option<std::sync::Arc<plinth_core::auth::Principal>>,
    headers: &axum::http::HeaderMap,
) -> plinth_core::audit::Actor {
    let request_id = headers.get("x-request-id").and_then(|v| v.to_str().ok());
    plinth_core::audit::Actor::of_request(principal, request_id)
}

impl FromRef<UiState> for Platform {
    fn from_ref(s: &UiState) -> Platform {
        s.platform.clone()
    }
}

impl FromRef<UiState> for Serving {
    fn from_ref(s: &UiState) -> Serving {
        s.serving.clone()
    }
}

impl FromRef<UiState> for JobRunner {
    fn from_ref(s: &UiState) -> JobRunner {
        s.jobs.clone()
    }
}

/// The UI's routes; the server merges them beside its APIs.
pub fn router(platform: Platform, serving: Serving, jobs: JobRunner, auth: bool) -> Router {
    Router::new()
        .route("/", get(root))
        .route("/login", get(pages::login::show).post(pages::login::sign_in))
        .route("/logout", post(pages::login::sign_out))
        .route("/ui", get(|| async { Redirect::to("/ui/experiments") }))
        .route("/ui/assets/style.css", get(style))
        .route("/ui/experiments", get(pages::experiments::list).post(pages::experiments::create))
        .route("/ui/experiments/{id}", get(pages::runs::table))
        .route("/ui/experiments/{id}/edit", post(pages::experiments::edit))
        .route("/ui/runs/{id}", get(pages::run::detail))
        .route("/ui/runs/{id}/artifacts", get(pages::run::artifacts))
        .route("/ui/runs/{id}/download", get(pages::run::download))
        .route("/ui/compare", get(pages::compare::page))
        .route("/ui/models", get(pages::models::list))
        .route("/ui/models/{name}", get(pages::models::detail))
        .route("/ui/models/{name}/alias", post(pages::models::alias))
        .route("/ui/deployments", get(pages::deployments::list))
        .route("/ui/deployments/{name}", get(pages::deployments::detail))
        .route("/ui/deployments/{name}/experiment", get(pages::analysis::show))
        .route("/ui/jobs", get(pages::jobs::list))
        .route("/ui/platform", get(pages::platform::show))
        .route("/ui/workspaces", get(pages::workspaces::list).post(pages::workspaces::switch))
        .layer(axum::middleware::from_fn(csrf::layer))
        .with_state(UiState { platform, serving, jobs, auth })
}

/// The links MLflow prints (`…/#/experiments/<id>/runs/<run>`,
/// `#/models/<name>/versions/<v>`) carry the place in the fragment, which
/// never reaches the server: this page's one script reads it and goes
/// there (the UI's only script; everything else works without one).
const ROOT: &str = r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Plinth</title>
<script>
(function () {
  var h = location.hash, m;
  if ((m = /^#\/experiments\/([^/?#]+)\/runs\/([^/?#]+)/.exec(h))) return location.replace("/ui/runs/" + encodeURIComponent(decodeURIComponent(m[2])));
  if ((m = /^#\/experiments\/([^/?#]+)/.exec(h))) return location.replace("/ui/experiments/" + encodeURIComponent(decodeURIComponent(m[1])));
  if ((m = /^#\/models\/([^/?#]+)/.exec(h))) return location.replace("/ui/models/" + encodeURIComponent(decodeURIComponent(m[1])));
  location.replace("/ui/experiments");
})();
</script></head><body><noscript><a href="/ui/experiments">Experiments</a></noscript></body></html>"#;

async fn root() -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], ROOT).into_response()
}

async fn style() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "max-age=3600")], STYLE)
        .into_response()
}

/// The page shell: navigation, title, content.
pub(crate) fn page(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Plinth" }
                link rel="stylesheet" href="/ui/assets/style.css";
            }
            body {
                header {
                    a.brand href="/ui/experiments" { "Plinth" }
                    a href="/ui/experiments" { "Experiments" }
                    a href="/ui/models" { "Models" }
                    a href="/ui/deployments" { "Deployments" }
                    a href="/ui/jobs" { "Jobs" }
                    a href="/ui/platform" { "Platform" }
                    a.workspace href="/ui/workspaces" title="Switch workspace" { "Workspace: " strong { (csrf::workspace()) } }
                    @if let Some(user) = csrf::user() {
                        span.who { "Signed in as " strong { (user) } }
                        form.signout method="post" action="/logout" {
                            (csrf::field())
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// A failed page: the reason, in the page, with the right status.
pub(crate) struct UiError {
    status: StatusCode,
    message: String,
}

impl UiError {
    pub(crate) fn bad_request(message: impl Into<String>) -> UiError {
        UiError { status: StatusCode::BAD_REQUEST, message: message.into() }
    }

    pub(crate) fn not_found(message: impl Into<String>) -> UiError {
        UiError { status: StatusCode::NOT_FOUND, message: message.into() }
    }
}

impl UiError {
    /// The UI's one mapping from an error's kind to a page: the kind's
    /// status; an internal cause goes to the log, never to the page.
    fn of(kind: plinth_core::ErrorKind, message: impl std::fmt::Display) -> UiError {
        let status = StatusCode::from_u16(kind.http().0).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if kind == plinth_core::ErrorKind::Internal {
            tracing::error!(cause = %message, "ui page failed");
            return UiError { status, message: "something went wrong on the server; see its log".into() };
        }
        UiError { status, message: message.to_string() }
    }
}

impl From<plinth_engine::Error> for UiError {
    fn from(e: plinth_engine::Error) -> UiError {
        UiError::of(e.kind(), e)
    }
}

impl From<plinth_serving::Error> for UiError {
    fn from(e: plinth_serving::Error) -> UiError {
        UiError::of(e.kind(), e)
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let body = page("Error", html! { h1 { "Cannot show this page" } div.error { (self.message) } });
        (self.status, body).into_response()
    }
}

pub(crate) type PageResult = Result<Markup, UiError>;

/// A form whose fields do not parse is a page saying so (400), not axum's
/// plain-text 422.
pub(crate) struct Form<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> axum::extract::FromRequest<S> for Form<T> {
    type Rejection = UiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, UiError> {
        axum::Form::<T>::from_request(req, state)
            .await
            .map(|axum::Form(v)| Form(v))
            .map_err(|e| UiError::bad_request(format!("The form is not valid: {}", e.body_text())))
    }
}

/// Likewise for query strings (`?offset=abc`).
pub(crate) struct Query<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> axum::extract::FromRequestParts<S> for Query<T> {
    type Rejection = UiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, UiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| Query(v))
            .map_err(|e| UiError::bad_request(format!("The address is not valid: {}", e.body_text())))
    }
}

/// Milliseconds since the epoch as `YYYY-MM-DD HH:MM:SS` (UTC).
pub(crate) fn time(ms: i64) -> String {
    let (year, month, day, h, m, sec) = plinth_core::ids::utc(ms);
    format!("{year:04}-{month:02}-{day:02} {h:02}:{m:02}:{sec:02}")
}

/// A duration in milliseconds, short.
pub(crate) fn duration(ms: i64) -> String {
    let s = ms / 1000;
    match s {
        _ if ms < 1000 => format!("{ms} ms"),
        0..60 => format!("{:.1} s", ms as f64 / 1000.0),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, s % 3600 / 60),
    }
}

/// A metric value, compact.
pub(crate) fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "inf".into() } else { "-inf".into() }
    } else if v != 0.0 && (v.abs() < 1e-4 || v.abs() >= 1e9) {
        format!("{v:.4e}")
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.5}");
        s.trim_end_matches('0').to_string()
    }
}

/// A raw query string's pairs, repeated keys kept.
pub(crate) fn pairs(raw: Option<String>) -> Vec<(String, String)> {
    raw.and_then(|q| serde_urlencoded::from_str(&q).ok()).unwrap_or_default()
}

/// A query string from pairs, encoded.
pub(crate) fn query(pairs: &[(&str, &str)]) -> String {
    serde_urlencoded::to_string(pairs).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_numbers_read_well() {
        assert_eq!(time(0), "1970-01-01 00:00:00");
        assert_eq!(time(1_700_000_000_000), "2023-11-14 22:13:20");
        assert_eq!(duration(950), "950 ms");
        assert_eq!(duration(75_000), "1 min 15 s");
        assert_eq!(number(0.123456789), "0.12346");
        assert_eq!(number(3.0), "3");
        assert_eq!(number(f64::NAN), "NaN");
        assert_eq!(number(1e-7), "1.0000e-7");
    }
}
