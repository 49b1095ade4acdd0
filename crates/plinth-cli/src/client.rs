//! The CLI's REST client of a running server: one call, errors as
//! `ERROR_CODE: message`, and plain tables for people (`--json` for scripts).

use anyhow::{Context, bail};
use serde_json::Value;

#[derive(Debug, Clone, clap::Args)]
pub struct Target {
    /// The Plinth server.
    #[arg(long, env = "PLINTH_TRACKING_URI", default_value = "http://127.0.0.1:5000")]
    pub tracking_uri: String,
}

/// `path` from the server's root (`/api/2.0/mlflow/...`); a GET body becomes
/// the query string.
pub async fn call(base: &str, method: reqwest::Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
    let http = http_client(std::time::Duration::from_secs(120))?;
    let url = format!("{}{path}", base.trim_end_matches('/'));
    let req = match body {
        Some(b) if method == reqwest::Method::GET => http.get(&url).query(
            &b.as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())))
                .collect::<Vec<_>>(),
        ),
        Some(b) => http.request(method, &url).json(&b),
        None => http.request(method, &url),
    };
    let resp = req.send().await.with_context(|| format!("cannot reach {url}"))?;
    let status = resp.status();
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("{}: {}", v["error_code"].as_str().unwrap_or("ERROR"), v["message"].as_str().unwrap_or("request failed"));
    }
    Ok(v)
}

/// Columns padded to their widest cell.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| -> String {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        padded.join("  ").trim_end().to_string()
    };
    let mut out = line(header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        out.push('\n');
        out.push_str(&line(row.clone()));
    }
    out
}

/// Milliseconds since the epoch as `YYYY-MM-DD HH:MM` (UTC); `-` for none.
pub fn time(ms: Option<i64>) -> String {
    let Some(ms) = ms.filter(|m| *m > 0) else { return "-".into() };
    let (year, month, day, h, m, _) = plinth_core::ids::utc(ms);
    format!("{year:04}-{month:02}-{day:02} {h:02}:{m:02}")
}

/// The server's JSON, pretty, for `--json`.
pub fn print_json(v: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

pub fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The credential a server with `--auth` wants, from the environment as the
/// `mlflow` client reads it: `PLINTH_TOKEN` or `MLFLOW_TRACKING_TOKEN` (a
/// bearer token), else `MLFLOW_TRACKING_USERNAME` and
/// `MLFLOW_TRACKING_PASSWORD` (HTTP basic); none when none is set.
pub fn credential_header() -> Option<reqwest::header::HeaderValue> {
    use base64::Engine;
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let text = match (var("PLINTH_TOKEN").or_else(|| var("MLFLOW_TRACKING_TOKEN")), var("MLFLOW_TRACKING_USERNAME")) {
        (Some(token), _) => format!("Bearer {token}"),
        (None, Some(user)) => {
            let password = var("MLFLOW_TRACKING_PASSWORD").unwrap_or_default();
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
        }
        (None, None) => return None,
    };
    let mut value = reqwest::header::HeaderValue::from_str(&text).ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// An HTTP client that sends [`credential_header`] with every request.
pub fn http_client(timeout: std::time::Duration) -> anyhow::Result<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(v) = credential_header() {
        headers.insert(reqwest::header::AUTHORIZATION, v);
    }
    Ok(reqwest::Client::builder().timeout(timeout).default_headers(headers).build()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_and_times() {
        let t = table(&["a", "bb"], &[vec!["xxx".into(), "y".into()]]);
        assert_eq!(t, "a    bb\nxxx  y");
        assert_eq!(time(Some(0)), "-");
        assert_eq!(time(Some(86_400_000 + 3_600_000)), "1970-01-02 01:00");
    }
}
