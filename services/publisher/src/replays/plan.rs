//! The replay's decisions, pure: whether a repeated idempotency key is the same replay, how many
//! posts each platform may have released now, how replayed posts stand, and the per-platform
//! replay rate read from `LIFELINE_REPLAY_RATE`.

use std::collections::BTreeMap;

use lifeline_kit::Platform;
use serde::Serialize;
use utoipa::ToSchema;

use super::filter::FilterInput;
use crate::model::PostStatus;

/// What to do with a replay request whose idempotency key was used before.
#[derive(Debug, PartialEq)]
pub(crate) enum Repeat {
    /// The same request: answer with the replay it made, change nothing.
    Same,
    /// Another filter or note under the same key: refuse, so a key never means two things.
    Conflict,
}

pub(crate) fn repeat(
    earlier: (&FilterInput, Option<&str>),
    now: (&FilterInput, Option<&str>),
) -> Repeat {
    if earlier == now {
        Repeat::Same
    } else {
        Repeat::Conflict
    }
}

/// Posts of a platform that may be released now: its rate per window, less what the window has
/// released already.
pub(crate) fn budget(rate: u32, released_in_window: i64) -> i64 {
    (i64::from(rate) - released_in_window).max(0)
}

/// Where a replayed post stands, from its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Standing {
    Published,
    /// Dead-lettered again, or parked on an auth failure.
    FailedAgain,
    Cancelled,
    /// Waiting for its platform's pace, queued, being sent, or waiting for a transient retry.
    Pending,
}

pub(crate) fn standing(status: PostStatus) -> Standing {
    match status {
        PostStatus::Published => Standing::Published,
        PostStatus::DeadLettered | PostStatus::FailedAuth => Standing::FailedAgain,
        PostStatus::Cancelled => Standing::Cancelled,
        PostStatus::Scheduled | PostStatus::Publishing | PostStatus::RetryRequested => {
            Standing::Pending
        }
    }
}

/// Counts of a replay's posts by standing.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub(crate) struct Progress {
    pub published: i64,
    pub failed_again: i64,
    pub cancelled: i64,
    pub pending: i64,
}

impl Progress {
    pub(crate) fn of(statuses: &[(PostStatus, i64)]) -> Progress {
        let mut p = Progress::default();
        for &(status, n) in statuses {
            match standing(status) {
                Standing::Published => p.published += n,
                Standing::FailedAgain => p.failed_again += n,
                Standing::Cancelled => p.cancelled += n,
                Standing::Pending => p.pending += n,
            }
        }
        p
    }

    pub(crate) fn done(&self) -> bool {
        self.pending == 0
    }
}

/// How many match, per platform and per kind, from counts per (platform, kind).
#[derive(Debug, Default, PartialEq, Serialize, ToSchema)]
pub(crate) struct Summary {
    pub matched: i64,
    pub by_platform: BTreeMap<String, i64>,
    pub by_kind: BTreeMap<String, i64>,
}

pub(crate) fn summarize<'a>(counts: impl IntoIterator<Item = (&'a str, &'a str, i64)>) -> Summary {
    let mut s = Summary::default();
    for (platform, kind, n) in counts {
        s.matched += n;
        *s.by_platform.entry(platform.to_owned()).or_default() += n;
        *s.by_kind.entry(kind.to_owned()).or_default() += n;
    }
    s
}

/// Posts released per platform per second during replays: one number for every platform,
/// then `platform=rate` overrides, e.g. `10,x=2,tiktok=1`.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayRates {
    default: u32,
    overrides: BTreeMap<Platform, u32>,
}

impl Default for ReplayRates {
    fn default() -> Self {
        ReplayRates { default: DEFAULT_RATE, overrides: BTreeMap::new() }
    }
}

/// Low enough that a replay alone stays far below every simulated platform's app-wide limit.
const DEFAULT_RATE: u32 = 10;
const MAX_RATE: u32 = 10_000;

impl ReplayRates {
    pub fn parse(s: &str) -> Result<ReplayRates, String> {
        let mut rates = ReplayRates::default();
        let rate = |v: &str| -> Result<u32, String> {
            match v.trim().parse::<u32>() {
                Ok(n) if (1..=MAX_RATE).contains(&n) => Ok(n),
                _ => Err(format!("{v:?} is not a rate from 1 to {MAX_RATE} posts per second")),
            }
        };
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part.split_once('=') {
                None => rates.default = rate(part)?,
                Some((platform, value)) => {
                    let platform: Platform = platform.trim().parse().map_err(|e| format!("{e}"))?;
                    rates.overrides.insert(platform, rate(value)?);
                }
            }
        }
        Ok(rates)
    }

    pub fn of(&self, platform: Platform) -> u32 {
        self.overrides.get(&platform).copied().unwrap_or(self.default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_key_with_the_same_request_is_the_same_replay_and_otherwise_a_conflict() {
        let a = FilterInput { platform: Some("x".into()), ..Default::default() };
        let b = FilterInput { platform: Some("linkedin".into()), ..Default::default() };
        assert_eq!(repeat((&a, Some("n")), (&a, Some("n"))), Repeat::Same);
        assert_eq!(repeat((&a, None), (&a, None)), Repeat::Same);
        assert_eq!(repeat((&a, Some("n")), (&b, Some("n"))), Repeat::Conflict);
        assert_eq!(repeat((&a, Some("n")), (&a, Some("other"))), Repeat::Conflict);
    }

    #[test]
    fn a_platform_gets_what_its_window_has_left_and_never_less_than_nothing() {
        assert_eq!(budget(10, 0), 10);
        assert_eq!(budget(10, 7), 3);
        assert_eq!(budget(10, 10), 0);
        assert_eq!(budget(10, 25), 0);
    }

    #[test]
    fn progress_counts_each_status_once_and_is_done_when_nothing_waits() {
        let p = Progress::of(&[
            (PostStatus::Published, 3),
            (PostStatus::DeadLettered, 1),
            (PostStatus::FailedAuth, 1),
            (PostStatus::Cancelled, 1),
            (PostStatus::RetryRequested, 2),
            (PostStatus::Publishing, 1),
            (PostStatus::Scheduled, 1),
        ]);
        assert_eq!(p, Progress { published: 3, failed_again: 2, cancelled: 1, pending: 4 });
        assert!(!p.done());
        assert!(Progress::of(&[(PostStatus::Published, 2), (PostStatus::DeadLettered, 1)]).done());
    }

    #[test]
    fn a_summary_adds_each_count_to_its_platform_and_kind() {
        let s =
            summarize([("x", "rejected", 2), ("x", "transient", 1), ("linkedin", "rejected", 4)]);
        assert_eq!(s.matched, 7);
        assert_eq!(s.by_platform.get("x"), Some(&3));
        assert_eq!(s.by_platform.get("linkedin"), Some(&4));
        assert_eq!(s.by_kind.get("rejected"), Some(&6));
        assert_eq!(s.by_kind.get("transient"), Some(&1));
        assert_eq!(summarize([]), Summary::default());
    }

    #[test]
    fn rates_read_a_default_and_per_platform_overrides_and_refuse_junk() {
        let r = ReplayRates::parse("20, x=2,tiktok=1").unwrap();
        assert_eq!(
            (r.of(Platform::X), r.of(Platform::TikTok), r.of(Platform::LinkedIn)),
            (2, 1, 20)
        );
        assert_eq!(ReplayRates::parse("").unwrap(), ReplayRates::default());
        assert_eq!(ReplayRates::parse("x=3").unwrap().of(Platform::YouTube), DEFAULT_RATE);
        for junk in ["0", "x=0", "fast", "myspace=3", "x=", "20001"] {
            assert!(ReplayRates::parse(junk).is_err(), "{junk}");
        }
    }
}
