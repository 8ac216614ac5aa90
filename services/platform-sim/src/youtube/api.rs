//! The YouTube Data API: `channels?mine=true`, the uploads playlist
//! (`playlistItems`) and resumable `videos` uploads (open a session with
//! the metadata, then PUT the bytes).

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use serde_json::{json, Value};

use super::wire::{Answer, YouTubeError};
use super::{Ctx, PLATFORM, YT, YT_FORCE_SSL, YT_PARTNER, YT_READONLY, YT_UPLOAD};
use crate::accounts::{rfc3339, Kind, Token, User};
use crate::authorize::required;
use crate::support::{bearer, parse_form, random_b64, request_base};

const CHANNEL_PARTS: &[&str] =
    &["id", "snippet", "contentDetails", "statistics", "status", "brandingSettings"];
const PLAYLIST_ITEM_PARTS: &[&str] = &["id", "snippet", "contentDetails", "status"];
const VIDEO_PARTS: &[&str] =
    &["snippet", "status", "id", "contentDetails", "recordingDetails", "localizations"];
/// Scopes that may read the channel.
const READ_SCOPES: &[&str] = &[YT, YT_READONLY, YT_FORCE_SSL, YT_PARTNER];
/// Scopes that may upload.
const UPLOAD_SCOPES: &[&str] = &[YT_UPLOAD, YT, YT_FORCE_SSL, YT_PARTNER];

/// A resumable upload: the metadata from the init, the video once the
/// bytes arrived.
#[derive(Debug, Clone)]
pub(crate) struct UploadSession {
    user_key: String,
    snippet: Value,
    privacy: String,
    video: Option<Value>,
}

/// The caller's live access token, or Google's 401.
fn caller(ctx: &Ctx, headers: &HeaderMap) -> Result<Token, YouTubeError> {
    let token = bearer(headers).ok_or(YouTubeError::Unauthenticated)?;
    ctx.store()
        .accounts
        .check(&token, &[Kind::Access], ctx.common.clock.now())
        .map_err(|_| YouTubeError::Unauthenticated)
}

/// Google's 403 unless the token holds one of `scopes`.
fn need_any(t: &Token, scopes: &[&str]) -> Result<(), YouTubeError> {
    if scopes.iter().any(|s| t.has_scope(s)) {
        Ok(())
    } else {
        Err(YouTubeError::InsufficientScope)
    }
}

/// The required `part` list, each one of `allowed`.
fn parts<'a>(
    params: &'a HashMap<String, String>,
    allowed: &[&str],
) -> Result<Vec<&'a str>, YouTubeError> {
    let part = required(params, "part")
        .ok_or_else(|| YouTubeError::bad_request("Required parameter: part", "required"))?;
    let parts: Vec<&str> = part.split(',').map(str::trim).collect();
    if let Some(bad) = parts.iter().find(|p| !allowed.contains(p)) {
        return Err(YouTubeError::bad_request(format!("'{bad}'"), "unknownPart"));
    }
    Ok(parts)
}

/// A resource with `kind`, `etag`, `id` and the asked-for `parts` of `full`.
fn pick(full: &Value, parts: &[&str]) -> Value {
    let mut item = json!({ "kind": full["kind"], "etag": full["etag"], "id": full["id"] });
    for p in parts.iter().filter(|p| **p != "id") {
        item[*p] = full[*p].clone();
    }
    item
}

/// The uploads playlist of a channel: `UC…` becomes `UU…`.
fn uploads_playlist(u: &User) -> String {
    format!("UU{}", &u.id[2..])
}

/// `GET /youtube/v3/channels?part=…&mine=true`.
pub(crate) async fn channels(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Answer {
    let t = caller(&ctx, &headers)?;
    let params = parse_form(q.unwrap_or_default().as_bytes());
    let parts = parts(&params, CHANNEL_PARTS)?;
    if params.get("mine").map(String::as_str) != Some("true") {
        return Err(YouTubeError::bad_request(
            "No filter selected. Expected one of: forUsername, managedByMe, id, mine, categoryId, forHandle",
            "missingRequiredParameter",
        ));
    }
    need_any(&t, READ_SCOPES)?;
    let s = ctx.store();
    let u = s.accounts.user(&t.user_key).cloned().ok_or(YouTubeError::Unauthenticated)?;
    let videos = s.accounts.posts_of(&t.user_key).count();
    drop(s);
    let full = json!({
        "kind": "youtube#channel",
        "etag": random_b64(12),
        "id": u.id,
        "snippet": {
            "title": u.name,
            "description": "",
            "customUrl": format!("@{}", u.key),
            "publishedAt": "2020-01-01T00:00:00Z",
            "thumbnails": {},
            "localized": { "title": u.name, "description": "" },
        },
        "contentDetails": { "relatedPlaylists": { "likes": "", "uploads": uploads_playlist(&u) } },
        "statistics": { "viewCount": "0", "subscriberCount": "0", "hiddenSubscriberCount": false, "videoCount": videos.to_string() },
        "status": { "privacyStatus": "public", "isLinked": true, "longUploadsStatus": "allowed" },
        "brandingSettings": { "channel": { "title": u.name } },
    });
    Ok(axum::Json(json!({
        "kind": "youtube#channelListResponse",
        "etag": random_b64(12),
        "pageInfo": { "totalResults": 1, "resultsPerPage": 5 },
        "items": [pick(&full, &parts)],
    }))
    .into_response())
}

/// `GET /youtube/v3/playlistItems?part=snippet&playlistId=UU…&maxResults=N`: the caller's
/// uploads playlist (the one `channels` names in `contentDetails.relatedPlaylists.uploads`),
/// newest first. Other playlists do not exist here.
pub(crate) async fn playlist_items(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Answer {
    let t = caller(&ctx, &headers)?;
    let params = parse_form(q.unwrap_or_default().as_bytes());
    let parts = parts(&params, PLAYLIST_ITEM_PARTS)?;
    let playlist = required(&params, "playlistId").ok_or_else(|| {
        YouTubeError::bad_request(
            "No filter selected. Expected one of: id, playlistId",
            "missingRequiredParameter",
        )
    })?;
    let max = match params.get("maxResults").map(|m| m.parse::<usize>()) {
        None => 5,
        Some(Ok(n)) if n <= 50 => n,
        Some(_) => {
            return Err(YouTubeError::bad_request("Invalid value for maxResults", "invalidValue"))
        }
    };
    need_any(&t, READ_SCOPES)?;
    let s = ctx.store();
    let u = s.accounts.user(&t.user_key).cloned().ok_or(YouTubeError::Unauthenticated)?;
    if playlist != uploads_playlist(&u) {
        return Err(YouTubeError::api(
            StatusCode::NOT_FOUND,
            "The playlist identified with the request's <code>playlistId</code> parameter cannot be found.",
            "playlistNotFound",
            "youtube.playlistItem",
            Some("NOT_FOUND"),
        ));
    }
    let mut videos: Vec<&Value> = s
        .uploads
        .values()
        .filter(|u| u.user_key == t.user_key)
        .filter_map(|u| u.video.as_ref())
        .collect();
    videos.sort_by(|a, b| {
        let at = |v: &Value| {
            v.pointer("/snippet/publishedAt").and_then(Value::as_str).map(str::to_owned)
        };
        at(b).cmp(&at(a))
    });
    let total = videos.len();
    let items: Vec<Value> = videos
        .into_iter()
        .take(max)
        .enumerate()
        .map(|(position, v)| pick(&playlist_item(v, &u, playlist, position), &parts))
        .collect();
    Ok(axum::Json(json!({
        "kind": "youtube#playlistItemListResponse",
        "etag": random_b64(12),
        "pageInfo": { "totalResults": total, "resultsPerPage": max },
        "items": items,
    }))
    .into_response())
}

/// A video as an item of `playlist`, with every part.
fn playlist_item(v: &Value, u: &User, playlist: &str, position: usize) -> Value {
    json!({
        "kind": "youtube#playlistItem",
        "etag": random_b64(12),
        "id": random_b64(24),
        "snippet": {
            "publishedAt": v["snippet"]["publishedAt"],
            "channelId": u.id,
            "title": v["snippet"]["title"],
            "description": v["snippet"]["description"],
            "thumbnails": {},
            "channelTitle": u.name,
            "playlistId": playlist,
            "position": position,
            "resourceId": { "kind": "youtube#video", "videoId": v["id"] },
        },
        "contentDetails": { "videoId": v["id"], "videoPublishedAt": v["snippet"]["publishedAt"] },
        "status": { "privacyStatus": v["status"]["privacyStatus"] },
    })
}

/// `POST /upload/youtube/v3/videos?uploadType=resumable&part=…` with the
/// video metadata: opens an upload session, answered by its `Location`.
pub(crate) async fn upload_init(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Answer {
    let t = caller(&ctx, &headers)?;
    let params = parse_form(q.as_deref().unwrap_or_default().as_bytes());
    match required(&params, "uploadType") {
        Some("resumable") => {}
        Some(other) => {
            return Err(YouTubeError::bad_request(
                format!("Invalid value for uploadType: {other}. The simulator supports resumable."),
                "invalidValue",
            ))
        }
        None => {
            return Err(YouTubeError::bad_request("Media upload requires uploadType", "required"))
        }
    }
    let part = required(&params, "part")
        .ok_or_else(|| YouTubeError::bad_request("Required parameter: part", "required"))?;
    if let Some(bad) = part.split(',').map(str::trim).find(|p| !VIDEO_PARTS.contains(p)) {
        return Err(YouTubeError::bad_request(format!("'{bad}'"), "unknownPart"));
    }
    need_any(&t, UPLOAD_SCOPES)?;
    let (snippet, privacy) = video_metadata(&body)?;
    if ctx.common.content_rejected(PLATFORM) {
        return Err(YouTubeError::api(
            StatusCode::BAD_REQUEST,
            "The request metadata is invalid.",
            "invalidVideoMetadata",
            "youtube.video",
            None,
        ));
    }
    let upload_id: String = random_b64(48).chars().filter(char::is_ascii_alphanumeric).collect();
    ctx.store().uploads.insert(
        upload_id.clone(),
        UploadSession { user_key: t.user_key, snippet, privacy, video: None },
    );
    let location = format!(
        "{}/google/apis/upload/youtube/v3/videos?uploadType=resumable&part={}&upload_id={upload_id}",
        request_base(&headers),
        url::form_urlencoded::byte_serialize(part.as_bytes()).collect::<String>()
    );
    let mut resp = StatusCode::OK.into_response();
    if let (Ok(loc), Ok(id)) = (HeaderValue::from_str(&location), HeaderValue::from_str(&upload_id))
    {
        resp.headers_mut().insert(header::LOCATION, loc);
        resp.headers_mut().insert(HeaderName::from_static("x-guploader-uploadid"), id);
    }
    Ok(resp)
}

/// The upload's metadata body: its `snippet` (with a valid title, `unknown`
/// when absent) and `status.privacyStatus` (`public` when absent).
fn video_metadata(body: &[u8]) -> Result<(Value, String), YouTubeError> {
    let meta: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        match serde_json::from_slice(body) {
            Ok(v @ Value::Object(_)) => v,
            _ => return Err(YouTubeError::bad_request("Parse Error", "parseError")),
        }
    };
    let invalid_title = || {
        YouTubeError::bad_request(
            "The request metadata specifies an invalid video title.",
            "invalidTitle",
        )
    };
    let mut snippet = meta.get("snippet").cloned().unwrap_or_else(|| json!({}));
    let title = match snippet.get("title") {
        None | Some(Value::Null) => "unknown".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(invalid_title()),
    };
    if title.trim().is_empty() || title.chars().count() > 100 || title.contains(['<', '>']) {
        return Err(invalid_title());
    }
    snippet["title"] = json!(title);
    let privacy = meta
        .pointer("/status/privacyStatus")
        .and_then(Value::as_str)
        .unwrap_or("public")
        .to_owned();
    if !["public", "private", "unlisted"].contains(&privacy.as_str()) {
        return Err(YouTubeError::bad_request(
            "The request metadata specifies an invalid privacy status.",
            "invalidVideoMetadata",
        ));
    }
    Ok((snippet, privacy))
}

/// `PUT <Location>` with the video bytes: creates the video. A repeated PUT
/// to a finished session answers the same video again.
pub(crate) async fn upload_bytes(
    State(ctx): State<Ctx>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Answer {
    let params = parse_form(q.as_deref().unwrap_or_default().as_bytes());
    let upload_id = required(&params, "upload_id")
        .ok_or_else(|| YouTubeError::bad_request("Required parameter: upload_id", "required"))?;
    let mut s = ctx.store();
    let session = s.uploads.get(upload_id).cloned().ok_or_else(|| {
        YouTubeError::api(
            StatusCode::NOT_FOUND,
            "Upload session not found.",
            "notFound",
            "global",
            Some("NOT_FOUND"),
        )
    })?;
    if let Some(video) = session.video {
        return Ok(axum::Json(video).into_response());
    }
    if body.is_empty() {
        return Err(YouTubeError::bad_request(
            "The request does not include the video content.",
            "mediaBodyRequired",
        ));
    }
    let title = session.snippet["title"].as_str().unwrap_or("unknown").to_owned();
    let user = s.accounts.user(&session.user_key).cloned().ok_or(YouTubeError::Unauthenticated)?;
    let post = s.accounts.record_post(&session.user_key, &title, |_| {
        random_b64(9)
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .take(11)
            .collect()
    });
    let mut snippet = session.snippet.clone();
    snippet["publishedAt"] = json!(rfc3339(post.created_at));
    snippet["channelId"] = json!(user.id);
    snippet["channelTitle"] = json!(user.name);
    snippet["description"] = snippet.get("description").cloned().unwrap_or_else(|| json!(""));
    snippet["categoryId"] = snippet.get("categoryId").cloned().unwrap_or_else(|| json!("22"));
    snippet["liveBroadcastContent"] = json!("none");
    snippet["thumbnails"] = json!({});
    let video = json!({
        "kind": "youtube#video",
        "etag": random_b64(12),
        "id": post.id,
        "snippet": snippet,
        "status": {
            "uploadStatus": "uploaded",
            "privacyStatus": session.privacy,
            "license": "youtube",
            "embeddable": true,
            "publicStatsViewable": true,
            "selfDeclaredMadeForKids": false,
        },
    });
    if let Some(sess) = s.uploads.get_mut(upload_id) {
        sess.video = Some(video.clone());
    }
    drop(s);
    tracing::info!(platform = PLATFORM, video_id = %post.id, bytes = body.len(), "video uploaded");
    if ctx.common.answer_lost(PLATFORM) {
        return Ok(crate::faults::lost_answer());
    }
    Ok(axum::Json(video).into_response())
}
