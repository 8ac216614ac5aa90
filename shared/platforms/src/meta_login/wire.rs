//! Meta login JSON (Instagram API with Instagram Login, Threads): token answers, `/me`,
//! containers and the user's media.

use secrecy::SecretString;
use serde::Deserialize;

/// The code exchange's short-lived token. Instagram's documentation wraps it in
/// `data: [ … ]`; live answers (and Threads) are flat.
#[derive(Deserialize)]
#[serde(untagged)]
pub enum CodeAnswer {
    Wrapped { data: Vec<ShortLived> },
    Flat(ShortLived),
}

#[derive(Deserialize)]
pub struct ShortLived {
    pub access_token: SecretString,
    /// The granted permissions (Instagram): a comma-separated string in the documentation's
    /// example, an array in live answers.
    #[serde(default)]
    pub permissions: Option<Permissions>,
}

#[derive(Deserialize)]
#[serde(untagged)]
pub enum Permissions {
    List(Vec<String>),
    Joined(String),
}

impl Permissions {
    pub fn scopes(&self) -> Vec<String> {
        let all: Vec<&str> = match self {
            Permissions::List(l) => l.iter().map(String::as_str).collect(),
            Permissions::Joined(s) => s.split(',').collect(),
        };
        all.into_iter().map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
    }
}

/// `GET /access_token` (exchange) and `/refresh_access_token`: the 60-day token.
#[derive(Deserialize)]
pub struct LongLived {
    pub access_token: SecretString,
    #[serde(default)]
    pub expires_in: Option<u64>,
}

/// `GET /me`: Instagram names the professional account publishing uses `user_id`, Threads
/// names the profile `id`. Graph sends ids as strings, but a number must not break identity.
#[derive(Deserialize)]
pub struct Me {
    #[serde(default)]
    pub id: Option<serde_json::Value>,
    #[serde(default)]
    pub user_id: Option<serde_json::Value>,
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Deserialize)]
pub struct Created {
    pub id: String,
}

/// `GET /{container-id}?fields=status_code` (Instagram) or `?fields=status` (Threads):
/// EXPIRED, ERROR, FINISHED, IN_PROGRESS, PUBLISHED.
#[derive(Deserialize)]
pub struct ContainerStatus {
    #[serde(default)]
    pub status_code: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
}

#[derive(Deserialize)]
pub struct MediaList {
    #[serde(default)]
    pub data: Vec<MediaItem>,
}

/// A published item; its text is `caption` (Instagram) or `text` (Threads).
#[derive(Deserialize)]
pub struct MediaItem {
    pub id: String,
    #[serde(default)]
    pub caption: Option<String>,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub timestamp: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scopes(body: &str) -> Vec<String> {
        let short = match serde_json::from_str::<CodeAnswer>(body).expect("a code answer") {
            CodeAnswer::Flat(s) => s,
            CodeAnswer::Wrapped { mut data } => data.remove(0),
        };
        short.permissions.as_ref().map(Permissions::scopes).unwrap_or_default()
    }

    #[test]
    fn code_answer_in_the_documented_and_the_live_shape() {
        // Business Login docs: wrapped in `data`, permissions joined with commas.
        let documented = r#"{"data":[{"access_token":"IGQ","user_id":"1020","permissions":"instagram_business_basic,instagram_business_content_publish"}]}"#;
        // Live answers: flat, numeric user_id, permissions as an array.
        let live = r#"{"access_token":"IGQ","user_id":1020,"permissions":["instagram_business_basic","instagram_business_content_publish"]}"#;
        let want = ["instagram_business_basic", "instagram_business_content_publish"];
        assert_eq!(scopes(documented), want);
        assert_eq!(scopes(live), want);
        // Threads: flat, no permissions.
        assert!(scopes(r#"{"access_token":"THQ","user_id":25}"#).is_empty());
    }
}
