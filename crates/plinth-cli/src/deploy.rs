//! `plinth deploy ...`: manage deployments on a running server through its
//! native API (`/api/2.0/plinth/deployments/*`). Prints the server's JSON.

use anyhow::{Context, bail};
use serde_json::{Value, json};

pub use crate::client::Target;
use crate::client::{print_json, table, text, time};

#[derive(Debug, clap::Subcommand)]
pub enum DeployCommand {
    /// Create a deployment: `--variant a=recs@champion:90 --variant b=recs/3:10 [--shadow s=recs@challenger]`.
    Create(SpecArgs),
    /// Replace a deployment's variants and shadow (weights, models); the salt stays.
    Update(SpecArgs),
    /// Show one deployment with its loaded versions and counters.
    Get(NameArgs),
    /// List deployments (a table; --json for the server's JSON).
    List(ListArgs),
    /// Delete a deployment.
    Delete(NameArgs),
    /// Make a serving key for a deployment's inference endpoints only (with --auth): prints its secret once,
    /// to send as `Authorization: Bearer`. Revoke it with `plinth tokens revoke ID`.
    Key(KeyArgs),
    /// Analyse a deployment's experiment for one metric: per variant its units, mean and interval, each variant's
    /// lift against the control, and the sample-ratio check (a table; --json for the server's JSON).
    Analyze(AnalyzeArgs),
    /// Show a deployment's policy: where it stands, its guardrails and what the figures call for now, and its
    /// decision log (--json for the server's JSON).
    Policy(NameArgs),
}

#[derive(Debug, clap::Args)]
pub struct AnalyzeArgs {
    name: String,
    /// A metric defined on the deployment (then its event, aggregate, window and CUPED setting are used).
    #[arg(long, conflicts_with = "event")]
    metric: Option<String>,
    /// The event kind the metric counts (`play`, `click`, `conversion`).
    #[arg(long, required_unless_present = "metric")]
    event: Option<String>,
    /// count | sum (of the events' values) | conversion (share of units with one) | ratio (events per exposure).
    #[arg(long, default_value = "count")]
    aggregate: String,
    /// The attribution window after each unit's first exposure (7d, 12h, 30m).
    #[arg(long, default_value = "7d")]
    window: String,
    /// The control variant (default: the deployment's first).
    #[arg(long)]
    control: Option<String>,
    /// fixed (one look at the end) | sequential (anytime-valid: look as often as you like).
    #[arg(long, default_value = "fixed")]
    mode: String,
    /// Adjust by the same metric before each unit's first exposure (CUPED).
    #[arg(long)]
    cuped: bool,
    /// 1 - the confidence level.
    #[arg(long, default_value_t = 0.05)]
    alpha: f64,
    /// Sequential mode: the total units the test plans for (its interval is narrowest there).
    #[arg(long, default_value_t = 10_000.0)]
    planned_units: f64,
    /// Print the server's JSON instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    target: Target,
}

/// A figure, or `-` when the data cannot give it.
fn figure(v: &Value) -> String {
    v.as_f64().map_or_else(|| "-".into(), |x| format!("{x:.4}"))
}

fn interval(low: &Value, high: &Value) -> String {
    match (low.as_f64(), high.as_f64()) {
        (Some(l), Some(h)) => format!("[{l:.4}, {h:.4}]"),
        _ => "-".into(),
    }
}

fn percent(v: &Value) -> String {
    v.as_f64().map_or_else(|| "-".into(), |x| format!("{:+.2}%", 100.0 * x))
}

/// The analysis as a table and a verdict on the split.
fn describe_analysis(a: &Value) -> String {
    let i = &a["interleaving"];
    if !i.is_null() {
        let level = 100.0 * (1.0 - a["alpha"].as_f64().unwrap_or(0.05));
        return [
            format!(
                "interleaving: '{}' (control) against '{}', clicks on '{}' items within {} of the first exposure",
                text(&i["control"]),
                text(&i["challenger"]),
                text(&a["event"]),
                a["window_ms"].as_i64().map_or_else(String::new, humantime_ms)
            ),
            format!(
                "units with a credited event {}: {} prefer the control, {} the challenger, {} neither",
                i["units"], i["control_wins"], i["challenger_wins"], i["ties"]
            ),
            format!(
                "preference for the challenger {} {} ({} intervals at {level:.0}%){}{}",
                figure(&i["mean"]),
                interval(&i["ci_low"], &i["ci_high"]),
                text(&a["mode"]),
                if i["significant"].as_bool() == Some(true) { " *" } else { "" },
                i["note"].as_str().map_or_else(String::new, |n| format!(" ({n})"))
            ),
        ]
        .join("\n");
    }
    let rows: Vec<Vec<String>> = a["variants"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| {
            let l = &v["lift"];
            let significant = if l["significant"].as_bool() == Some(true) { " *" } else { "" };
            vec![
                format!("{}{}", text(&v["name"]), if v["name"] == a["control"] { " (control)" } else { "" }),
                v["units"].to_string(),
                figure(&v["mean"]),
                interval(&v["ci_low"], &v["ci_high"]),
                if l.is_null() { "-".into() } else { format!("{}{significant}", figure(&l["absolute"])) },
                interval(&l["absolute_ci_low"], &l["absolute_ci_high"]),
                format!("{} {}", percent(&l["relative"]), interval(&l["relative_ci_low"], &l["relative_ci_high"])),
                figure(&l["p_value_adjusted"]),
                v["note"].as_str().or(l["note"].as_str()).unwrap_or("").to_string(),
            ]
        })
        .collect();
    let level = 100.0 * (1.0 - a["alpha"].as_f64().unwrap_or(0.05));
    let mut out = vec![
        format!(
            "{} of '{}' per unit, {} window, {} intervals at {level:.0}%{}",
            text(&a["aggregate"]),
            text(&a["event"]),
            a["window_ms"].as_i64().map_or_else(String::new, humantime_ms),
            text(&a["mode"]),
            if a["cuped"].as_bool() == Some(true) { ", CUPED" } else { "" }
        ),
        table(
            &["VARIANT", "UNITS", "MEAN", "INTERVAL", "LIFT", "LIFT INTERVAL", "RELATIVE", "P (HOLM)", "NOTE"],
            &rows,
        ),
    ];
    out.push(match (a["srm_p_value"].as_f64(), a["srm_mismatch"].as_bool()) {
        (Some(p), Some(true)) => {
            format!("SAMPLE RATIO MISMATCH: p = {p:.2e} against the weights; do not trust the lifts")
        }
        (Some(p), _) => format!("sample ratio: p = {p:.4} against the weights (ok)"),
        (None, _) => "sample ratio: not checked (fewer than two weighted variants)".into(),
    });
    out.join("\n")
}

/// `7d`, `12h`, `30m` or `90s`.
fn humantime_ms(ms: i64) -> String {
    const UNITS: [(i64, &str); 4] = [(86_400_000, "d"), (3_600_000, "h"), (60_000, "m"), (1000, "s")];
    UNITS
        .iter()
        .find(|(size, _)| ms % size == 0)
        .map_or_else(|| format!("{ms}ms"), |(size, unit)| format!("{}{unit}", ms / size))
}

#[derive(Debug, clap::Args)]
pub struct KeyArgs {
    /// The deployment the key calls.
    deployment: String,
    /// What the key is for ("recs-frontend").
    #[arg(long, default_value = "")]
    name: String,
    /// Days until it expires (default: never).
    #[arg(long)]
    expires_days: Option<i64>,
    #[command(flatten)]
    target: Target,
}

#[derive(Debug, clap::Args)]
pub struct SpecArgs {
    name: String,
    /// `<variant>=<model ref>[:<weight>]`, model ref `<model>@<alias>` or `<model>/<version>` (weight default 1).
    #[arg(long = "variant", required = true)]
    variants: Vec<String>,
    /// `<variant>=<model ref>`: gets a copy of every request, never answers. On update, the current shadow is
    /// kept unless this or --no-shadow is given.
    #[arg(long)]
    shadow: Option<String>,
    /// Update only: remove the deployment's shadow.
    #[arg(long, conflicts_with = "shadow")]
    no_shadow: bool,
    /// Hash salt for assignment (create only; default: the name).
    #[arg(long)]
    salt: Option<String>,
    /// split (each unit gets one variant by weight; the default) | interleave (two recommender variants, control
    /// first, rank for every request and their lists are merged by team draft). On update, the current mode is
    /// kept unless this is given.
    #[arg(long)]
    mode: Option<String>,
    /// A JSON file with the deployment's named `metrics` and its `policy` (primary metric, guardrails, minimum
    /// units and duration, ramp, the alias a win moves; see the README). On update, the current ones are kept
    /// unless this or --no-policy is given.
    #[arg(long)]
    experiment: Option<std::path::PathBuf>,
    /// Update only: remove the deployment's policy.
    #[arg(long, conflicts_with = "experiment")]
    no_policy: bool,
    #[command(flatten)]
    target: Target,
}

#[derive(Debug, clap::Args)]
pub struct NameArgs {
    name: String,
    /// Print the server's JSON instead of text (get).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    target: Target,
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Print the server's JSON instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    target: Target,
}

/// `a=recs@champion (v3) ×90`.
fn variant_text(v: &Value) -> String {
    let loaded = v["model_version"].as_i64().map(|n| format!(" (v{n})")).unwrap_or_default();
    let weight = v["weight"].as_u64().map(|w| format!(" ×{w}")).unwrap_or_default();
    format!("{}={}{loaded}{weight}", text(&v["name"]), text(&v["model"]))
}

fn variants_text(d: &Value) -> String {
    d["variants"].as_array().into_iter().flatten().map(variant_text).collect::<Vec<_>>().join(", ")
}

fn describe(d: &Value) -> String {
    let mut lines = vec![
        format!("name      {}", text(&d["name"])),
        format!("state     {}", d["state"].as_str().unwrap_or("READY")),
        format!("salt      {}", text(&d["salt"])),
        format!("mode      {}", d["mode"].as_str().unwrap_or("split")),
        format!("created   {}", time(d["created_time"].as_i64())),
        format!("updated   {}", time(d["updated_time"].as_i64())),
    ];
    for v in d["variants"].as_array().into_iter().flatten() {
        let counters = match (v["requests"].as_u64(), v["errors"].as_u64()) {
            (Some(r), Some(e)) => format!("  requests {r}, errors {e}"),
            _ => String::new(),
        };
        lines.push(format!("variant   {}{counters}", variant_text(v)));
    }
    if !d["shadow"].is_null() {
        lines.push(format!("shadow    {}", variant_text(&d["shadow"])));
    }
    lines.join("\n")
}

/// `a=recs@champion:90` → `{"name": "a", "model": "recs@champion", "weight": 90}`.
fn parse_variant(s: &str, default_weight: u32) -> anyhow::Result<Value> {
    let (name, rest) =
        s.split_once('=').with_context(|| format!("variant '{s}': expected <name>=<model ref>[:<weight>]"))?;
    let (model, weight) = match rest.rsplit_once(':') {
        Some((m, w)) => (m, w.parse::<u32>().with_context(|| format!("variant '{s}': weight '{w}' is not a number"))?),
        None => (rest, default_weight),
    };
    if name.is_empty() || model.is_empty() {
        bail!("variant '{s}': expected <name>=<model ref>[:<weight>]");
    }
    Ok(json!({"name": name, "model": model, "weight": weight}))
}

fn spec(a: &SpecArgs) -> anyhow::Result<Value> {
    let variants = a.variants.iter().map(|v| parse_variant(v, 1)).collect::<anyhow::Result<Vec<_>>>()?;
    let mut body = json!({"name": a.name, "variants": variants});
    if let Some(s) = &a.shadow {
        body["shadow"] = parse_variant(s, 0)?;
    }
    if let Some(salt) = &a.salt {
        body["salt"] = json!(salt);
    }
    if let Some(mode) = &a.mode {
        body["mode"] = json!(mode);
    }
    if let Some(path) = &a.experiment {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        let experiment: Value =
            serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
        for key in ["metrics", "policy"] {
            if let Some(v) = experiment.get(key) {
                body[key] = v.clone();
            }
        }
    }
    Ok(body)
}

/// The policy's state, its guardrails and verdict now, and the decision log.
fn describe_policy(v: &Value) -> String {
    let p = &v["policy"];
    if p.is_null() {
        return "no policy".into();
    }
    let mut out = format!(
        "policy: {} — primary metric {}, {} against {}",
        text(&p["state"]["status"]),
        text(&p["metric"]),
        text(&p["challenger"]),
        text(&p["control"])
    );
    if let (Some(ramp), Some(stage)) = (p["ramp"].as_array(), p["state"]["stage"].as_u64())
        && let Some(share) = ramp.get(stage as usize)
    {
        out += &format!(", ramp stage {} of {} ({share}% to the challenger)", stage + 1, ramp.len());
    }
    let e = &v["evaluation"];
    if !e.is_null() {
        out += &format!(
            "
now: {} — {}",
            text(&e["verdict"]["action"]),
            text(&e["verdict"]["reason"])
        );
        let rows: Vec<Vec<String>> = e["guardrails"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|g| {
                vec![
                    text(&g["label"]),
                    figure(&g["value"]),
                    if g["breached"].as_bool() == Some(true) { "BREACHED".into() } else { "holding".into() },
                    text(&g["note"]),
                ]
            })
            .collect();
        if !rows.is_empty() {
            out += &format!(
                "

{}",
                table(&["GUARDRAIL", "CHALLENGER", "STATE", "NOTE"], &rows)
            );
        }
    }
    let rows: Vec<Vec<String>> = v["decisions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            vec![
                time(d["time"].as_i64()),
                text(&d["action"]).trim_start_matches("policy.").to_string(),
                text(&d["detail"]),
                text(&d["after"]),
            ]
        })
        .collect();
    if rows.is_empty() {
        out += "

no decision yet";
    } else {
        out += &format!(
            "

{}",
            table(&["WHEN", "DECISION", "WHY", "TRAFFIC AFTER"], &rows)
        );
    }
    out
}

async fn call(target: &Target, method: reqwest::Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
    crate::client::call(&target.tracking_uri, method, &format!("/api/2.0/plinth/deployments/{path}"), body).await
}

pub async fn run(cmd: DeployCommand) -> anyhow::Result<()> {
    use reqwest::Method;
    let out = match &cmd {
        DeployCommand::Create(a) => {
            if a.no_shadow || a.no_policy {
                bail!("--no-shadow and --no-policy are for update only");
            }
            call(&a.target, Method::POST, "create", Some(spec(a)?)).await?
        }
        DeployCommand::Update(a) => {
            let mut body = spec(a)?;
            // Keep the shadow and the mode the deployment has: an update names what changes.
            let current = call(&a.target, Method::GET, "get", Some(json!({"name": a.name}))).await?;
            if a.shadow.is_none() && !a.no_shadow {
                let shadow = &current["deployment"]["shadow"];
                if let (Some(name), Some(model)) = (shadow["name"].as_str(), shadow["model"].as_str()) {
                    body["shadow"] = json!({"name": name, "model": model, "weight": 0});
                }
            }
            if a.mode.is_none() {
                body["mode"] = current["deployment"]["mode"].clone();
            }
            // And its metrics and policy (with the policy's progress), unless given or dropped.
            if a.experiment.is_none() && !a.no_policy {
                for key in ["metrics", "policy"] {
                    body[key] = current["deployment"][key].clone();
                }
            } else if a.no_policy {
                body["policy"] = Value::Null;
            }
            call(&a.target, Method::POST, "update", Some(body)).await?
        }
        DeployCommand::Get(a) => {
            let v = call(&a.target, Method::GET, "get", Some(json!({"name": a.name}))).await?;
            if !a.json {
                println!("{}", describe(&v["deployment"]));
                return Ok(());
            }
            v
        }
        DeployCommand::List(a) => {
            let v = call(&a.target, Method::GET, "list", None).await?;
            if !a.json {
                let rows: Vec<Vec<String>> = v["deployments"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|d| {
                        vec![
                            text(&d["name"]),
                            variants_text(d),
                            if d["shadow"].is_null() { "-".into() } else { variant_text(&d["shadow"]) },
                            d["state"].as_str().unwrap_or("READY").to_string(),
                            time(d["updated_time"].as_i64()),
                        ]
                    })
                    .collect();
                println!("{}", table(&["NAME", "VARIANTS", "SHADOW", "STATE", "UPDATED"], &rows));
                return Ok(());
            }
            v
        }
        DeployCommand::Delete(a) => {
            call(&a.target, Method::POST, "delete", Some(json!({"name": a.name}))).await?;
            println!("deleted {}", a.name);
            return Ok(());
        }
        DeployCommand::Analyze(a) => {
            let mut query = json!({"name": a.name, "mode": a.mode, "alpha": a.alpha.to_string(),
                                   "planned_units": a.planned_units.to_string()});
            match (&a.metric, &a.event) {
                (Some(metric), _) => query["metric"] = json!(metric),
                (None, event) => {
                    query["event"] = json!(event);
                    query["aggregate"] = json!(a.aggregate);
                    query["window"] = json!(a.window);
                    query["cuped"] = json!(a.cuped.to_string());
                }
            }
            if let Some(control) = &a.control {
                query["control"] = json!(control);
            }
            let v = call(&a.target, Method::GET, "analysis", Some(query)).await?;
            if !a.json {
                println!("{}", describe_analysis(&v));
                return Ok(());
            }
            v
        }
        DeployCommand::Policy(a) => {
            let v = call(&a.target, Method::GET, "policy", Some(json!({"name": a.name}))).await?;
            if !a.json {
                println!("{}", describe_policy(&v));
                return Ok(());
            }
            v
        }
        DeployCommand::Key(a) => {
            let mut body = json!({"deployment": a.deployment, "name": a.name});
            if let Some(days) = a.expires_days {
                body["expires_in_days"] = json!(days);
            }
            let v = call(&a.target, Method::POST, "keys/create", Some(body)).await?;
            eprintln!("serving key {} for deployment {} (shown once):", text(&v["key"]["id"]), a.deployment);
            println!("{}", text(&v["secret"]));
            return Ok(());
        }
    };
    print_json(&out)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_parse() {
        assert_eq!(
            parse_variant("a=recs@champion:90", 1).unwrap(),
            json!({"name": "a", "model": "recs@champion", "weight": 90})
        );
        assert_eq!(parse_variant("b=recs/3", 1).unwrap()["weight"], 1);
        assert!(parse_variant("recs@champion", 1).is_err());
        assert!(parse_variant("a=recs/3:x", 1).is_err());
        assert!(parse_variant("=recs/3", 1).is_err());
    }
}
