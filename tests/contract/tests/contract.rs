//! The platform × scenario contract table: every connector against its simulated platform over
//! real HTTP. Each test is named `<platform>_<scenario>`, so `cargo test -p lifeline-contract`
//! prints the table. Expected outcomes are the documented ones (`../shared/PLATFORMS.md`,
//! `docs/platform-sim.md` "What each control action makes the platform answer"), classified
//! through the taxonomy (`Failure`) the rest of Lifeline acts on.
//!
//! Scenarios: `connect`, `refresh`, `publish`, `probe`; what the user or the platform does to the
//! account: `revoked`, `expired`, `password_changed`, `permission_removed`, `security_event`,
//! `deauthorized`; platform-wide faults: `rate_limited`, `outage` (503), `timeout` (the platform
//! hangs), `rejected` (content refused), `ambiguous` (the post is taken, the answer lost).

use lifeline_contract::{
    auth,
    scenarios::{self, *},
    Expect::{self, Ambiguous, Ok, RateLimited, Rejected, Transient},
    Expired, PasswordChanged, PermissionRemoved, Probe, Publish, Refresh, Revoked, SecurityEvent,
    DAY,
};
use lifeline_kit::Platform::{Facebook, Instagram, LinkedIn, Threads, TikTok, YouTube, X};

macro_rules! contract {
    ($($name:ident => $scenario:expr;)+) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            $scenario.await
        }
    )+};
}

/// `retry_after` the platform announces for the injected limit (`RATE_LIMIT_SECONDS`).
fn within_limit() -> Expect {
    let s = scenarios::RATE_LIMIT_SECONDS as u64;
    RateLimited(Some(s - 2..=s + 1))
}

/// Graph's Business Use Case header: `estimated_time_to_regain_access` in whole minutes.
fn buc_minutes() -> Expect {
    let s = scenarios::RATE_LIMIT_SECONDS as u64;
    RateLimited(Some(s.div_ceil(60) * 60..=s.div_ceil(60) * 60))
}

contract! {
    // ---- X: PKCE, rotating single-use refresh tokens; API 401 never says why. ----
    x_connect => connect(X);
    x_refresh => refresh_rotating(X, true);
    x_publish => publish(X);
    x_probe => probe(X);
    x_revoked => after(X, "revoke", &[(Probe, auth(Revoked)), (Publish, auth(Revoked)), (Refresh, auth(Revoked))]);
    x_expired => expires(X);
    x_password_changed => after(X, "password-change", &[(Probe, auth(Revoked)), (Refresh, auth(Revoked))]);
    x_permission_removed => after(X, "remove-scope", &[(Publish, auth(PermissionRemoved)), (Probe, Ok)]);
    x_security_event => after(X, "security-checkpoint", &[(Probe, auth(Revoked)), (Refresh, auth(Revoked))]);
    x_deauthorized => after(X, "deauthorize", &[(Probe, auth(Revoked)), (Refresh, auth(Revoked))]);
    x_rate_limited => rate_limited(X, &[(Probe, within_limit()), (Publish, within_limit()), (Refresh, Ok)]);
    x_outage => outage(X, &[(Probe, Transient), (Publish, Transient), (Refresh, Transient)]);
    x_timeout => hangs(X, &[(Probe, Transient), (Publish, Ambiguous), (Refresh, Ambiguous)]);
    x_rejected => rejects_content(X, &[(Publish, Rejected), (Probe, Ok)]);
    x_ambiguous => ambiguous(X);

    // ---- LinkedIn: no PKCE, non-rotating refresh token, 401 names the cause. ----
    linkedin_connect => connect(LinkedIn);
    linkedin_refresh => refresh_linkedin();
    linkedin_publish => publish(LinkedIn);
    linkedin_probe => probe(LinkedIn);
    linkedin_revoked => after(LinkedIn, "revoke", &[(Probe, auth(Revoked)), (Publish, auth(Revoked)), (Refresh, auth(Revoked))]);
    linkedin_expired => after(LinkedIn, "expire", &[(Probe, auth(Expired)), (Publish, auth(Expired)), (Refresh, Ok)]);
    linkedin_password_changed => after(LinkedIn, "password-change", &[(Probe, auth(Revoked)), (Refresh, auth(Revoked))]);
    linkedin_permission_removed => after(LinkedIn, "remove-scope", &[(Publish, auth(PermissionRemoved)), (Probe, Ok)]);
    linkedin_security_event => after(LinkedIn, "security-checkpoint", &[(Probe, auth(Revoked)), (Refresh, auth(Revoked))]);
    linkedin_deauthorized => after(LinkedIn, "deauthorize", &[(Probe, auth(Revoked)), (Refresh, auth(Revoked))]);
    // LinkedIn documents no Retry-After.
    linkedin_rate_limited => rate_limited(LinkedIn, &[(Probe, RateLimited(None)), (Publish, RateLimited(None)), (Refresh, Ok)]);
    linkedin_outage => outage(LinkedIn, &[(Probe, Transient), (Publish, Transient), (Refresh, Transient)]);
    linkedin_timeout => hangs(LinkedIn, &[(Probe, Transient), (Publish, Ambiguous), (Refresh, Transient)]);
    linkedin_rejected => rejects_content(LinkedIn, &[(Publish, Rejected), (Probe, Ok)]);
    // LinkedIn cannot be checked: member posts can be read only with r_member_social.
    linkedin_ambiguous => ambiguous(LinkedIn);

    // ---- Instagram: Graph errors; the 60-day token refreshes itself after 24 h. ----
    instagram_connect => connect(Instagram);
    instagram_refresh => refresh_meta(Instagram);
    instagram_publish => publish(Instagram);
    instagram_probe => probe(Instagram);
    instagram_revoked => after(Instagram, "revoke", &[(Probe, auth(Revoked)), (Publish, auth(Revoked)), (Refresh, auth(Revoked))]);
    instagram_expired => after(Instagram, "expire", &[(Probe, auth(Expired)), (Publish, auth(Expired)), (Refresh, auth(Expired))]);
    instagram_password_changed => after(Instagram, "password-change", &[(Probe, auth(PasswordChanged)), (Publish, auth(PasswordChanged)), (Refresh, auth(PasswordChanged))]);
    instagram_permission_removed => after(Instagram, "remove-scope", &[(Publish, auth(PermissionRemoved)), (Probe, Ok)]);
    instagram_security_event => after(Instagram, "security-checkpoint", &[(Probe, auth(SecurityEvent)), (Refresh, auth(SecurityEvent))]);
    instagram_deauthorized => after(Instagram, "deauthorize", &[(Probe, auth(Revoked)), (Refresh, auth(Revoked))]);
    instagram_rate_limited => rate_limited(Instagram, &[(Probe, buc_minutes()), (Publish, buc_minutes())]);
    instagram_outage => outage(Instagram, &[(Probe, Transient), (Publish, Transient), (Refresh, Transient)]);
    // The first publishing step only makes a container, which is not a post.
    instagram_timeout => hangs(Instagram, &[(Probe, Transient), (Publish, Transient), (Refresh, Transient)]);
    instagram_rejected => rejects_content(Instagram, &[(Publish, Rejected), (Probe, Ok)]);
    // The answer of media_publish (the step that makes the post) is lost.
    instagram_ambiguous => ambiguous(Instagram);

    // ---- Facebook Pages: a Page token that does not expire; no refresh token. ----
    facebook_connect => connect(Facebook);
    facebook_refresh => refresh_facebook();
    facebook_publish => publish(Facebook);
    facebook_probe => probe(Facebook);
    facebook_revoked => after(Facebook, "revoke", &[(Probe, auth(Revoked)), (Publish, auth(Revoked))]);
    facebook_expired => after(Facebook, "expire", &[(Probe, auth(Expired)), (Publish, auth(Expired))]);
    facebook_password_changed => after(Facebook, "password-change", &[(Probe, auth(PasswordChanged)), (Publish, auth(PasswordChanged))]);
    facebook_permission_removed => after(Facebook, "remove-scope", &[(Publish, auth(PermissionRemoved)), (Probe, Ok)]);
    facebook_security_event => after(Facebook, "security-checkpoint", &[(Probe, auth(SecurityEvent)), (Publish, auth(SecurityEvent))]);
    facebook_deauthorized => after(Facebook, "deauthorize", &[(Probe, auth(Revoked)), (Publish, auth(Revoked))]);
    facebook_rate_limited => rate_limited(Facebook, &[(Probe, buc_minutes()), (Publish, buc_minutes())]);
    facebook_outage => outage(Facebook, &[(Probe, Transient), (Publish, Transient)]);
    facebook_timeout => hangs(Facebook, &[(Probe, Transient), (Publish, Ambiguous)]);
    facebook_rejected => rejects_content(Facebook, &[(Publish, Rejected), (Probe, Ok)]);
    facebook_ambiguous => ambiguous(Facebook);

    // ---- YouTube: Google OAuth with PKCE, non-rotating refresh token, resumable upload. ----
    youtube_connect => connect(YouTube);
    youtube_refresh => refresh_youtube();
    youtube_publish => publish(YouTube);
    youtube_probe => probe(YouTube);
    youtube_revoked => after(YouTube, "revoke", &[(Probe, auth(Revoked)), (Publish, auth(Revoked)), (Refresh, auth(Revoked))]);
    youtube_expired => expires(YouTube);
    // Access tokens live out their hour; the refresh token dies, and Google only says
    // "expired or revoked".
    youtube_password_changed => after(YouTube, "password-change", &[(Probe, Ok), (Refresh, auth(Revoked))]);
    youtube_permission_removed => after(YouTube, "remove-scope", &[(Publish, auth(PermissionRemoved)), (Probe, Ok)]);
    youtube_security_event => after(YouTube, "security-checkpoint", &[(Probe, Ok), (Refresh, auth(SecurityEvent))]);
    youtube_deauthorized => after(YouTube, "deauthorize", &[(Probe, auth(Revoked)), (Refresh, auth(Revoked))]);
    // 403 quotaExceeded, no Retry-After: the quota comes back at midnight Pacific time.
    youtube_rate_limited => rate_limited(YouTube, &[(Probe, RateLimited(Some(1..=DAY))), (Publish, RateLimited(Some(1..=DAY))), (Refresh, Ok)]);
    youtube_outage => outage(YouTube, &[(Probe, Transient), (Publish, Transient), (Refresh, Transient)]);
    // Opening the upload session creates no video.
    youtube_timeout => hangs(YouTube, &[(Probe, Transient), (Publish, Transient), (Refresh, Transient)]);
    youtube_rejected => rejects_content(YouTube, &[(Publish, Rejected), (Probe, Ok)]);
    // The upload's PUT creates the video; its answer is lost.
    youtube_ambiguous => ambiguous(YouTube);

    // ---- TikTok: PKCE, rotating refresh tokens, Direct Post pulled from a URL. ----
    tiktok_connect => connect(TikTok);
    tiktok_refresh => refresh_rotating(TikTok, false);
    tiktok_publish => publish(TikTok);
    tiktok_probe => probe(TikTok);
    tiktok_revoked => after(TikTok, "revoke", &[(Probe, auth(Revoked)), (Publish, auth(Revoked)), (Refresh, auth(Revoked))]);
    tiktok_expired => expires(TikTok);
    tiktok_password_changed => after(TikTok, "password-change", &[(Probe, auth(Revoked)), (Refresh, auth(Revoked))]);
    tiktok_permission_removed => after(TikTok, "remove-scope", &[(Publish, auth(PermissionRemoved)), (Probe, Ok)]);
    tiktok_security_event => after(TikTok, "security-checkpoint", &[(Probe, auth(Revoked)), (Refresh, auth(Revoked))]);
    tiktok_deauthorized => after(TikTok, "deauthorize", &[(Probe, auth(Revoked)), (Refresh, auth(Revoked))]);
    tiktok_rate_limited => rate_limited(TikTok, &[(Probe, RateLimited(None)), (Publish, RateLimited(None)), (Refresh, Ok)]);
    tiktok_outage => outage(TikTok, &[(Probe, Transient), (Publish, Transient), (Refresh, Transient)]);
    // The init starts the post; a rotating refresh may have spent the token.
    tiktok_timeout => hangs(TikTok, &[(Probe, Transient), (Publish, Ambiguous), (Refresh, Ambiguous)]);
    tiktok_rejected => rejects_content(TikTok, &[(Publish, Rejected), (Probe, Ok)]);
    // The init's answer, with the only publish id, is lost: TikTok cannot be checked.
    tiktok_ambiguous => ambiguous(TikTok);

    // ---- Threads: Instagram's flow on graph.threads.net; throttling is code 4 with no time. ----
    threads_connect => connect(Threads);
    threads_refresh => refresh_meta(Threads);
    threads_publish => publish(Threads);
    threads_probe => probe(Threads);
    threads_revoked => after(Threads, "revoke", &[(Probe, auth(Revoked)), (Publish, auth(Revoked)), (Refresh, auth(Revoked))]);
    threads_expired => after(Threads, "expire", &[(Probe, auth(Expired)), (Publish, auth(Expired)), (Refresh, auth(Expired))]);
    threads_password_changed => after(Threads, "password-change", &[(Probe, auth(PasswordChanged)), (Publish, auth(PasswordChanged)), (Refresh, auth(PasswordChanged))]);
    threads_permission_removed => after(Threads, "remove-scope", &[(Publish, auth(PermissionRemoved)), (Probe, Ok)]);
    threads_security_event => after(Threads, "security-checkpoint", &[(Probe, auth(SecurityEvent)), (Refresh, auth(SecurityEvent))]);
    threads_deauthorized => after(Threads, "deauthorize", &[(Probe, auth(Revoked)), (Refresh, auth(Revoked))]);
    threads_rate_limited => rate_limited(Threads, &[(Probe, RateLimited(None)), (Publish, RateLimited(None))]);
    threads_outage => outage(Threads, &[(Probe, Transient), (Publish, Transient), (Refresh, Transient)]);
    threads_timeout => hangs(Threads, &[(Probe, Transient), (Publish, Transient), (Refresh, Transient)]);
    threads_rejected => rejects_content(Threads, &[(Publish, Rejected), (Probe, Ok)]);
    // The answer of threads_publish is lost.
    threads_ambiguous => ambiguous(Threads);
}
