//! The scaled clock: platform lifetimes are written in platform time and run
//! `time_scale` times faster in real time, so a 60-day lifecycle fits in a test.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Converts platform durations to real ones. All expiry checks use real
/// `Instant`s; only the lifetimes are scaled.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    time_scale: f64,
}

impl Clock {
    /// `time_scale` must be finite and > 0 (checked by `SimConfig`).
    pub fn new(time_scale: f64) -> Self {
        Self { time_scale }
    }

    pub fn time_scale(&self) -> f64 {
        self.time_scale
    }

    pub fn now(&self) -> Instant {
        Instant::now()
    }

    /// Real duration of a platform duration.
    pub fn real(&self, platform: Duration) -> Duration {
        Duration::from_secs_f64(platform.as_secs_f64() / self.time_scale)
    }

    /// `real(platform)` but never shorter than `floor`: some lifetimes (an
    /// authorization code) must survive a human or a slow CI machine.
    pub fn real_at_least(&self, platform: Duration, floor: Duration) -> Duration {
        self.real(platform).max(floor)
    }

    /// The `expires_in` a token response reports, in real seconds, rounded up
    /// and at least 1, so clients need no knowledge of the scale. Token expiry
    /// is set from this same value, so what the client is told is exact.
    pub fn wire_expires_in(&self, platform: Duration) -> u64 {
        let secs = self.real(platform).as_secs_f64().ceil();
        // `as` saturates for huge values, which is what we want here.
        (secs as u64).max(1)
    }

    /// Wall-clock epoch seconds of a real instant (for `x-rate-limit-reset`).
    pub fn epoch_secs(&self, at: Instant) -> u64 {
        let now_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let delta = at.saturating_duration_since(Instant::now());
        (now_epoch + delta).as_secs_f64().ceil() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_hours_at_720_is_ten_seconds() {
        assert_eq!(Clock::new(720.0).wire_expires_in(Duration::from_secs(7200)), 10);
    }

    #[test]
    fn wire_expiry_rounds_up_and_is_at_least_one() {
        assert_eq!(Clock::new(7000.0).wire_expires_in(Duration::from_secs(7200)), 2);
        assert_eq!(Clock::new(1e9).wire_expires_in(Duration::from_secs(7200)), 1);
        assert_eq!(Clock::new(1.0).wire_expires_in(Duration::from_secs(7200)), 7200);
    }

    #[test]
    fn floor_applies() {
        let c = Clock::new(1000.0);
        assert_eq!(
            c.real_at_least(Duration::from_secs(30), Duration::from_secs(5)),
            Duration::from_secs(5)
        );
    }
}
