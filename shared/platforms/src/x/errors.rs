//! Maps X's answers into the taxonomy. Sources: docs.x.com "Response codes and errors",
//! "Rate limits", and the token endpoint's OAuth errors.

use std::time::Duration;

use oauth2::{basic::BasicErrorResponseType, HttpClientError, RequestTokenError};
use reqwest::{header::HeaderMap, StatusCode};

use super::wire::Problem;
use crate::{AuthCause, Failure};

/// Classifies a non-success answer of X's API. `believed_expired`: our record says the access
/// token had lapsed, which tells an expiry from a revocation (X's 401 says neither).
///
/// A 401 or 403 counts as an auth failure only with X's own problem body (`"status":401` /
/// `"title":"Unauthorized"`, `"status":403` / `"title":"Forbidden"`, or error code 89/32):
/// a bare status, an HTML page or garbage could come from anything in front of X, and an outage
/// must never mark an account for reconnect.
pub fn classify_api(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    believed_expired: bool,
) -> Failure {
    let problem: Problem = serde_json::from_slice(body).unwrap_or_default();
    let detail = problem
        .detail
        .clone()
        .or_else(|| problem.errors.as_ref().and_then(|e| e.first()).and_then(|e| e.message.clone()))
        .or(problem.title.clone())
        .unwrap_or_else(|| status.to_string());
    let detail = format!("X {}: {}", status.as_u16(), truncate(&detail));
    let has_code =
        |c: i64| problem.errors.as_ref().is_some_and(|e| e.iter().any(|e| e.code == Some(c)));
    let titled = |t: &str| problem.title.as_deref().is_some_and(|x| x.eq_ignore_ascii_case(t));
    let x_401 =
        problem.status == Some(401) || titled("Unauthorized") || has_code(89) || has_code(32);
    let x_403 = problem.status == Some(403) || titled("Forbidden");
    match status.as_u16() {
        _ if has_code(88) => {
            Failure::RateLimited { retry_after: rate_limit_reset(headers), detail }
        }
        401 | 403 if !(x_401 || x_403) => Failure::transient(detail),
        401 => {
            let cause = if believed_expired { AuthCause::Expired } else { AuthCause::Revoked };
            Failure::auth(cause, detail)
        }
        403 => {
            let text = format!(
                "{} {}",
                problem.detail.unwrap_or_default(),
                problem.kind.unwrap_or_default()
            )
            .to_lowercase();
            if text.contains("duplicate") {
                Failure::rejected(detail)
            } else if text.contains("suspend") {
                Failure::auth(AuthCause::Policy, detail)
            } else {
                // A user token that may no longer do this: a scope was removed.
                Failure::auth(AuthCause::PermissionRemoved, detail)
            }
        }
        429 => Failure::RateLimited { retry_after: rate_limit_reset(headers), detail },
        400 | 404 | 409 | 413 | 422 => Failure::rejected(detail),
        // 500 and 504 may come after X created the post; 502 and 503 come from in front of it.
        500 | 504 => Failure::ambiguous(detail),
        _ if status.is_server_error() => Failure::transient(detail),
        _ => Failure::ambiguous(detail),
    }
}

/// The `x-rate-limit-*` headers of an answer: the posting budget left in the user's window.
/// `None` unless `remaining` and `reset` are both there and readable.
pub fn rate_budget(headers: &HeaderMap) -> Option<crate::RateBudget> {
    let header = |name: &str| headers.get(name)?.to_str().ok()?.trim().parse::<i64>().ok();
    let remaining = u32::try_from(header("x-rate-limit-remaining")?.max(0)).ok()?;
    let reset_at = chrono::DateTime::from_timestamp(header("x-rate-limit-reset")?, 0)?;
    let limit = header("x-rate-limit-limit").and_then(|l| u32::try_from(l).ok()).filter(|l| *l > 0);
    Some(crate::RateBudget { limit, remaining, reset_at })
}

/// `x-rate-limit-reset` is the epoch second the window reopens.
fn rate_limit_reset(headers: &HeaderMap) -> Option<Duration> {
    let reset: i64 = headers.get("x-rate-limit-reset")?.to_str().ok()?.trim().parse().ok()?;
    let wait = reset - chrono::Utc::now().timestamp();
    Some(Duration::from_secs(u64::try_from(wait.max(1)).unwrap_or(1)))
}

fn truncate(s: &str) -> String {
    s.chars().take(200).collect()
}

/// Classifies a failed token-endpoint call (code exchange or refresh). `rotating`: the request
/// spends a single-use refresh token, so losing the answer is ambiguous, not transient.
pub fn classify_token_error(
    e: &RequestTokenError<HttpClientError<reqwest::Error>, oauth2::basic::BasicErrorResponse>,
    rotating: bool,
) -> Failure {
    match e {
        RequestTokenError::ServerResponse(resp) => {
            let detail = format!(
                "X token endpoint: {}{}",
                resp.error().as_ref(),
                resp.error_description().map(|d| format!(" ({})", truncate(d))).unwrap_or_default()
            );
            match resp.error() {
                // X answers a bad, spent or revoked token with invalid_request.
                BasicErrorResponseType::InvalidGrant | BasicErrorResponseType::InvalidRequest => {
                    Failure::auth(AuthCause::Revoked, detail)
                }
                BasicErrorResponseType::InvalidScope => {
                    Failure::auth(AuthCause::PermissionRemoved, detail)
                }
                // Our client credentials are wrong: an operator problem, never the account's.
                BasicErrorResponseType::InvalidClient
                | BasicErrorResponseType::UnauthorizedClient
                | BasicErrorResponseType::UnsupportedGrantType => Failure::transient(detail),
                BasicErrorResponseType::Extension(_) => Failure::transient(detail),
            }
        }
        RequestTokenError::Request(HttpClientError::Reqwest(err)) => {
            Failure::from_network(err, rotating)
        }
        RequestTokenError::Request(_) => Failure::transient("X token endpoint: request failed"),
        // Not an OAuth error body: an outage page, a 429 or a 5xx problem body.
        RequestTokenError::Parse(_, body) => {
            let problem: Problem = serde_json::from_slice(body).unwrap_or_default();
            let detail =
                problem.detail.or(problem.title).unwrap_or_else(|| "unparseable answer".into());
            Failure::transient(format!("X token endpoint: {}", truncate(&detail)))
        }
        RequestTokenError::Other(msg) => {
            Failure::transient(format!("X token endpoint: {}", truncate(msg)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h() -> HeaderMap {
        HeaderMap::new()
    }

    #[test]
    fn unauthorized_is_auth_and_expiry_is_told_apart() {
        let body = br#"{"title":"Unauthorized","type":"about:blank","status":401,"detail":"Unauthorized"}"#;
        assert!(matches!(
            classify_api(StatusCode::UNAUTHORIZED, &h(), body, false),
            Failure::Auth { cause: AuthCause::Revoked, .. }
        ));
        assert!(matches!(
            classify_api(StatusCode::UNAUTHORIZED, &h(), body, true),
            Failure::Auth { cause: AuthCause::Expired, .. }
        ));
    }

    #[test]
    fn rate_limit_reads_the_reset_header() {
        let mut headers = HeaderMap::new();
        let reset = chrono::Utc::now().timestamp() + 120;
        headers.insert("x-rate-limit-reset", reset.to_string().parse().expect("header"));
        let body = br#"{"errors":[{"code":88,"message":"Rate limit exceeded"}]}"#;
        match classify_api(StatusCode::TOO_MANY_REQUESTS, &headers, body, false) {
            Failure::RateLimited { retry_after: Some(d), .. } => {
                assert!(d.as_secs() >= 100 && d.as_secs() <= 121)
            }
            other => panic!("expected rate limit, got {other:?}"),
        }
    }

    #[test]
    fn the_budget_is_read_from_the_rate_limit_headers() {
        let mut headers = HeaderMap::new();
        assert_eq!(rate_budget(&headers), None);
        headers.insert("x-rate-limit-limit", "100".parse().expect("header"));
        headers.insert("x-rate-limit-remaining", "42".parse().expect("header"));
        assert_eq!(rate_budget(&headers), None, "no reset: no budget");
        headers.insert("x-rate-limit-reset", "1800000000".parse().expect("header"));
        assert_eq!(
            rate_budget(&headers),
            Some(crate::RateBudget {
                limit: Some(100),
                remaining: 42,
                reset_at: chrono::DateTime::from_timestamp(1_800_000_000, 0).expect("time"),
            })
        );
        headers.insert("x-rate-limit-remaining", "lots".parse().expect("header"));
        assert_eq!(rate_budget(&headers), None);
    }

    #[test]
    fn duplicate_content_is_rejected_not_auth() {
        let body = br#"{"detail":"You are not allowed to create a Tweet with duplicate content.","type":"about:blank","title":"Forbidden","status":403}"#;
        assert!(matches!(
            classify_api(StatusCode::FORBIDDEN, &h(), body, false),
            Failure::Rejected { .. }
        ));
    }

    #[test]
    fn outages_never_look_like_auth() {
        for status in [500u16, 502, 503, 504] {
            let f = classify_api(
                StatusCode::from_u16(status).expect("status"),
                &h(),
                b"<html>down</html>",
                false,
            );
            assert!(!matches!(f, Failure::Auth { .. }), "{status}: {f:?}");
        }
    }

    #[test]
    fn garbage_bodies_do_not_panic() {
        for body in [&b""[..], b"{", b"null", b"[1,2]", br#"{"detail": 5}"#, b"\xff\xfe"] {
            let _ = classify_api(StatusCode::BAD_REQUEST, &h(), body, false);
            for status in [StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN] {
                let f = classify_api(status, &h(), body, false);
                assert!(matches!(f, Failure::Transient { .. }), "{status} {body:?}: {f:?}");
            }
        }
    }
}
