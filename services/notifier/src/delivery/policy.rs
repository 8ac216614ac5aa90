//! Delivery decisions as pure functions: what an attempt's answer means, when the next attempt
//! is, and when a channel that keeps failing is disabled.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// The default retry schedule (Svix's): the delay before each attempt, the first immediate.
pub const DEFAULT_SCHEDULE: &str = "0s,5s,5m,30m,2h,5h,10h,10h";

/// The delays before attempt 1, 2, …; its length is the number of attempts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetrySchedule(Vec<Duration>);

impl RetrySchedule {
    /// Parses `0s,5s,5m`; at least one delay, at most 20.
    pub fn parse(s: &str) -> Option<RetrySchedule> {
        let delays: Option<Vec<Duration>> =
            s.split(',').map(|d| lifeline_kit::config::parse_duration(d.trim())).collect();
        let delays = delays?;
        (1..=20).contains(&delays.len()).then_some(RetrySchedule(delays))
    }

    pub fn attempts(&self) -> u32 {
        u32::try_from(self.0.len()).unwrap_or(u32::MAX)
    }
}

/// What an attempt ended with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// The endpoint answered with this HTTP status.
    Status(u16),
    /// No answer: refused, reset, timed out (the error says which).
    NoAnswer,
}

impl Answer {
    /// Only a 2xx is a delivery (the Standard Webhooks rule; an SMTP server's 250 too); a
    /// redirect is not followed, so it is a failure too.
    pub fn delivered(&self) -> bool {
        matches!(self, Answer::Status(s) if (200..300).contains(s))
    }
}

/// What becomes of a delivery after an attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Next {
    Delivered,
    RetryAt(DateTime<Utc>),
    /// Every attempt of the schedule failed.
    GaveUp,
}

/// After attempt number `attempt` (1 for the first) answered `answer` at `now`.
pub fn after_attempt(
    schedule: &RetrySchedule,
    attempt: u32,
    answer: &Answer,
    now: DateTime<Utc>,
) -> Next {
    if answer.delivered() {
        return Next::Delivered;
    }
    match schedule.0.get(attempt as usize) {
        Some(delay) => Next::RetryAt(now + chrono::Duration::from_std(*delay).unwrap_or_default()),
        None => Next::GaveUp,
    }
}

/// A channel failing without a success since `failing_since` is disabled once that lasted
/// `disable_after`.
pub fn should_disable(
    failing_since: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    disable_after: Duration,
) -> bool {
    let Some(since) = failing_since else { return false };
    now.signed_duration_since(since).to_std().is_ok_and(|failing| failing >= disable_after)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
    }

    #[test]
    fn the_default_schedule_is_eight_attempts_the_first_immediate() {
        let s = RetrySchedule::parse(DEFAULT_SCHEDULE).unwrap();
        assert_eq!(s.attempts(), 8);
        assert_eq!(s.0[0], Duration::ZERO);
        assert_eq!(s.0[2], Duration::from_secs(300));
        assert_eq!(s.0[7], Duration::from_secs(36_000));
    }

    #[test]
    fn malformed_schedules_are_refused() {
        assert_eq!(RetrySchedule::parse(""), None);
        assert_eq!(RetrySchedule::parse("0s,soon"), None);
        assert_eq!(RetrySchedule::parse(&vec!["1s"; 21].join(",")), None);
    }

    #[test]
    fn a_2xx_delivers_anything_else_retries_on_the_schedule() {
        let s = RetrySchedule::parse("0s,5s,5m").unwrap();
        assert_eq!(after_attempt(&s, 1, &Answer::Status(204), t(0)), Next::Delivered);
        assert_eq!(after_attempt(&s, 1, &Answer::Status(500), t(0)), Next::RetryAt(t(5)));
        assert_eq!(after_attempt(&s, 2, &Answer::NoAnswer, t(10)), Next::RetryAt(t(310)));
        assert_eq!(after_attempt(&s, 1, &Answer::Status(301), t(0)), Next::RetryAt(t(5)));
        assert_eq!(after_attempt(&s, 3, &Answer::Status(400), t(0)), Next::GaveUp);
        assert_eq!(after_attempt(&s, 3, &Answer::Status(200), t(0)), Next::Delivered);
    }

    #[test]
    fn a_channel_is_disabled_only_after_failing_for_the_whole_period() {
        let day = Duration::from_secs(86_400);
        assert!(!should_disable(None, t(0), day));
        assert!(!should_disable(Some(t(0)), t(86_399), day));
        assert!(should_disable(Some(t(0)), t(86_400), day));
        // A clock that went back is not a long failure.
        assert!(!should_disable(Some(t(10)), t(0), Duration::ZERO + Duration::from_secs(1)));
    }
}
