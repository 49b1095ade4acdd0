//! The web UI: pages rendered on the server (maud, which escapes every
//! interpolated string), one stylesheet embedded in the binary, no script
//! and nothing fetched from elsewhere. Every list is paged by the store, so
//! a page costs the same with 100 runs or 100,000.
//!
//! `/` redirects to the experiments; `/ui/experiments[/{id}]`,
//! `/ui/runs/{id}[/artifacts|/download]`, `/ui/compare?run=…`,
//! `/ui/models[/{name}]`, `/ui/deployments`.

mod charts;
mod csrf;
mod pages;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{DOCTYPE, Markup, html};
use plinth_serving::Serving;

pub use pages::runs::PAGE_SIZES;

const STYLE: &str = include_str!("../assets/style.css");

/// The UI's routes; the server merges them beside its APIs.
pub fn router(serving: Serving) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/experiments") }))
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
        .layer(axum::middleware::from_fn(csrf::layer))
        .with_state(serving)
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
}

impl From<plinth_engine::Error> for UiError {
    fn from(e: plinth_engine::Error) -> UiError {
        use plinth_core::Error as D;
        let status = match &e {
            plinth_engine::Error::Domain(D::NotFound(_)) => StatusCode::NOT_FOUND,
            plinth_engine::Error::Domain(_) => StatusCode::BAD_REQUEST,
            _ => {
                tracing::error!(error = %e, "ui page failed");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        let message = match status {
            StatusCode::INTERNAL_SERVER_ERROR => "something went wrong on the server; see its log".to_string(),
            _ => e.to_string(),
        };
        UiError { status, message }
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let body = page("Error", html! { h1 { "Cannot show this page" } div.error { (self.message) } });
        (self.status, body).into_response()
    }
}

pub(crate) type PageResult = Result<Markup, UiError>;

/// Milliseconds since the epoch as `YYYY-MM-DD HH:MM:SS` (UTC).
pub(crate) fn time(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}", rest / 3600, rest % 3600 / 60, rest % 60)
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
