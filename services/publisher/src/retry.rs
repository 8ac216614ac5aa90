//! When a post that failed transiently is tried again, and how long it keeps being tried: a
//! growing schedule of delays over a window measured in hours, so that a platform outage makes
//! posts late but never dead-letters them.

use std::time::Duration;

use lifeline_kit::config::{format_duration, parse_duration, ConfigError, Env};

/// Svix's schedule after the first attempt: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
pub const DEFAULT_SCHEDULE: &str = "5s,5m,30m,2h,5h,10h,10h";
const SCHEDULE: &str = "LIFELINE_PUBLISH_RETRY_SCHEDULE";
const WINDOW: &str = "LIFELINE_PUBLISH_RETRY_WINDOW";
/// Deprecated: the delay doubled from it, up to 10 minutes, when no schedule is set.
const BASE: &str = "LIFELINE_PUBLISH_RETRY_BASE";
/// Deprecated and ignored: a count of retries dead-lettered posts within a minute of an outage.
const MAX_RETRIES: &str = "LIFELINE_PUBLISH_MAX_RETRIES";
const LONGEST_DELAY: Duration = Duration::from_secs(7 * 86_400);
const LONGEST_WINDOW: Duration = Duration::from_secs(30 * 86_400);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The delay before each retry after a transient failure; the last one repeats.
    pub schedule: Vec<Duration>,
    /// How long after the platform first kept a post from going out it is dead-lettered.
    pub window: Duration,
}

impl RetryPolicy {
    /// `LIFELINE_PUBLISH_RETRY_SCHEDULE` (default [`DEFAULT_SCHEDULE`]) and
    /// `LIFELINE_PUBLISH_RETRY_WINDOW` (default the default schedule's total, 27h35m5s). The
    /// deprecated `LIFELINE_PUBLISH_RETRY_BASE` still sets a doubling schedule when no schedule
    /// is given; `LIFELINE_PUBLISH_MAX_RETRIES` is validated and ignored.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let default = parse_schedule(env, DEFAULT_SCHEDULE)?;
        let schedule = match (env.raw(SCHEDULE), env.raw(BASE)) {
            (Some(raw), _) => parse_schedule(env, &raw)?,
            (None, Some(_)) => {
                let base = env.duration_in(
                    BASE,
                    Duration::from_secs(2),
                    Duration::from_millis(10)..=Duration::from_secs(600),
                )?;
                tracing::warn!("{BASE} is deprecated: set {SCHEDULE} instead");
                doubling(base)
            }
            (None, None) => default.clone(),
        };
        let window =
            env.duration_in(WINDOW, default.iter().sum(), Duration::ZERO..=LONGEST_WINDOW)?;
        if env.raw(MAX_RETRIES).is_some() {
            env.parse_in::<i32>(MAX_RETRIES, 5, 0..=100)?;
            tracing::warn!(
                "{MAX_RETRIES} is deprecated and ignored: posts are retried for {WINDOW} ({})",
                format_duration(window)
            );
        }
        Ok(RetryPolicy { schedule, window })
    }

    /// The delay after `failures` transient failures in a row (1 for the first).
    pub fn delay(&self, failures: i32) -> Duration {
        let i = usize::try_from(failures.max(1) - 1).unwrap_or(0);
        self.schedule.get(i).or(self.schedule.last()).copied().unwrap_or_default()
    }
}

fn parse_schedule(env: &Env, raw: &str) -> Result<Vec<Duration>, ConfigError> {
    let mut schedule = Vec::new();
    for part in raw.split(',').map(str::trim) {
        match parse_duration(part) {
            Some(d) if d <= LONGEST_DELAY => schedule.push(d),
            Some(_) => {
                return Err(env.invalid(SCHEDULE, format!("'{part}' is longer than 7d")));
            }
            None => {
                return Err(env.invalid(
                    SCHEDULE,
                    format!("'{part}' is not a duration like 5s, 30m or 2h (write a list like {DEFAULT_SCHEDULE})"),
                ));
            }
        }
    }
    if schedule.len() > 100 {
        return Err(env.invalid(SCHEDULE, "has more than 100 delays"));
    }
    Ok(schedule)
}

/// The old rule's cadence: `base`, doubled after each failure, up to 10 minutes.
fn doubling(base: Duration) -> Vec<Duration> {
    let cap = Duration::from_secs(600);
    let mut schedule = vec![base.min(cap)];
    while schedule.last().is_some_and(|d| *d < cap) {
        let next = schedule.last().map_or(cap, |d| (*d * 2).min(cap));
        schedule.push(next);
    }
    schedule
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(pairs: &[(&str, &str)]) -> Result<RetryPolicy, ConfigError> {
        RetryPolicy::from_env(&Env::from_pairs(pairs.iter().copied()))
    }

    fn secs(s: &[u64]) -> Vec<Duration> {
        s.iter().map(|s| Duration::from_secs(*s)).collect()
    }

    #[test]
    fn the_default_is_svix_schedule_over_its_own_total() {
        let p = policy(&[]).unwrap();
        assert_eq!(p.schedule, secs(&[5, 300, 1800, 7200, 18_000, 36_000, 36_000]));
        assert_eq!(p.window, Duration::from_secs(27 * 3600 + 35 * 60 + 5));
        assert_eq!(p.delay(1), Duration::from_secs(5));
        assert_eq!(p.delay(7), Duration::from_secs(36_000));
        assert_eq!(p.delay(50), Duration::from_secs(36_000), "the last delay repeats");
    }

    #[test]
    fn a_schedule_and_window_can_be_scaled_down() {
        let p = policy(&[(SCHEDULE, "200ms, 1s,2s"), (WINDOW, "30s")]).unwrap();
        assert_eq!(p.schedule[0], Duration::from_millis(200));
        assert_eq!(p.delay(3), Duration::from_secs(2));
        assert_eq!(p.window, Duration::from_secs(30));
    }

    #[test]
    fn invalid_values_name_the_variable() {
        for (name, value) in [
            (SCHEDULE, "5s,soon"),
            (SCHEDULE, "5s,,5m"),
            (SCHEDULE, "8d"),
            (WINDOW, "31d"),
            (WINDOW, "long"),
            (MAX_RETRIES, "-1"),
            (BASE, "1ms"),
        ] {
            let e = policy(&[(name, value)]).unwrap_err().to_string();
            assert!(e.contains(name), "{name}={value}: {e}");
        }
    }

    #[test]
    fn the_deprecated_base_sets_a_doubling_schedule_and_max_retries_is_ignored() {
        let p = policy(&[(BASE, "2s"), (MAX_RETRIES, "5")]).unwrap();
        assert_eq!(p.schedule, secs(&[2, 4, 8, 16, 32, 64, 128, 256, 512, 600]));
        assert_eq!(p.window, policy(&[]).unwrap().window);
        let explicit = policy(&[(BASE, "2s"), (SCHEDULE, "1m")]).unwrap();
        assert_eq!(explicit.schedule, secs(&[60]));
    }
}
