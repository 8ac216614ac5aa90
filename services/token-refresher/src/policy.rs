//! When to refresh, per platform, in one place. The platform's own `expires_in` always decides
//! the expiry; the policy only decides how early to refresh. Leads are fractions of the token's
//! life (with a cap), so the same rules hold when the simulator scales 60 days down to minutes.

use chrono::{DateTime, Duration, Utc};
use lifeline_kit::Platform;

/// When to refresh a token granted at `granted_at` that lapses at `expires_at`; `None` when it
/// is not refreshed on a schedule (no expiry, or a platform without refresh).
pub fn refresh_due(
    platform: Platform,
    granted_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
) -> Option<DateTime<Utc>> {
    let expires_at = expires_at?;
    let life = (expires_at - granted_at).max(Duration::zero());
    let lead = match platform {
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
    };
    Some(expires_at - lead)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn due_after(platform: Platform, life: Duration) -> Option<Duration> {
        let now = Utc::now();
        refresh_due(platform, now, Some(now + life)).map(|d| d - now)
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
}
