//! Who may call: users, their tokens, and the principal a request runs as.
//!
//! The secrets themselves never live here: a user carries the PHC string of
//! its password (argon2id), a token the SHA-256 of its secret. Neither is
//! printed by `Debug`.

use crate::{Error, Result};

/// Someone (a person or a service) who signs in.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub username: String,
    /// The password's PHC string (`$argon2id$…`).
    pub password_hash: String,
    pub is_admin: bool,
    pub created_time: i64,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("is_admin", &self.is_admin)
            .finish_non_exhaustive()
    }
}

/// What a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// An API token a user created (`plinth tokens create`), sent as a bearer.
    Api,
    /// A UI session, sent as the session cookie.
    Session,
    /// A serving key: a bearer that calls one deployment's inference
    /// endpoints (its `scope`) and nothing else, for the services that call it.
    Serving,
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Api => "api",
            TokenKind::Session => "session",
            TokenKind::Serving => "serving",
        }
    }
    pub fn parse(s: &str) -> Option<TokenKind> {
        match s {
            "api" => Some(TokenKind::Api),
            "session" => Some(TokenKind::Session),
            "serving" => Some(TokenKind::Serving),
            _ => None,
        }
    }
}

/// A bearer credential: the secret is shown once, when it is made; the
/// store keeps its SHA-256.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiToken {
    /// Public id, for listing and revoking.
    pub id: String,
    pub user_id: i64,
    /// What the owner called it ("laptop", "ci").
    pub name: String,
    pub kind: TokenKind,
    /// Hex SHA-256 of the secret.
    pub secret_hash: String,
    pub created_time: i64,
    pub expires_time: Option<i64>,
    pub revoked_time: Option<i64>,
    /// What a serving key may call: its deployment's name (other kinds: `None`).
    pub scope: Option<String>,
}

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiToken")
            .field("id", &self.id)
            .field("user_id", &self.user_id)
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("expires_time", &self.expires_time)
            .field("revoked_time", &self.revoked_time)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl ApiToken {
    /// Whether it may be used at `now` (not revoked, not expired).
    pub fn live(&self, now: i64) -> bool {
        self.revoked_time.is_none() && self.expires_time.is_none_or(|t| now < t)
    }
}

/// How a request proved who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// HTTP basic: a username and password.
    Password,
    /// A bearer API token (its id).
    Token(String),
    /// The UI's session cookie (its token id).
    Session(String),
    /// A serving key (its token id), for one deployment's inference endpoints only.
    ServingKey { token: String, deployment: String },
    /// A JWT from the configured identity provider (its issuer).
    Jwt(String),
    /// Authentication is off: the embedded single-user mode.
    Anonymous,
}

/// Who a request runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: i64,
    pub username: String,
    pub is_admin: bool,
    pub via: Via,
}

impl Principal {
    /// The principal of every request when authentication is off.
    pub fn anonymous() -> Principal {
        Principal { user_id: 0, username: "anonymous".into(), is_admin: true, via: Via::Anonymous }
    }

    /// "alice", or "alice (token t1a2b3)": how the audit trail names an actor.
    pub fn actor(&self) -> String {
        match &self.via {
            Via::Token(id) => format!("{} (token {id})", self.username),
            Via::ServingKey { token, .. } => format!("{} (serving key {token})", self.username),
            _ => self.username.clone(),
        }
    }
}

/// Where a request came from, as far as this server can tell: the TCP
/// peer, or behind a trusted proxy the address it forwarded. Failed sign-ins
/// are counted by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub std::net::IpAddr);

/// The client's address: `peer`, unless `peer` is one of the `trusted`
/// proxies; then the right-most `X-Forwarded-For` entry that is not a trusted
/// proxy itself (entries further left are the client's own say, and could be
/// forged). Unparseable entries end the walk at the last good address.
pub fn client_address<'a>(
    peer: std::net::IpAddr,
    forwarded_for: impl IntoIterator<Item = &'a str>,
    trusted: &[std::net::IpAddr],
) -> std::net::IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    let entries: Vec<&str> = forwarded_for.into_iter().flat_map(|v| v.split(',')).map(str::trim).collect();
    let mut client = peer;
    for entry in entries.iter().rev() {
        match entry.parse::<std::net::IpAddr>() {
            Ok(ip) => {
                client = ip;
                if !trusted.contains(&ip) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    client
}

/// The longest username accepted.
pub const MAX_USERNAME_CHARS: usize = 256;

/// A username a client may register: not empty, no surrounding blanks, no
/// control characters, and no `:` (HTTP basic splits `user:password` at the
/// first one, so such a name could never sign in).
pub fn validate_username(username: &str) -> Result<()> {
    if username.is_empty() {
        return Err(Error::invalid("Username and password cannot be empty."));
    }
    if username.chars().count() > MAX_USERNAME_CHARS {
        return Err(Error::invalid(format!("Username is longer than {MAX_USERNAME_CHARS} characters.")));
    }
    if username.trim() != username || username.chars().any(|c| c.is_control() || c == ':') {
        return Err(Error::invalid("Username may not contain ':', control characters or surrounding whitespace."));
    }
    Ok(())
}

/// The shortest password accepted (MLflow's rule).
pub const MIN_PASSWORD_CHARS: usize = 12;

/// A password a client may set: at least [`MIN_PASSWORD_CHARS`] characters,
/// as MLflow's server asks, and at most 1,024 bytes (the KDF's cost must not
/// be the caller's to choose).
pub fn validate_password(password: &str) -> Result<()> {
    if password.is_empty() {
        return Err(Error::invalid("Username and password cannot be empty."));
    }
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(Error::invalid(format!("Password must be at least {MIN_PASSWORD_CHARS} characters.")));
    }
    if password.len() > 1024 {
        return Err(Error::invalid("Password is longer than 1024 bytes."));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_addresses_count_only_behind_trusted_proxies() {
        let ip = |s: &str| s.parse::<std::net::IpAddr>().expect("ip");
        let nginx = [ip("10.0.0.5")];
        // Not a trusted peer: its header is ignored.
        assert_eq!(client_address(ip("203.0.113.9"), ["1.2.3.4"], &nginx), ip("203.0.113.9"));
        // Behind nginx: the address nginx saw, not what the client claimed further left.
        assert_eq!(client_address(ip("10.0.0.5"), ["6.6.6.6, 198.51.100.7"], &nginx), ip("198.51.100.7"));
        assert_eq!(client_address(ip("10.0.0.5"), ["6.6.6.6", "198.51.100.7, 10.0.0.5"], &nginx), ip("198.51.100.7"));
        // No header, or garbage: the proxy itself.
        assert_eq!(client_address(ip("10.0.0.5"), [], &nginx), ip("10.0.0.5"));
        assert_eq!(client_address(ip("10.0.0.5"), ["not-an-ip"], &nginx), ip("10.0.0.5"));
    }

    #[test]
    fn usernames() {
        for ok in ["alice", "a.b-c_d@corp", "Ünïcode"] {
            assert!(validate_username(ok).is_ok(), "{ok}");
        }
        for bad in ["", " alice", "al:ice", "a\nb", &"x".repeat(257)] {
            assert!(validate_username(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn secrets_are_not_debug_printed() {
        let u =
            User { id: 1, username: "a".into(), password_hash: "$argon2id$x".into(), is_admin: false, created_time: 0 };
        assert!(!format!("{u:?}").contains("argon2"));
        let t = ApiToken {
            id: "t1".into(),
            user_id: 1,
            name: "n".into(),
            kind: TokenKind::Api,
            secret_hash: "deadbeef".into(),
            created_time: 0,
            expires_time: Some(10),
            revoked_time: None,
            scope: None,
        };
        assert!(!format!("{t:?}").contains("deadbeef"));
        assert!(t.live(9) && !t.live(10));
    }
}
