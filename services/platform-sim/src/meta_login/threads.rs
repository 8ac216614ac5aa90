//! Threads: authorize on threads.net (`/threads/www`), code exchange, token
//! exchange, refresh, `me` and two-step publishing on graph.threads.net
//! (`/threads/graph`). The flow itself is shared with Instagram in
//! `meta_login`; this is what differs.

use std::collections::HashMap;
use std::time::Instant;

use axum::response::Response;
use serde_json::{json, Value};

use super::wire::media_url;
use super::{CodeErrors, Config, ContainerSpec};
use crate::accounts::User;
use crate::authorize::required;
use crate::graph::{self, GraphError};
use crate::state::Common;

/// Threads posts are limited to 500 characters.
const MAX_TEXT: usize = 500;

pub(super) static CONFIG: Config = Config {
    platform: "threads",
    title: "Threads: Allow access",
    authorize_host: "www",
    code_host: "graph",
    code_errors: CodeErrors::Graph,
    token_prefix: "THAA",
    exchange_grant: "th_exchange_token",
    refresh_grant: "th_refresh_token",
    known_scopes: &[
        "threads_basic",
        "threads_content_publish",
        "threads_manage_replies",
        "threads_read_replies",
        "threads_manage_insights",
        "threads_delete",
    ],
    basic_scope: "threads_basic",
    publish_scope: "threads_content_publish",
    container_edge: "threads",
    publish_edge: "threads_publish",
    limit_edge: "threads_publishing_limit",
    quota_total: 250,
    text_field: "text",
    first_user_id: 25_000_000_000_000_000,
    first_media_id: 18_000_000_000_000_000,
    user_node,
    user_node_type: "ThreadsUser",
    container,
    code_response,
    rate_limited,
};

fn user_node(u: &User, _posts: usize) -> Value {
    json!({
        "id": u.id,
        "username": u.username,
        "name": u.name,
        "threads_profile_picture_url": "",
        "threads_biography": "",
    })
}

fn code_response(access: &str, u: &User, _scopes: &[String]) -> Value {
    let id: u64 = u.id.parse().unwrap_or_default();
    json!({ "access_token": access, "user_id": id })
}

/// `media_type` TEXT (needs `text`), IMAGE (`image_url`) or VIDEO (`video_url`).
fn container(params: &HashMap<String, String>) -> Result<ContainerSpec, GraphError> {
    let media_type = required(params, "media_type")
        .ok_or_else(|| graph::missing_param("media_type"))?
        .to_ascii_uppercase();
    let text = params.get("text").cloned().unwrap_or_default();
    let url = match media_type.as_str() {
        "TEXT" => {
            if text.trim().is_empty() {
                return Err(graph::missing_param("text"));
            }
            String::new()
        }
        "IMAGE" => media_url(params, "image_url")?,
        "VIDEO" => media_url(params, "video_url")?,
        other => {
            return Err(graph::invalid_param(format!(
                "The parameter media_type has an unsupported value: {other}"
            )))
        }
    };
    if text.chars().count() > MAX_TEXT {
        return Err(graph::invalid_param("The text is too long: the maximum is 500 characters"));
    }
    Ok((media_type, text, url))
}

fn rate_limited(_: &Common, until: Instant) -> Response {
    graph::throttled(4, "(#4) Application request limit reached", None, until)
}
