//! Users and tokens in SQLite (the SQL is [`crate::plan`]'s, shared with PostgreSQL).

use plinth_core::auth::{ApiToken, TokenKind, User};
use plinth_core::rules::{missing, taken};
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::plan;
use crate::{Error, Result};

fn user_at(r: &Row<'_>, at: usize) -> rusqlite::Result<User> {
    Ok(User {
        id: r.get(at)?,
        username: r.get(at + 1)?,
        password_hash: r.get(at + 2)?,
        is_admin: r.get::<_, i64>(at + 3)? != 0,
        created_time: r.get(at + 4)?,
    })
}

type TokenRow = (String, i64, String, String, String, i64, Option<i64>, Option<i64>, Option<String>);

fn token_row(r: &Row<'_>) -> rusqlite::Result<TokenRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?))
}

fn to_token(
    (id, user_id, name, kind, secret_hash, created_time, expires_time, revoked_time, scope): TokenRow,
) -> Result<ApiToken> {
    let kind = TokenKind::parse(&kind).ok_or_else(|| Error::Database(format!("token {id}: stored kind '{kind}'")))?;
    Ok(ApiToken { id, user_id, name, kind, secret_hash, created_time, expires_time, revoked_time, scope })
}

pub(crate) fn create(conn: &Connection, username: &str, password_hash: &str, is_admin: bool, now: i64) -> Result<User> {
    if conn.query_row(plan::SELECT_USER_BY_NAME, [username], |r| user_at(r, 0)).optional()?.is_some() {
        return Err(taken::user(username).into());
    }
    let id: i64 = conn.query_row(plan::NEXT_USER_ID, [], |r| r.get(0))?;
    conn.execute(plan::INSERT_USER, params![id, username, password_hash, is_admin as i64, now])?;
    get(conn, username)
}

pub(crate) fn get(conn: &Connection, username: &str) -> Result<User> {
    conn.prepare_cached(plan::SELECT_USER_BY_NAME)?
        .query_row([username], |r| user_at(r, 0))
        .optional()?
        .ok_or_else(|| missing::user(username).into())
}

pub(crate) fn get_by_id(conn: &Connection, user_id: i64) -> Result<User> {
    conn.prepare_cached(plan::SELECT_USER_BY_ID)?
        .query_row([user_id], |r| user_at(r, 0))
        .optional()?
        .ok_or_else(|| missing::user(&format!("#{user_id}")).into())
}

pub(crate) fn list(conn: &Connection) -> Result<Vec<User>> {
    let mut stmt = conn.prepare_cached(plan::LIST_USERS)?;
    let users = stmt.query_map([], |r| user_at(r, 0))?.collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(users)
}

pub(crate) fn update(
    conn: &Connection,
    username: &str,
    password_hash: Option<&str>,
    is_admin: Option<bool>,
) -> Result<User> {
    if conn.execute(plan::UPDATE_USER, params![username, password_hash, is_admin.map(i64::from)])? == 0 {
        return Err(missing::user(username).into());
    }
    get(conn, username)
}

pub(crate) fn delete(conn: &Connection, username: &str) -> Result<()> {
    let user = get(conn, username)?;
    conn.execute(plan::DELETE_USER_TOKENS, [user.id])?;
    super::roles::forget_user(conn, user.id)?;
    conn.execute(plan::DELETE_USER, [user.id])?;
    Ok(())
}

pub(crate) fn create_token(conn: &Connection, t: &ApiToken) -> Result<()> {
    get_by_id(conn, t.user_id)?;
    if t.kind == TokenKind::Session {
        conn.execute(plan::DELETE_ENDED_SESSIONS, [t.created_time])?;
    }
    conn.execute(
        plan::INSERT_TOKEN,
        params![
            t.id,
            t.user_id,
            t.name,
            t.kind.as_str(),
            t.secret_hash,
            t.created_time,
            t.expires_time,
            t.revoked_time,
            t.scope
        ],
    )?;
    Ok(())
}

pub(crate) fn find_token(conn: &Connection, secret_hash: &str) -> Result<Option<(ApiToken, User)>> {
    let found = conn
        .prepare_cached(plan::FIND_TOKEN)?
        .query_row([secret_hash], |r| Ok((token_row(r)?, user_at(r, plan::TOKEN_COLUMNS)?)))
        .optional()?;
    found.map(|(t, u)| Ok((to_token(t)?, u))).transpose()
}

pub(crate) fn list_tokens(conn: &Connection, user_id: i64) -> Result<Vec<ApiToken>> {
    let mut stmt = conn.prepare_cached(plan::LIST_TOKENS)?;
    let rows = stmt.query_map([user_id], token_row)?.collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter().map(to_token).collect()
}

pub(crate) fn revoke_token(conn: &Connection, token_id: &str, now: i64) -> Result<ApiToken> {
    if conn.execute(plan::REVOKE_TOKEN, params![token_id, now])? == 0 {
        return Err(missing::token(token_id).into());
    }
    let row = conn.query_row(plan::GET_TOKEN, [token_id], token_row)?;
    to_token(row)
}
