//! When to refresh. One place for the per-platform rules; the platform's own `expires_in`
//! always decides the expiry itself.

use chrono::{DateTime, Duration, Utc};
use lifeline_kit::Platform;

/// The longest lead: refresh at most this long before the access token lapses.
const MAX_LEAD: Duration = Duration::minutes(15);

/// When to refresh a token that lapses at `expires_at` (granted at `granted_at`). The lead is a
/// quarter of the token's life, at most 15 minutes, so a 2-hour X token is refreshed 15 minutes
/// early and a token the simulator scales to seconds is refreshed a quarter of its life early.
pub fn refresh_due(
    platform: Platform,
    granted_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
) -> Option<DateTime<Utc>> {
    let expires_at = expires_at?;
    match platform {
        Platform::X => {
            let life = (expires_at - granted_at).max(Duration::zero());
            Some(expires_at - (life / 4).min(MAX_LEAD))
        }
        // The other platforms get their policies with their connectors.
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x_tokens_are_refreshed_fifteen_minutes_early() {
        let now = Utc::now();
        let due = refresh_due(Platform::X, now, Some(now + Duration::hours(2))).expect("due");
        assert_eq!(due, now + Duration::minutes(105));
    }

    #[test]
    fn short_lived_tokens_are_refreshed_at_three_quarters_of_their_life() {
        let now = Utc::now();
        let due = refresh_due(Platform::X, now, Some(now + Duration::seconds(20))).expect("due");
        assert_eq!(due, now + Duration::seconds(15));
    }

    #[test]
    fn no_expiry_means_nothing_to_schedule() {
        assert_eq!(refresh_due(Platform::X, Utc::now(), None), None);
    }
}
