//! Instagram (API with Instagram Login): the Meta-login flow ([`crate::meta_login`]) with
//! authorize and code exchange on api.instagram.com (`LIFELINE_INSTAGRAM_API_URL`, sim
//! `<sim>/instagram/api`) and everything else on graph.instagram.com
//! (`LIFELINE_INSTAGRAM_GRAPH_URL`, sim `<sim>/instagram/graph`): `ig_exchange_token`,
//! `ig_refresh_token`, and publishing through `/media` + `/media_publish`. Every post needs an
//! image or a video.

use reqwest::{header::HeaderMap, StatusCode};

use crate::{
    meta_login::{errors, Config, Host},
    Failure, MediaKind, PostDraft,
};

pub use crate::meta_login::MetaLoginConnector as InstagramConnector;

/// Read the professional account and publish content to it.
pub const SCOPES: [&str; 2] = ["instagram_business_basic", "instagram_business_content_publish"];

/// Every post needs an image or a video; the caption takes at most 2,200 characters.
pub(crate) const POST_RULES: crate::post_rules::PostRules = crate::post_rules::PostRules {
    max_length: 2200,
    counting: crate::post_rules::Counting::Chars,
    media: crate::post_rules::MediaNeed::ImageOrVideo,
};

pub(crate) static CONFIG: Config = Config {
    platform: lifeline_kit::Platform::Instagram,
    name: "Instagram",
    env: "INSTAGRAM",
    oauth_host: Host { var: "API", real: "https://api.instagram.com", sim_prefix: "instagram/api" },
    graph_host: Host {
        var: "GRAPH",
        real: "https://graph.instagram.com",
        sim_prefix: "instagram/graph",
    },
    code_exchange_on_graph: false,
    scopes: &SCOPES,
    exchange_grant: "ig_exchange_token",
    refresh_grant: "ig_refresh_token",
    // `user_id` is the professional account id publishing uses.
    me_fields: "user_id,username",
    id_field: "user_id",
    container_edge: "media",
    publish_edge: "media_publish",
    text_field: "caption",
    status_field: "status_code",
    list_since: false,
    container,
    needs_processing: |post| post.media.as_ref().is_some_and(|m| m.kind == MediaKind::Video),
};

/// An image (`image_url`) or a reel (`media_type=REELS`, `video_url`), captioned.
fn container(post: &PostDraft) -> Result<Vec<(&'static str, &str)>, Failure> {
    let Some(media) = &post.media else {
        return Err(Failure::rejected("Instagram posts need an image or a video"));
    };
    let mut form = vec![("caption", post.text.as_str())];
    match media.kind {
        MediaKind::Image => form.push(("image_url", media.url.as_str())),
        MediaKind::Video => {
            form.push(("media_type", "REELS"));
            form.push(("video_url", media.url.as_str()));
        }
    }
    Ok(form)
}

/// Classifies a non-success answer of graph.instagram.com.
pub fn classify_api(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    believed_expired: bool,
    mutating: bool,
) -> Failure {
    errors::classify_api("Instagram", status, headers, body, believed_expired, mutating)
}

/// Classifies a failed code exchange (api.instagram.com, also its legacy error body) or
/// long-lived exchange / refresh (graph.instagram.com).
pub fn classify_token(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Failure {
    errors::classify_token("Instagram", status, headers, body)
}
