//! `plinth users ...` and `plinth tokens ...`: accounts for `--auth`, managed
//! in the store itself (the data dir's SQLite, or `--store`), so the first
//! administrator can be made before any server runs. A password is read from
//! standard input or `PLINTH_USER_PASSWORD`, never from a flag (flags show
//! in `ps`); a token's secret is printed once.

use std::io::BufRead;
use std::path::PathBuf;

use anyhow::{Context, bail};
use plinth_core::auth::TokenKind;

use crate::client::{table, time};

/// Which store: the same settings as `plinth server`.
#[derive(Debug, clap::Args)]
pub struct StoreArgs {
    /// The data dir whose SQLite store holds the users (as `plinth server --data-dir`).
    #[arg(long, env = "PLINTH_DATA_DIR", default_value = "plinth-data")]
    pub data_dir: PathBuf,
    /// The metadata store, if not the data dir's (sqlite:///path or postgresql://…).
    #[arg(long, env = "PLINTH_STORE")]
    pub store: Option<String>,
}

#[derive(Debug, clap::Subcommand)]
pub enum UsersCommand {
    /// Create a user; the password is read from standard input (or PLINTH_USER_PASSWORD).
    Create {
        username: String,
        /// An administrator: manages users, tokens and every resource.
        #[arg(long)]
        admin: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Every user.
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Set a user's password (read from standard input or PLINTH_USER_PASSWORD).
    Password {
        username: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Make a user an administrator, or not.
    SetAdmin {
        username: String,
        #[arg(action = clap::ArgAction::Set)]
        is_admin: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Delete a user and their tokens.
    Delete {
        username: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum TokensCommand {
    /// Create an API token for a user and print its secret (shown this once).
    Create {
        #[arg(long)]
        user: String,
        /// What the token is for ("laptop", "ci").
        #[arg(long, default_value = "")]
        name: String,
        /// Days until it expires (default: never).
        #[arg(long)]
        expires_days: Option<u64>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// A user's API tokens (never their secrets).
    List {
        #[arg(long)]
        user: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Revoke a token by its id.
    Revoke {
        token_id: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

async fn open(s: &StoreArgs) -> anyhow::Result<plinth_engine::Platform> {
    let store = match &s.store {
        Some(uri) => plinth_server::StoreLocation::parse(uri).map_err(anyhow::Error::msg)?,
        None => plinth_server::StoreLocation::default(),
    };
    let artifacts = plinth_server::ArtifactLocation::default();
    let clock = plinth_core::clock::system();
    let sqlite = plinth_store::SqliteOptions::default();
    let platform = plinth_server::open_platform(&s.data_dir, &store, &artifacts, true, sqlite, clock).await?;
    // Run on the store's own machine: the audit trail names the local account.
    let local = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    let principal = plinth_core::auth::Principal {
        user_id: 0,
        username: format!("local:{local}"),
        is_admin: true,
        via: plinth_core::auth::Via::Anonymous,
    };
    let mut actor = plinth_core::audit::Actor::of_request(Some(std::sync::Arc::new(principal)), None);
    actor.request_id = None;
    Ok(platform.acting(actor))
}

fn read_password() -> anyhow::Result<String> {
    if let Ok(p) = std::env::var("PLINTH_USER_PASSWORD")
        && !p.is_empty()
    {
        return Ok(p);
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).context("cannot read the password from standard input")?;
    let password = line.trim_end_matches(['\r', '\n']).to_string();
    if password.is_empty() {
        bail!("no password: give it on standard input (echo … | plinth users create NAME) or in PLINTH_USER_PASSWORD");
    }
    Ok(password)
}

pub async fn users(cmd: UsersCommand) -> anyhow::Result<()> {
    match cmd {
        UsersCommand::Create { username, admin, store } => {
            let password = read_password()?;
            let user = open(&store).await?.accounts().create_user(&username, &password, admin).await?;
            println!(
                "created user {} (id {}){}",
                user.username,
                user.id,
                if user.is_admin { ", administrator" } else { "" }
            );
        }
        UsersCommand::List { store } => {
            let users = open(&store).await?.accounts().list_users().await?;
            let rows: Vec<Vec<String>> = users
                .iter()
                .map(|u| vec![u.id.to_string(), u.username.clone(), u.is_admin.to_string(), time(Some(u.created_time))])
                .collect();
            print!("{}", table(&["ID", "USERNAME", "ADMIN", "CREATED"], &rows));
        }
        UsersCommand::Password { username, store } => {
            let password = read_password()?;
            open(&store).await?.accounts().set_password(&username, &password).await?;
            println!("password of {username} changed");
        }
        UsersCommand::SetAdmin { username, is_admin, store } => {
            open(&store).await?.accounts().set_admin(&username, is_admin).await?;
            println!("{username} is {}an administrator", if is_admin { "" } else { "not " });
        }
        UsersCommand::Delete { username, store } => {
            open(&store).await?.accounts().delete_user(&username).await?;
            println!("deleted user {username}");
        }
    }
    Ok(())
}

pub async fn tokens(cmd: TokensCommand) -> anyhow::Result<()> {
    match cmd {
        TokensCommand::Create { user, name, expires_days, store } => {
            let platform = open(&store).await?;
            let accounts = platform.accounts();
            let user = accounts.get_user(&user).await?;
            let ttl = expires_days.map(|d| std::time::Duration::from_secs(d.saturating_mul(86_400)));
            let (token, secret) = accounts.issue_token(&user, &name, TokenKind::Api, ttl).await?;
            eprintln!("token {} for {} (shown once; keep it secret):", token.id, user.username);
            println!("{secret}");
        }
        TokensCommand::List { user, store } => {
            let platform = open(&store).await?;
            let accounts = platform.accounts();
            let user = accounts.get_user(&user).await?;
            let rows: Vec<Vec<String>> = accounts
                .list_tokens(user.id)
                .await?
                .into_iter()
                .filter(|t| t.kind == TokenKind::Api)
                .map(|t| {
                    let state = if t.revoked_time.is_some() { "revoked" } else { "active" };
                    vec![t.id, t.name, state.to_string(), time(Some(t.created_time)), time(t.expires_time)]
                })
                .collect();
            print!("{}", table(&["ID", "NAME", "STATE", "CREATED", "EXPIRES"], &rows));
        }
        TokensCommand::Revoke { token_id, store } => {
            let platform = open(&store).await?;
            platform.accounts().revoke_token(&token_id).await?;
            println!("revoked token {token_id}");
        }
    }
    Ok(())
}
