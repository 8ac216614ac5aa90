//! Threads API JSON: token answers, `/me`, containers and the user's threads.

use secrecy::SecretString;
use serde::Deserialize;

/// `POST graph.threads.net/oauth/access_token`: the short-lived token.
#[derive(Deserialize)]
pub struct ShortLived {
    pub access_token: SecretString,
}

/// `GET /access_token` (th_exchange_token) and `/refresh_access_token` (th_refresh_token).
#[derive(Deserialize)]
pub struct LongLived {
    pub access_token: SecretString,
    #[serde(default)]
    pub expires_in: Option<u64>,
}

#[derive(Deserialize)]
pub struct Me {
    pub id: String,
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Deserialize)]
pub struct Created {
    pub id: String,
}

/// `GET /{container-id}?fields=status`: EXPIRED, ERROR, FINISHED, IN_PROGRESS, PUBLISHED.
#[derive(Deserialize)]
pub struct ContainerStatus {
    #[serde(default)]
    pub status: Option<String>,
}

#[derive(Deserialize)]
pub struct ThreadList {
    #[serde(default)]
    pub data: Vec<Thread>,
}

#[derive(Deserialize)]
pub struct Thread {
    pub id: String,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub timestamp: Option<String>,
}
