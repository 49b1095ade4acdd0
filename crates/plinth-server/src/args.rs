//! Request arguments as MLflow sends them: a JSON body for POST, PATCH and
//! DELETE, query parameters for GET (repeated keys become lists). Accessors
//! check presence and type and answer with MLflow's messages.

use axum::body::Body;
use axum::extract::{FromRequest, Request};
use axum::http::Method;
use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::state::AppState;

pub struct Args {
    map: Map<String, Value>,
    /// Keys repeated in the query string (their values became lists).
    repeated: Vec<String>,
    /// Size of the body, for limits that MLflow states in bytes.
    pub body_len: usize,
}

impl FromRequest<AppState> for Args {
    type Rejection = ApiError;

    async fn from_request(req: Request<Body>, state: &AppState) -> Result<Self, ApiError> {
        let mut map = Map::new();
        let mut repeated = Vec::new();
        if let Some(q) = req.uri().query() {
            let pairs: Vec<(String, String)> = serde_urlencoded::from_str(q)
                .map_err(|e| ApiError::bad_request(format!("Malformed query string: {e}")))?;
            for (k, v) in pairs {
                match map.get_mut(&k) {
                    Some(Value::Array(items)) => items.push(Value::String(v)),
                    Some(prev) => {
                        let first = prev.take();
                        *prev = Value::Array(vec![first, Value::String(v)]);
                        repeated.push(k);
                    }
                    None => {
                        map.insert(k, Value::String(v));
                    }
                }
            }
        }
        let mut body_len = 0;
        if req.method() != Method::GET && req.method() != Method::HEAD {
            let limit = state.config.max_request_bytes;
            if declared_over(req.headers(), limit) {
                return Err(ApiError::too_large(limit));
            }
            let bytes = axum::body::to_bytes(req.into_body(), limit).await.map_err(|_| ApiError::too_large(limit))?;
            body_len = bytes.len();
            if !bytes.iter().all(|b| b.is_ascii_whitespace()) {
                let value: Value = serde_json::from_slice(&bytes)
                    .map_err(|e| ApiError::bad_request(format!("Malformed JSON request body: {e}")))?;
                match value {
                    Value::Object(obj) => map.extend(obj),
                    _ => return Err(ApiError::bad_request("The request body must be a JSON object")),
                }
            }
        }
        Ok(Args { map, repeated, body_len })
    }
}

/// A body whose declared `Content-Length` is over `limit`: refused before a
/// byte of it is read (streamed bodies are bounded while they are read).
pub fn declared_over(headers: &axum::http::HeaderMap, limit: usize) -> bool {
    headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        .is_some_and(|n| n > limit as u64)
}

/// MLflow's message for a value of the wrong JSON type (its
/// `_validate_param_against_schema`), naming Python's type as MLflow does.
fn type_error(key: &str, value: &Value) -> ApiError {
    let py_type = match value {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    };
    ApiError::invalid(format!(
        "Invalid value {value} for parameter '{key}' supplied:  Hint: Value was of type '{py_type}'. See the API docs \
         for more information about request parameters."
    ))
}

impl Args {
    pub fn from_map(map: Map<String, Value>) -> Self {
        Args { map, repeated: Vec::new(), body_len: 0 }
    }

    /// All arguments as one JSON object.
    pub fn into_value(self) -> Value {
        Value::Object(self.map)
    }

    fn get(&self, key: &str) -> Option<&Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    /// A value as sent, for shapes no accessor reads.
    pub fn raw(&self, key: &str) -> Option<&Value> {
        self.map.get(key)
    }

    pub fn opt_str(&self, key: &str) -> Result<Option<String>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            // Query parameters that repeat arrive as lists; take the last.
            Some(Value::Array(items)) if self.repeated.iter().any(|k| k == key) => match items.last() {
                Some(Value::String(s)) => Ok(Some(s.clone())),
                _ => Err(type_error(key, &Value::Array(items.clone()))),
            },
            // Protobuf JSON takes only strings for string fields.
            Some(other) => Err(type_error(key, other)),
        }
    }

    pub fn req_str(&self, key: &str) -> Result<String, ApiError> {
        match self.opt_str(key)? {
            Some(s) if !s.is_empty() => Ok(s),
            _ => Err(ApiError::invalid(format!("Missing value for required parameter '{key}'."))),
        }
    }

    /// A required value that may legitimately be empty (tag values).
    pub fn req_str_allow_empty(&self, key: &str) -> Result<String, ApiError> {
        self.opt_str(key)?.ok_or_else(|| ApiError::invalid(format!("Missing value for required parameter '{key}'.")))
    }

    /// int64: protobuf JSON allows numbers or decimal strings.
    pub fn opt_i64(&self, key: &str) -> Result<Option<i64>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => value_i64(v).map(Some).ok_or_else(|| type_error(key, v)),
        }
    }

    pub fn req_i64(&self, key: &str) -> Result<i64, ApiError> {
        self.opt_i64(key)?.ok_or_else(|| ApiError::invalid(format!("Missing value for required parameter '{key}'.")))
    }

    /// double: numbers, or "NaN", "Infinity", "-Infinity".
    pub fn req_f64(&self, key: &str) -> Result<f64, ApiError> {
        match self.get(key) {
            None => Err(ApiError::invalid(format!("Missing value for required parameter '{key}'."))),
            Some(v) => value_f64(v).ok_or_else(|| type_error(key, v)),
        }
    }

    pub fn opt_f64(&self, key: &str) -> Result<Option<f64>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => value_f64(v).map(Some).ok_or_else(|| type_error(key, v)),
        }
    }

    pub fn opt_bool(&self, key: &str) -> Result<Option<bool>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(other) => Err(type_error(key, other)),
        }
    }

    /// A list of strings; a single string counts as a list of one.
    pub fn str_list(&self, key: &str) -> Result<Vec<String>, ApiError> {
        match self.get(key) {
            None => Ok(Vec::new()),
            Some(Value::String(s)) => Ok(vec![s.clone()]),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(type_error(key, other)),
                })
                .collect(),
            Some(other) => Err(type_error(key, other)),
        }
    }

    /// A list of JSON objects (tags, metrics, datasets...).
    pub fn objects(&self, key: &str) -> Result<Vec<Args>, ApiError> {
        match self.get(key) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::Object(o) => Ok(Args::from_map(o.clone())),
                    other => Err(type_error(key, other)),
                })
                .collect(),
            Some(other) => Err(type_error(key, other)),
        }
    }

    /// [`Args::objects`], moving them out rather than copying (a log-batch
    /// carries up to 1,000 metrics).
    pub fn take_objects(&mut self, key: &str) -> Result<Vec<Args>, ApiError> {
        match self.map.remove(key).filter(|v| !v.is_null()) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .into_iter()
                .map(|v| match v {
                    Value::Object(o) => Ok(Args::from_map(o)),
                    other => Err(type_error(key, &other)),
                })
                .collect(),
            Some(other) => Err(type_error(key, &other)),
        }
    }

    pub fn object(&self, key: &str) -> Result<Option<Args>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Object(o)) => Ok(Some(Args::from_map(o.clone()))),
            Some(other) => Err(type_error(key, other)),
        }
    }
}

pub fn value_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => {
            n.as_i64().or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9.2e18).map(|f| f as i64))
        }
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

pub use plinth_mlflow::double::from_value as value_f64;

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: Value) -> Args {
        match v {
            Value::Object(o) => Args::from_map(o),
            _ => Args::from_map(Map::new()),
        }
    }

    #[test]
    fn take_objects_moves_what_objects_copies() {
        let body = serde_json::json!({"metrics": [{"key": "a"}, {"key": "b"}], "none": null, "bad": [1], "str": "x"});
        let keys = |v: Vec<Args>| v.iter().map(|a| a.req_str("key").unwrap_or_default()).collect::<Vec<_>>();
        let mut a = args(body);
        assert_eq!(keys(a.objects("metrics").unwrap()), keys(a.take_objects("metrics").unwrap()));
        assert!(a.take_objects("metrics").unwrap().is_empty(), "taken");
        assert!(a.take_objects("none").unwrap().is_empty());
        for key in ["bad", "str"] {
            let copied = a.objects(key).err().map(|e| e.message().to_string());
            assert_eq!(copied, a.take_objects(key).err().map(|e| e.message().to_string()), "{key}");
        }
    }
}
