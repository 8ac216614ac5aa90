//! A circuit breaker for calls to one platform: it opens when most recent calls failed, lets one
//! trial call through after a cooldown (doubled after each failed trial) and closes when the
//! trial succeeds. The token-refresher and the publisher keep one per platform, per replica.

use std::{collections::VecDeque, time::Duration};

use tokio::time::Instant;

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

    /// 0 closed, 1 half-open, 2 open (the `lifeline_refresh_breaker_state` and
    /// `lifeline_publish_breaker_state` gauges).
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

    /// When an open breaker lets its next trial call through; `None` when it is closed, when a
    /// trial is due now, or when one is out.
    pub fn trial_at(&self, now: Instant) -> Option<Instant> {
        match self.state {
            State::Open { until } if now < until => Some(until),
            _ => None,
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
    fn the_next_trial_time_is_known_only_while_open() {
        let mut b = Breaker::new(config());
        let t0 = Instant::now();
        assert_eq!(b.trial_at(t0), None);
        for _ in 0..5 {
            let a = b.admit(t0);
            b.record(a, true, t0);
        }
        assert_eq!(b.trial_at(t0), Some(t0 + Duration::from_secs(10)));
        let t1 = t0 + Duration::from_secs(10);
        assert_eq!(b.trial_at(t1), None, "a trial is due");
        assert_eq!(b.admit(t1), Admit::Trial);
        assert_eq!(b.trial_at(t1), None, "the trial is out");
    }
}
