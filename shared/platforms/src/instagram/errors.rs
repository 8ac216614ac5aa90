//! Maps Instagram's answers into the taxonomy: the Graph mapping (see [`crate::graph`]) for the
//! API and token exchanges, plus the older `{"error_type","code","error_message"}` body the
//! code exchange at api.instagram.com answers with. Sources: developers.facebook.com/docs/
//! instagram-platform/instagram-api-with-instagram-login/business-login and
//! …/instagram-graph-api/reference/error-codes.

use reqwest::{header::HeaderMap, StatusCode};

use crate::{
    common::{detail, server_failure, unrecognised},
    graph, Failure,
};

/// Classifies a non-success answer of graph.instagram.com.
pub fn classify_api(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    believed_expired: bool,
    mutating: bool,
) -> Failure {
    graph::classify("Instagram", status, headers, body, believed_expired, mutating)
}

/// Classifies a failed code exchange (api.instagram.com) or long-lived exchange / refresh
/// (graph.instagram.com).
pub fn classify_token(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Failure {
    if graph::GraphError::parse(body).is_some() {
        return graph::classify("Instagram", status, headers, body, false, false);
    }
    let value: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let legacy = value.as_ref().and_then(|v| {
        let kind = v.get("error_type")?.as_str()?;
        Some((kind.to_owned(), v.get("error_message").and_then(|m| m.as_str()).map(str::to_owned)))
    });
    let detail =
        detail("Instagram token endpoint", status, legacy.as_ref().and_then(|(_, m)| m.as_deref()));
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
