//! Authentication at the edge (`--auth`): every request but `/health` and
//! the sign-in page proves who it is, or is refused before any handler runs.
//!
//! A request may carry, in this order of precedence:
//! - `Authorization: Basic` (username and password; what `mlflow` sends for
//!   `MLFLOW_TRACKING_USERNAME`/`MLFLOW_TRACKING_PASSWORD`),
//! - `Authorization: Bearer` with a Plinth token (`MLFLOW_TRACKING_TOKEN`), or
//!   a JWT from the configured identity provider (`--auth-jwt-*`),
//! - the UI's session cookie ([`SESSION_COOKIE`], set by `/login`).
//!
//! The check's verdicts are cached ([`plinth_engine::accounts`]), so the hot
//! paths do not pay the password KDF or a store round trip per request. The
//! caller becomes an `Arc<Principal>` in the request's extensions, which
//! handlers read with [`Caller`]. Refusals take the shape of the API the path
//! belongs to (MLflow's JSON, OIP's JSON, a gRPC status); a UI page shows
//! the sign-in form with 401.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::response::Response;
use base64::Engine;
use plinth_core::ErrorKind;
use plinth_core::audit::Actor;
use plinth_core::auth::{Principal, TokenKind, Via};

use crate::edge::Surface;
use crate::error::{ApiError, Failure};
use crate::jwt::JwtVerifier;
use crate::state::AppState;

/// The UI session's cookie.
pub const SESSION_COOKIE: &str = plinth_ui::SESSION_COOKIE;

/// How callers authenticate; off unless `--auth`.
#[derive(Clone, Default)]
pub struct AuthConfig {
    pub enabled: bool,
    /// Proxies (a load balancer) whose `X-Forwarded-For` names the client,
    /// for counting failed sign-ins per client rather than per balancer.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Bearer JWTs from an identity provider, when configured.
    pub jwt: Option<Arc<JwtVerifier>>,
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("enabled", &self.enabled)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("jwt", &self.jwt.is_some())
            .finish()
    }
}

/// Paths anyone may call: liveness, signing in (its page and its style),
/// and how the server is set up (MLflow's `server-info`, which its client
/// reads before it signs in).
pub fn is_open(path: &str) -> bool {
    matches!(
        path,
        "/health"
            | "/login"
            | "/ui/assets/style.css"
            | "/api/3.0/mlflow/server-info"
            | "/ajax-api/3.0/mlflow/server-info"
    )
}

fn grpc_path(path: &str) -> bool {
    path.starts_with("/inference.GRPCInferenceService/")
}

/// The credential a request carries, as sent (a bearer token borrowed from
/// its header on the hot path; owned once it must outlive the request's
/// headers, on the checked path).
enum Credential<'a> {
    Basic(String, String),
    Bearer(Cow<'a, str>),
    Session(String),
}

impl Credential<'_> {
    fn into_owned(self) -> Credential<'static> {
        match self {
            Credential::Basic(user, password) => Credential::Basic(user, password),
            Credential::Bearer(token) => Credential::Bearer(Cow::Owned(token.into_owned())),
            Credential::Session(secret) => Credential::Session(secret),
        }
    }
}

fn credential(headers: &HeaderMap) -> Result<Option<Credential<'_>>, ()> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let value = value.to_str().map_err(|_| ())?;
        let (scheme, rest) = value.split_once(' ').ok_or(())?;
        let rest = rest.trim();
        if scheme.eq_ignore_ascii_case("basic") {
            let decoded = base64::engine::general_purpose::STANDARD.decode(rest).map_err(|_| ())?;
            let text = String::from_utf8(decoded).map_err(|_| ())?;
            let (user, password) = text.split_once(':').ok_or(())?;
            return Ok(Some(Credential::Basic(user.to_string(), password.to_string())));
        }
        if scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty() {
            return Ok(Some(Credential::Bearer(Cow::Borrowed(rest))));
        }
        return Err(());
    }
    Ok(plinth_ui::cookie(headers, SESSION_COOKIE).map(Credential::Session))
}

async fn verify(
    state: &AppState,
    credential: Result<Option<Credential<'_>>, ()>,
    from: Option<std::net::IpAddr>,
) -> Result<Arc<Principal>, Failure> {
    let accounts = state.platform.accounts();
    let refused = || Failure::new(ErrorKind::Unauthenticated, plinth_engine::accounts::UNAUTHENTICATED);
    match credential.map_err(|()| refused())? {
        None => Err(refused()),
        Some(Credential::Basic(user, password)) => Ok(accounts.sign_in(&user, &password, from).await?),
        Some(Credential::Bearer(token)) if token.starts_with(plinth_engine::accounts::SERVING_KEY_PREFIX) => {
            Ok(accounts.check_token(&token, TokenKind::Serving).await?)
        }
        Some(Credential::Bearer(token)) if token.starts_with(plinth_engine::accounts::TOKEN_PREFIX) => {
            Ok(accounts.check_token(&token, TokenKind::Api).await?)
        }
        Some(Credential::Bearer(token)) => match &state.config.auth.jwt {
            // A user the identity provider names is made on first sign-in, as Plinth's own doing.
            Some(jwt) => jwt.verify(&token, &state.platform.acting(Actor::system("sso")).accounts()).await,
            None => Err(refused()),
        },
        Some(Credential::Session(secret)) => Ok(accounts.check_token(&secret, TokenKind::Session).await?),
    }
}

/// What a serving key may call: its deployment's inference endpoints (REST
/// `/v1/deployments/{d}/…` and `/v2/models/{d}[/…]`; the gRPC service, whose
/// handlers check the model it names: [`serving_scope`]), outcome events
/// (`/v1/events`, whose handler keeps them to its deployment) and the
/// server's liveness and readiness. Any other caller may call anything here.
fn within_scope(principal: &Principal, path: &str) -> Result<(), Failure> {
    let Via::ServingKey { deployment, .. } = &principal.via else { return Ok(()) };
    let allowed = grpc_path(path)
        || matches!(path, "/v2" | "/v2/health/live" | "/v2/health/ready" | "/v1/events")
        || deployment_of_path(path) == Some(deployment.as_str());
    if allowed {
        Ok(())
    } else {
        Err(Failure::new(
            ErrorKind::PermissionDenied,
            format!("Permission denied: this serving key calls deployment '{deployment}' only"),
        ))
    }
}

/// Whether the caller may call `deployment`'s inference endpoints: a user
/// needs `READ` on it (serving keys are already confined to theirs;
/// administrators and the embedded mode are unrestricted). One it may not
/// read answers as a deployment that does not exist.
pub async fn may_call(
    platform: &plinth_engine::Platform,
    extensions: &axum::http::Extensions,
    deployment: &str,
) -> Result<(), Failure> {
    let Some(principal) = extensions.get::<Arc<Principal>>() else { return Ok(()) };
    if principal.is_admin || matches!(principal.via, Via::ServingKey { .. } | Via::Anonymous) {
        return Ok(());
    }
    platform.may_read_deployment(principal, deployment).await.map_err(Failure::from)
}

/// The deployment an inference path names (`/v1/deployments/<d>/…`, `/v2/models/<d>…`).
pub fn deployment_of_path(path: &str) -> Option<&str> {
    let name = match path.strip_prefix("/v1/deployments/") {
        Some(rest) => rest.split_once('/').map(|(d, _)| d),
        None => path.strip_prefix("/v2/models/").and_then(|r| r.split('/').next()),
    };
    name.filter(|n| !n.is_empty())
}

/// For gRPC handlers: a serving key may name its own deployment only.
pub fn serving_scope(extensions: &axum::http::Extensions, model: &str) -> Result<(), tonic::Status> {
    match extensions.get::<Arc<Principal>>().map(|p| &p.via) {
        Some(Via::ServingKey { deployment, .. }) if deployment != model => Err(tonic::Status::permission_denied(
            format!("Permission denied: this serving key calls deployment '{deployment}' only"),
        )),
        _ => Ok(()),
    }
}

/// What a refused request gets: the path's surface (a gRPC status, the
/// sign-in form for a page, else the API's JSON).
fn refusal(req: &Request, failure: Failure) -> Response {
    let path = req.uri().path();
    if grpc_path(path) {
        return failure.grpc().into_http::<axum::body::Body>();
    }
    match Surface::of(path) {
        Surface::Page if failure.kind == ErrorKind::Unauthenticated => {
            let next_page = req.uri().path_and_query().map_or("/", |p| p.as_str());
            plinth_ui::sign_in_page(req.headers(), next_page)
        }
        surface => surface.error(failure),
    }
}

/// The caller of a credential verified within the cache's time, found
/// without a store round trip or the KDF: the hot path.
fn trusted(state: &AppState, credential: &Credential<'_>) -> Option<Arc<Principal>> {
    let accounts = state.platform.verified();
    match credential {
        Credential::Basic(user, password) => accounts.trusted_password(user, password),
        Credential::Bearer(token) if token.starts_with(plinth_engine::accounts::SERVING_KEY_PREFIX) => {
            accounts.trusted_token(token, TokenKind::Serving)
        }
        Credential::Bearer(token) if token.starts_with(plinth_engine::accounts::TOKEN_PREFIX) => {
            accounts.trusted_token(token, TokenKind::Api)
        }
        Credential::Bearer(token) => state.config.auth.jwt.as_ref().and_then(|jwt| jwt.trusted(token)),
        Credential::Session(secret) => accounts.trusted_token(secret, TokenKind::Session),
    }
}

/// The middleware as a tower layer (like `edge.rs`'s): a request whose
/// credential was verified recently goes straight on, without a boxed
/// future; the others are checked (store, KDF, JWT) on a boxed one.
#[derive(Clone)]
pub struct AuthLayer {
    state: AppState,
}

impl AuthLayer {
    pub fn new(state: AppState) -> AuthLayer {
        AuthLayer { state }
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = Auth<S>;
    fn layer(&self, inner: S) -> Auth<S> {
        Auth { inner, state: self.state.clone() }
    }
}

#[derive(Clone)]
pub struct Auth<S> {
    inner: S,
    state: AppState,
}

impl<S> Auth<S> {
    /// Puts the client's address (`X-Forwarded-For` as a trusted proxy
    /// added it, else the peer) in the request, for the failed-sign-in
    /// counters: only where a credential is checked, not on the hot path of
    /// one verified lately.
    fn note_client(&self, req: &mut Request) {
        let proxies = &self.state.config.auth.trusted_proxies;
        if let Some(peer) = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip()) {
            let forwarded = req.headers().get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok());
            let client = plinth_core::auth::client_address(peer, forwarded, proxies);
            req.extensions_mut().insert(plinth_core::auth::ClientAddr(client));
        }
    }
}

type Answer = Result<Response, std::convert::Infallible>;

impl<S> tower::Service<Request> for Auth<S>
where
    S: tower::Service<Request, Response = Response, Error = std::convert::Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = futures::future::Either<S::Future, futures::future::BoxFuture<'static, Answer>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        use futures::future::Either;
        if is_open(req.uri().path()) {
            // Signing in counts failures per address.
            self.note_client(&mut req);
            return Either::Left(self.inner.call(req));
        }
        let sent = credential(req.headers());
        if let Ok(Some(c)) = &sent
            && let Some(principal) = trusted(&self.state, c)
        {
            if let Err(failure) = within_scope(&principal, req.uri().path()) {
                return Either::Right(Box::pin(futures::future::ready(Ok(refusal(&req, failure)))));
            }
            req.extensions_mut().insert(principal);
            return Either::Left(self.inner.call(req));
        }
        let sent = sent.map(|c| c.map(Credential::into_owned));
        self.note_client(&mut req);
        // The ready service goes with the future; a clone stays for the next call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let state = self.state.clone();
        let from = req.extensions().get::<plinth_core::auth::ClientAddr>().map(|c| c.0);
        Either::Right(Box::pin(async move {
            match verify(&state, sent, from).await.and_then(|p| within_scope(&p, req.uri().path()).map(|()| p)) {
                Ok(principal) => {
                    req.extensions_mut().insert(principal);
                    inner.call(req).await
                }
                Err(failure) => Ok(refusal(&req, failure)),
            }
        }))
    }
}

/// Who is calling: the signed-in principal, or (authentication off) the
/// anonymous one, who may do everything.
pub struct Caller(pub Arc<Principal>);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Caller(
            parts.extensions.get::<Arc<Principal>>().cloned().unwrap_or_else(|| Arc::new(Principal::anonymous())),
        ))
    }
}

impl Caller {
    /// Administrators only.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.0.is_admin {
            Ok(())
        } else {
            Err(ApiError(Failure::new(ErrorKind::PermissionDenied, "Permission denied: administrators only")))
        }
    }

    /// `username` themself, or an administrator.
    pub fn require_self_or_admin(&self, username: &str) -> Result<(), ApiError> {
        if self.0.is_admin || self.0.username == username {
            Ok(())
        } else {
            Err(ApiError(Failure::new(ErrorKind::PermissionDenied, "Permission denied")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inference_paths_name_their_deployment() {
        assert_eq!(deployment_of_path("/v1/deployments/recs/recommend"), Some("recs"));
        assert_eq!(deployment_of_path("/v2/models/recs"), Some("recs"));
        assert_eq!(deployment_of_path("/v2/models/recs/versions/2/infer"), Some("recs"));
        for none in ["/v1/deployments/recs", "/v2/models/", "/v2/health/live", "/api/2.0/mlflow/runs/get"] {
            assert_eq!(deployment_of_path(none), None, "{none}");
        }
    }

    #[test]
    fn a_serving_key_calls_its_deployment_only() {
        let key = Principal {
            user_id: 1,
            username: "svc".into(),
            is_admin: true,
            via: Via::ServingKey { token: "k1".into(), deployment: "recs".into() },
        };
        for path in [
            "/v1/deployments/recs/recommend",
            "/v1/deployments/recs/similar",
            "/v2/models/recs",
            "/v2/models/recs/infer",
            "/v2/models/recs/versions/3/ready",
            "/v2/health/ready",
            "/inference.GRPCInferenceService/ModelInfer",
        ] {
            assert!(within_scope(&key, path).is_ok(), "{path}");
        }
        for path in [
            "/v1/deployments/recs",
            "/v1/deployments/recsys/recommend",
            "/v1/deployments/other/recommend",
            "/v2/models/recs2/infer",
            "/v2/models/other",
            "/api/2.0/mlflow/experiments/search",
            "/api/2.0/plinth/deployments/get",
            "/ui/experiments",
            "/metrics",
        ] {
            let refused = within_scope(&key, path).expect_err(path);
            assert_eq!(refused.kind, ErrorKind::PermissionDenied, "{path}");
        }
        // Any other principal: this check leaves it alone.
        let user = Principal { via: Via::Password, ..key };
        assert!(within_scope(&user, "/api/2.0/mlflow/experiments/search").is_ok());
    }
}
