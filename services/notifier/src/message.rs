//! What a notification says, as pure functions of plain facts: the cause in plain words, advice
//! that fits it (from the product's help page), the reconnect link, and the rules for the
//! frequent-disconnection advice, the dead-letter digest and the one reminder.

use std::time::Duration;

use chrono::{DateTime, Utc};
use lifeline_kit::{events::AuthFailureCause, Platform};

/// A notification's words, for every channel (in-app, webhook data, Slack, email).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Words {
    /// A subject a person understands: "@acme on LinkedIn needs reconnecting".
    pub title: String,
    pub body: String,
    pub advice: String,
}

/// "@acme on LinkedIn" when the handle is known, else "Your LinkedIn account".
fn who(platform: Platform, handle: Option<&str>) -> String {
    match handle.map(str::trim).filter(|h| !h.is_empty()) {
        Some(h) => format!("@{} on {}", h.trim_start_matches('@'), platform.display_name()),
        None => format!("Your {} account", platform.display_name()),
    }
}

/// The advice for a cause, from the product's help page.
pub fn advice(cause: AuthFailureCause, platform: Platform) -> String {
    let name = platform.display_name();
    match cause {
        AuthFailureCause::PasswordChanged => {
            "Changing the account's password will likely require reconnecting: reconnect it now."
                .to_owned()
        }
        AuthFailureCause::PermissionRemoved | AuthFailureCause::Revoked => format!(
            "Reconnect it, and make sure you're not revoking app permissions on {name}'s settings page."
        ),
        AuthFailureCause::SecurityEvent => {
            format!("Check {name}'s security notices, then reconnect.")
        }
        AuthFailureCause::Policy => format!(
            "{name} blocked the connection for a policy reason: check {name}'s notices about the \
             account or the app, then reconnect."
        ),
        AuthFailureCause::Expired => {
            "The connection expired, as connections do after a while: reconnect it.".to_owned()
        }
        AuthFailureCause::Unknown | AuthFailureCause::Unspecified => {
            "Reconnect it on the Accounts page.".to_owned()
        }
    }
}

/// The advice added when an account keeps disconnecting.
pub const FREQUENT_ADVICE: &str = "This account disconnected several times recently. Frequent \
     disconnections usually come from changing the password, removing the app's permissions on the \
     platform, or signing in to the platform from many places; check those before reconnecting.";

/// The notification that an account needs reconnecting.
pub fn broken(
    platform: Platform,
    handle: Option<&str>,
    cause: AuthFailureCause,
    frequent: bool,
    posts_waiting: Option<u32>,
) -> Words {
    let who = who(platform, handle);
    let mut advice = advice(cause, platform);
    if frequent {
        advice = format!("{advice} {FREQUENT_ADVICE}");
    }
    Words {
        title: format!("{who} needs reconnecting"),
        body: format!(
            "Lifeline cannot publish to {} because {}. {}",
            who.replacen("Your", "your", 1),
            cause.explain(),
            waiting_sentence(posts_waiting)
        ),
        advice,
    }
}

/// "3 scheduled posts wait, and are retried once it is reconnected." (a count the publisher
/// did not give leaves the number out).
fn waiting_sentence(posts_waiting: Option<u32>) -> String {
    match posts_waiting {
        None => "Posts scheduled for it wait, and are retried once it is reconnected.".to_owned(),
        Some(0) => "No posts are scheduled for it right now.".to_owned(),
        Some(1) => "1 scheduled post waits, and is retried once it is reconnected.".to_owned(),
        Some(n) if n >= crate::accounts::WAITING_COUNTED => {
            format!("{n} or more scheduled posts wait, and are retried once it is reconnected.")
        }
        Some(n) => format!("{n} scheduled posts wait, and are retried once it is reconnected."),
    }
}

/// The one reminder that an account is still broken, `since` its first notification.
pub fn reminder(
    platform: Platform,
    handle: Option<&str>,
    cause: AuthFailureCause,
    since: DateTime<Utc>,
    posts_waiting: u32,
) -> Words {
    let who = who(platform, handle);
    Words {
        title: format!("Reminder: {who} still needs reconnecting"),
        body: format!(
            "Lifeline has not been able to publish to {} since {} because {}. {}",
            who.replacen("Your", "your", 1),
            since.format("%Y-%m-%d %H:%M UTC"),
            cause.explain(),
            waiting_sentence(Some(posts_waiting))
        ),
        advice: advice(cause, platform),
    }
}

/// The warning that a connection lapses at `expires_at` and cannot be renewed automatically.
pub fn expiring(
    platform: Platform,
    handle: Option<&str>,
    expires_at: DateTime<Utc>,
    reason: &str,
) -> Words {
    let who = who(platform, handle);
    let date = expires_at.format("%Y-%m-%d %H:%M UTC");
    Words {
        title: format!("Reconnect {} before {date}", who.replacen("Your", "your", 1)),
        body: format!(
            "The connection to {} lapses on {date} and cannot be renewed automatically{}.",
            who.replacen("Your", "your", 1),
            if reason.is_empty() { String::new() } else { format!(" ({reason})") }
        ),
        advice: format!("Reconnect it before {date} to keep posting without a gap."),
    }
}

/// The Accounts page opened at the account (the user signs in as usual if needed; a single-use
/// sign-in link would be a credential in a shared channel).
pub fn reconnect_url(public_url: &str, account: uuid::Uuid) -> String {
    format!("{}/?account={account}", public_url.trim_end_matches('/'))
}

/// Whether an incident opened at `now` makes the account "frequently disconnecting": the
/// `threshold`-th incident (counting this one) within `window`, told only once per window.
pub fn is_frequent(incidents_in_window: u32, threshold: u32, already_told_in_window: bool) -> bool {
    incidents_in_window >= threshold && !already_told_in_window
}

/// The one reminder: due once `after` has passed since the incident's notification
/// (`opened_at`) with posts waiting, never a second time.
pub fn reminder_due(
    opened_at: DateTime<Utc>,
    now: DateTime<Utc>,
    after: Duration,
    posts_waiting: u32,
    reminded: bool,
) -> bool {
    !reminded
        && posts_waiting > 0
        && now.signed_duration_since(opened_at).to_std().is_ok_and(|open| open >= after)
}

/// One dead-lettered post as a digest lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetter {
    pub post_id: String,
    /// The platform's display name (`LinkedIn`).
    pub platform: String,
    /// The failure kind in lowercase (`rejected`, `auth`, …).
    pub kind: String,
    pub reason: String,
}

/// How many posts a digest's text lists; the rest are counted (the webhook data lists all).
pub const DIGEST_LISTED: usize = 20;

/// The digest of a workspace's dead-lettered posts: each with its reason, and how to replay them.
pub fn dead_letter_digest(posts: &[DeadLetter]) -> Words {
    let n = posts.len();
    let mut lines: Vec<String> = posts
        .iter()
        .take(DIGEST_LISTED)
        .map(|p| format!("• post {} on {} ({}): {}", p.post_id, p.platform, p.kind, p.reason))
        .collect();
    if n > DIGEST_LISTED {
        lines.push(format!(
            "… and {} more: `lifelinectl dead-letters list` shows them all.",
            n - DIGEST_LISTED
        ));
    }
    let first = posts.first().map_or("<id>", |p| p.post_id.as_str());
    Words {
        title: if n == 1 {
            "1 post could not be published".to_owned()
        } else {
            format!("{n} posts could not be published")
        },
        body: format!(
            "Lifeline gave up on {} and will not retry {} by itself:\n{}",
            if n == 1 { "this post" } else { "these posts" },
            if n == 1 { "it" } else { "them" },
            lines.join("\n")
        ),
        advice: format!(
            "Fix what the reason says, then replay: `lifelinectl dead-letters replay --post {first}` \
             for one post, `lifelinectl dead-letters replay --all` for every one (or \
             `POST /v1/dead-letters/{{post_id}}/replay` and `POST /v1/dead-letters/replay` on the \
             publisher's API)."
        ),
    }
}

/// Whether a workspace's digest goes out now: posts are waiting, the oldest has waited `every`
/// (so the ones that follow it closely share its message), and the last digest is `every` old.
pub fn digest_due(
    oldest_waiting: Option<DateTime<Utc>>,
    last_sent: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    every: Duration,
) -> bool {
    let aged = |t: DateTime<Utc>| now.signed_duration_since(t).to_std().is_ok_and(|d| d >= every);
    oldest_waiting.is_some_and(aged) && last_sent.is_none_or(aged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_title_names_the_handle_and_the_platform() {
        let w = broken(Platform::LinkedIn, Some("acme"), AuthFailureCause::Revoked, false, None);
        assert_eq!(w.title, "@acme on LinkedIn needs reconnecting");
        assert!(w.body.contains("access was revoked"), "{}", w.body);
        let w = broken(Platform::X, None, AuthFailureCause::Expired, false, None);
        assert_eq!(w.title, "Your X account needs reconnecting");
        assert!(w.body.starts_with("Lifeline cannot publish to your X account"), "{}", w.body);
    }

    #[test]
    fn each_cause_gets_its_advice() {
        let a = |c| advice(c, Platform::Instagram);
        assert!(a(AuthFailureCause::PasswordChanged).contains("will likely require reconnecting"));
        assert!(a(AuthFailureCause::PermissionRemoved).contains(
            "make sure you're not revoking app permissions on Instagram's settings page"
        ));
        assert!(a(AuthFailureCause::SecurityEvent)
            .contains("Check Instagram's security notices, then reconnect"));
        assert!(a(AuthFailureCause::Policy).contains("policy"));
        assert!(a(AuthFailureCause::Expired).contains("expired"));
    }

    #[test]
    fn frequent_disconnections_add_their_advice_once() {
        let w = broken(Platform::X, Some("a"), AuthFailureCause::Revoked, true, None);
        assert!(w.advice.ends_with(FREQUENT_ADVICE));
        assert!(is_frequent(3, 3, false));
        assert!(!is_frequent(2, 3, false));
        assert!(!is_frequent(4, 3, true), "told once per window");
    }

    #[test]
    fn expiring_says_reconnect_before_the_date() {
        let at = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let w = expiring(Platform::YouTube, Some("chan"), at, "");
        assert_eq!(w.title, "Reconnect @chan on YouTube before 2027-01-15 08:00 UTC");
    }

    #[test]
    fn the_link_opens_the_accounts_page_at_the_account() {
        let id = uuid::Uuid::nil();
        assert_eq!(
            reconnect_url("https://app.example/", id),
            "https://app.example/?account=00000000-0000-0000-0000-000000000000"
        );
    }

    #[test]
    fn one_reminder_after_the_delay_with_posts_waiting() {
        let t = |s: i64| DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap();
        let day = Duration::from_secs(86_400);
        assert!(!reminder_due(t(0), t(86_399), day, 2, false));
        assert!(reminder_due(t(0), t(86_400), day, 2, false));
        assert!(!reminder_due(t(0), t(90_000), day, 0, false), "no posts waiting");
        assert!(!reminder_due(t(0), t(90_000), day, 2, true), "never a second one");
    }

    #[test]
    fn a_digest_lists_each_post_with_its_reason_and_how_to_replay() {
        let post = |i: usize| DeadLetter {
            post_id: format!("p{i}"),
            platform: "LinkedIn".into(),
            kind: "rejected".into(),
            reason: format!("reason {i}"),
        };
        let w = dead_letter_digest(&[post(1), post(2)]);
        assert_eq!(w.title, "2 posts could not be published");
        assert!(w.body.contains("• post p1 on LinkedIn (rejected): reason 1"), "{}", w.body);
        assert!(w.body.contains("• post p2 on LinkedIn (rejected): reason 2"), "{}", w.body);
        assert!(w.advice.contains("lifelinectl dead-letters replay --post p1"), "{}", w.advice);
        assert!(w.advice.contains("POST /v1/dead-letters/{post_id}/replay"), "{}", w.advice);
        assert_eq!(dead_letter_digest(&[post(1)]).title, "1 post could not be published");
        let many: Vec<_> = (0..25).map(post).collect();
        let w = dead_letter_digest(&many);
        assert!(w.body.contains("p19") && !w.body.contains("p20"), "{}", w.body);
        assert!(w.body.contains("… and 5 more"), "{}", w.body);
    }

    #[test]
    fn a_digest_waits_for_its_interval_after_the_first_post_and_the_last_digest() {
        let t = |s: i64| DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap();
        let hour = Duration::from_secs(3600);
        assert!(!digest_due(None, None, t(0), hour), "nothing waiting");
        assert!(!digest_due(Some(t(0)), None, t(3599), hour), "the first post waits an hour");
        assert!(digest_due(Some(t(0)), None, t(3600), hour));
        assert!(!digest_due(Some(t(0)), Some(t(1800)), t(3600), hour), "one per hour");
        assert!(digest_due(Some(t(0)), Some(t(1800)), t(5400), hour));
    }

    #[test]
    fn the_messages_count_the_waiting_posts() {
        let body = |n| broken(Platform::X, None, AuthFailureCause::Revoked, false, n).body;
        assert!(body(Some(3))
            .ends_with("3 scheduled posts wait, and are retried once it is reconnected."));
        assert!(body(Some(1))
            .ends_with("1 scheduled post waits, and is retried once it is reconnected."));
        assert!(body(None)
            .ends_with("Posts scheduled for it wait, and are retried once it is reconnected."));
        assert!(body(Some(100)).contains("100 or more"));
        let since = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let w = reminder(Platform::X, Some("acme"), AuthFailureCause::Revoked, since, 2);
        assert_eq!(w.title, "Reminder: @acme on X still needs reconnecting");
        assert!(w.body.contains("since 2027-01-15 08:00 UTC"), "{}", w.body);
        assert!(w.body.contains("2 scheduled posts wait"), "{}", w.body);
    }
}
