//! Meta's Graph error format and its one mapping into the taxonomy, shared by Facebook,
//! Instagram and Threads (all three answer `{"error":{"message","type","code","error_subcode",
//! "is_transient","fbtrace_id"}}`). Source: developers.facebook.com/docs/graph-api/guides/
//! error-handling; Instagram's additions from developers.facebook.com/docs/instagram-platform/
//! instagram-graph-api/reference/error-codes.
//!
//! Graph sends throttling and auth errors as HTTP 400 or 403 (rarely 401/429), so the mapping
//! reads `code` / `error_subcode` / `is_transient`, never the status alone — except that a 5xx
//! is always an outage, whatever its body says.

use std::time::Duration;

use reqwest::{header::HeaderMap, StatusCode};

use crate::{
    common::{detail, retry_after, server_failure, unrecognised},
    AuthCause, Failure,
};

/// The fields of a Graph error we act on. Parsed leniently from a `Value` so one odd field does
/// not hide the others, but `code` must be an integer: without it the body is not recognised.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GraphError {
    pub code: i64,
    pub subcode: Option<i64>,
    pub is_transient: bool,
    pub message: Option<String>,
}

impl GraphError {
    pub fn parse(body: &[u8]) -> Option<Self> {
        let value: serde_json::Value = serde_json::from_slice(body).ok()?;
        let error = value.get("error")?.as_object()?;
        let code = error.get("code")?.as_i64()?;
        let text = |k: &str| error.get(k).and_then(|v| v.as_str()).map(str::to_owned);
        Some(GraphError {
            code,
            subcode: error.get("error_subcode").and_then(serde_json::Value::as_i64),
            is_transient: error.get("is_transient").and_then(serde_json::Value::as_bool)
                == Some(true),
            message: text("error_user_msg").or_else(|| text("message")),
        })
    }

    fn says_expired(&self) -> bool {
        self.message.as_deref().is_some_and(|m| m.to_lowercase().contains("expired"))
    }
}

/// Instagram's daily Content Publishing limit (code 9, subcode 2207042): "try again the
/// following day".
const PUBLISHING_LIMIT_WAIT: Duration = Duration::from_secs(24 * 3600);

/// Classifies a non-success Graph answer. `platform` names it in the detail;
/// `believed_expired`: our record says the token had lapsed; `mutating`: the call changes
/// something (a publish), so a lost effect is possible.
pub(crate) fn classify(
    platform: &str,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    believed_expired: bool,
    mutating: bool,
) -> Failure {
    let error = GraphError::parse(body);
    let detail = detail(platform, status, error.as_ref().and_then(|e| e.message.as_deref()));
    let detail = match &error {
        Some(e) => match e.subcode {
            Some(sub) => format!("{detail} (code {}, subcode {sub})", e.code),
            None => format!("{detail} (code {})", e.code),
        },
        None => detail,
    };
    if status.is_server_error() {
        return server_failure(status, mutating, detail);
    }
    let Some(error) = error else { return unrecognised(status, headers, mutating, detail) };
    let auth = |cause| Failure::auth(cause, detail.clone());
    match (error.code, error.subcode) {
        // Instagram's "we restrict certain activity" (code 4) and the daily publishing limit.
        (_, Some(2_207_051)) => Failure::RateLimited { retry_after: retry_after(headers), detail },
        (_, Some(2_207_042)) => Failure::RateLimited {
            retry_after: Some(retry_after(headers).unwrap_or(PUBLISHING_LIMIT_WAIT)),
            detail,
        },
        // Throttling: app (4), user (17), page (32), custom (613), application limit (341),
        // Business Use Case limits (80001 pages, 80002 Instagram, … 80014).
        (4 | 17 | 32 | 341 | 613 | 80_001..=80_014, _) => {
            Failure::RateLimited { retry_after: retry_after(headers), detail }
        }
        (190, Some(458)) => auth(AuthCause::Revoked), // app not installed / removed by the user
        (190, Some(459)) => auth(AuthCause::SecurityEvent), // checkpoint: log in at facebook.com
        (190, Some(460)) => auth(AuthCause::PasswordChanged),
        (190, Some(463)) => auth(AuthCause::Expired),
        // Unconfirmed user: the person must confirm the account on the platform itself, like a
        // checkpoint; reconnecting alone cannot fix it, and "security check" tells them where.
        (190, Some(464)) => auth(AuthCause::SecurityEvent),
        (190, Some(467)) => auth(AuthCause::Revoked), // invalidated: logged out, token killed
        // Invalid session: the session behind the token was ended (typically a lost Page role
        // or a forced logout). Nothing waits for the user on a security screen, and the fix is
        // a fresh grant, so it is a revocation, not a security event.
        (190, Some(492)) => auth(AuthCause::Revoked),
        (190, _) if believed_expired || error.says_expired() => auth(AuthCause::Expired),
        (190, _) => auth(AuthCause::Revoked),
        // API session: expired, revoked or invalid, Graph does not say which.
        (102, _) if believed_expired || error.says_expired() => auth(AuthCause::Expired),
        (102, _) => auth(AuthCause::Unknown),
        (10 | 200..=299, _) => auth(AuthCause::PermissionRemoved),
        // "Temporarily blocked for policies violations": a block on the action, not the token.
        // Reconnecting cannot lift it, so it must not park posts waiting for a reconnect; the
        // post is refused (dead-lettered, replayable by an operator once the block ends).
        (368, _) => Failure::rejected(detail),
        // Unknown error (1): on a publish it may have happened anyway.
        (1, _) if mutating => Failure::ambiguous(detail),
        // Service (2), Instagram's media download/server errors (-1, -2) and anything Meta
        // flags as transient: "wait and retry".
        (1 | 2 | -1 | -2, _) => Failure::transient(detail),
        _ if error.is_transient => Failure::transient(detail),
        // The request or its content refused: method/capability (3), invalid parameter (100),
        // video format (352), duplicate post (506), media URL (9004), Instagram media errors
        // (36000-36003, subcodes 2207xxx), link scraping (1609005).
        (3 | 100 | 352 | 506 | 9004 | 36_000..=36_003 | 1_609_005, _) => Failure::rejected(detail),
        (_, Some(2_207_000..=2_207_999)) => Failure::rejected(detail),
        // A Graph error we do not know: the status decides, as for any unrecognised answer.
        _ => unrecognised(status, headers, mutating, detail),
    }
}

/// Graph timestamps: `2017-08-31T18:10:00+0000` (no colon in the offset), or RFC 3339.
pub(crate) fn parse_time(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%z")
        .or_else(|_| chrono::DateTime::parse_from_rfc3339(s))
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

/// Bounded polling of a media container until Meta has processed it (video, mostly).
pub(crate) const CONTAINER_POLLS: u32 = 20;
pub(crate) const CONTAINER_POLL_INTERVAL: Duration = Duration::from_secs(3);
