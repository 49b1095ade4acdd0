//! Users and tokens in PostgreSQL (the SQL is [`crate::plan`]'s, shared with SQLite).

use plinth_core::auth::{ApiToken, TokenKind, User};
use plinth_core::rules::{missing, taken};
use tokio_postgres::Row;

use super::{Tx, USER_ID_LOCK, col, db, exec};
use crate::plan;
use crate::{Error, Result};

fn sql(text: &str) -> String {
    text.replace('?', "$")
}

fn user_at(r: &Row, at: usize) -> Result<User> {
    Ok(User {
        id: col(r, at)?,
        username: col(r, at + 1)?,
        password_hash: col(r, at + 2)?,
        is_admin: col::<i64>(r, at + 3)? != 0,
        created_time: col(r, at + 4)?,
    })
}

fn token(r: &Row) -> Result<ApiToken> {
    let id: String = col(r, 0)?;
    let kind: String = col(r, 3)?;
    let kind = TokenKind::parse(&kind).ok_or_else(|| Error::Database(format!("token {id}: stored kind '{kind}'")))?;
    Ok(ApiToken {
        id,
        user_id: col(r, 1)?,
        name: col(r, 2)?,
        kind,
        secret_hash: col(r, 4)?,
        created_time: col(r, 5)?,
        expires_time: col(r, 6)?,
        revoked_time: col(r, 7)?,
        scope: col(r, 8)?,
    })
}

pub(crate) async fn create(tx: &Tx<'_>, username: &str, password_hash: &str, is_admin: bool, now: i64) -> Result<User> {
    // One id at a time: MAX + 1 under a lock, as MLflow numbers its users.
    exec(tx, "SELECT pg_advisory_xact_lock($1)", &[&USER_ID_LOCK]).await.map_err(db)?;
    if tx.query_opt(&sql(plan::SELECT_USER_BY_NAME), &[&username]).await.map_err(db)?.is_some() {
        return Err(taken::user(username).into());
    }
    let id: i64 = col(&tx.query_one(plan::NEXT_USER_ID, &[]).await.map_err(db)?, 0)?;
    let admin = i64::from(is_admin);
    tx.execute(&sql(plan::INSERT_USER), &[&id, &username, &password_hash, &admin, &now]).await.map_err(db)?;
    get(tx, username).await
}

pub(crate) async fn get(tx: &Tx<'_>, username: &str) -> Result<User> {
    match tx.query_opt(&sql(plan::SELECT_USER_BY_NAME), &[&username]).await.map_err(db)? {
        Some(r) => user_at(&r, 0),
        None => Err(missing::user(username).into()),
    }
}

pub(crate) async fn get_by_id(tx: &Tx<'_>, user_id: i64) -> Result<User> {
    match tx.query_opt(&sql(plan::SELECT_USER_BY_ID), &[&user_id]).await.map_err(db)? {
        Some(r) => user_at(&r, 0),
        None => Err(missing::user(&format!("#{user_id}")).into()),
    }
}

pub(crate) async fn list(tx: &Tx<'_>) -> Result<Vec<User>> {
    tx.query(plan::LIST_USERS, &[]).await.map_err(db)?.iter().map(|r| user_at(r, 0)).collect()
}

pub(crate) async fn update(
    tx: &Tx<'_>,
    username: &str,
    password_hash: Option<&str>,
    is_admin: Option<bool>,
) -> Result<User> {
    let admin = is_admin.map(i64::from);
    if tx.execute(&sql(plan::UPDATE_USER), &[&username, &password_hash, &admin]).await.map_err(db)? == 0 {
        return Err(missing::user(username).into());
    }
    get(tx, username).await
}

pub(crate) async fn delete(tx: &Tx<'_>, username: &str) -> Result<()> {
    let user = get(tx, username).await?;
    tx.execute(&sql(plan::DELETE_USER_TOKENS), &[&user.id]).await.map_err(db)?;
    super::roles::forget_user(tx, user.id).await?;
    tx.execute(&sql(plan::DELETE_USER), &[&user.id]).await.map_err(db)?;
    Ok(())
}

pub(crate) async fn create_token(tx: &Tx<'_>, t: &ApiToken) -> Result<()> {
    get_by_id(tx, t.user_id).await?;
    if t.kind == TokenKind::Session {
        tx.execute(&sql(plan::DELETE_ENDED_SESSIONS), &[&t.created_time]).await.map_err(db)?;
    }
    tx.execute(
        &sql(plan::INSERT_TOKEN),
        &[
            &t.id,
            &t.user_id,
            &t.name,
            &t.kind.as_str(),
            &t.secret_hash,
            &t.created_time,
            &t.expires_time,
            &t.revoked_time,
            &t.scope,
        ],
    )
    .await
    .map_err(db)?;
    Ok(())
}

pub(crate) async fn find_token(tx: &Tx<'_>, secret_hash: &str) -> Result<Option<(ApiToken, User)>> {
    match tx.query_opt(&sql(plan::FIND_TOKEN), &[&secret_hash]).await.map_err(db)? {
        Some(r) => Ok(Some((token(&r)?, user_at(&r, plan::TOKEN_COLUMNS)?))),
        None => Ok(None),
    }
}

pub(crate) async fn list_tokens(tx: &Tx<'_>, user_id: i64) -> Result<Vec<ApiToken>> {
    tx.query(&sql(plan::LIST_TOKENS), &[&user_id]).await.map_err(db)?.iter().map(token).collect()
}

pub(crate) async fn revoke_token(tx: &Tx<'_>, token_id: &str, now: i64) -> Result<ApiToken> {
    if tx.execute(&sql(plan::REVOKE_TOKEN), &[&token_id, &now]).await.map_err(db)? == 0 {
        return Err(missing::token(token_id).into());
    }
    token(&tx.query_one(&sql(plan::GET_TOKEN), &[&token_id]).await.map_err(db)?)
}
