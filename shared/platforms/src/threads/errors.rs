//! Maps Threads' answers into the taxonomy. Threads publishes no error list of its own; its
//! answers are Graph-format (`{"error":{"code":190,…}}`), so the Graph mapping applies (see
//! [`crate::graph`]). Sources: developers.facebook.com/docs/threads/get-started/long-lived-tokens,
//! …/docs/graph-api/guides/error-handling.

use reqwest::{header::HeaderMap, StatusCode};

use crate::{graph, Failure};

/// Classifies a non-success answer of graph.threads.net.
pub fn classify_api(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    believed_expired: bool,
    mutating: bool,
) -> Failure {
    graph::classify("Threads", status, headers, body, believed_expired, mutating)
}

/// Classifies a failed code exchange, long-lived exchange or refresh. A code that cannot be
/// exchanged comes back as Graph code 100 (invalid parameter): rejected, the user reconnects.
pub fn classify_token(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Failure {
    graph::classify("Threads token endpoint", status, headers, body, false, false)
}
