//! Identifiers and clocks.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, as MLflow timestamps are.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// A new run id: 32 lowercase hex characters, as MLflow's.
pub fn new_run_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// A new logged-model id: `m-` followed by 32 hex characters, as MLflow 3's.
pub fn new_logged_model_id() -> String {
    format!("m-{}", uuid::Uuid::new_v4().simple())
}

/// Whether `s` looks like an id we minted (hex, optional `m-` prefix). Used to
/// reject ids that could never exist before touching storage.
pub fn is_plausible_id(s: &str) -> bool {
    let hex = s.strip_prefix("m-").unwrap_or(s);
    !hex.is_empty() && hex.len() <= 64 && hex.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_mlflow_shape() {
        let r = new_run_id();
        assert_eq!(r.len(), 32);
        assert!(r.bytes().all(|b| b.is_ascii_hexdigit()));
        let m = new_logged_model_id();
        assert!(m.starts_with("m-") && m.len() == 34);
        assert!(is_plausible_id(&r) && is_plausible_id(&m));
        assert!(!is_plausible_id("../etc"));
    }
}
