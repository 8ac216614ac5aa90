//! Retry delays with full jitter, so replicas retrying the same outage spread out.

use std::time::Duration;

use rand::Rng;

/// A random delay up to `base · 2^(failures-1)`, capped at 10 minutes, and never below a tenth
/// of that ceiling (so a retry storm cannot form at zero delay).
pub fn full_jitter(base: Duration, failures: i32) -> Duration {
    let doublings = u32::try_from((failures - 1).clamp(0, 20)).unwrap_or(0);
    let ceiling = base.saturating_mul(2u32.saturating_pow(doublings)).min(Duration::from_secs(600));
    let ceiling_ms = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX).max(1);
    Duration::from_millis(rand::thread_rng().gen_range(ceiling_ms / 10..=ceiling_ms))
}

/// Successive [`full_jitter`] delays for one retry loop, each at most `cap`.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    failures: i32,
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration) -> Self {
        Backoff { base, cap, failures: 0 }
    }

    /// The pause before the next attempt; it grows with every call.
    pub fn next_delay(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        full_jitter(self.base, self.failures).min(self.cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_are_jittered_and_capped() {
        let base = Duration::from_secs(2);
        assert!(full_jitter(base, 1) <= base);
        for n in 1..40 {
            let d = full_jitter(base, n);
            assert!(d <= Duration::from_secs(600), "{n}: {d:?}");
            assert!(d >= Duration::from_millis(200), "{n}: {d:?}");
        }
        let samples: std::collections::HashSet<_> = (0..20).map(|_| full_jitter(base, 5)).collect();
        assert!(samples.len() > 1, "jittered");
    }
}
