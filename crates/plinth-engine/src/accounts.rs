//! Who is calling: users, passwords, tokens, and the check every request
//! passes when authentication is on.
//!
//! - Passwords are kept as argon2id PHC strings (argon2's defaults: 19 MiB,
//!   2 passes), hashed and verified on the blocking pool, a few at a time.
//! - A token's secret (`plinth_` + 32 random bytes, base64url) is shown once;
//!   the store keeps its SHA-256, and a request's token is found by that
//!   hash, so no secret is ever compared byte by byte.
//! - A verified credential is cached in memory for [`CACHE_TTL`], keyed by the
//!   SHA-256 of the credential, so the hot paths never run the KDF: a
//!   password change, a revoked token or a deleted user takes effect at once
//!   on this process and within [`CACHE_TTL`] on other replicas.
//! - Failed sign-ins are counted per username and per client address; past
//!   the limit the name (or address) is locked out for [`LOCKOUT`], right
//!   or wrong password alike. An unknown user costs the same KDF run as a
//!   known one, and every failure answers the same sentence, so neither
//!   timing nor wording says whether a user exists.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use base64::Engine;
use plinth_core::audit::{Action, Actor, resource};
use plinth_core::auth::{self, ApiToken, Principal, TokenKind, User, Via};
use plinth_core::clock::SharedClock;
use plinth_store::MetadataStore;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::{Error, Result};

/// How long a verified credential is trusted without asking the store again.
pub const CACHE_TTL: Duration = Duration::from_secs(30);
/// How long a name or address is locked out after too many failures.
pub const LOCKOUT: Duration = Duration::from_secs(60);
/// [`LOCKOUT`] in seconds, as a `Retry-After` value.
pub const LOCKOUT_SECONDS_TEXT: &str = "60";
/// Failures within [`FAILURE_WINDOW`] that lock a username out.
pub const MAX_FAILURES_PER_USER: u32 = 5;
/// Failures within [`FAILURE_WINDOW`] that lock a client address out.
pub const MAX_FAILURES_PER_ADDRESS: u32 = 20;
pub const FAILURE_WINDOW: Duration = Duration::from_secs(300);
/// The one sentence every failed authentication gets.
pub const UNAUTHENTICATED: &str = "You are not authenticated: give a valid username and password (HTTP basic) \
     or token (Authorization: Bearer).";
/// Prefix of every secret Plinth issues (so scanners can find leaked ones).
pub const TOKEN_PREFIX: &str = "plinth_";
/// How a serving key's secret starts (it starts with [`TOKEN_PREFIX`] too).
pub const SERVING_KEY_PREFIX: &str = "plinth_sk_";

/// Credentials a shard keeps at most (past it, the stale ones go, then all).
const MAX_CACHED: usize = 100_000;

#[derive(Clone)]
struct Cached {
    principal: Arc<Principal>,
    checked: Instant,
    /// The token's own end (ms), if it has one.
    expires_ms: Option<i64>,
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    first: Instant,
    locked_until: Option<Instant>,
}

/// Users and tokens over the store, with the caches and counters of this
/// process. Cheap to clone.
#[derive(Clone)]
pub struct Accounts {
    inner: Arc<Inner>,
    /// Whom changes are recorded as (the platform's actor).
    actor: Arc<Actor>,
}

struct Inner {
    store: Arc<dyn MetadataStore>,
    clock: SharedClock,
    /// Verified credentials: [`Verified`].
    cache: Verified,
    failures: Mutex<HashMap<String, Failures>>,
    /// KDF runs at once (each takes 19 MiB and tens of milliseconds).
    kdf: Arc<Semaphore>,
    /// Verified against when the user does not exist, so that costs the same.
    decoy: String,
}

/// The verified-credential cache, kept once per shard: a thread reads only
/// its own shard (assigned round-robin on first use), so readers on many
/// cores never write a shared cache line (a lock word) on the hot path;
/// writes — a credential verified, a credential forgotten — go to every
/// shard. Keyed by a SHA-256 digest, so foldhash is enough (and several
/// times cheaper per lookup than SipHash).
struct Verified {
    shards: Box<[RwLock<Shard>]>,
}

/// One shard: credential digest → what it was verified as.
type Shard = HashMap<[u8; 32], Cached, foldhash::fast::RandomState>;

const SHARDS: usize = 16;

impl Verified {
    fn new() -> Verified {
        Verified { shards: (0..SHARDS).map(|_| RwLock::new(HashMap::default())).collect() }
    }

    fn own(&self) -> &RwLock<Shard> {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        thread_local! {
            static SHARD: usize = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % SHARDS;
        }
        &self.shards[SHARD.with(|s| *s)]
    }

    fn all(&self) -> impl Iterator<Item = &RwLock<Shard>> {
        self.shards.iter()
    }
}

fn digest(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    h.finalize().into()
}

/// Hex SHA-256 of a token's secret: what the store keeps.
pub fn secret_hash(secret: &str) -> String {
    Sha256::digest(secret.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).map_err(|e| Error::Internal(format!("no randomness: {e}")))?;
    Ok(buf)
}

fn hash_password(password: &str) -> Result<String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| Error::Internal(format!("cannot hash a password: {e}")))
}

fn password_matches(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(e) => {
            tracing::error!(error = %e, "a stored password hash does not parse");
            false
        }
    }
}

fn principal(user: &User, via: Via) -> Arc<Principal> {
    Arc::new(Principal { user_id: user.id, username: user.username.clone(), is_admin: user.is_admin, via })
}

fn unauthenticated() -> Error {
    Error::Unauthenticated(UNAUTHENTICATED.into())
}

impl Accounts {
    pub fn new(store: Arc<dyn MetadataStore>, clock: SharedClock) -> Accounts {
        let kdf = std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(1, 8);
        // Any PHC string of the same parameters does; this one matches nothing.
        let decoy = hash_password(&format!("decoy-{}", uuid::Uuid::new_v4())).unwrap_or_default();
        let inner = Arc::new(Inner {
            store,
            clock,
            cache: Verified::new(),
            failures: Mutex::new(HashMap::new()),
            kdf: Arc::new(Semaphore::new(kdf)),
            decoy,
        });
        Accounts { inner, actor: Arc::new(Actor::local()) }
    }

    /// These accounts acting for `actor` (the same caches and counters).
    pub(crate) fn acting(&self, actor: Arc<Actor>) -> Accounts {
        Accounts { inner: self.inner.clone(), actor }
    }

    async fn record(&self, action: Action, resource: String, after: Option<String>) -> Result<()> {
        let change = crate::audit::Change { action, resource, before: None, after, detail: None };
        crate::audit::append(&*self.inner.store, self.now_ms(), &self.actor, change).await
    }

    fn now_ms(&self) -> i64 {
        self.inner.clock.now_ms()
    }

    /// The caller of a credential verified lately: a principal of the
    /// request's own (a copy: requests on many threads never share its
    /// reference count).
    fn cached(&self, key: &[u8; 32]) -> Option<Arc<Principal>> {
        let cache = self.inner.cache.own().read().unwrap_or_else(|p| p.into_inner());
        let hit = cache.get(key)?;
        let fresh = hit.checked.elapsed() < CACHE_TTL && hit.expires_ms.is_none_or(|t| self.now_ms() < t);
        fresh.then(|| Arc::new(Principal::clone(&hit.principal)))
    }

    fn remember(&self, key: [u8; 32], principal: Arc<Principal>, expires_ms: Option<i64>) {
        let checked = Instant::now();
        for shard in self.inner.cache.all() {
            let mut cache = shard.write().unwrap_or_else(|p| p.into_inner());
            if cache.len() >= MAX_CACHED {
                cache.retain(|_, c| c.checked.elapsed() < CACHE_TTL);
                if cache.len() >= MAX_CACHED {
                    cache.clear();
                }
            }
            cache.insert(key, Cached { principal: principal.clone(), checked, expires_ms });
        }
    }

    /// Drops what this process trusts about a user (or, with `token`, one token).
    fn forget(&self, user_id: Option<i64>, token: Option<&str>) {
        for shard in self.inner.cache.all() {
            let mut cache = shard.write().unwrap_or_else(|p| p.into_inner());
            cache.retain(|_, c| {
                let p = &c.principal;
                let of_token = matches!(
                    (&p.via, token),
                    (Via::Token(id) | Via::Session(id) | Via::ServingKey { token: id, .. }, Some(t)) if id == t
                );
                !(of_token || user_id == Some(p.user_id))
            });
        }
    }

    /// Whether `key` is locked out now.
    fn locked(&self, key: &str) -> bool {
        let failures = self.inner.failures.lock().unwrap_or_else(|p| p.into_inner());
        failures.get(key).and_then(|f| f.locked_until).is_some_and(|until| Instant::now() < until)
    }

    fn count_failure(&self, key: String, limit: u32) {
        let mut failures = self.inner.failures.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if failures.len() > 10_000 {
            failures
                .retain(|_, f| now.duration_since(f.first) < FAILURE_WINDOW || f.locked_until.is_some_and(|u| now < u));
        }
        let f = failures.entry(key).or_insert(Failures { count: 0, first: now, locked_until: None });
        if now.duration_since(f.first) >= FAILURE_WINDOW {
            *f = Failures { count: 0, first: now, locked_until: None };
        }
        f.count += 1;
        if f.count >= limit {
            f.locked_until = Some(now + LOCKOUT);
            f.count = 0;
            f.first = now;
        }
    }

    fn clear_failures(&self, key: &str) {
        self.inner.failures.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    }

    /// Runs the KDF on the blocking pool, a few at a time.
    async fn kdf<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T> {
        let _permit = self.inner.kdf.clone().acquire_owned().await.map_err(|_| Error::Internal("closing".into()))?;
        tokio::task::spawn_blocking(work).await.map_err(|e| Error::Internal(format!("password check: {e}")))
    }

    /// A password verified within [`CACHE_TTL`]: its user, without the KDF
    /// or the store (the hot path); `None` when it must be checked.
    pub fn trusted_password(&self, username: &str, password: &str) -> Option<Arc<Principal>> {
        self.cached(&digest(&[b"basic", username.as_bytes(), password.as_bytes()]))
    }

    /// A token verified within [`CACHE_TTL`] (and not expired since): its
    /// user, without the store; `None` when it must be checked.
    pub fn trusted_token(&self, secret: &str, kind: TokenKind) -> Option<Arc<Principal>> {
        self.cached(&digest(&[kind.as_str().as_bytes(), secret.as_bytes()]))
    }

    /// The user `username` (if any) and whether `password` is theirs; an
    /// unknown user is checked against the decoy, so it costs the same.
    async fn check_password(&self, username: &str, password: &str) -> Result<(Option<User>, bool)> {
        let user = match self.inner.store.get_user(username).await {
            Ok(u) => Some(u),
            Err(plinth_store::Error::Domain(d)) if d.kind() == plinth_core::ErrorKind::NotFound => None,
            Err(e) => return Err(e.into()),
        };
        let phc = user.as_ref().map_or_else(|| self.inner.decoy.clone(), |u| u.password_hash.clone());
        let given = password.to_string();
        let matches = self.kdf(move || password_matches(&given, &phc)).await?;
        Ok((user, matches))
    }

    /// HTTP basic: the user whose password this is.
    pub async fn sign_in(&self, username: &str, password: &str, from: Option<IpAddr>) -> Result<Arc<Principal>> {
        let key = digest(&[b"basic", username.as_bytes(), password.as_bytes()]);
        if let Some(p) = self.cached(&key) {
            return Ok(p);
        }
        let user_key = format!("user:{username}");
        let addr_key = from.map(|a| format!("addr:{a}"));
        if self.locked(&user_key) || addr_key.as_deref().is_some_and(|k| self.locked(k)) {
            return Err(Error::RateLimited(format!(
                "Too many failed sign-ins for this user or address; try again in {} seconds.",
                LOCKOUT.as_secs()
            )));
        }
        let (user, matches) = self.check_password(username, password).await?;
        match user {
            Some(user) if matches => {
                self.clear_failures(&user_key);
                let p = principal(&user, Via::Password);
                self.remember(key, p.clone(), None);
                Ok(p)
            }
            _ => {
                self.count_failure(user_key, MAX_FAILURES_PER_USER);
                if let Some(k) = addr_key {
                    self.count_failure(k, MAX_FAILURES_PER_ADDRESS);
                }
                tracing::info!(username, address = ?from, "failed sign-in");
                Err(unauthenticated())
            }
        }
    }

    /// A bearer secret (an API token) or a session cookie's (a session): its user.
    pub async fn check_token(&self, secret: &str, kind: TokenKind) -> Result<Arc<Principal>> {
        let key = digest(&[kind.as_str().as_bytes(), secret.as_bytes()]);
        if let Some(p) = self.cached(&key) {
            return Ok(p);
        }
        if !secret.starts_with(TOKEN_PREFIX) || secret.len() > 128 {
            return Err(unauthenticated());
        }
        let Some((token, user)) = self.inner.store.find_token(&secret_hash(secret)).await? else {
            return Err(unauthenticated());
        };
        if token.kind != kind || !token.live(self.now_ms()) {
            return Err(unauthenticated());
        }
        let via = match (kind, &token.scope) {
            (TokenKind::Api, _) => Via::Token(token.id.clone()),
            (TokenKind::Session, _) => Via::Session(token.id.clone()),
            (TokenKind::Serving, Some(deployment)) => {
                Via::ServingKey { token: token.id.clone(), deployment: deployment.clone() }
            }
            (TokenKind::Serving, None) => {
                return Err(Error::Internal(format!("serving key {} has no scope", token.id)));
            }
        };
        let p = principal(&user, via);
        self.remember(key, p.clone(), token.expires_time);
        Ok(p)
    }

    pub async fn create_user(&self, username: &str, password: &str, is_admin: bool) -> Result<User> {
        auth::validate_username(username)?;
        auth::validate_password(password)?;
        let password = password.to_string();
        let phc = self.kdf(move || hash_password(&password)).await??;
        let user = self.inner.store.create_user(username.to_string(), phc, is_admin).await?;
        let role = Some(if is_admin { "admin" } else { "user" }.to_string());
        self.record(Action::UserCreate, resource::user(username), role).await?;
        Ok(user)
    }

    /// The first administrator, when no user exists yet (`PLINTH_ADMIN_USER`
    /// and `PLINTH_ADMIN_PASSWORD` on a server's first start with `--auth`);
    /// `None` when there were users already.
    pub async fn ensure_admin(&self, username: &str, password: &str) -> Result<Option<User>> {
        if !self.inner.store.list_users().await?.is_empty() {
            return Ok(None);
        }
        match self.create_user(username, password, true).await {
            Ok(u) => Ok(Some(u)),
            // Another replica starting at the same moment made it.
            Err(Error::Domain(d)) if d.kind() == plinth_core::ErrorKind::AlreadyExists => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn get_user(&self, username: &str) -> Result<User> {
        Ok(self.inner.store.get_user(username).await?)
    }

    pub async fn get_user_by_id(&self, user_id: i64) -> Result<User> {
        Ok(self.inner.store.get_user_by_id(user_id).await?)
    }

    pub async fn list_users(&self) -> Result<Vec<User>> {
        Ok(self.inner.store.list_users().await?)
    }

    /// A user changing their own password re-asserts the current one (so a
    /// hijacked session cannot rotate it), in MLflow's words; administrators
    /// use [`Accounts::set_password`].
    pub async fn change_own_password(&self, username: &str, current: &str, new: &str) -> Result<User> {
        if current.is_empty() {
            return Err(
                plinth_core::Error::invalid("Current password is required when changing your own password.").into()
            );
        }
        let (user, matches) = self.check_password(username, current).await?;
        if user.is_none() || !matches {
            return Err(plinth_core::Error::invalid("Current password does not match.").into());
        }
        if new == current {
            return Err(plinth_core::Error::invalid("New password must differ from the current password.").into());
        }
        self.set_password(username, new).await
    }

    pub async fn set_password(&self, username: &str, password: &str) -> Result<User> {
        auth::validate_password(password)?;
        let password = password.to_string();
        let phc = self.kdf(move || hash_password(&password)).await??;
        let user = self.inner.store.update_user(username, Some(phc), None).await?;
        self.forget(Some(user.id), None);
        // That it changed; never the password or its hash.
        self.record(Action::UserPassword, resource::user(username), None).await?;
        Ok(user)
    }

    pub async fn set_admin(&self, username: &str, is_admin: bool) -> Result<User> {
        let user = self.inner.store.update_user(username, None, Some(is_admin)).await?;
        self.forget(Some(user.id), None);
        self.record(Action::UserAdmin, resource::user(username), Some(is_admin.to_string())).await?;
        Ok(user)
    }

    pub async fn delete_user(&self, username: &str) -> Result<()> {
        let user = self.inner.store.get_user(username).await?;
        self.inner.store.delete_user(username).await?;
        self.forget(Some(user.id), None);
        self.record(Action::UserDelete, resource::user(username), None).await
    }

    /// A new token for `user`; the secret is returned here and never again.
    pub async fn issue_token(
        &self,
        user: &User,
        name: &str,
        kind: TokenKind,
        ttl: Option<Duration>,
    ) -> Result<(ApiToken, String)> {
        if kind == TokenKind::Serving {
            return Err(Error::Internal("serving keys are issued with issue_serving_key".into()));
        }
        self.issue(user, name, kind, None, ttl).await
    }

    /// A serving key of `user`'s for `deployment`'s inference endpoints only
    /// (the caller checks the deployment exists); the secret is returned
    /// here and never again.
    pub async fn issue_serving_key(
        &self,
        user: &User,
        deployment: &str,
        name: &str,
        ttl: Option<Duration>,
    ) -> Result<(ApiToken, String)> {
        self.issue(user, name, TokenKind::Serving, Some(deployment), ttl).await
    }

    async fn issue(
        &self,
        user: &User,
        name: &str,
        kind: TokenKind,
        scope: Option<&str>,
        ttl: Option<Duration>,
    ) -> Result<(ApiToken, String)> {
        let name = name.trim();
        if name.chars().count() > 200 || name.chars().any(char::is_control) {
            return Err(plinth_core::Error::invalid(
                "A token name is at most 200 characters, without control characters",
            )
            .into());
        }
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let prefix = if kind == TokenKind::Serving { SERVING_KEY_PREFIX } else { TOKEN_PREFIX };
        let secret = format!("{prefix}{}", b64.encode(random_bytes::<32>()?));
        let id: String = random_bytes::<8>()?.iter().map(|b| format!("{b:02x}")).collect();
        let now = self.now_ms();
        let expires_time = ttl.map(|d| now.saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)));
        let token = ApiToken {
            id,
            user_id: user.id,
            name: if name.is_empty() { kind.as_str().to_string() } else { name.to_string() },
            kind,
            secret_hash: secret_hash(&secret),
            created_time: now,
            expires_time,
            revoked_time: None,
            scope: scope.map(str::to_string),
        };
        self.inner.store.create_token(token.clone()).await?;
        let what = Some(match scope {
            Some(deployment) => format!("serving key of {} for deployment {deployment}", user.username),
            None => format!("{} token of {}", kind.as_str(), user.username),
        });
        self.record(Action::TokenCreate, resource::token(&token.id), what).await?;
        Ok((token, secret))
    }

    pub async fn list_tokens(&self, user_id: i64) -> Result<Vec<ApiToken>> {
        Ok(self.inner.store.list_tokens(user_id).await?)
    }

    /// Revokes one of `by`'s own tokens (an administrator: anyone's). A token
    /// `by` may not touch is "not found", as one that does not exist.
    pub async fn revoke_token(&self, token_id: &str) -> Result<ApiToken> {
        let by = &self.actor.principal;
        if !by.is_admin && !self.list_tokens(by.user_id).await?.iter().any(|t| t.id == token_id) {
            return Err(plinth_core::rules::missing::token(token_id).into());
        }
        let token = self.inner.store.revoke_token(token_id, self.now_ms()).await?;
        self.forget(None, Some(&token.id));
        self.record(Action::TokenRevoke, resource::token(&token.id), None).await?;
        Ok(token)
    }

    /// Ends the session whose cookie holds `secret` (signing out).
    pub async fn end_session(&self, secret: &str) -> Result<()> {
        if let Some((token, _)) = self.inner.store.find_token(&secret_hash(secret)).await?
            && token.kind == TokenKind::Session
        {
            self.inner.store.revoke_token(&token.id, self.now_ms()).await?;
            self.forget(None, Some(&token.id));
            self.record(Action::TokenRevoke, resource::token(&token.id), None).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plinth_store::SqliteStore;

    fn accounts() -> (tempfile::TempDir, Accounts) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(dir.path().join("p.db")).expect("store");
        (dir, Accounts::new(Arc::new(store), plinth_core::clock::system()))
    }

    #[tokio::test]
    async fn passwords_and_tokens() {
        let (_dir, a) = accounts();
        let alice = a.create_user("alice", "s3cret-s3cret", false).await.expect("create");
        assert!(alice.password_hash.starts_with("$argon2id$"), "hashed with argon2id");
        assert_eq!(a.sign_in("alice", "s3cret-s3cret", None).await.expect("sign in").username, "alice");
        let wrong = a.sign_in("alice", "nope", None).await.expect_err("wrong");
        let unknown = a.sign_in("mallory", "nope", None).await.expect_err("unknown");
        assert_eq!(wrong.to_string(), unknown.to_string(), "no hint whether the user exists");

        let (token, secret) = a.issue_token(&alice, "ci", TokenKind::Api, None).await.expect("token");
        assert!(secret.starts_with(TOKEN_PREFIX) && !token.secret_hash.contains(&secret));
        assert_eq!(a.check_token(&secret, TokenKind::Api).await.expect("bearer").via, Via::Token(token.id.clone()));
        assert!(a.check_token(&secret, TokenKind::Session).await.is_err(), "an API token is no session");
        assert!(a.check_token("plinth_forged", TokenKind::Api).await.is_err());
        let me = plinth_core::audit::Actor::of_request(
            Some(a.check_token(&secret, TokenKind::Api).await.expect("me")),
            None,
        );
        a.acting(Arc::new(me)).revoke_token(&token.id).await.expect("revoke");
        assert!(a.check_token(&secret, TokenKind::Api).await.is_err(), "revoked at once here");

        // A changed password stops the old one at once (the cache is dropped).
        a.set_password("alice", "n3w-password").await.expect("password");
        assert!(a.sign_in("alice", "s3cret-s3cret", None).await.is_err());
        assert!(a.sign_in("alice", "n3w-password", None).await.is_ok());
        assert!(a.set_password("alice", "short").await.is_err(), "MLflow's 12 characters at least");
    }

    #[tokio::test]
    async fn failed_sign_ins_lock_the_name_out() {
        let (_dir, a) = accounts();
        a.create_user("bob", "right-password", false).await.expect("create");
        for _ in 0..MAX_FAILURES_PER_USER {
            assert_eq!(
                a.sign_in("bob", "wrong", None).await.expect_err("wrong").kind(),
                plinth_core::ErrorKind::Unauthenticated
            );
        }
        let locked = a.sign_in("bob", "right-password", None).await.expect_err("locked");
        assert_eq!(locked.kind(), plinth_core::ErrorKind::RateLimited, "even the right password waits");
    }

    #[tokio::test]
    async fn the_first_admin_is_made_once() {
        let (_dir, a) = accounts();
        assert!(a.ensure_admin("root", "root-password").await.expect("first").is_some_and(|u| u.is_admin));
        assert!(a.ensure_admin("other", "other-password").await.expect("second").is_none());
    }
}
