//! Cross-site request forgery: every state-changing form carries a token
//! that a foreign page cannot know. Double-submit: the token lives in a
//! `SameSite=Strict`, `HttpOnly` cookie, and each form repeats it in a
//! hidden `csrf` field; a POST is served only when both are present and
//! equal (compared in constant time). A cross-site POST carries no cookie
//! and cannot read a page to learn the value, so it is refused with 403.
//!
//! Forms render the field with [`field`], which reads the token of the
//! request being answered (a task-local set by [`layer`]).

use axum::body::{Body, to_bytes};
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};

use crate::UiError;

pub const COOKIE: &str = "plinth_csrf";
pub const FIELD: &str = "csrf";
/// UI forms are small; a larger body is refused before it is parsed.
const MAX_FORM_BYTES: usize = 64 << 10;

tokio::task_local! {
    static TOKEN: String;
    /// Who is signed in, for the page header (none when authentication is off).
    static USER: Option<String>;
    /// The workspace the pages work in (the UI's cookie), for the page header.
    static WORKSPACE: String;
}

/// The workspace the page being rendered works in.
pub fn workspace() -> String {
    WORKSPACE.try_with(Clone::clone).unwrap_or_else(|_| plinth_core::workspaces::DEFAULT_WORKSPACE.to_string())
}

/// The workspace a request's UI cookie names (`default` when none or not a valid name).
pub fn workspace_of(headers: &axum::http::HeaderMap) -> String {
    let raw = crate::cookie(headers, crate::pages::workspaces::COOKIE);
    plinth_core::workspaces::normalize(raw.as_deref())
        .unwrap_or_else(|_| plinth_core::workspaces::DEFAULT_WORKSPACE.to_string())
}

/// The signed-in user of the page being rendered.
pub fn user() -> Option<String> {
    USER.try_with(Clone::clone).ok().flatten()
}

/// The hidden input every POST form must contain.
pub fn field() -> Markup {
    let token = TOKEN.try_with(Clone::clone).unwrap_or_default();
    html! { input type="hidden" name=(FIELD) value=(token); }
}

fn cookie_token(headers: &axum::http::HeaderMap) -> Option<String> {
    crate::cookie(headers, COOKIE).filter(|v| v.len() == 32 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn set_cookie(response: &mut Response, token: &str) {
    if let Ok(v) = HeaderValue::from_str(&format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict")) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// Renders `page` with a CSRF token in scope (the cookie's, or a new one it
/// sets), outside the UI's router: the sign-in form the authentication layer
/// shows in place of any page.
pub fn render_outside(headers: &axum::http::HeaderMap, status: StatusCode, page: impl FnOnce() -> Markup) -> Response {
    let existing = cookie_token(headers);
    let token = existing.clone().unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    let body = TOKEN.sync_scope(token.clone(), || USER.sync_scope(None, page));
    let mut response = (status, body).into_response();
    if existing.is_none() {
        set_cookie(&mut response, &token);
    }
    response
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn refused(message: &str) -> Response {
    UiError { status: StatusCode::FORBIDDEN, message: message.into() }.into_response()
}

/// Sets the token for the page being rendered and checks it on every POST.
pub async fn layer(req: Request, next: Next) -> Response {
    let existing = cookie_token(req.headers());
    let user = req
        .extensions()
        .get::<std::sync::Arc<plinth_core::auth::Principal>>()
        .filter(|p| p.via != plinth_core::auth::Via::Anonymous)
        .map(|p| p.username.clone());
    let token = existing.clone().unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    let workspace = workspace_of(req.headers());
    let req = if req.method() == Method::POST {
        let Some(cookie) = existing.as_deref() else {
            return refused("This form has expired or came from another site (no CSRF cookie); reload the page.");
        };
        let (parts, body) = req.into_parts();
        let Ok(bytes) = to_bytes(body, MAX_FORM_BYTES).await else {
            return UiError { status: StatusCode::PAYLOAD_TOO_LARGE, message: "The form is too large.".into() }
                .into_response();
        };
        let sent = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&bytes)
            .ok()
            .and_then(|pairs| pairs.into_iter().find(|(k, _)| k == FIELD).map(|(_, v)| v));
        if !sent.is_some_and(|s| constant_time_eq(s.as_bytes(), cookie.as_bytes())) {
            return refused("This form's CSRF token is missing or wrong; reload the page and try again.");
        }
        Request::from_parts(parts, Body::from(bytes))
    } else {
        req
    };
    let mut response = TOKEN.scope(token.clone(), USER.scope(user, WORKSPACE.scope(workspace, next.run(req)))).await;
    if existing.is_none() {
        set_cookie(&mut response, &token);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_whole_tokens() {
        assert!(constant_time_eq(b"abcd", b"abcd"));
        assert!(!constant_time_eq(b"abcd", b"abce"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
