//! Maps LinkedIn's answers into the taxonomy. Sources: learn.microsoft.com/linkedin/shared/
//! authentication/authorization-code-flow and …/programmatic-refresh-tokens (token endpoint),
//! …/shared/api-guide/concepts/error-handling (API errors); the 401 bodies with
//! `serviceErrorCode` 65600-65602 are known from third-party reports.

use reqwest::{header::HeaderMap, StatusCode};

use super::wire::ApiError;
use crate::{
    common::{detail, retry_after, server_failure, unrecognised},
    oauth::{self, TokenError},
    AuthCause, Failure,
};

/// Classifies a non-success answer of LinkedIn's API. `believed_expired`: our record says the
/// token had lapsed (tells an expiry from a revocation when LinkedIn's body does not);
/// `mutating`: the call creates something.
pub fn classify_api(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    believed_expired: bool,
    mutating: bool,
) -> Failure {
    let error = ApiError::parse(body);
    let detail = detail("LinkedIn", status, error.as_ref().and_then(|e| e.message.as_deref()));
    if status.is_server_error() {
        return server_failure(status, mutating, detail);
    }
    if status == StatusCode::TOO_MANY_REQUESTS {
        return Failure::RateLimited { retry_after: retry_after(headers), detail };
    }
    let Some(error) = error else { return unrecognised(status, headers, mutating, detail) };
    // Classify on the symbolic `code`: one source swaps 65601 and 65602, the names agree.
    match error.code.as_deref() {
        Some("REVOKED_ACCESS_TOKEN") => return Failure::auth(AuthCause::Revoked, detail),
        Some("EXPIRED_ACCESS_TOKEN") => return Failure::auth(AuthCause::Expired, detail),
        Some("INVALID_ACCESS_TOKEN") => return Failure::auth(expired_or(believed_expired), detail),
        Some("ACCESS_DENIED") => return Failure::auth(AuthCause::PermissionRemoved, detail),
        Some("TOO_MANY_REQUESTS") => {
            return Failure::RateLimited { retry_after: retry_after(headers), detail }
        }
        _ => {}
    }
    match (status.as_u16(), error.service_error_code) {
        // Older bodies carry only the number; which of the three it is does not survive the
        // swapped sources, so our own expiry record decides.
        (401, Some(65_600..=65_602)) => Failure::auth(expired_or(believed_expired), detail),
        // ACCESS_DENIED's number: the member no longer grants what the call needs.
        (403, Some(100)) => Failure::auth(AuthCause::PermissionRemoved, detail),
        _ => unrecognised(status, headers, mutating, detail),
    }
}

fn expired_or(believed_expired: bool) -> AuthCause {
    if believed_expired {
        AuthCause::Expired
    } else {
        AuthCause::Revoked
    }
}

/// Classifies the token endpoint's OAuth error (code exchange or refresh).
pub fn classify_token_error(e: &TokenError) -> Failure {
    let detail = format!("LinkedIn token endpoint: {e}");
    match e.error.as_str() {
        // A revoked refresh token, or one past its 365 days. Which one we cannot tell here (the
        // refresher knows the refresh token's expiry and may call it Expired); Revoked is the
        // safe default because it asks the user to act.
        "invalid_grant" => Failure::auth(AuthCause::Revoked, detail),
        "invalid_scope" | "access_denied" => Failure::auth(AuthCause::PermissionRemoved, detail),
        // Our request (redirect URI, code already used) is wrong: repeating it will not help.
        "invalid_request" => Failure::rejected(detail),
        // Client credentials wrong or the app suspended: an operator problem, never the account's.
        _ => Failure::transient(detail),
    }
}

/// A raw token-endpoint error body (what [`classify_token_error`] sees after parsing).
pub fn classify_token_body(body: &[u8]) -> Failure {
    oauth::classify_body("LinkedIn", body, classify_token_error)
}
