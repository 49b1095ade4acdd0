//! Identifiers and clocks.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, as MLflow timestamps are.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Milliseconds since the epoch as UTC (year, month, day, hour, minute,
/// second), by Howard Hinnant's civil-from-days algorithm.
pub fn utc(ms: i64) -> (i64, i64, i64, i64, i64, i64) {
    let secs = ms.div_euclid(1000);
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day, rest / 3600, rest % 3600 / 60, rest % 60)
}

/// A new run id: 32 lowercase hex characters, as MLflow's.
/// A request's id when the client sent none: this process's random prefix
/// and a counter (`3f9a1c2e-42`), unique across replicas without a syscall
/// per request.
pub fn new_request_id() -> String {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static PREFIX: OnceLock<String> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let prefix = PREFIX.get_or_init(|| uuid::Uuid::new_v4().simple().to_string()[..12].to_string());
    format!("{prefix}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Whether a client's `X-Request-Id` is kept as given: 1 to 128 of
/// `A-Z a-z 0-9 . _ : -` (anything else is replaced, so no log or record
/// carries a client's control characters).
pub fn is_acceptable_request_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
}

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
