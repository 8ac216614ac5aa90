//! Per-platform policy, in one place: when to refresh, whether refresh tokens rotate, when to
//! probe tokens that never expire, and when to warn that a credential will lapse anyway.
//! `docs/refresh-policy.md` is the reader's version of this file.
//!
//! The platform's own answer (`expires_in`, `refresh_expires_in`) always decides the expiry; the
//! policy only decides how early to act. Leads are fractions of the token's life (with a cap), so
//! the same rules hold when the simulator scales 60 days down to minutes.

use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use lifeline_kit::{events::ExpiringCredential, Platform};
use uuid::Uuid;

/// How long before expiry a token granted at `granted_at` and lapsing at `expires_at` is
/// refreshed; `None` for platforms without refresh.
pub fn lead(
    platform: Platform,
    granted_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Option<Duration> {
    let life = (expires_at - granted_at).max(Duration::zero());
    Some(match platform {
        // 2-hour (X) and 1-hour (Google) tokens: a quarter of the life, at most 15 minutes early.
        Platform::X | Platform::YouTube => (life / 4).min(Duration::minutes(15)),
        // TikTok's access tokens live about a day: a quarter of the life, at most an hour early.
        Platform::TikTok => (life / 4).min(Duration::hours(1)),
        // LinkedIn: 60-day tokens refreshed on day 59, as LinkedIn's own example does.
        Platform::LinkedIn => life / 60,
        // Instagram and Threads: refreshable once 24 hours old and until expiry; refresh at half
        // the life (day 30 of 60), well clear of both limits.
        Platform::Instagram | Platform::Threads => life / 2,
        // Facebook page tokens do not expire and cannot be refreshed: they are probed instead.
        Platform::Facebook => return None,
    })
}

/// When to refresh a token granted at `granted_at` that lapses at `expires_at`; `None` when it
/// is not refreshed on a schedule (no expiry, or a platform without refresh).
pub fn refresh_due(
    platform: Platform,
    granted_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
) -> Option<DateTime<Utc>> {
    let expires_at = expires_at?;
    Some(expires_at - lead(platform, granted_at, expires_at)?)
}

/// What the schedule does next with a credential just stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// `"refresh"` or `"probe"` (the schedule's `action`).
    pub action: &'static str,
    pub state: State,
    pub due_at: Option<DateTime<Utc>>,
}

/// A token without expiry is probed at the account's slot; one with an expiry is refreshed on
/// the platform's schedule if there is a refresh token and a way to use it, and otherwise is
/// unrefreshable (and watched for its expiry).
pub fn plan(
    platform: Platform,
    account: Uuid,
    now: DateTime<Utc>,
    access_expires_at: Option<DateTime<Utc>>,
    has_refresh_token: bool,
    probe_interval: StdDuration,
) -> Plan {
    match access_expires_at {
        None => Plan {
            action: "probe",
            state: State::Active,
            due_at: Some(next_probe(account, now, probe_interval)),
        },
        Some(_) => match refresh_due(platform, now, access_expires_at) {
            Some(due) if has_refresh_token => {
                Plan { action: "refresh", state: State::Active, due_at: Some(due) }
            }
            _ => Plan { action: "refresh", state: State::Unrefreshable, due_at: None },
        },
    }
}

/// Platforms whose refresh tokens are single-use: each refresh returns a new one and spends the
/// old, and sending a spent one again is treated as theft (X revokes the whole family).
pub fn rotates(platform: Platform) -> bool {
    matches!(platform, Platform::X | Platform::TikTok)
}

/// The next health probe of a token that never expires, strictly after `now`. Each account has a
/// fixed phase within the interval (from its id), so probes spread evenly over the day instead
/// of arriving all at once, and an account keeps its slot from one day to the next.
pub fn next_probe(account: Uuid, now: DateTime<Utc>, interval: StdDuration) -> DateTime<Utc> {
    let period = i64::try_from(interval.as_millis()).unwrap_or(i64::MAX).max(1);
    let bytes = account.as_bytes();
    let mut h = [0u8; 8];
    h.copy_from_slice(&bytes[8..16]);
    let phase = i64::try_from(u64::from_le_bytes(h) % period.unsigned_abs()).unwrap_or(0);
    let now_ms = now.timestamp_millis();
    let slot_start = now_ms - now_ms.rem_euclid(period);
    let mut at = slot_start + phase;
    if at <= now_ms {
        at += period;
    }
    DateTime::from_timestamp_millis(at).unwrap_or(now)
}

/// What the schedule knows about one account, as the warning rules need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Active,
    Broken,
    Unrefreshable,
    InDoubt,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Active => "active",
            State::Broken => "broken",
            State::Unrefreshable => "unrefreshable",
            State::InDoubt => "in_doubt",
        }
    }
    pub fn parse(s: &str) -> State {
        match s {
            "broken" => State::Broken,
            "unrefreshable" => State::Unrefreshable,
            "in_doubt" => State::InDoubt,
            _ => State::Active,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Facts {
    pub platform: Platform,
    pub state: State,
    /// Refreshes that have not happened since the last success (failures and deferrals).
    pub failures: i32,
    pub access_issued_at: Option<DateTime<Utc>>,
    pub access_expires_at: Option<DateTime<Utc>>,
    pub refresh_expires_at: Option<DateTime<Utc>>,
}

/// A credential that will lapse whatever the refresher does, and the horizons to warn at.
#[derive(Debug, Clone, PartialEq)]
pub struct Watch {
    pub credential: ExpiringCredential,
    pub expires_at: DateTime<Utc>,
    /// Largest first, distinct.
    pub horizons: Vec<StdDuration>,
    pub reason: String,
}

/// Which expiry, if any, the owner must be warned about: a refresh token nearing its own end, a
/// token that cannot be refreshed, a refresh whose outcome is unknown, or a refresh that keeps
/// failing while the access token runs out.
pub fn watch(facts: &Facts, horizons: &[StdDuration]) -> Option<Watch> {
    let name = facts.platform.display_name();
    let access = |reason: String, horizons: Vec<StdDuration>| {
        facts.access_expires_at.map(|expires_at| Watch {
            credential: ExpiringCredential::AccessToken,
            expires_at,
            horizons: sorted(horizons),
            reason,
        })
    };
    match facts.state {
        State::Broken => None,
        State::InDoubt => access(
            "a token refresh was interrupted and cannot safely be repeated".into(),
            horizons.to_vec(),
        ),
        State::Unrefreshable => access(
            match facts.platform {
                Platform::Facebook => format!("{name} gives no way to renew this token"),
                _ => format!("{name} granted no refresh token, so this token cannot be renewed"),
            },
            horizons.to_vec(),
        ),
        State::Active => {
            // Instagram's and Threads' long-lived token is its own refresh token: each refresh
            // gives another 60 days, so its end is not fixed and only a failing refresh warns.
            let renews_itself = matches!(facts.platform, Platform::Instagram | Platform::Threads);
            let refresh_end = facts.refresh_expires_at.filter(|_| !renews_itself);
            let refresh_token = refresh_end.map(|expires_at| Watch {
                credential: ExpiringCredential::RefreshToken,
                expires_at,
                horizons: sorted(horizons.to_vec()),
                reason: match facts.platform {
                    Platform::LinkedIn => {
                        "LinkedIn refresh tokens end 365 days after the first grant".to_owned()
                    }
                    Platform::YouTube => {
                        "Google ends the refresh tokens of apps in testing after 7 days".to_owned()
                    }
                    _ => format!("{name} refresh tokens have a fixed lifetime"),
                },
            });
            // Refreshing keeps failing: warn once half the refresh lead is gone, so a brief
            // blip stays silent but a long outage reaches the owner before the token lapses.
            let failing = if facts.failures > 0 {
                facts.access_expires_at.and_then(|expires_at| {
                    let issued = facts.access_issued_at.unwrap_or(expires_at);
                    let cap = (lead(facts.platform, issued, expires_at)? / 2).to_std().ok()?;
                    access(
                        format!("refreshing this {name} token keeps failing"),
                        horizons.iter().map(|h| (*h).min(cap)).filter(|h| !h.is_zero()).collect(),
                    )
                })
            } else {
                None
            };
            // Whichever lapses first is the one the owner needs to hear about.
            match (refresh_token, failing) {
                (Some(r), Some(f)) => Some(if f.expires_at < r.expires_at { f } else { r }),
                (r, f) => r.or(f),
            }
        }
    }
}

fn sorted(mut horizons: Vec<StdDuration>) -> Vec<StdDuration> {
    horizons.sort_unstable_by(|a, b| b.cmp(a));
    horizons.dedup();
    horizons
}

fn chrono(d: StdDuration) -> Duration {
    Duration::from_std(d).unwrap_or(Duration::MAX)
}

/// A horizon whose time has come: fire `horizon`, and count every horizon in `passed` as used
/// (a warning that arrives late says the tightest true thing, once).
#[derive(Debug, Clone, PartialEq)]
pub struct Due {
    pub horizon: StdDuration,
    pub passed: Vec<StdDuration>,
}

/// The warning due at `now`, if any. Nothing once the credential has lapsed: by then the next
/// call fails and AuthFailed says so.
pub fn warning_due(watch: &Watch, now: DateTime<Utc>) -> Option<Due> {
    if watch.expires_at <= now {
        return None;
    }
    let remaining = watch.expires_at - now;
    let passed: Vec<StdDuration> =
        watch.horizons.iter().copied().filter(|h| chrono(*h) >= remaining).collect();
    let horizon = passed.last().copied()?;
    Some(Due { horizon, passed })
}

/// When the next horizon after `now` comes up, to store as the row's `warn_at`.
pub fn next_warning(watch: &Watch, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if watch.expires_at <= now {
        return None;
    }
    let remaining = watch.expires_at - now;
    if warning_due(watch, now).is_some() {
        // Fire it now; the sweep comes back for the next smaller horizon.
        return Some(now);
    }
    watch
        .horizons
        .iter()
        .map(|h| chrono(*h))
        .filter(|h| *h < remaining)
        .max()
        .map(|h| watch.expires_at - h)
}

/// After firing `due` at `now`: the next horizon still ahead, if any.
pub fn after_firing(watch: &Watch, due: &Due) -> Option<DateTime<Utc>> {
    watch
        .horizons
        .iter()
        .filter(|h| !due.passed.contains(h))
        .map(|h| chrono(*h))
        .max()
        .map(|h| watch.expires_at - h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn due_after(platform: Platform, life: Duration) -> Option<Duration> {
        let now = Utc::now();
        refresh_due(platform, now, Some(now + life)).map(|d| d - now)
    }

    const DAY: StdDuration = StdDuration::from_secs(86_400);
    fn horizons() -> Vec<StdDuration> {
        vec![7 * DAY, DAY]
    }

    fn facts(platform: Platform, state: State) -> Facts {
        Facts {
            platform,
            state,
            failures: 0,
            access_issued_at: None,
            access_expires_at: None,
            refresh_expires_at: None,
        }
    }

    #[test]
    fn x_tokens_are_refreshed_fifteen_minutes_early() {
        assert_eq!(due_after(Platform::X, Duration::hours(2)), Some(Duration::minutes(105)));
    }

    #[test]
    fn short_lived_tokens_are_refreshed_at_three_quarters_of_their_life() {
        assert_eq!(due_after(Platform::X, Duration::seconds(20)), Some(Duration::seconds(15)));
    }

    #[test]
    fn linkedin_refreshes_on_day_59() {
        assert_eq!(due_after(Platform::LinkedIn, Duration::days(60)), Some(Duration::days(59)));
    }

    #[test]
    fn instagram_and_threads_refresh_after_a_day_and_well_before_expiry() {
        for p in [Platform::Instagram, Platform::Threads] {
            let due = due_after(p, Duration::days(60)).expect("due");
            assert!(due >= Duration::hours(24) && due <= Duration::days(50), "{p}: {due}");
        }
    }

    #[test]
    fn google_and_tiktok_refresh_before_the_access_token_lapses() {
        assert_eq!(due_after(Platform::YouTube, Duration::hours(1)), Some(Duration::minutes(45)));
        assert_eq!(due_after(Platform::TikTok, Duration::hours(24)), Some(Duration::hours(23)));
    }

    #[test]
    fn nothing_to_schedule_without_expiry_or_for_page_tokens() {
        assert_eq!(refresh_due(Platform::X, Utc::now(), None), None);
        assert_eq!(due_after(Platform::Facebook, Duration::days(60)), None);
    }

    #[test]
    fn tokens_are_refreshed_probed_or_left_unrefreshable() {
        let now = Utc::now();
        let account = Uuid::new_v4();
        let day = StdDuration::from_secs(86_400);
        let x = plan(Platform::X, account, now, Some(now + Duration::hours(2)), true, day);
        assert_eq!((x.action, x.state), ("refresh", State::Active));
        assert_eq!(x.due_at, Some(now + Duration::minutes(105)));
        let page = plan(Platform::Facebook, account, now, None, false, day);
        assert_eq!((page.action, page.state), ("probe", State::Active));
        assert_eq!(page.due_at, Some(next_probe(account, now, day)));
        let no_rt = plan(Platform::X, account, now, Some(now + Duration::hours(2)), false, day);
        assert_eq!((no_rt.state, no_rt.due_at), (State::Unrefreshable, None));
        let user_token =
            plan(Platform::Facebook, account, now, Some(now + Duration::days(60)), true, day);
        assert_eq!(user_token.state, State::Unrefreshable);
    }

    #[test]
    fn only_x_and_tiktok_rotate() {
        let rotating: Vec<_> = Platform::ALL.into_iter().filter(|p| rotates(*p)).collect();
        assert_eq!(rotating, vec![Platform::X, Platform::TikTok]);
    }

    #[test]
    fn probes_spread_over_the_interval_and_keep_their_slot() {
        let now = Utc::now();
        let accounts: Vec<Uuid> = (0..2000).map(|_| Uuid::new_v4()).collect();
        let mut per_hour = [0usize; 24];
        for a in &accounts {
            let at = next_probe(*a, now, DAY);
            assert!(at > now && at <= now + Duration::days(1), "{at}");
            let hour = usize::try_from((at - now).num_hours()).unwrap_or(0).min(23);
            per_hour[hour] += 1;
            // The following probe is exactly one interval later.
            assert_eq!(next_probe(*a, at, DAY), at + Duration::days(1));
        }
        // 2000 probes over 24 hours: about 83 an hour; no hour gets a crowd.
        assert!(per_hour.iter().all(|n| (40..=140).contains(n)), "{per_hour:?}");
    }

    #[test]
    fn a_linkedin_refresh_token_warns_at_seven_days_then_one_day_each_once() {
        let now = Utc::now();
        let end = now + Duration::days(30);
        let f = Facts { refresh_expires_at: Some(end), ..facts(Platform::LinkedIn, State::Active) };
        let w = watch(&f, &horizons()).expect("watched");
        assert_eq!(w.credential, ExpiringCredential::RefreshToken);
        assert!(w.reason.contains("365 days"));
        assert_eq!(next_warning(&w, now), Some(end - Duration::days(7)));
        assert_eq!(warning_due(&w, now), None);
        let at7 = end - Duration::days(7);
        let due = warning_due(&w, at7).expect("7 d horizon");
        assert_eq!(due.horizon, 7 * DAY);
        assert_eq!(after_firing(&w, &due), Some(end - Duration::days(1)));
        let at1 = end - Duration::days(1) + Duration::seconds(1);
        let due = warning_due(&w, at1).expect("1 d horizon");
        assert_eq!(due.horizon, DAY);
        assert_eq!(after_firing(&w, &due), None);
        assert_eq!(warning_due(&w, end), None, "nothing once lapsed");
    }

    #[test]
    fn a_late_warning_fires_the_tightest_horizon_and_uses_up_the_wider_ones() {
        let now = Utc::now();
        let f = Facts {
            access_expires_at: Some(now + Duration::hours(2)),
            ..facts(Platform::X, State::Unrefreshable)
        };
        let w = watch(&f, &horizons()).expect("watched");
        assert_eq!(w.credential, ExpiringCredential::AccessToken);
        let due = warning_due(&w, now).expect("due at once");
        assert_eq!(due.horizon, DAY);
        assert_eq!(due.passed, vec![7 * DAY, DAY]);
        assert_eq!(after_firing(&w, &due), None);
    }

    #[test]
    fn healthy_refreshing_accounts_and_broken_ones_are_not_watched() {
        let now = Utc::now();
        let healthy = Facts {
            access_expires_at: Some(now + Duration::hours(2)),
            ..facts(Platform::X, State::Active)
        };
        assert_eq!(watch(&healthy, &horizons()), None);
        let broken = Facts { state: State::Broken, ..healthy };
        assert_eq!(watch(&broken, &horizons()), None);
        let page = facts(Platform::Facebook, State::Active);
        assert_eq!(watch(&page, &horizons()), None);
    }

    #[test]
    fn tokens_that_renew_themselves_warn_only_when_refreshing_fails() {
        let now = Utc::now();
        for p in [Platform::Instagram, Platform::Threads] {
            let healthy = Facts {
                access_issued_at: Some(now),
                access_expires_at: Some(now + Duration::days(2)),
                refresh_expires_at: Some(now + Duration::days(2)),
                ..facts(p, State::Active)
            };
            assert_eq!(watch(&healthy, &horizons()), None, "{p}: refreshing renews it");
            let failing = Facts { failures: 2, ..healthy };
            let w = watch(&failing, &horizons()).expect("watched");
            assert_eq!(w.credential, ExpiringCredential::AccessToken);
            assert!(w.reason.contains("keeps failing"), "{p}: {}", w.reason);
            assert!(!w.reason.contains("fixed lifetime"));
        }
    }

    #[test]
    fn a_failing_refresh_warns_once_half_the_lead_is_gone() {
        let now = Utc::now();
        let f = Facts {
            failures: 3,
            access_issued_at: Some(now),
            access_expires_at: Some(now + Duration::hours(2)),
            ..facts(Platform::X, State::Active)
        };
        let w = watch(&f, &horizons()).expect("watched");
        // X's lead is 15 minutes: both horizons shrink to 7.5 minutes and merge.
        assert_eq!(w.horizons, vec![StdDuration::from_secs(450)]);
        assert_eq!(next_warning(&w, now), Some(now + Duration::hours(2) - Duration::seconds(450)));
        assert!(w.reason.contains("keeps failing"));
    }

    #[test]
    fn a_failing_refresh_is_told_even_when_the_refresh_token_has_an_end() {
        let now = Utc::now();
        let f = Facts {
            failures: 2,
            access_issued_at: Some(now),
            access_expires_at: Some(now + Duration::hours(24)),
            refresh_expires_at: Some(now + Duration::days(300)),
            ..facts(Platform::TikTok, State::Active)
        };
        let w = watch(&f, &horizons()).expect("watched");
        assert_eq!(w.credential, ExpiringCredential::AccessToken);
        let healthy = Facts { failures: 0, ..f };
        let w = watch(&healthy, &horizons()).expect("watched");
        assert_eq!(w.credential, ExpiringCredential::RefreshToken);
    }

    #[test]
    fn an_interrupted_rotation_warns_at_once() {
        let now = Utc::now();
        let f = Facts {
            access_expires_at: Some(now + Duration::minutes(90)),
            ..facts(Platform::TikTok, State::InDoubt)
        };
        let w = watch(&f, &horizons()).expect("watched");
        assert_eq!(next_warning(&w, now), Some(now));
        assert!(w.reason.contains("interrupted"));
    }
}
