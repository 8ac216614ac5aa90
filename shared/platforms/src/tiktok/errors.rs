//! Maps TikTok's answers into the taxonomy. Sources: developers.tiktok.com/doc/
//! oauth-error-handling (token endpoint), …/doc/tiktok-api-v2-error-handling (API codes),
//! …/doc/content-posting-api-reference-direct-post and …-get-video-status (posting).

use reqwest::{header::HeaderMap, StatusCode};

use super::wire::{ApiError, TokenError};
use crate::{
    common::{detail, retry_after, server_failure, truncate, unrecognised},
    AuthCause, Failure,
};

/// Classifies a non-success API answer (or a success status whose body carries an error code
/// other than `ok`).
pub fn classify_api(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    believed_expired: bool,
    mutating: bool,
) -> Failure {
    let error = ApiError::parse(body).filter(|e| e.code != "ok");
    let detail = detail("TikTok", status, error.as_ref().and_then(|e| e.message.as_deref()));
    if status.is_server_error() {
        return server_failure(status, mutating, detail);
    }
    let Some(error) = error else { return unrecognised(status, headers, mutating, detail) };
    let detail = format!("{detail} [{}]", truncate(&error.code));
    let expired_or_revoked = if believed_expired { AuthCause::Expired } else { AuthCause::Revoked };
    match error.code.as_str() {
        "access_token_invalid" => Failure::auth(expired_or_revoked, detail),
        "scope_not_authorized" | "scope_permission_missed" => {
            Failure::auth(AuthCause::PermissionRemoved, detail)
        }
        // Per-token rate limit, and the app's daily cap on active posting users.
        "rate_limit_exceeded" | "reached_active_user_cap" => {
            Failure::RateLimited { retry_after: retry_after(headers), detail }
        }
        "internal_error" => server_failure(StatusCode::INTERNAL_SERVER_ERROR, mutating, detail),
        // spam_risk_too_many_posts, spam_risk_user_banned_from_posting, …: TikTok refuses the
        // post as the account stands; reconnecting will not change it and neither will an
        // immediate retry.
        code if code.starts_with("spam_risk") => Failure::rejected(detail),
        // The request or the content is refused as it stands.
        "invalid_params"
        | "invalid_file_upload"
        | "privacy_level_option_mismatch"
        | "unaudited_client_can_only_post_to_private_accounts"
        | "url_ownership_unverified"
        | "duration_check_failed"
        | "file_format_check_failed" => Failure::rejected(detail),
        _ => unrecognised(status, headers, mutating, detail),
    }
}

/// Classifies a token endpoint answer that is an error. `rotating`: the request spends a
/// refresh token (TikTok rotates them), so an answer lost after sending is ambiguous.
pub fn classify_token(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    rotating: bool,
) -> Failure {
    let error = TokenError::parse(body);
    let detail = match &error {
        Some(e) => format!(
            "TikTok token endpoint: {}{}",
            truncate(&e.error),
            e.description.as_deref().map(|d| format!(" ({})", truncate(d))).unwrap_or_default()
        ),
        None => format!("TikTok token endpoint: {status}"),
    };
    if status.is_server_error() {
        return server_failure(status, rotating, detail);
    }
    let Some(error) = error else { return unrecognised(status, headers, rotating, detail) };
    match error.error.as_str() {
        // A bad, expired or revoked refresh token (or code). Whether it expired we cannot tell
        // here; the refresher knows `refresh_expires_in` and may say Expired.
        "invalid_grant" => Failure::auth(AuthCause::Revoked, detail),
        "invalid_scope" | "access_denied" => Failure::auth(AuthCause::PermissionRemoved, detail),
        "rate_limit_exceeded" => Failure::RateLimited { retry_after: retry_after(headers), detail },
        "invalid_request" => Failure::rejected(detail),
        // invalid_client, unauthorized_client, unsupported_grant_type: our app, not the account.
        _ => Failure::transient(detail),
    }
}

/// A publish that TikTok reports FAILED: nothing was posted, so never ambiguous.
pub fn classify_fail_reason(reason: &str) -> Failure {
    let detail = format!("TikTok publish failed: {}", truncate(reason));
    match reason {
        // The user withdrew our access while the post was processing.
        "auth_removed" => Failure::auth(AuthCause::Revoked, detail),
        "internal" => Failure::transient(detail),
        // file_format_check_failed, duration_check_failed, video_pull_failed,
        // spam_risk_*, publish_cancelled, …
        _ => Failure::rejected(detail),
    }
}
