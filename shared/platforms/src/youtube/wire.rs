//! YouTube Data API v3 JSON (channels, videos, playlistItems) and Google's error body.

use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
pub struct ChannelList {
    #[serde(default)]
    pub items: Vec<Channel>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Channel {
    pub id: String,
    #[serde(default)]
    pub snippet: Option<ChannelSnippet>,
    #[serde(default)]
    pub content_details: Option<ChannelContentDetails>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelSnippet {
    #[serde(default)]
    pub title: String,
    /// The channel's handle (`@name`), when it has one.
    #[serde(default)]
    pub custom_url: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelContentDetails {
    pub related_playlists: RelatedPlaylists,
}

#[derive(Deserialize)]
pub struct RelatedPlaylists {
    pub uploads: String,
}

/// The metadata part of `videos.insert`.
#[derive(Serialize)]
pub struct VideoInsert<'a> {
    pub snippet: VideoSnippet<'a>,
    pub status: VideoStatus,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VideoSnippet<'a> {
    pub title: &'a str,
    pub description: &'a str,
    /// 22 = People & Blogs, YouTube's default for uploads.
    pub category_id: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VideoStatus {
    pub privacy_status: &'static str,
}

#[derive(Deserialize)]
pub struct Video {
    pub id: String,
}

#[derive(Deserialize)]
pub struct PlaylistItems {
    #[serde(default)]
    pub items: Vec<PlaylistItem>,
}

#[derive(Deserialize)]
pub struct PlaylistItem {
    pub snippet: PlaylistItemSnippet,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlaylistItemSnippet {
    #[serde(default)]
    pub published_at: Option<String>,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub description: String,
    pub resource_id: ResourceId,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceId {
    #[serde(default)]
    pub video_id: Option<String>,
}

/// Google's API error: `{"error":{"code":403,"message":"…","errors":[{"domain","reason",
/// "message"}],"status":"PERMISSION_DENIED"}}`. Recognised when `error.code` is an integer and
/// it names a reason or a status.
#[derive(Debug)]
pub struct ApiError {
    pub reasons: Vec<String>,
    pub status: Option<String>,
    pub message: Option<String>,
}

impl ApiError {
    pub fn parse(body: &[u8]) -> Option<Self> {
        let value: serde_json::Value = serde_json::from_slice(body).ok()?;
        let error = value.get("error")?.as_object()?;
        error.get("code")?.as_i64()?;
        let reasons: Vec<String> = error
            .get("errors")
            .and_then(|e| e.as_array())
            .map(|errors| {
                errors.iter().filter_map(|e| e.get("reason")?.as_str().map(str::to_owned)).collect()
            })
            .unwrap_or_default();
        let status = error.get("status").and_then(|s| s.as_str()).map(str::to_owned);
        // Google's bodies always name a reason or a status; a bare number is not one of them.
        if reasons.is_empty() && status.is_none() {
            return None;
        }
        Some(ApiError {
            reasons,
            status,
            message: error.get("message").and_then(|s| s.as_str()).map(str::to_owned),
        })
    }

    pub fn has(&self, reasons: &[&str]) -> bool {
        self.reasons.iter().any(|r| reasons.contains(&r.as_str()))
    }
}
