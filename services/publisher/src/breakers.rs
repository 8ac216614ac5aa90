//! One circuit breaker per platform, per replica (the refresher's, from `lifeline_kit::breaker`):
//! while a platform fails broadly its due posts are held instead of called, and one trial call
//! decides when it is back.

use std::{
    collections::HashMap,
    sync::{Mutex, MutexGuard},
};

use chrono::{DateTime, Utc};
use lifeline_kit::{
    breaker::{Admit, Breaker, BreakerConfig},
    Platform,
};
use tokio::time::Instant;

/// What the sweep may do with a platform's due posts now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Leasing {
    /// Lease as many as the batch allows.
    Open,
    /// Lease one: its call is the trial that decides whether the breaker closes.
    Trial,
    /// Lease none, and push the due ones back to the breaker's next trial.
    HoldUntil(DateTime<Utc>),
    /// Lease none: a trial call is out and will decide.
    Wait,
}

pub(crate) struct Breakers {
    breakers: HashMap<Platform, Mutex<Breaker>>,
}

fn lock(m: &Mutex<Breaker>) -> MutexGuard<'_, Breaker> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// An instant of the breaker's clock as a time to write in the database.
pub(crate) fn wall_time(at: Instant) -> DateTime<Utc> {
    let wait = at.saturating_duration_since(Instant::now());
    Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default()
}

impl Breakers {
    pub fn new(config: BreakerConfig) -> Self {
        let breakers =
            Platform::ALL.iter().map(|p| (*p, Mutex::new(Breaker::new(config)))).collect();
        Breakers { breakers }
    }

    fn get(&self, platform: Platform) -> &Mutex<Breaker> {
        &self.breakers[&platform]
    }

    pub fn leasing(&self, platform: Platform) -> Leasing {
        let now = Instant::now();
        let breaker = lock(self.get(platform));
        match (breaker.lease_allowance(now), breaker.trial_at(now)) {
            (None, _) => Leasing::Open,
            (Some(n), _) if n > 0 => Leasing::Trial,
            (Some(_), Some(at)) => Leasing::HoldUntil(wall_time(at)),
            (Some(_), None) => Leasing::Wait,
        }
    }

    /// Asks to call the platform now.
    pub fn admit(&self, platform: Platform) -> Admit {
        lock(self.get(platform)).admit(Instant::now())
    }

    /// Records how an admitted call went: `failed` when the platform failed (5xx, network,
    /// timeout), not when it refused a token or content or asked to slow down.
    pub fn record(&self, platform: Platform, admitted: Admit, failed: bool) {
        let now = Instant::now();
        let mut breaker = lock(self.get(platform));
        let before = breaker.gauge(now);
        breaker.record(admitted, failed, now);
        let after = breaker.gauge(now);
        drop(breaker);
        if after != before {
            match after {
                g if g >= 2.0 => {
                    tracing::warn!(%platform, "circuit breaker open: the platform is failing broadly; its posts are held")
                }
                g if g >= 1.0 => tracing::info!(%platform, "circuit breaker half-open"),
                _ => {
                    tracing::info!(%platform, "circuit breaker closed: the platform answers again")
                }
            }
            self.publish_gauge(platform);
        }
    }

    /// Counts calls not made because the platform's breaker was open.
    pub fn skipped(platform: Platform, posts: u64) {
        metrics::counter!("lifeline_publish_breaker_skipped_total", "platform" => platform.as_str())
            .increment(posts);
    }

    fn publish_gauge(&self, platform: Platform) {
        let gauge = lock(self.get(platform)).gauge(Instant::now());
        metrics::gauge!("lifeline_publish_breaker_state", "platform" => platform.as_str())
            .set(gauge);
    }

    /// Sets every platform's `lifeline_publish_breaker_state` (each sweep).
    pub fn publish_gauges(&self) {
        for platform in Platform::ALL {
            self.publish_gauge(platform);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_failing_platform_is_held_then_tried_once_while_others_lease() {
        let breakers = Breakers::new(BreakerConfig {
            window: 20,
            min_calls: 3,
            failure_ratio: 0.5,
            cooldown: Duration::from_millis(50),
            max_cooldown: Duration::from_secs(1),
        });
        for _ in 0..3 {
            let a = breakers.admit(Platform::X);
            breakers.record(Platform::X, a, true);
        }
        let held = breakers.leasing(Platform::X);
        assert!(
            matches!(held, Leasing::HoldUntil(at) if at > Utc::now() && at <= Utc::now() + chrono::Duration::milliseconds(60)),
            "{held:?}"
        );
        assert!(matches!(breakers.admit(Platform::X), Admit::Defer(_)));
        assert_eq!(breakers.leasing(Platform::LinkedIn), Leasing::Open);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(breakers.leasing(Platform::X), Leasing::Trial);
        assert_eq!(breakers.admit(Platform::X), Admit::Trial);
        assert_eq!(breakers.leasing(Platform::X), Leasing::Wait);
        breakers.record(Platform::X, Admit::Trial, false);
        assert_eq!(breakers.leasing(Platform::X), Leasing::Open);
    }
}
