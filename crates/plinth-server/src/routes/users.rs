//! Users and tokens. MLflow's basic-auth user API (`/mlflow/users/*`, what
//! `mlflow.server.get_app_client("basic-auth", …)` calls) and Plinth's
//! tokens (`/api/2.0/plinth/tokens/*`). Administrators manage everyone;
//! a user may read themself, change their own password and manage their own
//! tokens. A password or a token's secret is never in an answer, except a
//! new token's secret, once.

use std::time::Duration;

use axum::routing::{delete, get, patch, post};
use axum::{Json, Router};
use plinth_core::auth::{ApiToken, TokenKind, User};
use serde_json::{Value, json};

use crate::args::Args;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::state::{Api, AppState};

/// Under MLflow's prefixes.
pub fn mlflow_router() -> Router<AppState> {
    Router::new()
        .route("/users/create", post(create_user))
        .route("/users/get", get(get_user))
        .route("/users/current", get(current_user))
        .route("/users/list", get(list_users))
        .route("/users/update-password", patch(update_password))
        .route("/users/update-admin", patch(update_admin))
        .route("/users/delete", delete(delete_user))
}

/// Under `/api/2.0/plinth`.
pub fn plinth_router() -> Router<AppState> {
    Router::new()
        .route("/tokens/create", post(create_token))
        .route("/tokens/list", get(list_tokens))
        .route("/tokens/revoke", post(revoke_token))
        .route("/deployments/keys/create", post(create_serving_key))
        .route("/deployments/keys/list", get(list_serving_keys))
}

/// MLflow's `User.to_json`: never the hash.
pub fn user_json(u: &User) -> Value {
    json!({"id": u.id, "username": u.username, "is_admin": u.is_admin})
}

pub fn token_json(t: &ApiToken) -> Value {
    json!({
        "id": t.id,
        "user_id": t.user_id,
        "name": t.name,
        "kind": t.kind.as_str(),
        "created_time": t.created_time,
        "expires_time": t.expires_time,
        "revoked_time": t.revoked_time,
        "deployment": t.scope,
    })
}

/// `expires_in_days` (1 to 3650), when given.
fn ttl(a: &Args) -> Result<Option<Duration>, ApiError> {
    match a.opt_i64("expires_in_days")? {
        None => Ok(None),
        Some(days) if (1..=3650).contains(&days) => Ok(Some(Duration::from_secs(days as u64 * 86_400))),
        Some(days) => Err(ApiError::invalid(format!("expires_in_days must be 1 to 3650, got {days}"))),
    }
}

async fn create_user(s: Api, caller: Caller, a: Args) -> ApiResult {
    caller.require_admin()?;
    let username = a.opt_str("username")?.unwrap_or_default();
    let password = a.opt_str("password")?.unwrap_or_default();
    let user = s.platform.accounts().create_user(&username, &password, false).await?;
    Ok(Json(json!({"user": user_json(&user)})))
}

async fn get_user(s: Api, caller: Caller, a: Args) -> ApiResult {
    let username = a.req_str("username")?;
    caller.require_self_or_admin(&username)?;
    let user = s.platform.accounts().get_user(&username).await?;
    Ok(Json(json!({"user": user_json(&user)})))
}

async fn current_user(s: Api, caller: Caller) -> ApiResult {
    if caller.0.user_id == 0 {
        // Authentication is off: the anonymous caller, who may do everything.
        return Ok(Json(json!({"user": {"id": 0, "username": caller.0.username, "is_admin": true}})));
    }
    let user = s.platform.accounts().get_user_by_id(caller.0.user_id).await?;
    Ok(Json(json!({"user": user_json(&user)})))
}

async fn list_users(s: Api, caller: Caller) -> ApiResult {
    caller.require_admin()?;
    let users = s.platform.accounts().list_users().await?;
    Ok(Json(json!({"users": users.iter().map(user_json).collect::<Vec<_>>()})))
}

/// An administrator sets anyone's; a user changing their own re-asserts the
/// current one (`current_password`, MLflow's rule and messages), so a hijacked
/// session cannot rotate it.
async fn update_password(s: Api, caller: Caller, a: Args) -> ApiResult {
    let username = a.req_str("username")?;
    caller.require_self_or_admin(&username)?;
    let password = a.opt_str("password")?.unwrap_or_default();
    let accounts = s.platform.accounts();
    if caller.0.user_id != 0 && caller.0.username == username {
        let current = a.opt_str("current_password")?.unwrap_or_default();
        accounts.change_own_password(&username, &current, &password).await?;
    } else {
        accounts.set_password(&username, &password).await?;
    }
    Ok(Json(json!({})))
}

async fn update_admin(s: Api, caller: Caller, a: Args) -> ApiResult {
    caller.require_admin()?;
    let username = a.req_str("username")?;
    let is_admin =
        a.opt_bool("is_admin")?.ok_or_else(|| ApiError::invalid("Missing value for required parameter 'is_admin'"))?;
    s.platform.accounts().set_admin(&username, is_admin).await?;
    Ok(Json(json!({})))
}

async fn delete_user(s: Api, caller: Caller, a: Args) -> ApiResult {
    caller.require_admin()?;
    let username = a.req_str("username")?;
    s.platform.accounts().delete_user(&username).await?;
    Ok(Json(json!({})))
}

/// The user a token call is about: the caller, or (administrators) `username`.
async fn subject(s: &Api, caller: &Caller, a: &Args) -> Result<User, ApiError> {
    let accounts = s.platform.accounts();
    match a.opt_str("username")? {
        Some(name) if name != caller.0.username => {
            caller.require_admin()?;
            Ok(accounts.get_user(&name).await?)
        }
        _ if caller.0.user_id == 0 => Err(ApiError::invalid(
            "Authentication is off: give the username the token is for (tokens are for signing in with --auth)",
        )),
        _ => Ok(accounts.get_user_by_id(caller.0.user_id).await?),
    }
}

/// `{name?, expires_in_days?, username?}` → the token and, once, its secret.
async fn create_token(s: Api, caller: Caller, a: Args) -> ApiResult {
    let user = subject(&s, &caller, &a).await?;
    let name = a.opt_str("name")?.unwrap_or_default();
    let (token, secret) = s.platform.accounts().issue_token(&user, &name, TokenKind::Api, ttl(&a)?).await?;
    tracing::info!(user = %user.username, token = %token.id, "token created");
    Ok(Json(json!({"token": token_json(&token), "secret": secret})))
}

async fn list_tokens(s: Api, caller: Caller, a: Args) -> ApiResult {
    let user = subject(&s, &caller, &a).await?;
    let tokens = s.platform.accounts().list_tokens(user.id).await?;
    let api: Vec<Value> = tokens.iter().filter(|t| t.kind == TokenKind::Api).map(token_json).collect();
    Ok(Json(json!({"tokens": api})))
}

async fn revoke_token(s: Api, caller: Caller, a: Args) -> ApiResult {
    let token_id = a.req_str("token_id")?;
    let token = s.platform.accounts().revoke_token(&token_id).await?;
    tracing::info!(token = %token.id, by = %caller.0.username, "token revoked");
    Ok(Json(json!({"token": token_json(&token)})))
}

/// `{deployment, name?, expires_in_days?, username?}` → a serving key for that
/// deployment's inference endpoints only and, once, its secret (`plinth_sk_…`,
/// sent as `Authorization: Bearer`). Revoked like any token (`tokens/revoke`).
async fn create_serving_key(s: Api, caller: Caller, a: Args) -> ApiResult {
    let user = subject(&s, &caller, &a).await?;
    let deployment = s.platform.get_deployment(&a.req_str("deployment")?).await?;
    let name = a.opt_str("name")?.unwrap_or_default();
    let (key, secret) = s.platform.accounts().issue_serving_key(&user, &deployment.name, &name, ttl(&a)?).await?;
    tracing::info!(user = %user.username, key = %key.id, deployment = %deployment.name, "serving key created");
    Ok(Json(json!({"key": token_json(&key), "secret": secret})))
}

/// `?deployment=&username=`: the user's serving keys (of one deployment, when given).
async fn list_serving_keys(s: Api, caller: Caller, a: Args) -> ApiResult {
    let user = subject(&s, &caller, &a).await?;
    let deployment = a.opt_str("deployment")?;
    let keys: Vec<Value> = s
        .platform
        .accounts()
        .list_tokens(user.id)
        .await?
        .iter()
        .filter(|t| t.kind == TokenKind::Serving && (deployment.is_none() || t.scope == deployment))
        .map(token_json)
        .collect();
    Ok(Json(json!({"keys": keys})))
}
