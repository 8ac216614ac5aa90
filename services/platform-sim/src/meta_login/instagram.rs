//! Instagram (API with Instagram Login): authorize and code exchange on
//! api.instagram.com (`/instagram/api`), token exchange, refresh, `me` and
//! two-step publishing on graph.instagram.com (`/instagram/graph`). The
//! flow itself is shared with Threads in `meta_login`; this is what differs.

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

/// Captions are limited to 2,200 characters.
const MAX_CAPTION: usize = 2200;

pub(super) static CONFIG: Config = Config {
    platform: "instagram",
    title: "Log in with Instagram",
    authorize_host: "api",
    code_host: "api",
    code_errors: CodeErrors::Instagram,
    token_prefix: "IGAA",
    exchange_grant: "ig_exchange_token",
    refresh_grant: "ig_refresh_token",
    known_scopes: &[
        "instagram_business_basic",
        "instagram_business_content_publish",
        "instagram_business_manage_messages",
        "instagram_business_manage_comments",
        "instagram_business_manage_insights",
    ],
    basic_scope: "instagram_business_basic",
    publish_scope: "instagram_business_content_publish",
    container_edge: "media",
    publish_edge: "media_publish",
    limit_edge: "content_publishing_limit",
    quota_total: 100,
    text_field: "caption",
    first_user_id: 17_841_400_000_000_000,
    first_media_id: 17_900_000_000_000_000,
    user_node,
    user_node_type: "User",
    container,
    code_response,
    rate_limited,
};

fn user_node(u: &User, media_count: usize) -> Value {
    json!({
        "id": u.id,
        "user_id": u.id,
        "username": u.username,
        "name": u.name,
        "account_type": "BUSINESS",
        "profile_picture_url": "",
        "followers_count": 0,
        "follows_count": 0,
        "media_count": media_count,
    })
}

/// The code exchange answers flat (the docs show a `data` array; live
/// answers and client libraries use this shape).
fn code_response(access: &str, u: &User, scopes: &[String]) -> Value {
    let id: u64 = u.id.parse().unwrap_or_default();
    json!({ "access_token": access, "user_id": id, "permissions": scopes })
}

/// `image_url` (IMAGE, the default) or `video_url` (VIDEO/REELS) plus an
/// optional caption.
fn container(params: &HashMap<String, String>) -> Result<ContainerSpec, GraphError> {
    let media_type = required(params, "media_type").unwrap_or("IMAGE").to_ascii_uppercase();
    let url = match media_type.as_str() {
        "IMAGE" => media_url(params, "image_url")?,
        "VIDEO" | "REELS" | "STORIES" => {
            media_url(params, "video_url").or_else(|_| media_url(params, "image_url"))?
        }
        other => {
            return Err(graph::invalid_param(format!(
                "The parameter media_type has an unsupported value: {other}"
            )))
        }
    };
    let caption = params.get("caption").cloned().unwrap_or_default();
    if caption.chars().count() > MAX_CAPTION {
        return Err(graph::invalid_param(
            "The caption is too long: the maximum is 2200 characters",
        )
        .subcode(2_207_003));
    }
    Ok((media_type, caption, url))
}

fn rate_limited(_: &Common, until: Instant) -> Response {
    graph::throttled(
        80002,
        "There have been too many calls to this Instagram account. Wait a bit and try again.",
        Some("instagram"),
        until,
    )
}
