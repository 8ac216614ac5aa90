//! Maps Meta-login answers (Instagram, Threads) into the taxonomy: the Graph mapping (see
//! [`crate::graph`]) for the API and token calls, plus the older
//! `{"error_type","code","error_message"}` body of Instagram's code exchange at
//! api.instagram.com. Sources: developers.facebook.com/docs/instagram-platform/
//! instagram-api-with-instagram-login/business-login, …/instagram-graph-api/reference/
//! error-codes, …/docs/threads/get-started/long-lived-tokens (Threads publishes no error list
//! of its own; its answers are Graph-format).

use reqwest::{header::HeaderMap, StatusCode};

use crate::{
    common::{detail, server_failure, unrecognised},
    graph, Failure,
};

/// Classifies a non-success API answer of `name`'s Graph host.
pub(crate) fn classify_api(
    name: &str,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    believed_expired: bool,
    mutating: bool,
) -> Failure {
    graph::classify(name, status, headers, body, believed_expired, mutating)
}

/// Classifies a failed code exchange, long-lived exchange or refresh. A code that cannot be
/// exchanged (Graph code 100, or Instagram's legacy body) is rejected: the user connects again.
pub(crate) fn classify_token(
    name: &str,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
) -> Failure {
    let what = format!("{name} token endpoint");
    if graph::GraphError::parse(body).is_some() {
        return graph::classify(&what, status, headers, body, false, false);
    }
    let value: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let legacy = value.as_ref().and_then(|v| {
        let kind = v.get("error_type")?.as_str()?;
        Some((kind.to_owned(), v.get("error_message").and_then(|m| m.as_str()).map(str::to_owned)))
    });
    let detail = detail(&what, status, legacy.as_ref().and_then(|(_, m)| m.as_deref()));
    match legacy {
        _ if status.is_server_error() => server_failure(status, false, detail),
        // "Matching code was not found or was already used", a wrong redirect URI…: the code
        // cannot be exchanged, the user has to start the connection again.
        Some(_) if status.is_client_error() && status != StatusCode::TOO_MANY_REQUESTS => {
            Failure::rejected(detail)
        }
        _ => unrecognised(status, headers, false, detail),
    }
}
