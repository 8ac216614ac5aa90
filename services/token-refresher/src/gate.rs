//! What stands between the refresher and one platform: a concurrency limit, a rate limit and a
//! circuit breaker. Each replica has its own gates; the limits are per replica.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex, MutexGuard,
    },
    time::Duration,
};

pub use lifeline_kit::breaker::{Admit, Breaker, BreakerConfig};
use lifeline_kit::Platform;
use tokio::{
    sync::{OwnedSemaphorePermit, Semaphore},
    time::Instant,
};

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Platform calls in flight at once.
    pub concurrency: usize,
    /// Platform calls started per second (0 = no limit).
    pub rate: f64,
}

/// Token bucket: `rate` calls per second, bursts of up to one second's worth.
#[derive(Debug)]
struct Bucket {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    /// Takes a token, returning how long to wait before using it.
    fn take(&mut self, now: Instant) -> Duration {
        if self.rate <= 0.0 {
            return Duration::ZERO;
        }
        let burst = self.rate.max(1.0);
        self.tokens =
            (self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate).min(burst);
        self.last = now;
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub struct Gate {
    pub platform: Platform,
    pub limits: Limits,
    permits: Arc<Semaphore>,
    bucket: Mutex<Bucket>,
    breaker: Mutex<Breaker>,
    /// Rows leased by this replica and not yet settled.
    leased: AtomicUsize,
}

impl Gate {
    pub fn new(platform: Platform, limits: Limits, breaker: BreakerConfig) -> Self {
        Gate {
            platform,
            limits,
            permits: Arc::new(Semaphore::new(limits.concurrency)),
            bucket: Mutex::new(Bucket {
                rate: limits.rate,
                tokens: limits.rate.max(1.0),
                last: Instant::now(),
            }),
            breaker: Mutex::new(Breaker::new(breaker)),
            leased: AtomicUsize::new(0),
        }
    }

    /// How many more rows to lease now: enough to keep every permit busy twice over, fewer while
    /// the breaker is open or half-open.
    pub fn lease_room(&self, batch: usize) -> usize {
        let held = self.leased.load(Ordering::Relaxed);
        let room = (self.limits.concurrency * 2).saturating_sub(held).min(batch);
        match lock(&self.breaker).lease_allowance(Instant::now()) {
            None => room,
            Some(n) => room.min(n.saturating_sub(held)),
        }
    }

    pub fn leased(&self, n: usize) {
        self.leased.fetch_add(n, Ordering::Relaxed);
    }

    pub fn settled(&self) {
        self.leased.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn admit(&self) -> Admit {
        lock(&self.breaker).admit(Instant::now())
    }

    /// Waits for a concurrency permit and the rate limit.
    pub async fn enter(&self) -> OwnedSemaphorePermit {
        let permit =
            self.permits.clone().acquire_owned().await.expect("the semaphore is never closed");
        let wait = lock(&self.bucket).take(Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        permit
    }

    pub fn record(&self, admitted: Admit, failed: bool, pause: Option<Duration>) {
        let now = Instant::now();
        let mut breaker = lock(&self.breaker);
        let before = breaker.gauge(now);
        breaker.record(admitted, failed, now);
        if let Some(pause) = pause {
            breaker.pause(pause, now);
        }
        let gauge = breaker.gauge(now);
        drop(breaker);
        if gauge != before {
            match gauge {
                g if g >= 2.0 => {
                    tracing::warn!(platform = %self.platform, "circuit breaker open: the platform is failing broadly; refreshes wait")
                }
                g if g >= 1.0 => {
                    tracing::info!(platform = %self.platform, "circuit breaker half-open")
                }
                _ => {
                    tracing::info!(platform = %self.platform, "circuit breaker closed: the platform answers again")
                }
            }
            self.publish_gauges();
        }
    }

    /// Sets the breaker and lease gauges (every sweep, and when the breaker changes state).
    pub fn publish_gauges(&self) {
        let gauge = lock(&self.breaker).gauge(Instant::now());
        metrics::gauge!("lifeline_refresh_breaker_state", "platform" => self.platform.as_str())
            .set(gauge);
        #[allow(clippy::cast_precision_loss)]
        metrics::gauge!("lifeline_refresh_leases_held", "platform" => self.platform.as_str())
            .set(self.leased.load(Ordering::Relaxed) as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_spaces_calls_at_the_rate() {
        let now = Instant::now();
        let mut bucket = Bucket { rate: 10.0, tokens: 10.0, last: now };
        let waits: Vec<Duration> = (0..12).map(|_| bucket.take(now)).collect();
        assert!(waits[..10].iter().all(|w| w.is_zero()), "{waits:?}");
        assert_eq!(waits[10], Duration::from_millis(100));
        assert_eq!(waits[11], Duration::from_millis(200));
        let mut unlimited = Bucket { rate: 0.0, tokens: 0.0, last: now };
        assert!(unlimited.take(now).is_zero());
    }
}
