//! The one error taxonomy every platform answer is classified into.

use std::time::Duration;

pub use lifeline_kit::events::AuthFailureCause as AuthCause;

/// Why a platform call did not succeed, in terms the rest of Lifeline acts on.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Failure {
    /// The credentials are no good: the account needs reconnecting.
    #[error("auth failure ({}): {detail}", cause.as_str())]
    Auth { cause: AuthCause, detail: String },
    /// Too many requests: try again after `retry_after` (when the platform said).
    #[error("rate limited (retry after {retry_after:?}): {detail}")]
    RateLimited { retry_after: Option<Duration>, detail: String },
    /// The platform or the network failed; the request was not applied. Retry with backoff.
    #[error("transient failure: {detail}")]
    Transient { detail: String },
    /// The platform refused the content itself; retrying will not help, nor will reconnecting.
    #[error("rejected: {detail}")]
    Rejected { detail: String },
    /// The request may or may not have been applied: reconcile before any retry.
    #[error("ambiguous outcome: {detail}")]
    Ambiguous { detail: String },
}

impl Failure {
    pub fn auth(cause: AuthCause, detail: impl Into<String>) -> Self {
        Failure::Auth { cause, detail: detail.into() }
    }
    pub fn transient(detail: impl Into<String>) -> Self {
        Failure::Transient { detail: detail.into() }
    }
    pub fn rejected(detail: impl Into<String>) -> Self {
        Failure::Rejected { detail: detail.into() }
    }
    pub fn ambiguous(detail: impl Into<String>) -> Self {
        Failure::Ambiguous { detail: detail.into() }
    }

    /// A network error: before the request was sent it is transient; after, it is ambiguous
    /// for calls that change something (`mutating`), since the platform may have applied it.
    pub fn from_network(e: &reqwest::Error, mutating: bool) -> Self {
        let sent = !e.is_connect() && !e.is_builder();
        // reqwest's own message can embed the URL; describe the error by kind instead.
        let kind = if e.is_timeout() {
            "timeout"
        } else if e.is_connect() {
            "connection failed"
        } else if e.is_body() || e.is_decode() {
            "bad response body"
        } else {
            "request failed"
        };
        if mutating && sent {
            Failure::ambiguous(format!("no complete answer after sending: {kind}"))
        } else {
            Failure::transient(format!("network: {kind}"))
        }
    }
}
