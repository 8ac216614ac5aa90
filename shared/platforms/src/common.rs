//! Plumbing every connector shares: per-host base URLs (real, overridden, or the simulator's),
//! sending a request and reading the whole answer, `Retry-After`-style hints, and the fallback
//! for error bodies no platform mapping recognises.

use std::time::Duration;

use lifeline_kit::config::{ConfigError, Env};
use reqwest::{header::HeaderMap, StatusCode};
use secrecy::SecretString;

use crate::{endpoint, Failure};

/// The longest wait we take from a platform's hint; a garbage or hostile header must not park
/// work for years.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(7 * 24 * 3600);

/// A complete answer: status, headers and the whole body.
pub(crate) struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// Sends a request and reads the whole answer; network failures are classified here, so no
/// reqwest error (which can embed a URL carrying a token) travels further.
pub(crate) async fn send(req: reqwest::RequestBuilder, mutating: bool) -> Result<Answer, Failure> {
    let resp = req.send().await.map_err(|e| Failure::from_network(&e, mutating))?;
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.bytes().await.map_err(|e| Failure::from_network(&e, mutating))?;
    Ok(Answer { status, headers, body: body.to_vec() })
}

/// The OAuth client a platform is configured with: `LIFELINE_<P>_CLIENT_ID` (absent: the
/// platform is not configured) and `LIFELINE_<P>_CLIENT_SECRET`.
pub(crate) struct App {
    pub client_id: String,
    pub client_secret: Option<SecretString>,
}

impl App {
    pub fn from_env(env: &Env, platform: &str) -> Option<Self> {
        let client_id = env.raw(&format!("LIFELINE_{platform}_CLIENT_ID"))?;
        let client_secret =
            env.raw(&format!("LIFELINE_{platform}_CLIENT_SECRET")).map(SecretString::from);
        Some(App { client_id, client_secret })
    }
}

/// One of a platform's hosts: `LIFELINE_<P>_<HOST>_URL` wins; else, with a simulator, the
/// simulator's `<sim>/<prefix>` (a contract with platform-sim); else the real host.
pub(crate) fn host(
    env: &Env,
    platform: &str,
    host: &str,
    real: &str,
    sim: Option<&url::Url>,
    sim_prefix: &str,
) -> Result<url::Url, ConfigError> {
    let var = format!("LIFELINE_{platform}_{host}_URL");
    let default = match sim {
        Some(s) => endpoint(s, sim_prefix).to_string(),
        None => real.to_owned(),
    };
    let raw = env.string_or(&var, &default);
    let url = url::Url::parse(&raw).map_err(|e| env.invalid(&var, e.to_string()))?;
    if url.cannot_be_a_base() {
        return Err(env.invalid(&var, "must be an absolute http(s) URL"));
    }
    Ok(url)
}

/// The auth-gateway's callback for `platform`.
pub(crate) fn callback(public: &url::Url, platform: lifeline_kit::Platform) -> url::Url {
    endpoint(public, &format!("oauth/callback/{}", platform.as_str()))
}

/// Platform text put into a failure detail: bounded, and one line.
pub(crate) fn truncate(s: &str) -> String {
    s.chars().take(200).map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// Parses a success body; a body we cannot read after a read-only call is the platform's fault
/// and worth a retry.
pub(crate) fn parse<T: serde::de::DeserializeOwned>(body: &[u8], what: &str) -> Result<T, Failure> {
    serde_json::from_slice(body).map_err(|e| {
        Failure::transient(format!("unexpected {what} body: {}", truncate(&e.to_string())))
    })
}

/// How long the platform asks us to wait: `Retry-After` (seconds or an HTTP date),
/// `x-rate-limit-reset` (epoch seconds), or Graph's `X-Business-Use-Case-Usage`
/// `estimated_time_to_regain_access` (minutes, the largest across entries).
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    let now = chrono::Utc::now();
    let from_retry_after = header("retry-after").and_then(|v| {
        if let Ok(secs) = v.parse::<u64>() {
            return Some(Duration::from_secs(secs));
        }
        let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
        (at.with_timezone(&chrono::Utc) - now).to_std().ok()
    });
    let from_reset = || {
        let reset: i64 = header("x-rate-limit-reset")?.parse().ok()?;
        let wait = reset.checked_sub(now.timestamp())?.max(1);
        Some(Duration::from_secs(u64::try_from(wait).ok()?))
    };
    let from_buc = || {
        let usage: serde_json::Value =
            serde_json::from_str(header("x-business-use-case-usage")?).ok()?;
        usage
            .as_object()?
            .values()
            .filter_map(serde_json::Value::as_array)
            .flatten()
            .filter_map(|entry| entry.get("estimated_time_to_regain_access")?.as_u64())
            .max()
            .filter(|m| *m > 0)
            .map(|minutes| Duration::from_secs(minutes.saturating_mul(60)))
    };
    from_retry_after.or_else(from_reset).or_else(from_buc).map(|d| d.min(MAX_RETRY_AFTER))
}

/// A 5xx: the platform failed. For a call that changes something, 500 and 504 can come after
/// the change was made (502 and 503 come from in front of the application), so those are
/// ambiguous. Never an auth failure: an outage must not mark accounts for reconnect.
pub(crate) fn server_failure(status: StatusCode, mutating: bool, detail: String) -> Failure {
    match status.as_u16() {
        500 | 504 if mutating => Failure::ambiguous(detail),
        _ => Failure::transient(detail),
    }
}

/// An error answer whose body no mapping recognises (an HTML page from a proxy, an empty body,
/// a changed format). Only the status speaks, and it never speaks for auth: without the
/// platform's own words we cannot tell a dead token from a confused edge server.
pub(crate) fn unrecognised(
    status: StatusCode,
    headers: &HeaderMap,
    mutating: bool,
    detail: String,
) -> Failure {
    match status.as_u16() {
        429 => Failure::RateLimited { retry_after: retry_after(headers), detail },
        // The request itself was refused as malformed or too large: repeating it will not help.
        400 | 404 | 409 | 413 | 422 => Failure::rejected(detail),
        _ if status.is_server_error() => server_failure(status, mutating, detail),
        // Not an error status at all (1xx/2xx/3xx): what happened to a change is unknown.
        s if mutating && !(400..600).contains(&s) => Failure::ambiguous(detail),
        _ => Failure::transient(detail),
    }
}

/// The detail for an answer: the platform's message if any, else the status.
pub(crate) fn detail(platform: &str, status: StatusCode, message: Option<&str>) -> String {
    match message {
        Some(m) if !m.trim().is_empty() => {
            format!("{platform} {}: {}", status.as_u16(), truncate(m))
        }
        _ => format!("{platform} {status}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_dates_and_business_usage() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", "30".parse().expect("header"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(30)));

        let mut h = HeaderMap::new();
        let buc = r#"{"1234":[{"type":"pages","call_count":100,"estimated_time_to_regain_access":5},{"type":"pages","estimated_time_to_regain_access":2}]}"#;
        h.insert("x-business-use-case-usage", buc.parse().expect("header"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(300)));

        let mut h = HeaderMap::new();
        h.insert("retry-after", "99999999999999999999".parse().expect("header"));
        h.insert("x-rate-limit-reset", "-99999999999999999".parse().expect("header"));
        assert!(retry_after(&h).is_none_or(|d| d <= MAX_RETRY_AFTER));

        let mut h = HeaderMap::new();
        h.insert("retry-after", "18446744073709551615".parse().expect("header"));
        assert_eq!(retry_after(&h), Some(MAX_RETRY_AFTER));
    }
}
