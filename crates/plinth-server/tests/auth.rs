//! Authentication end to end over HTTP: every route of the router refuses an
//! anonymous call once `--auth` is on (except health and signing in), and
//! each credential — a password, an API token, a session cookie, a JWT —
//! works, while wrong, expired, forged and `alg: none` ones get 401 in the
//! shape of the API they were sent to, without a hint whether the user exists.

use std::collections::BTreeSet;
use std::sync::Arc;

use plinth_server::{AuthConfig, JwtSettings, JwtVerifier, ServerConfig};
use serde_json::{Value, json};

struct Server {
    addr: std::net::SocketAddr,
    _dir: tempfile::TempDir,
    http: reqwest::Client,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

const ISSUER: &str = "https://idp.test";
const JWT_SECRET: &str = "a-test-secret-of-enough-length-0123456789";

async fn start(auth: bool) -> Server {
    start_with(auth, vec![]).await
}

async fn start_with(auth: bool, trusted_proxies: Vec<std::net::IpAddr>) -> Server {
    let dir = tempfile::tempdir().expect("tempdir");
    // The identity provider's keys as a JWKS document (an HMAC key here).
    let jwks = dir.path().join("jwks.json");
    let k = base64_url(JWT_SECRET.as_bytes());
    std::fs::write(&jwks, json!({"keys": [{"kty": "oct", "kid": "k1", "alg": "HS256", "k": k}]}).to_string())
        .expect("jwks");
    let jwt = JwtVerifier::new(&JwtSettings {
        issuer: ISSUER.into(),
        keys_file: Some(jwks),
        hmac_secret: None,
        audience: Some("plinth".into()),
    })
    .expect("jwt verifier");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let app = plinth_server::App::open(plinth_server::AppConfig {
        server: ServerConfig {
            auth: AuthConfig { enabled: auth, trusted_proxies, jwt: Some(Arc::new(jwt)) },
            ..ServerConfig::default()
        },
        first_admin: Some(("root".into(), "root-password".into())),
        ..plinth_server::AppConfig::new(dir.path())
    })
    .await
    .expect("open");
    tokio::spawn(plinth_server::serve(listener, app.router, plinth_server::ConnLimits::default(), async {
        let _ = rx.await;
    }));
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    Server { addr, _dir: dir, http, shutdown: Some(tx) }
}

fn form_body(fields: &[(&str, &str)]) -> String {
    serde_urlencoded::to_string(fields).expect("form")
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl Server {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn request(&self, method: &str, path: &str) -> reqwest::RequestBuilder {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let req = self.http.request(method.clone(), self.url(path));
        if method == reqwest::Method::GET { req } else { req.header("content-type", "application/json").body("{}") }
    }

    async fn call(&self, req: reqwest::RequestBuilder) -> (u16, Value) {
        let r = req.send().await.expect("send");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }
}

/// Every route the router declares: the path of each `.route(…)` and
/// `.route_service(…)` in the server's and the UI's routers, with path
/// parameters filled in.
fn declared_paths() -> BTreeSet<String> {
    // As cargo gives it at run time: a binary kept from a build in another checkout carries that one's in `env!`.
    let root = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")), std::path::PathBuf::from);
    let root = root.as_path();
    let mut files = vec![root.join("src/lib.rs"), root.join("../plinth-ui/src/lib.rs")];
    for entry in std::fs::read_dir(root.join("src/routes")).expect("routes dir") {
        files.push(entry.expect("entry").path());
    }
    let mut paths = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("source");
        for call in [".route(\"", ".route_service(\""] {
            for (i, _) in text.match_indices(call) {
                let rest = &text[i + call.len()..];
                let path = &rest[..rest.find('"').expect("closing quote")];
                let mut filled = String::new();
                let mut in_param = false;
                for c in path.chars() {
                    match c {
                        '{' => in_param = true,
                        '}' => {
                            in_param = false;
                            filled.push('x');
                        }
                        _ if !in_param => filled.push(c),
                        _ => {}
                    }
                }
                paths.insert(filled);
            }
        }
    }
    assert!(paths.len() > 60, "the router's sources were found: {paths:?}");
    paths
}

/// Where routers are nested (`routes/mod.rs`).
const PREFIXES: &[&str] = &[
    "",
    "/api/2.0/mlflow",
    "/ajax-api/2.0/mlflow",
    "/api/2.0/preview/mlflow",
    "/api/2.0/mlflow-artifacts",
    "/ajax-api/2.0/mlflow-artifacts",
    "/api/2.0/plinth",
    "/api/3.0/mlflow",
    "/ajax-api/3.0/mlflow",
];

const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE"];

/// No route there: the fallback's 404, or 405 (the path exists, not the method).
fn no_route(status: u16, body: &Value, text: &str) -> bool {
    status == 405 || (status == 404 && (body["error_code"] == "ENDPOINT_NOT_FOUND" || text.contains("No endpoint at")))
}

#[tokio::test]
async fn with_auth_on_every_route_refuses_an_anonymous_call() {
    // Which (method, path) pairs are routes: asked of a server without auth.
    let open = start(false).await;
    let mut routes = Vec::new();
    for path in declared_paths() {
        let mut found = false;
        for prefix in PREFIXES {
            for method in METHODS {
                let full = format!("{prefix}{path}");
                let r = open.request(method, &full).send().await.expect("send");
                let status = r.status().as_u16();
                let text = r.text().await.unwrap_or_default();
                let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                if !no_route(status, &body, &text) {
                    routes.push((method.to_string(), full));
                    found = true;
                }
            }
        }
        assert!(found, "{path} is declared but answers under no prefix: is PREFIXES complete?");
    }
    assert!(routes.len() > 100, "{routes:?}");

    let guarded = start(true).await;
    for (method, path) in &routes {
        let r = guarded.request(method, path).send().await.expect("send");
        let status = r.status().as_u16();
        let grpc = r.headers().get("grpc-status").map(|v| v.to_str().unwrap_or("").to_string());
        // Liveness, signing in, and MLflow's server-info (its client reads it before signing in).
        let open_path = matches!(path.as_str(), "/health" | "/login" | "/ui/assets/style.css")
            || path.ends_with("/3.0/mlflow/server-info");
        if open_path {
            assert_ne!(status, 401, "{method} {path} is open");
        } else if path.starts_with("/inference.GRPCInferenceService/") {
            assert_eq!(grpc.as_deref(), Some("16"), "{method} {path}: gRPC UNAUTHENTICATED");
        } else {
            assert_eq!(status, 401, "{method} {path} answered {status} to an anonymous caller");
        }
    }
}

#[tokio::test]
async fn passwords_tokens_and_jwts_sign_in_and_bad_ones_do_not() {
    let s = start(true).await;
    let search = "/api/2.0/mlflow/experiments/search?max_results=10";

    // Anonymous and wrong credentials: 401 in MLflow's shape, the same sentence for an unknown user.
    let (status, body) = s.call(s.http.get(s.url(search))).await;
    assert_eq!((status, body["error_code"].as_str()), (401, Some("UNAUTHENTICATED")), "{body}");
    let (status, wrong) = s.call(s.http.get(s.url(search)).basic_auth("root", Some("nope"))).await;
    let (_, unknown) = s.call(s.http.get(s.url(search)).basic_auth("nobody", Some("nope"))).await;
    assert_eq!(status, 401);
    assert_eq!(wrong, unknown, "no hint whether the user exists");
    assert!(!wrong.to_string().contains("nope"), "the password is not echoed");
    // OIP routes answer in OIP's shape.
    let (status, body) = s.call(s.http.get(s.url("/v2/models/x"))).await;
    assert_eq!(status, 401);
    assert!(body["error"].is_string(), "{body}");

    // The first administrator (PLINTH_ADMIN_USER) signs in; makes a user and a token for them.
    let (status, body) = s
        .call(
            s.http
                .post(s.url("/api/2.0/mlflow/users/create"))
                .basic_auth("root", Some("root-password"))
                .json(&json!({"username": "alice", "password": "alice-password"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["username"], "alice");
    assert!(body["user"].get("password_hash").is_none(), "{body}");
    let (status, _) = s.call(s.http.get(s.url(search)).basic_auth("alice", Some("alice-password"))).await;
    assert_eq!(status, 200);
    // Not an administrator: may not make users.
    let (status, body) = s
        .call(
            s.http
                .post(s.url("/api/2.0/mlflow/users/create"))
                .basic_auth("alice", Some("alice-password"))
                .json(&json!({"username": "eve", "password": "x"})),
        )
        .await;
    assert_eq!((status, body["error_code"].as_str()), (403, Some("PERMISSION_DENIED")), "{body}");

    let (status, body) = s
        .call(
            s.http
                .post(s.url("/api/2.0/plinth/tokens/create"))
                .basic_auth("alice", Some("alice-password"))
                .json(&json!({"name": "laptop", "expires_in_days": 30})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let secret = body["secret"].as_str().expect("secret").to_string();
    let token_id = body["token"]["id"].as_str().expect("id").to_string();
    let (status, me) = s.call(s.http.get(s.url("/api/2.0/mlflow/users/current")).bearer_auth(&secret)).await;
    assert_eq!((status, me["user"]["username"].as_str()), (200, Some("alice")), "{me}");
    let (_, listed) = s.call(s.http.get(s.url("/api/2.0/plinth/tokens/list")).bearer_auth(&secret)).await;
    assert!(!listed.to_string().contains(&secret), "a listing never shows a secret");
    // Revoked: refused at once.
    let (status, _) = s
        .call(
            s.http
                .post(s.url("/api/2.0/plinth/tokens/revoke"))
                .bearer_auth(&secret)
                .json(&json!({"token_id": token_id})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = s.call(s.http.get(s.url(search)).bearer_auth(&secret)).await;
    assert_eq!(status, 401);
    let (status, _) = s.call(s.http.get(s.url(search)).bearer_auth("plinth_forged")).await;
    assert_eq!(status, 401);

    // JWTs from the identity provider: a good one signs in (the user is made on first sign-in) …
    let now = jsonwebtoken::get_current_timestamp();
    let key = jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()).expect("key");
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some("k1".into());
    let claims = |iss: &str, exp: u64| json!({"iss": iss, "aud": "plinth", "exp": exp, "sub": "u-17", "preferred_username": "carol"});
    let good = jsonwebtoken::encode(&header, &claims(ISSUER, now + 600), &key).expect("encode");
    let (status, me) = s.call(s.http.get(s.url("/api/2.0/mlflow/users/current")).bearer_auth(&good)).await;
    assert_eq!((status, me["user"]["username"].as_str()), (200, Some("carol")), "{me}");
    // … a wrong issuer, an expired one, a wrong key and `alg: none` do not.
    let wrong_issuer = jsonwebtoken::encode(&header, &claims("https://evil.test", now + 600), &key).expect("encode");
    let expired = jsonwebtoken::encode(&header, &claims(ISSUER, now - 3600), &key).expect("encode");
    let other_key = jsonwebtoken::EncodingKey::from_secret(b"another-secret-entirely-0123456789").expect("key");
    let forged = jsonwebtoken::encode(&header, &claims(ISSUER, now + 600), &other_key).expect("encode");
    let none = format!(
        "{}.{}.",
        base64_url(br#"{"alg":"none","typ":"JWT"}"#),
        base64_url(claims(ISSUER, now + 600).to_string().as_bytes())
    );
    for bad in [wrong_issuer, expired, forged, none, "not.a.jwt".to_string()] {
        let (status, body) = s.call(s.http.get(s.url(search)).bearer_auth(&bad)).await;
        assert_eq!((status, body["error_code"].as_str()), (401, Some("UNAUTHENTICATED")), "{bad}: {body}");
    }

    // A UI page without a session is the sign-in form (401); signing in sets an HttpOnly, SameSite=Strict cookie.
    let r = s.http.get(s.url("/ui/experiments")).send().await.expect("page");
    assert_eq!(r.status().as_u16(), 401);
    assert!(r.headers().get("www-authenticate").is_none(), "no browser password dialog");
    let csrf = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix("plinth_csrf="))
        .and_then(|c| c.split(';').next())
        .expect("csrf cookie")
        .to_string();
    let html = r.text().await.expect("html");
    assert!(html.contains("action=\"/login\"") && html.contains(&csrf), "the form carries the CSRF token");
    let form = [("csrf", csrf.as_str()), ("username", "alice"), ("password", "alice-password"), ("next", "/ui/models")];
    // Without the CSRF cookie the form is refused.
    let r = s
        .http
        .post(s.url("/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(&form))
        .send()
        .await
        .expect("login");
    assert_eq!(r.status().as_u16(), 403);
    let r = s
        .http
        .post(s.url("/login"))
        .header("cookie", format!("plinth_csrf={csrf}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(&form))
        .send()
        .await
        .expect("login");
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(r.headers().get("location").and_then(|v| v.to_str().ok()), Some("/ui/models"));
    let session = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("plinth_session="))
        .expect("session cookie")
        .to_string();
    assert!(session.contains("HttpOnly") && session.contains("SameSite=Strict"), "{session}");
    let value = session.split(';').next().expect("pair").to_string();
    let r = s.http.get(s.url("/ui/models")).header("cookie", &value).send().await.expect("page");
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.text().await.expect("html").contains("Signed in as"));
    // An open redirect is not followed.
    let evil =
        [("csrf", csrf.as_str()), ("username", "alice"), ("password", "alice-password"), ("next", "//evil.test/")];
    let r = s
        .http
        .post(s.url("/login"))
        .header("cookie", format!("plinth_csrf={csrf}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(&evil))
        .send()
        .await
        .expect("login");
    assert_eq!(r.headers().get("location").and_then(|v| v.to_str().ok()), Some("/ui/experiments"));
}

#[tokio::test]
async fn repeated_failed_sign_ins_are_rate_limited() {
    let s = start(true).await;
    let search = "/api/2.0/mlflow/experiments/search?max_results=10";
    for _ in 0..plinth_engine::accounts::MAX_FAILURES_PER_USER {
        let (status, _) = s.call(s.http.get(s.url(search)).basic_auth("root", Some("guess"))).await;
        assert_eq!(status, 401);
    }
    let r = s.http.get(s.url(search)).basic_auth("root", Some("root-password")).send().await.expect("send");
    assert_eq!(r.status().as_u16(), 429, "locked out, right password or not");
    assert!(r.headers().get("retry-after").is_some());
}

#[tokio::test]
async fn a_first_administrator_with_a_short_password_is_refused_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opened = plinth_server::App::open(plinth_server::AppConfig {
        server: ServerConfig {
            auth: AuthConfig { enabled: true, trusted_proxies: vec![], jwt: None },
            ..ServerConfig::default()
        },
        first_admin: Some(("root".into(), "short".into())),
        ..plinth_server::AppConfig::new(dir.path())
    })
    .await;
    let Err(e) = opened else { panic!("a short first password must be refused") };
    let message = e.to_string();
    assert!(message.contains("PLINTH_ADMIN_PASSWORD") && message.contains("12 characters"), "{message}");
    assert!(!message.contains("short"), "the password is not echoed: {message}");
}

#[tokio::test]
async fn behind_a_trusted_proxy_failures_count_per_forwarded_client() {
    // The test client plays the balancer: 127.0.0.1 is trusted, so X-Forwarded-For names the client.
    let s = start_with(true, vec!["127.0.0.1".parse().expect("ip")]).await;
    let search = "/api/2.0/mlflow/experiments/search?max_results=10";
    let from = |client: &str| s.http.get(s.url(search)).header("x-forwarded-for", client);
    for i in 0..plinth_engine::accounts::MAX_FAILURES_PER_ADDRESS {
        // A different name each time: only the address counter fills.
        let (status, _) = s.call(from("198.51.100.1").basic_auth(format!("guess{i}"), Some("nope"))).await;
        assert_eq!(status, 401);
    }
    let (status, _) = s.call(from("198.51.100.1").basic_auth("root", Some("root-password"))).await;
    assert_eq!(status, 429, "that client is locked out");
    let (status, _) = s.call(from("203.0.113.2").basic_auth("root", Some("root-password"))).await;
    assert_eq!(status, 200, "another client behind the same balancer is not");
    // An address the locked-out client writes further left is not believed: the balancer's entry counts.
    let (status, _) = s.call(from("203.0.113.2, 198.51.100.1").basic_auth("root", Some("another-guess"))).await;
    assert_eq!(status, 429);
}
