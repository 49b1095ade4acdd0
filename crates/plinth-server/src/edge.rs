//! What does every request pass before a handler sees it? One middleware,
//! independent of authentication:
//!
//! - an over-long URI (414) or header block (431) is refused in the shape of
//!   the API it was meant for;
//! - the `Host` header must be allowed (DNS rebinding: a foreign page whose
//!   name resolves to 127.0.0.1 must not read the API). Always allowed:
//!   `localhost`, `*.localhost` and IP literals (a rebinding attack needs a
//!   domain name it controls); more names with `allowed_hosts`, `*` for any;
//! - a state-changing request (POST, PUT, PATCH, DELETE) from a foreign
//!   `Origin`, or that the browser marks `Sec-Fetch-Site: cross-site`, is
//!   refused unless the origin is in `allowed_origins`;
//! - the JSON APIs (`/api/…`, `/ajax-api/…`) take POST bodies as
//!   `application/json` only, with MLflow's messages: a browser can send
//!   `text/plain` or a form cross-site without a preflight, never JSON;
//! - every answer says `nosniff`; pages also `X-Frame-Options: DENY` and
//!   `frame-ancestors 'none'`.
//!
//! The UI's own forms carry CSRF tokens as well (`plinth-ui`'s `csrf.rs`).

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::sync::Arc;

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use futures::FutureExt;
use futures::future::{Either, Map};
use plinth_core::ErrorKind;

use crate::error::Failure;

/// Longest request target accepted (path and query).
pub const MAX_URI_BYTES: usize = 16 << 10;
/// Largest header block accepted (names and values).
pub const MAX_HEADER_BYTES: usize = 64 << 10;

/// Which wire an answer takes, by the path it was meant for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// MLflow's and Plinth's JSON APIs: `{"error_code", "message"}`.
    Api,
    /// Inference (`/v1/…`, `/v2/…`): `{"error"}`.
    Inference,
    /// Pages and everything else: plain text.
    Page,
}

impl Surface {
    pub fn of(path: &str) -> Surface {
        if path.starts_with("/api/") || path.starts_with("/ajax-api/") {
            Surface::Api
        } else if path.starts_with("/v1/") || path.starts_with("/v2/") || path == "/v2" {
            Surface::Inference
        } else {
            Surface::Page
        }
    }

    /// An error in this surface's shape.
    pub fn error(self, failure: Failure) -> Response {
        match self {
            Surface::Api => failure.mlflow(),
            Surface::Inference => failure.oip(),
            Surface::Page => failure.text(),
        }
    }
}

/// Hosts and origins allowed beyond the defaults (patterns with `*`).
#[derive(Debug, Clone, Default)]
pub struct Allowed {
    pub hosts: Vec<String>,
    pub origins: Vec<String>,
}

/// `*` matches any run of characters; everything else literally, ASCII
/// case-insensitively.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && p[pi] != b'*' && p[pi].eq_ignore_ascii_case(&t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// The host name of a `Host` value, without its port.
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

impl Allowed {
    pub fn host(&self, host: &str) -> bool {
        let name = host_name(host);
        const SUFFIX: &str = ".localhost";
        name.parse::<std::net::IpAddr>().is_ok()
            || name.eq_ignore_ascii_case("localhost")
            || (name.len() > SUFFIX.len()
                && name.get(name.len() - SUFFIX.len()..).is_some_and(|end| end.eq_ignore_ascii_case(SUFFIX)))
            || self.hosts.iter().any(|p| glob(p, host) || glob(p, name))
    }

    /// Same origin as the request's `Host`, or explicitly allowed.
    fn origin(&self, origin: &str, host: Option<&str>) -> bool {
        let authority = origin.split_once("://").map(|(_, rest)| rest.trim_end_matches('/'));
        let same = matches!((authority, host), (Some(a), Some(h)) if a.eq_ignore_ascii_case(h));
        same || self.origins.iter().any(|p| p == "*" || glob(p, origin))
    }
}

fn header_str(h: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

pub(crate) fn is_json(content_type: &str) -> bool {
    content_type.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case("application/json")
}

fn check(allowed: &Allowed, req: &Request) -> Result<(), Failure> {
    let path = req.uri().path();
    let is_api = Surface::of(path) == Surface::Api;
    let uri_len = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if uri_len > MAX_URI_BYTES {
        return Err(Failure::new(
            ErrorKind::TooLarge,
            format!("The request URI is {uri_len} bytes; the limit is {MAX_URI_BYTES}"),
        )
        .with_status(StatusCode::URI_TOO_LONG));
    }
    let header_bytes: usize = req.headers().iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum();
    if header_bytes > MAX_HEADER_BYTES {
        return Err(Failure::new(
            ErrorKind::TooLarge,
            format!("The request headers are {header_bytes} bytes; the limit is {MAX_HEADER_BYTES}"),
        )
        .with_status(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE));
    }
    // HTTP/2 carries the host as the URI's authority.
    let host = header_str(req.headers(), header::HOST).or_else(|| req.uri().authority().map(|a| a.as_str()));
    if path != "/health"
        && path != "/version"
        && let Some(h) = host
        && !allowed.host(h)
    {
        tracing::warn!(host = h, "refused a request with a Host that is not allowed");
        return Err(Failure::new(
            ErrorKind::PermissionDenied,
            "Invalid Host header - possible DNS rebinding attack detected; add the name to allowed_hosts",
        ));
    }
    let changes_state = matches!(*req.method(), Method::POST | Method::PUT | Method::PATCH | Method::DELETE);
    if !changes_state {
        return Ok(());
    }
    let origin = header_str(req.headers(), header::ORIGIN);
    let foreign = match origin {
        Some(o) => !allowed.origin(o, host),
        None => header_str(req.headers(), header::HeaderName::from_static("sec-fetch-site")) == Some("cross-site"),
    };
    if foreign {
        tracing::warn!(origin = origin.unwrap_or("-"), path, "refused a cross-origin state-changing request");
        return Err(Failure::new(
            ErrorKind::PermissionDenied,
            "Cross-origin request blocked: state-changing requests must come from this server's own origin",
        ));
    }
    // MLflow's `_validate_content_type`, with its messages.
    if is_api && *req.method() == Method::POST {
        match header_str(req.headers(), header::CONTENT_TYPE) {
            None => {
                return Err(Failure::new(ErrorKind::InvalidParameter, "Bad Request. Content-Type header is missing."));
            }
            Some(ct) if !is_json(ct) => {
                return Err(Failure::new(
                    ErrorKind::InvalidParameter,
                    "Bad Request. Content-Type must be one of ['application/json'].",
                ));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// The middleware as a tower layer: [`check`], then the headers every
/// answer carries. Written out (not `middleware::from_fn`) so a request
/// costs no boxed service or future here: it sits on every hot path.
#[derive(Clone)]
pub struct EdgeLayer {
    allowed: Arc<Allowed>,
}

impl EdgeLayer {
    pub fn new(allowed: Allowed) -> EdgeLayer {
        EdgeLayer { allowed: Arc::new(allowed) }
    }
}

impl<S> tower::Layer<S> for EdgeLayer {
    type Service = Edge<S>;
    fn layer(&self, inner: S) -> Edge<S> {
        Edge { inner, allowed: self.allowed.clone() }
    }
}

#[derive(Clone)]
pub struct Edge<S> {
    inner: S,
    allowed: Arc<Allowed>,
}

type Answer = Result<Response, Infallible>;

fn api_headers(r: Answer) -> Answer {
    r.map(|r| with_headers(r, false))
}

fn page_headers(r: Answer) -> Answer {
    r.map(|r| with_headers(r, true))
}

impl<S> tower::Service<Request> for Edge<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<Ready<Answer>, Map<S::Future, fn(Answer) -> Answer>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let surface = Surface::of(req.uri().path());
        let page = surface == Surface::Page;
        if let Err(failure) = check(&self.allowed, &req) {
            return Either::Left(ready(Ok(with_headers(surface.error(failure), page))));
        }
        let finish: fn(Answer) -> Answer = if page { page_headers } else { api_headers };
        Either::Right(self.inner.call(req).map(finish))
    }
}

/// `nosniff` on every answer; the framing rules on pages (JSON and tensors
/// are never framed, and the hot paths skip the work).
fn with_headers(mut r: Response, page: bool) -> Response {
    let h = r.headers_mut();
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if !page {
        return r;
    }
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    let csp = match h.get(header::CONTENT_SECURITY_POLICY).and_then(|v| v.to_str().ok()) {
        Some(existing) if existing.contains("frame-ancestors") => None,
        Some(existing) => HeaderValue::from_str(&format!("{existing}; frame-ancestors 'none'")).ok(),
        None => Some(HeaderValue::from_static("frame-ancestors 'none'")),
    };
    if let Some(v) = csp {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        let a = Allowed { hosts: vec!["plinth.example.com".into(), "*.corp".into()], origins: vec![] };
        for ok in ["localhost:5000", "LOCALHOST", "127.0.0.1:5000", "[::1]:80", "10.1.2.3", "plinth.example.com:443"] {
            assert!(a.host(ok), "{ok}");
        }
        assert!(a.host("ml.corp:8080"));
        for bad in ["evil.com", "localhost.evil.com:5000", "127.0.0.1.nip.io", "corp"] {
            assert!(!a.host(bad), "{bad}");
        }
        assert!(Allowed { hosts: vec!["*".into()], origins: vec![] }.host("anything.at.all"));
    }

    #[test]
    fn origins() {
        let a = Allowed { hosts: vec![], origins: vec!["https://notebooks.corp".into()] };
        assert!(a.origin("http://127.0.0.1:5000", Some("127.0.0.1:5000")));
        assert!(!a.origin("http://127.0.0.1:5001", Some("127.0.0.1:5000")));
        assert!(!a.origin("http://evil.com", Some("127.0.0.1:5000")));
        assert!(!a.origin("null", Some("127.0.0.1:5000")));
        assert!(a.origin("https://notebooks.corp", Some("127.0.0.1:5000")));
    }

    #[test]
    fn globs() {
        assert!(glob("a*c", "abbbc"));
        assert!(glob("*", ""));
        assert!(!glob("a*c", "abcd"));
        assert!(glob("*.corp", "x.y.corp"));
    }

    #[test]
    fn json_types() {
        assert!(is_json("application/json"));
        assert!(is_json("application/json; charset=utf-8"));
        assert!(is_json("Application/JSON"));
        assert!(!is_json("text/plain"));
        assert!(!is_json("application/x-www-form-urlencoded"));
    }
}
