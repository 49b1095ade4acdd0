//! `plinth models ...`: the model registry of a running server, through its
//! MLflow API: list, get, versions, and moving aliases.

use reqwest::Method;
use serde_json::{Value, json};

use crate::client::{Target, call, print_json, table, text, time};

#[derive(Debug, clap::Subcommand)]
pub enum ModelsCommand {
    /// Registered models with their latest version and aliases.
    List {
        /// MLflow filter, e.g. `name LIKE 'recs%'`.
        #[arg(long)]
        filter: Option<String>,
        #[command(flatten)]
        out: Output,
    },
    /// One registered model.
    Get {
        name: String,
        #[command(flatten)]
        out: Output,
    },
    /// A model's versions, newest first, with their runs and aliases.
    Versions {
        name: String,
        #[command(flatten)]
        out: Output,
    },
    /// Set or delete an alias.
    #[command(subcommand)]
    Alias(AliasCommand),
}

#[derive(Debug, clap::Subcommand)]
pub enum AliasCommand {
    /// Point `@ALIAS` of NAME at VERSION (moving it if set; deployments that follow it switch).
    Set {
        name: String,
        alias: String,
        version: String,
        #[command(flatten)]
        target: Target,
    },
    /// Remove `@ALIAS` from NAME.
    Delete {
        name: String,
        alias: String,
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Debug, clap::Args)]
pub struct Output {
    /// Print the server's JSON instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    target: Target,
}

const API: &str = "/api/2.0/mlflow";

fn aliases(v: &Value) -> String {
    let list: Vec<String> = v["aliases"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| match (a["alias"].as_str(), a.as_str()) {
            (Some(name), _) => format!("@{name}={}", text(&a["version"])),
            (None, Some(name)) => format!("@{name}"),
            _ => text(a),
        })
        .collect();
    if list.is_empty() { "-".into() } else { list.join(" ") }
}

pub async fn run(cmd: ModelsCommand) -> anyhow::Result<()> {
    match cmd {
        ModelsCommand::List { filter, out } => {
            let mut body = json!({"max_results": "1000"});
            if let Some(f) = filter {
                body["filter"] = json!(f);
            }
            let v = call(&out.target.tracking_uri, Method::GET, &format!("{API}/registered-models/search"), Some(body))
                .await?;
            if out.json {
                return print_json(&v);
            }
            let rows: Vec<Vec<String>> = v["registered_models"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|m| {
                    let latest = m["latest_versions"]
                        .as_array()
                        .and_then(|l| l.iter().filter_map(|v| v["version"].as_str()?.parse::<i64>().ok()).max())
                        .map_or("-".to_string(), |v| v.to_string());
                    vec![text(&m["name"]), latest, aliases(m), time(m["last_updated_timestamp"].as_i64())]
                })
                .collect();
            println!("{}", table(&["NAME", "LATEST", "ALIASES", "UPDATED"], &rows));
        }
        ModelsCommand::Get { name, out } => {
            let v = call(
                &out.target.tracking_uri,
                Method::GET,
                &format!("{API}/registered-models/get"),
                Some(json!({"name": name})),
            )
            .await?;
            if out.json {
                return print_json(&v);
            }
            let m = &v["registered_model"];
            println!("name         {}", text(&m["name"]));
            println!("description  {}", m["description"].as_str().filter(|d| !d.is_empty()).unwrap_or("-"));
            println!("aliases      {}", aliases(m));
            println!("created      {}", time(m["creation_timestamp"].as_i64()));
            println!("updated      {}", time(m["last_updated_timestamp"].as_i64()));
        }
        ModelsCommand::Versions { name, out } => {
            let filter = format!("name = '{}'", name.replace('\'', "''"));
            let body = json!({"filter": filter, "order_by": "version_number DESC", "max_results": "1000"});
            let v = call(&out.target.tracking_uri, Method::GET, &format!("{API}/model-versions/search"), Some(body))
                .await?;
            if out.json {
                return print_json(&v);
            }
            let rows: Vec<Vec<String>> = v["model_versions"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|mv| {
                    let al: Vec<String> = mv["aliases"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|a| a.as_str())
                        .map(|a| format!("@{a}"))
                        .collect();
                    vec![
                        text(&mv["version"]),
                        if al.is_empty() { "-".into() } else { al.join(" ") },
                        text(&mv["run_id"]),
                        text(&mv["source"]),
                        time(mv["creation_timestamp"].as_i64()),
                    ]
                })
                .collect();
            println!("{}", table(&["VERSION", "ALIASES", "RUN", "SOURCE", "CREATED"], &rows));
        }
        ModelsCommand::Alias(AliasCommand::Set { name, alias, version, target }) => {
            let body = json!({"name": name, "alias": alias, "version": version});
            call(&target.tracking_uri, Method::POST, &format!("{API}/registered-models/alias"), Some(body)).await?;
            println!("@{alias} of {name} now points at version {version}");
        }
        ModelsCommand::Alias(AliasCommand::Delete { name, alias, target }) => {
            let body = json!({"name": name, "alias": alias});
            call(&target.tracking_uri, Method::DELETE, &format!("{API}/registered-models/alias"), Some(body)).await?;
            println!("@{alias} removed from {name}");
        }
    }
    Ok(())
}
