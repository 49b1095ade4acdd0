//! `plinth audit`: the audit trail of a running server
//! (`GET /api/2.0/plinth/audit`), newest first, as a table or JSON.

use reqwest::Method;
use serde_json::{Value, json};

use crate::client::{Target, call, print_json, table, text, time};

#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// Records of this user (by any credential), or of one credential ("bob (token 1a2b…)").
    #[arg(long)]
    actor: Option<String>,
    /// One action, as `alias.set`, `deployment.update`.
    #[arg(long)]
    action: Option<String>,
    /// A resource and what is below it: `models/recs`, `deployments/recs-live`, `runs/<id>`.
    #[arg(long)]
    resource: Option<String>,
    /// Records at or after this time (ms since the epoch).
    #[arg(long)]
    since: Option<i64>,
    /// At most this many (1 to 1000, default 50).
    #[arg(long, default_value_t = 50)]
    max: i64,
    /// Print the server's JSON instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    target: Target,
}

pub async fn run(a: AuditArgs) -> anyhow::Result<()> {
    let mut query = json!({"max_results": a.max});
    for (key, value) in [("actor", &a.actor), ("action", &a.action), ("resource", &a.resource)] {
        if let Some(v) = value {
            query[key] = json!(v);
        }
    }
    if let Some(since) = a.since {
        query["since"] = json!(since);
    }
    let v = call(&a.target.tracking_uri, Method::GET, "/api/2.0/plinth/audit", Some(query)).await?;
    if a.json {
        return print_json(&v);
    }
    let or_dash = |v: &Value| if v.is_null() { "-".to_string() } else { text(v) };
    let rows: Vec<Vec<String>> = v["records"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            vec![
                time(r["time"].as_i64()),
                text(&r["actor"]),
                text(&r["action"]),
                text(&r["resource"]),
                or_dash(&r["before"]),
                or_dash(&r["after"]),
                or_dash(&r["request_id"]),
            ]
        })
        .collect();
    print!("{}", table(&["TIME", "ACTOR", "ACTION", "RESOURCE", "BEFORE", "AFTER", "REQUEST"], &rows));
    Ok(())
}
