//! Maps Facebook Graph answers into the taxonomy: the Graph mapping (see [`crate::graph`]).
//! Source: developers.facebook.com/docs/graph-api/guides/error-handling.

use reqwest::{header::HeaderMap, StatusCode};

use crate::{graph, Failure};

/// Classifies a non-success answer of graph.facebook.com.
pub fn classify_api(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    believed_expired: bool,
    mutating: bool,
) -> Failure {
    graph::classify("Facebook", status, headers, body, believed_expired, mutating)
}

/// Classifies a failed code exchange, `fb_exchange_token` or `/me/accounts` call made while
/// connecting (an unusable code is Graph code 100, subcode 36007/36009: rejected).
pub fn classify_token(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Failure {
    graph::classify("Facebook token endpoint", status, headers, body, false, false)
}
