//! TikTok's API: `user/info`, the Content Posting API's creator info, Direct
//! Post `video/init` (pull from a URL, or a file upload answered with an
//! `upload_url`), the upload itself and `status/fetch`.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde_json::{json, Map, Value};

use super::wire::{self, Answer, TikTokError};
use super::{Ctx, PLATFORM};
use crate::accounts::{Kind, Token};
use crate::authorize::required;
use crate::support::{bearer, parse_form, random_b64, request_base};

const MAX_TITLE: usize = 2200;
const PRIVACY_LEVELS: &[&str] =
    &["PUBLIC_TO_EVERYONE", "MUTUAL_FOLLOW_FRIENDS", "FOLLOWER_OF_CREATOR", "SELF_ONLY"];
/// Which scope each `user/info` field needs.
const USER_FIELDS: &[(&str, &str)] = &[
    ("open_id", "user.info.basic"),
    ("union_id", "user.info.basic"),
    ("avatar_url", "user.info.basic"),
    ("avatar_url_100", "user.info.basic"),
    ("avatar_large_url", "user.info.basic"),
    ("display_name", "user.info.basic"),
    ("bio_description", "user.info.profile"),
    ("profile_deep_link", "user.info.profile"),
    ("is_verified", "user.info.profile"),
    ("username", "user.info.profile"),
    ("follower_count", "user.info.stats"),
    ("following_count", "user.info.stats"),
    ("likes_count", "user.info.stats"),
    ("video_count", "user.info.stats"),
];
const AVATAR: &str = "https://p16-sign.tiktokcdn-us.com/sim/avatar.jpeg";

/// One Direct Post, from `video/init` to `PUBLISH_COMPLETE`.
#[derive(Debug, Clone)]
pub(crate) struct Publish {
    user_key: String,
    title: String,
    pull: bool,
    uploaded: bool,
    fetches: u32,
    post_id: Option<String>,
    bytes: u64,
}

/// A post id in TikTok's range.
fn post_id(n: u64) -> String {
    (7_400_000_000_000_000_000u64 + n).to_string()
}

/// The caller's live access token holding `scope`.
fn caller(ctx: &Ctx, headers: &HeaderMap, scope: &str) -> Result<Token, TikTokError> {
    let token = bearer(headers).ok_or_else(TikTokError::token_invalid)?;
    let t = ctx
        .store()
        .accounts
        .check(&token, &[Kind::Access], ctx.common.clock.now())
        .map_err(|_| TikTokError::token_invalid())?;
    if !t.has_scope(scope) {
        return Err(TikTokError::scope_not_authorized(scope));
    }
    Ok(t)
}

/// `GET /v2/user/info/?fields=open_id,display_name,…`.
pub(crate) async fn user_info(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Answer {
    let t = caller(&ctx, &headers, "user.info.basic")?;
    let params = parse_form(q.unwrap_or_default().as_bytes());
    let fields = required(&params, "fields")
        .ok_or_else(|| TikTokError::invalid_params("fields is required."))?;
    let u =
        ctx.store().accounts.user(&t.user_key).cloned().ok_or_else(TikTokError::token_invalid)?;
    let mut user = Map::new();
    for f in fields.split(',').map(str::trim).filter(|f| !f.is_empty()) {
        let Some((_, scope)) = USER_FIELDS.iter().find(|(name, _)| *name == f) else {
            return Err(TikTokError::invalid_params(format!("Invalid field: {f}")));
        };
        if !t.has_scope(scope) {
            return Err(TikTokError::scope_not_authorized(scope));
        }
        let v = match f {
            "open_id" => json!(u.id),
            "union_id" => json!(u.secondary_id),
            "display_name" => json!(u.name),
            "username" => json!(u.key),
            "is_verified" => json!(false),
            "bio_description" => json!(""),
            "profile_deep_link" => json!(format!("https://vm.tiktok.com/{}", u.key)),
            f if f.ends_with("_count") => json!(0),
            _ => json!(AVATAR),
        };
        user.insert(f.to_owned(), v);
    }
    Ok(wire::ok(json!({ "user": user })))
}

/// `POST /v2/post/publish/creator_info/query/`.
pub(crate) async fn creator_info(State(ctx): State<Ctx>, headers: HeaderMap) -> Answer {
    let t = caller(&ctx, &headers, "video.publish")?;
    let u =
        ctx.store().accounts.user(&t.user_key).cloned().ok_or_else(TikTokError::token_invalid)?;
    Ok(wire::ok(json!({
        "creator_avatar_url": AVATAR,
        "creator_username": u.key,
        "creator_nickname": u.name,
        "privacy_level_options": PRIVACY_LEVELS,
        "comment_disabled": false,
        "duet_disabled": false,
        "stitch_disabled": false,
        "max_video_post_duration_sec": 600,
    })))
}

fn json_body(body: &[u8]) -> Result<Map<String, Value>, TikTokError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(TikTokError::invalid_params("The request body is not valid JSON.")),
    }
}

/// `post_info` of an init: its title, once the privacy level checks out.
fn post_title(req: &Map<String, Value>) -> Result<String, TikTokError> {
    let post_info = req.get("post_info").cloned().unwrap_or_else(|| json!({}));
    let privacy = post_info
        .get("privacy_level")
        .and_then(Value::as_str)
        .ok_or_else(|| TikTokError::invalid_params("post_info.privacy_level is required."))?;
    if !PRIVACY_LEVELS.contains(&privacy) {
        return Err(TikTokError::api(
            StatusCode::BAD_REQUEST,
            "privacy_level_option_mismatch",
            "privacy_level is not one of the creator's privacy_level_options.",
        ));
    }
    let title = post_info.get("title").and_then(Value::as_str).unwrap_or_default().to_owned();
    if title.chars().count() > MAX_TITLE {
        return Err(TikTokError::invalid_params("post_info.title is too long."));
    }
    Ok(title)
}

/// `source_info` of an init: `true` for `PULL_FROM_URL`, `false` for
/// `FILE_UPLOAD`.
fn is_pull(req: &Map<String, Value>) -> Result<bool, TikTokError> {
    let source = req
        .get("source_info")
        .filter(|s| s.is_object())
        .ok_or_else(|| TikTokError::invalid_params("source_info is required."))?;
    match source.get("source").and_then(Value::as_str) {
        Some("PULL_FROM_URL") => {
            let url = source.get("video_url").and_then(Value::as_str).unwrap_or_default();
            if !matches!(url::Url::parse(url), Ok(u) if matches!(u.scheme(), "http" | "https")) {
                return Err(TikTokError::invalid_params("source_info.video_url is invalid."));
            }
            Ok(true)
        }
        Some("FILE_UPLOAD") => {
            let size = source.get("video_size").and_then(Value::as_u64).unwrap_or(0);
            let chunk = source.get("chunk_size").and_then(Value::as_u64).unwrap_or(0);
            let chunks = source.get("total_chunk_count").and_then(Value::as_u64).unwrap_or(0);
            if size == 0 || chunk == 0 || chunks == 0 {
                return Err(TikTokError::invalid_params("source_info.video_size, chunk_size and total_chunk_count are required for FILE_UPLOAD."));
            }
            Ok(false)
        }
        _ => Err(TikTokError::invalid_params(
            "source_info.source must be FILE_UPLOAD or PULL_FROM_URL.",
        )),
    }
}

/// `POST /v2/post/publish/video/init/` (Direct Post): `PULL_FROM_URL` with
/// `video_url`, or `FILE_UPLOAD` answered with an `upload_url`.
pub(crate) async fn video_init(State(ctx): State<Ctx>, headers: HeaderMap, body: Bytes) -> Answer {
    let t = caller(&ctx, &headers, "video.publish")?;
    let req = json_body(&body)?;
    let title = post_title(&req)?;
    let pull = is_pull(&req)?;
    if ctx.common.content_rejected(PLATFORM) {
        return Err(TikTokError::api(
            StatusCode::FORBIDDEN,
            "spam_risk_too_many_posts",
            "The daily post cap from the current user has been reached.",
        ));
    }
    let mut s = ctx.store();
    s.next_publish += 1;
    let kind = if pull { "v_pub_url" } else { "v_pub_file" };
    let publish_id = format!("{kind}~v2-1.{}", 7_300_000_000_000_000_000u64 + s.next_publish);
    let mut p = Publish {
        user_key: t.user_key.clone(),
        title: title.clone(),
        pull,
        uploaded: pull,
        fetches: 0,
        post_id: None,
        bytes: 0,
    };
    if pull {
        p.post_id = Some(s.accounts.record_post(&t.user_key, &title, post_id).id);
    }
    s.publishes.insert(publish_id.clone(), p);
    drop(s);
    tracing::info!(platform = PLATFORM, publish_id, "publish initialized");
    // A pulled video is a post from here on; a file upload becomes one at its PUT.
    if pull && ctx.common.answer_lost(PLATFORM) {
        return Ok(crate::faults::lost_answer());
    }
    let mut data = json!({ "publish_id": publish_id });
    if !pull {
        let token: String = random_b64(24).chars().filter(char::is_ascii_alphanumeric).collect();
        data["upload_url"] = json!(format!(
            "{}/tiktok/upload/video/?upload_id={}&upload_token={token}",
            request_base(&headers),
            url::form_urlencoded::byte_serialize(publish_id.as_bytes()).collect::<String>()
        ));
    }
    Ok(wire::ok(data))
}

/// `PUT <upload_url>` with the video bytes (one chunk is enough here).
pub(crate) async fn upload(State(ctx): State<Ctx>, RawQuery(q): RawQuery, body: Bytes) -> Answer {
    let params = parse_form(q.unwrap_or_default().as_bytes());
    let id = required(&params, "upload_id")
        .ok_or_else(|| TikTokError::invalid_params("upload_id is required."))?;
    if body.is_empty() {
        return Err(TikTokError::api(
            StatusCode::BAD_REQUEST,
            "invalid_file_upload",
            "The uploaded file is empty.",
        ));
    }
    let mut s = ctx.store();
    let p = s
        .publishes
        .get(id)
        .cloned()
        .ok_or_else(|| TikTokError::invalid_params("upload_id is invalid."))?;
    if !p.uploaded {
        let post = s.accounts.record_post(&p.user_key, &p.title, post_id);
        if let Some(e) = s.publishes.get_mut(id) {
            e.uploaded = true;
            e.post_id = Some(post.id);
            e.bytes = body.len() as u64;
        }
        drop(s);
        if ctx.common.answer_lost(PLATFORM) {
            return Ok(crate::faults::lost_answer());
        }
    }
    Ok(StatusCode::CREATED.into_response())
}

/// `POST /v2/post/publish/status/fetch/` with `{"publish_id"}`: processing
/// on the first poll after the media arrived, complete afterwards.
pub(crate) async fn status_fetch(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let t = caller(&ctx, &headers, "video.publish")?;
    let req = json_body(&body)?;
    let id = req
        .get("publish_id")
        .and_then(Value::as_str)
        .ok_or_else(|| TikTokError::invalid_params("publish_id is required."))?;
    let mut s = ctx.store();
    let p = s
        .publishes
        .get_mut(id)
        .filter(|p| p.user_key == t.user_key)
        .ok_or_else(|| TikTokError::invalid_params("publish_id is invalid."))?;
    if !p.uploaded {
        return Ok(wire::ok(json!({ "status": "PROCESSING_UPLOAD", "uploaded_bytes": 0 })));
    }
    p.fetches += 1;
    if p.fetches == 1 {
        let status = if p.pull { "PROCESSING_DOWNLOAD" } else { "PROCESSING_UPLOAD" };
        return Ok(wire::ok(
            json!({ "status": status, "downloaded_bytes": 0, "uploaded_bytes": p.bytes }),
        ));
    }
    let post_id: u64 = p.post_id.as_deref().and_then(|i| i.parse().ok()).unwrap_or_default();
    Ok(wire::ok(
        json!({ "status": "PUBLISH_COMPLETE", "publicaly_available_post_id": [post_id], "uploaded_bytes": p.bytes }),
    ))
}
