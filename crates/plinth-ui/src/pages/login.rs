//! Signing in and out (`--auth`): a form, and a session cookie.
//!
//! The cookie holds a session token's secret (the store keeps its SHA-256):
//! `HttpOnly` (no script reads it), `SameSite=Strict` (no other site's
//! request carries it), `Secure` when the request came over TLS (a proxy
//! that terminates it says so with `X-Forwarded-Proto: https`), for
//! [`SESSION_HOURS`]. Signing out revokes the token, not only the cookie.

use std::time::Duration;

use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use plinth_core::auth::TokenKind;
use plinth_engine::Platform;
use serde::Deserialize;

use crate::{Form, Query, UiState, csrf, page};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "plinth_session";
/// How long a UI session lasts.
pub const SESSION_HOURS: u64 = 12;

/// Only a path on this server (never `//host` or a scheme): no open redirect.
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.starts_with("/\\") && !n.starts_with("/login") => n,
        _ => "/ui/experiments",
    }
}

fn form(next: &str, message: Option<&str>, auth_on: bool) -> Markup {
    page(
        "Sign in",
        html! {
            h1 { "Sign in" }
            @if !auth_on {
                p.note { "Authentication is off on this server (start it with --auth): there is nothing to sign in to." }
            }
            @if let Some(m) = message { div.error role="alert" { (m) } }
            form.login method="post" action="/login" {
                (csrf::field())
                input type="hidden" name="next" value=(next);
                label { "Username " input type="text" name="username" autocomplete="username" required autofocus; }
                label { "Password " input type="password" name="password" autocomplete="current-password" required; }
                button type="submit" { "Sign in" }
            }
        },
    )
}

/// The sign-in form in place of a page the caller may not see yet (401).
pub fn sign_in_page(headers: &HeaderMap, next: &str) -> Response {
    let next = safe_next(Some(next)).to_string();
    csrf::render_outside(headers, StatusCode::UNAUTHORIZED, || form(&next, None, true))
}

#[derive(Deserialize)]
pub(crate) struct NextQuery {
    next: Option<String>,
}

pub(crate) async fn show(State(s): State<UiState>, Query(q): Query<NextQuery>) -> Markup {
    form(safe_next(q.next.as_deref()), None, s.auth)
}

#[derive(Deserialize)]
pub(crate) struct SignIn {
    username: String,
    password: String,
    next: Option<String>,
}

fn over_tls(headers: &HeaderMap) -> bool {
    headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()).is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

fn session_cookie(value: &str, max_age_s: u64, secure: bool) -> Option<HeaderValue> {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_s}{secure}"
    ))
    .ok()
}

pub(crate) async fn sign_in(
    State(s): State<UiState>,
    peer: Option<Extension<plinth_core::auth::ClientAddr>>,
    headers: HeaderMap,
    Form(f): Form<SignIn>,
) -> Response {
    let next = safe_next(f.next.as_deref()).to_string();
    if !s.auth {
        return (StatusCode::BAD_REQUEST, form(&next, Some("Authentication is off on this server."), false))
            .into_response();
    }
    let accounts = s.platform.accounts();
    let from = peer.map(|Extension(c)| c.0);
    let user = match accounts.sign_in(&f.username, &f.password, from).await {
        Ok(p) => p,
        Err(e) => {
            let status = StatusCode::from_u16(e.kind().http().0).unwrap_or(StatusCode::UNAUTHORIZED);
            let message = match e.kind() {
                plinth_core::ErrorKind::Unauthenticated => "Wrong username or password.".to_string(),
                plinth_core::ErrorKind::RateLimited => e.to_string(),
                _ => {
                    tracing::error!(error = %e, "sign-in failed");
                    "Cannot sign in now; see the server log.".to_string()
                }
            };
            return (status, form(&next, Some(&message), true)).into_response();
        }
    };
    let as_user = s.platform.acting(crate::actor(Some(user.clone()), &headers));
    match start_session(&as_user, user.user_id).await {
        Ok(secret) => {
            let mut response = Redirect::to(&next).into_response();
            if let Some(v) = session_cookie(&secret, SESSION_HOURS * 3600, over_tls(&headers)) {
                response.headers_mut().append(header::SET_COOKIE, v);
            }
            tracing::info!(user = %user.username, "signed in to the UI");
            response
        }
        Err(e) => crate::UiError::from(e).into_response(),
    }
}

async fn start_session(platform: &Platform, user_id: i64) -> plinth_engine::Result<String> {
    let accounts = platform.accounts();
    let user = accounts.get_user_by_id(user_id).await?;
    let ttl = Duration::from_secs(SESSION_HOURS * 3600);
    let (_, secret) = accounts.issue_token(&user, "ui session", TokenKind::Session, Some(ttl)).await?;
    Ok(secret)
}

pub(crate) async fn sign_out(crate::Acting(platform): crate::Acting, headers: HeaderMap) -> Response {
    if let Some(secret) = crate::cookie(&headers, SESSION_COOKIE)
        && let Err(e) = platform.accounts().end_session(&secret).await
    {
        return crate::UiError::from(e).into_response();
    }
    let mut response = Redirect::to("/login").into_response();
    if let Some(v) = session_cookie("", 0, over_tls(&headers)) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}
