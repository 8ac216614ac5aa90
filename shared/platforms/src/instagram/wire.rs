//! Instagram API with Instagram Login: token answers, `/me`, media containers and media lists.

use secrecy::SecretString;
use serde::Deserialize;

/// `POST api.instagram.com/oauth/access_token`: the short-lived token. Older answers are flat,
/// newer ones wrap it in `data: [ … ]`.
#[derive(Deserialize)]
#[serde(untagged)]
pub enum CodeAnswer {
    Wrapped { data: Vec<ShortLived> },
    Flat(ShortLived),
}

#[derive(Deserialize)]
pub struct ShortLived {
    pub access_token: SecretString,
    /// Comma-separated granted permissions.
    #[serde(default)]
    pub permissions: Option<String>,
}

/// `GET graph.instagram.com/access_token` (ig_exchange_token) and `/refresh_access_token`.
#[derive(Deserialize)]
pub struct LongLived {
    pub access_token: SecretString,
    #[serde(default)]
    pub expires_in: Option<u64>,
}

/// `GET /me?fields=user_id,username`: `user_id` is the professional account id publishing uses.
#[derive(Deserialize)]
pub struct Me {
    pub user_id: serde_json::Value,
    #[serde(default)]
    pub username: String,
}

#[derive(Deserialize)]
pub struct Created {
    pub id: String,
}

/// `GET /{container-id}?fields=status_code`: EXPIRED, ERROR, FINISHED, IN_PROGRESS, PUBLISHED.
#[derive(Deserialize)]
pub struct ContainerStatus {
    #[serde(default)]
    pub status_code: Option<String>,
}

#[derive(Deserialize)]
pub struct MediaList {
    #[serde(default)]
    pub data: Vec<MediaItem>,
}

#[derive(Deserialize)]
pub struct MediaItem {
    pub id: String,
    #[serde(default)]
    pub caption: Option<String>,
    #[serde(default)]
    pub timestamp: Option<String>,
}
