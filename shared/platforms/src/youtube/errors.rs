//! Maps Google's and YouTube's answers into the taxonomy. Sources:
//! developers.google.com/youtube/v3/docs/errors (API reasons), developers.google.com/identity/
//! protocols/oauth2 and …/oauth2/web-server (token endpoint, `invalid_grant`, `invalid_rapt`,
//! `admin_policy_enforced`).

use std::time::Duration;

use chrono::{FixedOffset, NaiveTime, Utc};
use reqwest::{header::HeaderMap, StatusCode};

use super::wire::ApiError;
use crate::{
    common::{detail, retry_after, server_failure, unrecognised},
    oauth::{self, TokenError},
    AuthCause, Failure,
};

/// "If you get a 400 error with the reason `uploadLimitExceeded` … try again in 24 hours."
const UPLOAD_LIMIT_WAIT: Duration = Duration::from_secs(24 * 3600);

/// Classifies a non-success answer of the YouTube Data API (or its upload endpoint).
pub fn classify_api(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    believed_expired: bool,
    mutating: bool,
) -> Failure {
    let error = ApiError::parse(body);
    let detail = detail("YouTube", status, error.as_ref().and_then(|e| e.message.as_deref()));
    if status.is_server_error() {
        return server_failure(status, mutating, detail);
    }
    let Some(error) = error else { return unrecognised(status, headers, mutating, detail) };
    let detail = match error.reasons.first() {
        Some(reason) => format!("{detail} [{reason}]"),
        None => detail,
    };
    let rate_limited = |retry_after| Failure::RateLimited { retry_after, detail: detail.clone() };
    if error.has(&["quotaExceeded", "dailyLimitExceeded"]) {
        // The project's daily quota resets at midnight Pacific time.
        return rate_limited(retry_after(headers).or_else(until_pacific_midnight));
    }
    if error.has(&["rateLimitExceeded", "userRateLimitExceeded"])
        || error.status.as_deref() == Some("RESOURCE_EXHAUSTED")
        || status == StatusCode::TOO_MANY_REQUESTS
    {
        return rate_limited(retry_after(headers));
    }
    if error.has(&["uploadLimitExceeded"]) {
        return rate_limited(Some(retry_after(headers).unwrap_or(UPLOAD_LIMIT_WAIT)));
    }
    let auth = |cause| Failure::auth(cause, detail.clone());
    let expired_or_revoked = if believed_expired { AuthCause::Expired } else { AuthCause::Revoked };
    match status.as_u16() {
        // The user has a Google account but no channel: they must create one, then reconnect.
        401 if error.has(&["youtubeSignupRequired"]) => auth(AuthCause::Unknown),
        401 if error.has(&["authError", "expired", "required"])
            || error.status.as_deref() == Some("UNAUTHENTICATED") =>
        {
            auth(expired_or_revoked)
        }
        // The API is not enabled for our Cloud project: an operator problem.
        403 if error.has(&["accessNotConfigured"]) => Failure::transient(detail),
        403 if error.has(&["authenticatedUserAccountSuspended"]) => auth(AuthCause::Policy),
        403 if error.has(&["authenticatedUserAccountClosed"]) => auth(AuthCause::Revoked),
        403 if error.has(&[
            "insufficientPermissions",
            "forbidden",
            "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
        ]) =>
        {
            auth(AuthCause::PermissionRemoved)
        }
        // Google's format but a reason we do not map: the request itself was refused.
        400 | 403 | 404 | 409 | 413 | 422 => Failure::rejected(detail),
        _ => unrecognised(status, headers, mutating, detail),
    }
}

/// Time until the next midnight in US Pacific time (standard time; an hour early in summer,
/// which only makes the first retry find the quota still spent).
fn until_pacific_midnight() -> Option<Duration> {
    let pacific = FixedOffset::west_opt(8 * 3600)?;
    let now = Utc::now().with_timezone(&pacific);
    let midnight = now
        .date_naive()
        .succ_opt()?
        .and_time(NaiveTime::MIN)
        .and_local_timezone(pacific)
        .single()?;
    (midnight - now).to_std().ok()
}

/// Classifies Google's token endpoint OAuth error (code exchange or refresh).
pub fn classify_token_error(e: &TokenError) -> Failure {
    let detail = format!("Google token endpoint: {e}");
    match (e.error.as_str(), e.error_subtype.as_deref()) {
        // A session-control policy demands the user sign in again.
        ("invalid_grant", Some("invalid_rapt")) => Failure::auth(AuthCause::SecurityEvent, detail),
        // Revoked, unused for 6 months, over the 100-token limit, a password change, or the
        // 7-day life of a "Testing" app's token: Google says only "expired or revoked".
        ("invalid_grant", _) => Failure::auth(AuthCause::Revoked, detail),
        // A Workspace admin restricted a scope or the app.
        ("admin_policy_enforced", _) => Failure::auth(AuthCause::Policy, detail),
        ("invalid_scope" | "access_denied", _) => {
            Failure::auth(AuthCause::PermissionRemoved, detail)
        }
        ("invalid_request", _) => Failure::rejected(detail),
        // invalid_client, unauthorized_client, deleted_client, org_internal…: our app's
        // registration, never the account's.
        _ => Failure::transient(detail),
    }
}

/// A raw token-endpoint error body (what [`classify_token_error`] sees after parsing).
pub fn classify_token_body(body: &[u8]) -> Failure {
    oauth::classify_body("Google", body, classify_token_error)
}
