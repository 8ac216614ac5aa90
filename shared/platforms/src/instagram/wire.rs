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
    /// The granted permissions: a comma-separated string in the documentation's example, an
    /// array in live answers.
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
    }
}
