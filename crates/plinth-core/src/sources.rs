//! Which model-version sources may be registered? MLflow's server rules
//! (`mlflow/server/handlers.py`: `_validate_source_run`,
//! `_validate_source_model`, `_validate_non_local_source_contains_relative_paths`
//! and the host policy of `store/artifact/host_policy.py`), stated once as
//! pure functions; the engine supplies the run and logged-model lookups.
//! Every refusal is `INVALID_PARAMETER_VALUE` with MLflow's wording.

use crate::{Error, Result};

/// Schemes whose URIs name a host the server would connect to.
const HOST_ADDRESSED: &[&str] =
    &["ftp", "sftp", "hdfs", "viewfs", "http", "https", "mlflow-artifacts", "r2", "b2", "abfss"];

/// A URI split the way Python's `urlsplit` does (scheme, authority, path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uri<'a> {
    pub scheme: String,
    pub netloc: &'a str,
    pub path: &'a str,
}

pub fn split(uri: &str) -> Uri<'_> {
    let (scheme, rest) = match uri.split_once(':') {
        Some((s, rest))
            if s.len() > 1
                && s.starts_with(|c: char| c.is_ascii_alphabetic())
                && s.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) =>
        {
            (s.to_ascii_lowercase(), rest)
        }
        _ => (String::new(), uri),
    };
    let rest = rest.split(['?', '#']).next().unwrap_or(rest);
    let (netloc, path) = match rest.strip_prefix("//") {
        Some(after) => match after.find('/') {
            Some(i) => (&after[..i], &after[i..]),
            None => (after, ""),
        },
        None => ("", rest),
    };
    Uri { scheme, netloc, path }
}

/// `%XX` and `+` decoded once (Python's `unquote_plus`); invalid escapes stay.
fn unquote_plus(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn fully_unquoted(s: &str) -> String {
    let mut cur = s.to_string();
    for _ in 0..16 {
        let next = unquote_plus(&cur);
        if next == cur {
            break;
        }
        cur = next;
    }
    cur
}

/// A local path or `file:` URI (no other scheme).
pub fn is_local(uri: &str) -> bool {
    let u = split(uri);
    u.scheme.is_empty() || (u.scheme == "file" && matches!(u.netloc, "" | "localhost" | "127.0.0.1"))
}

/// The scheme of a URI that would make the server connect to another host.
pub fn host_addressed_scheme(uri: &str) -> Option<String> {
    let u = split(uri);
    if !HOST_ADDRESSED.contains(&u.scheme.as_str()) || (u.scheme == "mlflow-artifacts" && u.netloc.is_empty()) {
        return None;
    }
    Some(u.scheme)
}

pub fn invalid_source(source: &str, id_name: &str) -> Error {
    Error::invalid(format!(
        "Invalid model version source: '{source}'. The {id_name} request parameter must identify the resource that \
         contains the source."
    ))
}

/// MLflow's check that a non-local source has no relative parts, NUL bytes
/// or encoded traversal (`..%2f`), however many times it is encoded.
pub fn check_no_relative_paths(source: &str) -> Result<()> {
    let refuse = || {
        Error::invalid(format!(
            "Invalid model version source: '{source}'. If supplying a source as an http, https, local file path, ftp, \
             objectstore, or mlflow-artifacts uri, an absolute path must be provided without relative path \
             references present. Please provide an absolute path."
        ))
    };
    let decoded = fully_unquoted(source);
    let raw_path = split(&decoded).path.to_string();
    let mut path = String::with_capacity(raw_path.len());
    for c in raw_path.chars() {
        if !(c == '/' && path.ends_with('/')) {
            path.push(c);
        }
    }
    let path = path.trim_end_matches('/');
    if path.contains('\0') || decoded.split('/').any(|p| p == "..") {
        return Err(refuse());
    }
    // Python resolves the path: a relative or empty one becomes the working
    // directory, a `.` part disappears; either way it differs and is refused.
    if !path.starts_with('/') || path.split('/').any(|p| p == ".") {
        return Err(refuse());
    }
    Ok(())
}

fn parts(uri: &str) -> (String, String, Vec<String>) {
    let u = split(uri);
    let parts = u.path.split('/').filter(|p| !p.is_empty()).map(fully_unquoted_once_per_part).collect();
    (u.scheme, u.netloc.to_ascii_lowercase(), parts)
}

fn fully_unquoted_once_per_part(p: &str) -> String {
    // MLflow's `_iteratively_unquote` uses `unquote` (no `+`).
    let mut cur = p.to_string();
    for _ in 0..16 {
        let next = unquote_plus(&cur.replace('+', "%2B"));
        if next == cur {
            break;
        }
        cur = next;
    }
    cur
}

/// `source` lies under `root`: same scheme and authority, `root`'s path a
/// prefix of `source`'s (part by part, decoded).
pub fn within_root(source: &str, root: &str) -> bool {
    let (ss, sa, sp) = parts(source);
    let (rs, ra, rp) = parts(root);
    ss == rs && sa == ra && !rp.is_empty() && sp.len() >= rp.len() && sp[..rp.len()] == rp[..]
}

/// `http(s)://…/api/2.0/mlflow-artifacts/artifacts/…` or `mlflow-artifacts:`.
pub fn is_mlflow_artifact_source(source: &str) -> bool {
    let (scheme, _, p) = parts(source);
    if scheme == "mlflow-artifacts" {
        return true;
    }
    let route = ["api", "2.0", "mlflow-artifacts", "artifacts"];
    (scheme == "http" || scheme == "https") && p.windows(route.len()).any(|w| w.iter().zip(route).all(|(a, b)| a == b))
}

/// A local path's lexical normal form (no filesystem access): absolute,
/// `.` and `..` folded.
pub fn normalize_local(uri: &str) -> String {
    let u = split(uri);
    let path = if u.scheme == "file" { u.path } else { uri };
    let mut out: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    format!("/{}", out.join("/"))
}

/// A local source is allowed only inside the resource's own local
/// artifact directory.
pub fn local_within(source: &str, root: &str) -> bool {
    if !is_local(root) {
        return false;
    }
    let (s, r) = (normalize_local(source), normalize_local(root));
    r != "/" && (s == r || s.starts_with(&format!("{r}/")))
}

pub fn local_refusal(source: &str, id_name: &str) -> Error {
    let resource = if id_name == "model_id" { "model_id" } else { "run_id" };
    Error::invalid(format!(
        "Invalid model version source: '{source}'. To use a local path as a model version source, the {resource} \
         request parameter has to be specified and the local path has to be contained within the artifact directory \
         of the run specified by the {resource}."
    ))
}

pub fn host_refusal(scheme: &str) -> Error {
    Error::invalid(format!(
        "'source' cannot use the '{scheme}' scheme: the '{scheme}' scheme addresses a host other than the tracking \
         server's configured artifact storage, so the server would connect to the host named in the URI."
    ))
}

/// `models:/<model_id>` (one part, no alias): the logged model's id.
pub fn models_uri_model_id(source: &str) -> Option<String> {
    let u = split(source);
    if u.scheme != "models" {
        return None;
    }
    let rest = u.path.trim_start_matches('/').trim_end_matches('/');
    (!rest.is_empty() && !rest.contains('/') && !rest.contains('@')).then(|| rest.to_string())
}

/// `runs:/<run_id>/<path>`: the run id.
pub fn runs_uri_run_id(source: &str) -> Option<String> {
    let u = split(source);
    if u.scheme != "runs" {
        return None;
    }
    u.path.trim_start_matches('/').split('/').next().filter(|s| !s.is_empty()).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_and_encoded_traversal_is_refused() {
        for bad in [
            "runs:/abc/../../../etc",
            "mlflow-artifacts:/1/run/..%2f..%2fetc",
            "mlflow-artifacts:/1/run/%252e%252e/x",
            "s3://bucket/models/path/../../other",
            "s3://bucket",
            "http://host/api/2.0/mlflow-artifacts/artifacts%00",
            "runs:abc/model",
            "s3://bucket/a/./b",
        ] {
            assert!(check_no_relative_paths(bad).is_err(), "{bad}");
        }
        for ok in ["runs:/abc/model", "s3://bucket/models/m", "models:/m-123", "mlflow-artifacts:/1/r/artifacts/m"] {
            assert!(check_no_relative_paths(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn locality_and_hosts() {
        assert!(is_local("/etc/passwd"));
        assert!(is_local("file:///etc/passwd"));
        assert!(is_local("relative/dir"));
        assert!(!is_local("s3://b/k"));
        assert!(!is_local("runs:/x/y"));
        assert_eq!(host_addressed_scheme("http://evil/x").as_deref(), Some("http"));
        assert_eq!(host_addressed_scheme("mlflow-artifacts://h:5000/x").as_deref(), Some("mlflow-artifacts"));
        assert_eq!(host_addressed_scheme("mlflow-artifacts:/1/x"), None);
        assert_eq!(host_addressed_scheme("s3://b/k"), None);
    }

    #[test]
    fn roots() {
        assert!(within_root("mlflow-artifacts:/1/r/artifacts/model", "mlflow-artifacts:/1/r/artifacts"));
        assert!(!within_root("mlflow-artifacts:/1/other/artifacts/model", "mlflow-artifacts:/1/r/artifacts"));
        assert!(!within_root("mlflow-artifacts:/1/r", "mlflow-artifacts:/1/r/artifacts"));
        assert!(local_within("/data/1/r/model", "file:///data/1/r"));
        assert!(!local_within("/data/1/r/../../etc", "/data/1/r"));
        assert!(!local_within("/data/1/rx", "/data/1/r"));
        assert_eq!(models_uri_model_id("models:/m-12").as_deref(), Some("m-12"));
        assert_eq!(models_uri_model_id("models:/name/3"), None);
        assert_eq!(runs_uri_run_id("runs:/abc/model").as_deref(), Some("abc"));
    }
}
