//! What stands between the refresher and one platform: a concurrency limit, a rate limit and a
//! circuit breaker. Each replica has its own gates; the limits are per replica.

use std::{
    collections::VecDeque,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex, MutexGuard,
    },
    time::Duration,
};

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

#[derive(Debug, Clone, Copy)]
pub struct BreakerConfig {
    /// Outcomes remembered (a sliding window of the most recent calls).
    pub window: usize,
    /// Calls in the window before the breaker may open.
    pub min_calls: usize,
    /// Share of failed calls in the window that opens the breaker.
    pub failure_ratio: f64,
    /// How long it stays open before one trial call; doubled after each failed trial.
    pub cooldown: Duration,
    pub max_cooldown: Duration,
}

/// What the breaker lets a caller do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    Go,
    /// The one call that decides whether a half-open breaker closes.
    Trial,
    /// Do not call; come back after the instant.
    Defer(Instant),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed,
    Open { until: Instant },
    HalfOpen { trial_out: bool },
}

#[derive(Debug)]
pub struct Breaker {
    config: BreakerConfig,
    state: State,
    outcomes: VecDeque<bool>,
    cooldown: Duration,
}

impl Breaker {
    pub fn new(config: BreakerConfig) -> Self {
        Breaker {
            state: State::Closed,
            outcomes: VecDeque::with_capacity(config.window),
            cooldown: config.cooldown,
            config,
        }
    }

    /// 0 closed, 1 half-open, 2 open (the `lifeline_refresh_breaker_state` gauge).
    pub fn gauge(&self, now: Instant) -> f64 {
        match self.state {
            State::Closed => 0.0,
            State::Open { until } if now >= until => 1.0,
            State::HalfOpen { .. } => 1.0,
            State::Open { .. } => 2.0,
        }
    }

    /// Whether rows of this platform should be leased at all, and how many at most.
    pub fn lease_allowance(&self, now: Instant) -> Option<usize> {
        match self.state {
            State::Closed => None,
            State::Open { until } if now >= until => Some(1),
            State::HalfOpen { trial_out: false } => Some(1),
            State::Open { .. } | State::HalfOpen { .. } => Some(0),
        }
    }

    pub fn admit(&mut self, now: Instant) -> Admit {
        match self.state {
            State::Closed => Admit::Go,
            State::Open { until } if now >= until => {
                self.state = State::HalfOpen { trial_out: true };
                Admit::Trial
            }
            State::HalfOpen { trial_out: false } => {
                self.state = State::HalfOpen { trial_out: true };
                Admit::Trial
            }
            State::Open { until } => Admit::Defer(until),
            State::HalfOpen { trial_out: true } => Admit::Defer(now + self.cooldown),
        }
    }

    /// Records the outcome of an admitted call. `failed` means the platform failed (5xx,
    /// network, rate limit), not that it refused a credential.
    pub fn record(&mut self, admitted: Admit, failed: bool, now: Instant) {
        match admitted {
            Admit::Trial => {
                if failed {
                    self.cooldown = (self.cooldown * 2).min(self.config.max_cooldown);
                    self.state = State::Open { until: now + self.cooldown };
                } else {
                    self.cooldown = self.config.cooldown;
                    self.outcomes.clear();
                    self.state = State::Closed;
                }
            }
            Admit::Go => {
                if self.outcomes.len() == self.config.window {
                    self.outcomes.pop_front();
                }
                self.outcomes.push_back(failed);
                let failures = self.outcomes.iter().filter(|f| **f).count();
                let calls = self.outcomes.len();
                #[allow(clippy::cast_precision_loss)]
                let ratio = failures as f64 / calls as f64;
                if self.state == State::Closed
                    && calls >= self.config.min_calls
                    && ratio >= self.config.failure_ratio
                {
                    self.state = State::Open { until: now + self.cooldown };
                }
            }
            Admit::Defer(_) => {}
        }
    }

    /// Opens at once for at least `pause` (the platform said how long to stay away).
    pub fn pause(&mut self, pause: Duration, now: Instant) {
        let until = now + pause.max(self.cooldown);
        match self.state {
            State::Open { until: u } if u >= until => {}
            _ => self.state = State::Open { until },
        }
    }
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

    fn config() -> BreakerConfig {
        BreakerConfig {
            window: 10,
            min_calls: 5,
            failure_ratio: 0.5,
            cooldown: Duration::from_secs(10),
            max_cooldown: Duration::from_secs(60),
        }
    }

    #[test]
    fn a_few_failures_among_successes_keep_it_closed() {
        let mut b = Breaker::new(config());
        let now = Instant::now();
        for i in 0..50 {
            assert_eq!(b.admit(now), Admit::Go);
            b.record(Admit::Go, i % 3 == 0, now);
        }
        assert_eq!(b.gauge(now), 0.0);
    }

    #[test]
    fn broad_failure_opens_then_one_trial_decides() {
        let mut b = Breaker::new(config());
        let t0 = Instant::now();
        for _ in 0..5 {
            let a = b.admit(t0);
            b.record(a, true, t0);
        }
        assert_eq!(b.gauge(t0), 2.0);
        assert_eq!(b.lease_allowance(t0), Some(0));
        assert_eq!(b.admit(t0), Admit::Defer(t0 + Duration::from_secs(10)));
        // After the cooldown exactly one trial goes through.
        let t1 = t0 + Duration::from_secs(10);
        assert_eq!(b.lease_allowance(t1), Some(1));
        assert_eq!(b.admit(t1), Admit::Trial);
        assert!(matches!(b.admit(t1), Admit::Defer(_)));
        // A failed trial reopens for twice as long.
        b.record(Admit::Trial, true, t1);
        assert_eq!(
            b.admit(t1 + Duration::from_secs(19)),
            Admit::Defer(t1 + Duration::from_secs(20))
        );
        let t2 = t1 + Duration::from_secs(20);
        assert_eq!(b.admit(t2), Admit::Trial);
        b.record(Admit::Trial, false, t2);
        assert_eq!(b.gauge(t2), 0.0);
        assert_eq!(b.admit(t2), Admit::Go);
        // Closing forgot the old failures: one more failure does not reopen it.
        b.record(Admit::Go, true, t2);
        assert_eq!(b.gauge(t2), 0.0);
    }

    #[test]
    fn the_cooldown_is_capped() {
        let mut b = Breaker::new(config());
        let mut now = Instant::now();
        for _ in 0..5 {
            let a = b.admit(now);
            b.record(a, true, now);
        }
        for _ in 0..10 {
            now += Duration::from_secs(120);
            assert_eq!(b.admit(now), Admit::Trial);
            b.record(Admit::Trial, true, now);
        }
        assert_eq!(b.admit(now), Admit::Defer(now + Duration::from_secs(60)));
    }

    #[test]
    fn a_rate_limit_pauses_for_what_the_platform_asked() {
        let mut b = Breaker::new(config());
        let now = Instant::now();
        b.pause(Duration::from_secs(30), now);
        assert_eq!(b.admit(now), Admit::Defer(now + Duration::from_secs(30)));
    }

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
