//! Threads: the Meta-login flow ([`crate::meta_login`]) with the authorize page on threads.net
//! (`LIFELINE_THREADS_WWW_URL`, sim `<sim>/threads/www`) and everything else, the code exchange
//! included, on graph.threads.net (`LIFELINE_THREADS_GRAPH_URL`, sim `<sim>/threads/graph`):
//! `th_exchange_token`, `th_refresh_token` (a token not refreshed within its 60 days is gone for
//! good), and publishing through `/threads` + `/threads_publish`. Text-only posts are allowed.

use reqwest::{header::HeaderMap, StatusCode};

use crate::{
    meta_login::{errors, Config, Host},
    Failure, MediaKind, PostDraft,
};

pub use crate::meta_login::MetaLoginConnector as ThreadsConnector;

/// Read the profile and publish to it.
pub const SCOPES: [&str; 2] = ["threads_basic", "threads_content_publish"];

/// A post's text takes at most 500 characters.
pub(crate) const POST_RULES: crate::post_rules::PostRules = crate::post_rules::PostRules {
    max_length: 500,
    counting: crate::post_rules::Counting::Chars,
    media: crate::post_rules::MediaNeed::Optional,
};

pub(crate) static CONFIG: Config = Config {
    platform: lifeline_kit::Platform::Threads,
    name: "Threads",
    env: "THREADS",
    oauth_host: Host { var: "WWW", real: "https://threads.net", sim_prefix: "threads/www" },
    graph_host: Host {
        var: "GRAPH",
        real: "https://graph.threads.net",
        sim_prefix: "threads/graph",
    },
    code_exchange_on_graph: true,
    scopes: &SCOPES,
    exchange_grant: "th_exchange_token",
    refresh_grant: "th_refresh_token",
    me_fields: "id,username,name",
    id_field: "id",
    container_edge: "threads",
    publish_edge: "threads_publish",
    text_field: "text",
    status_field: "status",
    list_since: true,
    container,
    needs_processing: |post| post.media.is_some(),
};

/// `media_type` TEXT, IMAGE (`image_url`) or VIDEO (`video_url`), with the text.
fn container(post: &PostDraft) -> Result<Vec<(&'static str, &str)>, Failure> {
    let mut form = vec![("text", post.text.as_str())];
    match &post.media {
        None => form.push(("media_type", "TEXT")),
        Some(m) if m.kind == MediaKind::Image => {
            form.push(("media_type", "IMAGE"));
            form.push(("image_url", m.url.as_str()));
        }
        Some(m) => {
            form.push(("media_type", "VIDEO"));
            form.push(("video_url", m.url.as_str()));
        }
    }
    Ok(form)
}

/// Classifies a non-success answer of graph.threads.net.
pub fn classify_api(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    believed_expired: bool,
    mutating: bool,
) -> Failure {
    errors::classify_api("Threads", status, headers, body, believed_expired, mutating)
}

/// Classifies a failed code exchange, long-lived exchange or refresh. A code that cannot be
/// exchanged comes back as Graph code 100 (invalid parameter): rejected, the user reconnects.
pub fn classify_token(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Failure {
    errors::classify_token("Threads", status, headers, body)
}
