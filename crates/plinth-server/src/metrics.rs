//! Prometheus metrics: one process-wide recorder, rendered at `/metrics`.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Latency buckets (seconds): 50 µs to 10 s.
const BUCKETS: &[f64] =
    &[0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// Installs the recorder once per process (tests start many servers).
pub fn install() {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new().set_buckets(BUCKETS).ok()?.build_recorder();
        let handle = recorder.handle();
        match metrics::set_global_recorder(recorder) {
            Ok(()) => Some(handle),
            Err(e) => {
                tracing::warn!(error = %e, "a metrics recorder is already installed; /metrics stays empty");
                None
            }
        }
    });
}

/// The Prometheus text exposition of everything recorded so far.
pub fn render() -> String {
    HANDLE.get().and_then(|h| h.as_ref()).map(|h| h.render()).unwrap_or_default()
}
