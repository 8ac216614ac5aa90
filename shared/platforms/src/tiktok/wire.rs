//! TikTok's JSON: the v2 token endpoint, user info, and the Content Posting API.

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

/// `POST /v2/oauth/token/` success.
#[derive(Deserialize)]
pub struct TokenAnswer {
    pub access_token: SecretString,
    #[serde(default)]
    pub expires_in: Option<u64>,
    #[serde(default)]
    pub refresh_token: Option<SecretString>,
    #[serde(default)]
    pub refresh_expires_in: Option<u64>,
    /// Comma-separated.
    #[serde(default)]
    pub scope: Option<String>,
}

/// `POST /v2/oauth/token/` failure: `{"error","error_description","log_id"}`.
pub struct TokenError {
    pub error: String,
    pub description: Option<String>,
}

impl TokenError {
    /// Recognised when `error` is a non-empty string. TikTok has been seen answering this with
    /// HTTP 200, so a success status alone proves nothing.
    pub fn parse(body: &[u8]) -> Option<Self> {
        let value: serde_json::Value = serde_json::from_slice(body).ok()?;
        let error = value.get("error")?.as_str()?.trim();
        if error.is_empty() {
            return None;
        }
        let description =
            value.get("error_description").and_then(|d| d.as_str()).map(str::to_owned);
        Some(TokenError { error: error.to_owned(), description })
    }
}

/// Every API answer: `{"data":{…},"error":{"code":"ok","message":"","log_id":"…"}}`.
#[derive(Deserialize)]
pub struct Envelope<T> {
    pub data: T,
}

/// The API's error object, recognised when `error.code` is a string.
pub struct ApiError {
    pub code: String,
    pub message: Option<String>,
}

impl ApiError {
    pub fn parse(body: &[u8]) -> Option<Self> {
        let value: serde_json::Value = serde_json::from_slice(body).ok()?;
        let error = value.get("error")?.as_object()?;
        let code = error.get("code")?.as_str()?.to_owned();
        let message = error.get("message").and_then(|m| m.as_str()).map(str::to_owned);
        Some(ApiError { code, message })
    }
}

#[derive(Deserialize)]
pub struct UserData {
    pub user: User,
}

#[derive(Deserialize)]
pub struct User {
    pub open_id: String,
    #[serde(default)]
    pub display_name: String,
    #[serde(default)]
    pub username: Option<String>,
}

/// `POST /v2/post/publish/video/init/` with the video pulled from a URL.
#[derive(Serialize)]
pub struct VideoInit<'a> {
    pub post_info: PostInfo<'a>,
    pub source_info: SourceInfo<'a>,
}

#[derive(Serialize)]
pub struct PostInfo<'a> {
    pub title: &'a str,
    pub privacy_level: &'static str,
}

#[derive(Serialize)]
pub struct SourceInfo<'a> {
    pub source: &'static str,
    pub video_url: &'a str,
}

#[derive(Deserialize)]
pub struct InitData {
    pub publish_id: String,
}

#[derive(Serialize)]
pub struct StatusFetch<'a> {
    pub publish_id: &'a str,
}

/// `POST /v2/post/publish/status/fetch/`: PROCESSING_UPLOAD, PROCESSING_DOWNLOAD,
/// SEND_TO_USER_INBOX, PUBLISH_COMPLETE or FAILED (with `fail_reason`).
#[derive(Deserialize)]
pub struct StatusData {
    pub status: String,
    #[serde(default)]
    pub fail_reason: Option<String>,
    /// Sic: TikTok's spelling. Present once a public post passed moderation.
    #[serde(default)]
    pub publicaly_available_post_id: Option<Vec<serde_json::Value>>,
}
