//! YouTube (Google OAuth 2.0): authorization code with PKCE, `access_type=offline` for a
//! non-rotating refresh token, channel identity, and video uploads through the resumable
//! protocol. Wire types in [`wire`], error mapping in [`errors`].

mod errors;
pub(crate) mod scopes;
mod wire;

use std::time::Duration;

use chrono::{DateTime, Utc};
use lifeline_kit::{
    config::{ConfigError, Env},
    Platform,
};
use oauth2::{
    AuthorizationCode, CsrfToken, PkceCodeChallenge, PkceCodeVerifier, RefreshToken, Scope,
};
use secrecy::{ExposeSecret, SecretString};

use crate::{
    common::{self, send, App},
    endpoint, oauth, AccessToken, AuthorizationStart, Connector, Failure, Grant, MediaError,
    MediaFetcher, MediaKind, MediaPolicy, PlatformUser, PostDraft, Published,
};

pub use errors::{classify_api, classify_token_body, classify_token_error};

/// A video is uploaded; the text becomes its description (at most 5,000 characters).
pub(crate) const POST_RULES: crate::post_rules::PostRules = crate::post_rules::PostRules {
    max_length: 5000,
    counting: crate::post_rules::Counting::Chars,
    media: crate::post_rules::MediaNeed::Video,
};

/// Upload videos, and read the channel (identity, uploads playlist for reconciliation).
pub const SCOPES: [&str; 2] = [
    "https://www.googleapis.com/auth/youtube.upload",
    "https://www.googleapis.com/auth/youtube.readonly",
];

/// The largest video we fetch into memory to upload; bigger posts are refused, not retried.
pub const MAX_UPLOAD_BYTES: usize = 50 * 1024 * 1024;

/// Public by intent; YouTube itself locks uploads from unverified API projects to private.
const PRIVACY_STATUS: &str = "public";

pub struct YouTubeConnector {
    oauth: oauth::Client,
    api: url::Url,
    http: reqwest::Client,
    /// Fetches the post's media under the media policy: each redirect (CDNs use them) checked
    /// again, a longer read; it never carries a token.
    media: MediaFetcher,
}

impl YouTubeConnector {
    /// `LIFELINE_YOUTUBE_CLIENT_ID` / `_CLIENT_SECRET`; hosts `LIFELINE_YOUTUBE_ACCOUNTS_URL`
    /// (`https://accounts.google.com`, sim `<sim>/google/accounts`), `LIFELINE_YOUTUBE_OAUTH2_URL`
    /// (`https://oauth2.googleapis.com`, sim `<sim>/google/oauth2`) and
    /// `LIFELINE_YOUTUBE_APIS_URL` (`https://www.googleapis.com`, sim `<sim>/google/apis`).
    pub fn from_env(
        env: &Env,
        public: &url::Url,
        sim: Option<&url::Url>,
        http: reqwest::Client,
        media: &MediaPolicy,
    ) -> Result<Option<Self>, ConfigError> {
        let Some(app) = App::from_env(env, "YOUTUBE") else { return Ok(None) };
        let accounts = common::host(
            env,
            "YOUTUBE",
            "ACCOUNTS",
            "https://accounts.google.com",
            sim,
            "google/accounts",
        )?;
        let token_host = common::host(
            env,
            "YOUTUBE",
            "OAUTH2",
            "https://oauth2.googleapis.com",
            sim,
            "google/oauth2",
        )?;
        let api =
            common::host(env, "YOUTUBE", "APIS", "https://www.googleapis.com", sim, "google/apis")?;
        let oauth = oauth::client(
            app.client_id,
            app.client_secret.as_ref(),
            endpoint(&accounts, "o/oauth2/v2/auth"),
            endpoint(&token_host, "token"),
            common::callback(public, Platform::YouTube),
        );
        let media = MediaFetcher::new(media.clone(), Duration::from_secs(120))
            .map_err(|e| env.invalid("LIFELINE_YOUTUBE_CLIENT_ID", e.to_string()))?;
        Ok(Some(YouTubeConnector { oauth, api, http, media }))
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        token: &AccessToken,
        url: url::Url,
        what: &str,
    ) -> Result<T, Failure> {
        let req = self.http.get(url).bearer_auth(token.secret.expose_secret());
        let a = send(req, false).await?;
        if !a.status.is_success() {
            let expired = token.believed_expired(Utc::now());
            return Err(classify_api(a.status, &a.headers, &a.body, expired, false));
        }
        common::parse(&a.body, what)
    }

    fn channels_url(&self, part: &str) -> url::Url {
        let mut url = endpoint(&self.api, "youtube/v3/channels");
        url.query_pairs_mut().append_pair("part", part).append_pair("mine", "true");
        url
    }

    /// Downloads the post's video, refusing more than [`MAX_UPLOAD_BYTES`] and any URL the
    /// media policy does not allow (permanent: the post is refused, not retried).
    async fn fetch_media(&self, url: &str) -> Result<(Vec<u8>, String), Failure> {
        let fetched = self.media.fetch(url, MAX_UPLOAD_BYTES).await.map_err(|e| match e {
            MediaError::Status(s) if s.is_server_error() => {
                Failure::transient(format!("YouTube upload: {e}"))
            }
            MediaError::Unreachable | MediaError::BrokeOff => {
                Failure::transient(format!("YouTube upload: {e}"))
            }
            MediaError::TooBig(_) => Failure::rejected(format!("video {e}")),
            MediaError::NotAllowed(_) | MediaError::Status(_) => {
                Failure::rejected(format!("YouTube upload: {e}"))
            }
        })?;
        let content_type = fetched
            .content_type
            .filter(|v| v.starts_with("video/"))
            .unwrap_or_else(|| "video/*".to_owned());
        Ok((fetched.bytes, content_type))
    }
}

/// The video title: the post's first non-empty line, without the `<` `>` YouTube refuses,
/// at most 100 characters.
pub fn title_of(text: &str) -> String {
    let line = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
    let title: String = line.chars().filter(|c| !matches!(c, '<' | '>')).take(100).collect();
    if title.trim().is_empty() {
        "Untitled".to_owned()
    } else {
        title
    }
}

/// The description: the whole text, without `<` `>`, within YouTube's 5,000 bytes.
pub fn description_of(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars().filter(|c| !matches!(c, '<' | '>')) {
        if out.len() + c.len_utf8() > 5000 {
            break;
        }
        out.push(c);
    }
    out
}

#[async_trait::async_trait]
impl Connector for YouTubeConnector {
    fn platform(&self) -> Platform {
        Platform::YouTube
    }

    fn authorize(&self, state: &str) -> AuthorizationStart {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let state = state.to_owned();
        let (url, _) = self
            .oauth
            .authorize_url(move || CsrfToken::new(state))
            .add_scopes(SCOPES.iter().map(|s| Scope::new((*s).to_owned())))
            .set_pkce_challenge(challenge)
            // A refresh token, and again on every consent (a reconnect needs a fresh one).
            .add_extra_param("access_type", "offline")
            .add_extra_param("prompt", "consent")
            .url();
        AuthorizationStart {
            url,
            pkce_verifier: Some(SecretString::from(verifier.secret().clone())),
        }
    }

    async fn exchange_code(
        &self,
        code: &str,
        pkce_verifier: Option<&SecretString>,
    ) -> Result<Grant, Failure> {
        let mut request = self.oauth.exchange_code(AuthorizationCode::new(code.to_owned()));
        if let Some(v) = pkce_verifier {
            request =
                request.set_pkce_verifier(PkceCodeVerifier::new(v.expose_secret().to_owned()));
        }
        let token = request
            .request_async(&self.http)
            .await
            .map_err(|e| oauth::request_failure("Google", &e, classify_token_error))?;
        Ok(token.grant(&SCOPES))
    }

    async fn refresh(&self, refresh_token: &SecretString) -> Result<Grant, Failure> {
        let token = self
            .oauth
            .exchange_refresh_token(&RefreshToken::new(refresh_token.expose_secret().to_owned()))
            .request_async(&self.http)
            .await
            .map_err(|e| oauth::request_failure("Google", &e, classify_token_error))?;
        // Google does not rotate: the answer has no refresh token, the caller keeps the old one.
        Ok(token.grant(&SCOPES))
    }

    async fn identify(&self, token: &AccessToken) -> Result<PlatformUser, Failure> {
        let list: wire::ChannelList =
            self.get_json(token, self.channels_url("id,snippet"), "YouTube channels").await?;
        let channel = list
            .items
            .into_iter()
            .next()
            .ok_or_else(|| Failure::rejected("this Google account has no YouTube channel"))?;
        let snippet = channel
            .snippet
            .unwrap_or(wire::ChannelSnippet { title: String::new(), custom_url: None });
        Ok(PlatformUser {
            // The channel's handle (`@name`) when it has one; a title is not a handle.
            username: snippet.custom_url.unwrap_or_default(),
            display_name: snippet.title,
            id: channel.id,
        })
    }

    async fn publish(
        &self,
        token: &AccessToken,
        _user_id: &str,
        post: &PostDraft,
    ) -> Result<Published, Failure> {
        let media = match &post.media {
            Some(m) if m.kind == MediaKind::Video => m,
            _ => return Err(Failure::rejected("YouTube posts need a video")),
        };
        let (bytes, content_type) = self.fetch_media(&media.url).await?;
        let (title, description) = (title_of(&post.text), description_of(&post.text));
        let metadata = wire::VideoInsert {
            snippet: wire::VideoSnippet {
                title: &title,
                description: &description,
                category_id: "22",
            },
            status: wire::VideoStatus { privacy_status: PRIVACY_STATUS },
        };
        let mut init_url = endpoint(&self.api, "upload/youtube/v3/videos");
        init_url
            .query_pairs_mut()
            .append_pair("uploadType", "resumable")
            .append_pair("part", "snippet,status");
        let req = self
            .http
            .post(init_url)
            .bearer_auth(token.secret.expose_secret())
            .header("X-Upload-Content-Length", bytes.len())
            .header("X-Upload-Content-Type", &content_type)
            .json(&metadata);
        // Starting a session creates no video: a lost answer is only transient.
        let a = send(req, false).await?;
        let expired = token.believed_expired(Utc::now());
        if !a.status.is_success() {
            return Err(classify_api(a.status, &a.headers, &a.body, expired, false));
        }
        let session = a
            .headers
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|l| self.api.join(l).ok())
            .ok_or_else(|| Failure::transient("YouTube named no upload session"))?;
        let mut put = self
            .http
            .put(session.clone())
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(bytes);
        // The session URI authorises the upload itself; the token goes only to Google's own host.
        if session.origin() == self.api.origin() {
            put = put.bearer_auth(token.secret.expose_secret());
        }
        let a = send(put, true).await?;
        if !a.status.is_success() {
            return Err(classify_api(a.status, &a.headers, &a.body, expired, true));
        }
        match serde_json::from_slice::<wire::Video>(&a.body) {
            Ok(v) => Ok(Published::new(v.id)),
            Err(_) => {
                Err(Failure::ambiguous("YouTube accepted the upload but its answer did not parse"))
            }
        }
    }

    /// Looks through the channel's uploads playlist (1 quota unit a page, where search costs
    /// 100) for a video with this post's title and description, published since `since`.
    async fn find_published(
        &self,
        token: &AccessToken,
        _user_id: &str,
        post: &PostDraft,
        since: DateTime<Utc>,
    ) -> Result<Option<Published>, Failure> {
        let list: wire::ChannelList =
            self.get_json(token, self.channels_url("contentDetails"), "YouTube channels").await?;
        let Some(uploads) = list
            .items
            .into_iter()
            .find_map(|c| c.content_details.map(|d| d.related_playlists.uploads))
        else {
            return Ok(None);
        };
        let mut url = endpoint(&self.api, "youtube/v3/playlistItems");
        url.query_pairs_mut()
            .append_pair("part", "snippet")
            .append_pair("playlistId", &uploads)
            .append_pair("maxResults", "50");
        let items: wire::PlaylistItems = self.get_json(token, url, "YouTube playlistItems").await?;
        let (title, description) = (title_of(&post.text), description_of(&post.text));
        // Clocks differ; a minute of slack keeps a just-made upload in range.
        let since = since - chrono::Duration::minutes(1);
        Ok(items.items.into_iter().find_map(|item| {
            let s = item.snippet;
            let recent = s
                .published_at
                .as_deref()
                .and_then(|p| DateTime::parse_from_rfc3339(p).ok())
                .is_none_or(|p| p >= since);
            (recent && s.title == title && s.description.trim() == description.trim())
                .then_some(s.resource_id.video_id)
                .flatten()
                .map(Published::new)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn title_is_the_first_line_within_limits() {
        assert_eq!(title_of("\n  Launch <day>  \nmore"), "Launch day");
        assert_eq!(title_of(""), "Untitled");
        assert_eq!(title_of(&"x".repeat(300)).chars().count(), 100);
        assert!(description_of(&"é".repeat(4000)).len() <= 5000);
    }
}
