//! LinkedIn's JSON: OpenID `userinfo`, the Posts API (`/rest/posts`), and its error body.

use serde::{Deserialize, Serialize};

/// `GET /v2/userinfo` (Sign In with LinkedIn using OpenID Connect).
#[derive(Deserialize)]
pub struct UserInfo {
    pub sub: String,
    #[serde(default)]
    pub name: Option<String>,
}

/// `POST /rest/posts`: a text post by a member.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatePost<'a> {
    pub author: &'a str,
    pub commentary: &'a str,
    pub visibility: &'static str,
    pub distribution: Distribution,
    pub lifecycle_state: &'static str,
    pub is_reshare_disabled_by_author: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Distribution {
    pub feed_distribution: &'static str,
    pub target_entities: &'static [&'static str],
    pub third_party_distribution_channels: &'static [&'static str],
}

/// LinkedIn's error body: `{"status":401,"serviceErrorCode":65601,"code":"REVOKED_ACCESS_TOKEN",
/// "message":"…"}`. Recognised when it has a numeric `serviceErrorCode` or a string `code`.
#[derive(Debug)]
pub struct ApiError {
    pub service_error_code: Option<i64>,
    pub code: Option<String>,
    pub message: Option<String>,
}

impl ApiError {
    pub fn parse(body: &[u8]) -> Option<Self> {
        let value: serde_json::Value = serde_json::from_slice(body).ok()?;
        let obj = value.as_object()?;
        let service_error_code = obj.get("serviceErrorCode").and_then(serde_json::Value::as_i64);
        let code = obj.get("code").and_then(|v| v.as_str()).map(str::to_owned);
        if service_error_code.is_none() && code.is_none() {
            return None;
        }
        let message = obj.get("message").and_then(|v| v.as_str()).map(str::to_owned);
        Some(ApiError { service_error_code, code, message })
    }
}
