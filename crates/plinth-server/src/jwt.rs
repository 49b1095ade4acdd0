//! Single sign-on: bearer JWTs from an external identity provider.
//!
//! Configured with the provider's issuer and its public keys (a JWKS file,
//! or one PEM public key, or an HMAC secret). A token is accepted when its
//! signature verifies with a configured key under that key's own algorithm
//! (so `alg: none` or an algorithm swap never verifies), its `iss` is the
//! issuer, `exp` is in the future (60 s leeway), `nbf` has passed and, when
//! configured, `aud` matches. The user is the `preferred_username` claim
//! (else `sub`); one who has not signed in before is created, without a
//! usable password, as a non-administrator.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use plinth_core::ErrorKind;
use plinth_core::auth::{Principal, Via};
use plinth_engine::accounts::Accounts;
use serde::Deserialize;

use crate::error::Failure;

/// How a server is told about its identity provider.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct JwtSettings {
    /// The `iss` every token must carry.
    pub issuer: String,
    /// A JWKS document (`{"keys": […]}`) or a PEM public key, by path.
    pub keys_file: Option<std::path::PathBuf>,
    /// A shared HMAC secret (HS256), for providers that sign that way.
    pub hmac_secret: Option<String>,
    /// The `aud` tokens must name, if any.
    pub audience: Option<String>,
}

/// Never the secret.
impl std::fmt::Debug for JwtSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtSettings")
            .field("issuer", &self.issuer)
            .field("keys_file", &self.keys_file)
            .field("audience", &self.audience)
            .field("hmac_secret", &self.hmac_secret.as_ref().map(|_| "…"))
            .finish()
    }
}

struct Key {
    kid: Option<String>,
    algorithm: Algorithm,
    key: DecodingKey,
}

/// Verifies bearer JWTs; verdicts are cached by the token's SHA-256 until
/// its `exp`, for at most 60 s.
pub struct JwtVerifier {
    issuer: String,
    audience: Option<String>,
    keys: Vec<Key>,
    cache: RwLock<HashMap<String, (Arc<Principal>, Instant)>>,
}

#[derive(Deserialize)]
struct Claims {
    exp: u64,
    sub: Option<String>,
    preferred_username: Option<String>,
}

fn pem_key(pem: &[u8]) -> Result<(Algorithm, DecodingKey), String> {
    if let Ok(k) = DecodingKey::from_rsa_pem(pem) {
        return Ok((Algorithm::RS256, k));
    }
    if let Ok(k) = DecodingKey::from_ec_pem(pem) {
        return Ok((Algorithm::ES256, k));
    }
    if let Ok(k) = DecodingKey::from_ed_pem(pem) {
        return Ok((Algorithm::EdDSA, k));
    }
    Err("not an RSA, EC (P-256) or Ed25519 public key in PEM".into())
}

impl JwtVerifier {
    /// Reads the keys; a file that cannot be read or holds no usable key is
    /// an error at start, naming the file.
    pub fn new(s: &JwtSettings) -> Result<JwtVerifier, String> {
        if s.issuer.trim().is_empty() {
            return Err("--auth-jwt-issuer is required for JWT sign-in".into());
        }
        let mut keys = Vec::new();
        if let Some(path) = &s.keys_file {
            let text = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            if text.trim_ascii_start().starts_with(b"{") {
                let set: JwkSet = serde_json::from_slice(&text)
                    .map_err(|e| format!("{}: not a JWKS document: {e}", path.display()))?;
                for jwk in &set.keys {
                    let Some(alg) = jwk.common.key_algorithm.and_then(|a| a.to_string().parse::<Algorithm>().ok())
                    else {
                        tracing::warn!(kid = ?jwk.common.key_id, "a JWKS key names no signing algorithm; skipped");
                        continue;
                    };
                    let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("{}: {e}", path.display()))?;
                    keys.push(Key { kid: jwk.common.key_id.clone(), algorithm: alg, key });
                }
            } else {
                let (algorithm, key) = pem_key(&text).map_err(|e| format!("{}: {e}", path.display()))?;
                keys.push(Key { kid: None, algorithm, key });
            }
        }
        if let Some(secret) = &s.hmac_secret {
            let key = DecodingKey::from_secret(secret.as_bytes()).map_err(|e| format!("the JWT secret: {e}"))?;
            keys.push(Key { kid: None, algorithm: Algorithm::HS256, key });
        }
        if keys.is_empty() {
            return Err("JWT sign-in needs keys: --auth-jwt-keys (JWKS or PEM) or PLINTH_AUTH_JWT_SECRET".into());
        }
        Ok(JwtVerifier {
            issuer: s.issuer.clone(),
            audience: s.audience.clone(),
            keys,
            cache: RwLock::new(HashMap::new()),
        })
    }

    fn validation(&self, algorithm: Algorithm) -> Validation {
        let mut v = Validation::new(algorithm);
        v.set_issuer(&[&self.issuer]);
        v.set_required_spec_claims(&["exp", "iss"]);
        v.leeway = 60;
        match &self.audience {
            Some(aud) => v.set_audience(&[aud]),
            None => v.validate_aud = false,
        }
        v
    }

    /// The claims of a token one of the keys verifies.
    fn claims(&self, token: &str) -> Option<Claims> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        self.keys
            .iter()
            .filter(|k| k.algorithm == header.alg)
            .filter(|k| header.kid.is_none() || k.kid.is_none() || k.kid == header.kid)
            .find_map(|k| jsonwebtoken::decode::<Claims>(token, &k.key, &self.validation(k.algorithm)).ok())
            .map(|d| d.claims)
    }

    /// A token verified before and still within its cached time: its user.
    pub fn trusted(&self, token: &str) -> Option<Arc<Principal>> {
        let key = plinth_engine::accounts::secret_hash(token);
        let cache = self.cache.read().unwrap_or_else(|p| p.into_inner());
        cache.get(&key).filter(|(_, until)| Instant::now() < *until).map(|(p, _)| p.clone())
    }

    pub async fn verify(&self, token: &str, accounts: &Accounts) -> Result<Arc<Principal>, Failure> {
        let refused = || Failure::new(ErrorKind::Unauthenticated, plinth_engine::accounts::UNAUTHENTICATED);
        if let Some(p) = self.trusted(token) {
            return Ok(p);
        }
        let key = plinth_engine::accounts::secret_hash(token);
        let claims = self.claims(token).ok_or_else(refused)?;
        let left = claims.exp.saturating_sub(jsonwebtoken::get_current_timestamp());
        let until = Instant::now() + Duration::from_secs(left.min(60));
        let username = claims.preferred_username.or(claims.sub).filter(|u| !u.is_empty()).ok_or_else(refused)?;
        let user = match accounts.get_user(&username).await {
            Ok(u) => u,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                // No password can sign in as this user: the secret is random and discarded.
                let unusable = format!("sso-{}-{}", uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
                match accounts.create_user(&username, &unusable, false).await {
                    Ok(u) => u,
                    Err(e) if e.kind() == ErrorKind::AlreadyExists => accounts.get_user(&username).await?,
                    Err(e) => return Err(e.into()),
                }
            }
            Err(e) => return Err(e.into()),
        };
        let principal = Arc::new(Principal {
            user_id: user.id,
            username: user.username,
            is_admin: user.is_admin,
            via: Via::Jwt(self.issuer.clone()),
        });
        let mut cache = self.cache.write().unwrap_or_else(|p| p.into_inner());
        if cache.len() > 100_000 {
            cache.clear();
        }
        cache.insert(key, (principal.clone(), until));
        Ok(principal)
    }
}
