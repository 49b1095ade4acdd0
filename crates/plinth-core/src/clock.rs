//! Where "now" comes from. Production reads the system clock; tests pass a
//! [`ManualClock`] to the store, the platform and serving, so time-dependent
//! behaviour (timestamps, per-minute counters, windows) is exact.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// Milliseconds since the Unix epoch.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now_ms(&self) -> i64;
}

pub type SharedClock = Arc<dyn Clock>;

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        crate::ids::now_ms()
    }
}

/// The system clock, shared.
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

/// A clock that moves only when told to.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn at(ms: i64) -> Arc<ManualClock> {
        Arc::new(ManualClock(AtomicI64::new(ms)))
    }
    pub fn set(&self, ms: i64) {
        self.0.store(ms, Ordering::SeqCst);
    }
    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_time_moves_when_told() {
        let clock = ManualClock::at(1_000);
        let shared: SharedClock = clock.clone();
        assert_eq!(shared.now_ms(), 1_000);
        clock.advance(59_999);
        assert_eq!(shared.now_ms(), 60_999);
        clock.set(5);
        assert_eq!(shared.now_ms(), 5);
        assert!(system().now_ms() > 1_700_000_000_000);
    }
}
