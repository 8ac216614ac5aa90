//! TikTok (Login Kit v2, Content Posting API): authorization code with PKCE, rotating refresh
//! tokens, and asynchronous video publishing (TikTok pulls the video from its URL; we poll the
//! outcome). Wire types in [`wire`], error mapping in [`errors`].
//!
//! The token endpoint is hand-rolled rather than `oauth2`'s: TikTok names the client
//! `client_key` (not `client_id`) and has been seen answering errors with HTTP 200, neither of
//! which the crate can express.

mod errors;
pub(crate) mod scopes;
mod wire;

use std::time::Duration;

use chrono::{DateTime, Utc};
use lifeline_kit::{
    config::{ConfigError, Env},
    Platform,
};
use oauth2::PkceCodeChallenge;
use secrecy::{ExposeSecret, SecretString};

use crate::{
    common::{self, send, Answer, App},
    endpoint, AccessToken, AuthorizationStart, Connector, Failure, Grant, MediaKind, PlatformUser,
    PostDraft, Published, Reconciliation,
};

pub use errors::{classify_api, classify_fail_reason, classify_token};

/// Direct Post publishes a video; its caption takes at most 2,200 characters.
pub(crate) const POST_RULES: crate::post_rules::PostRules = crate::post_rules::PostRules {
    max_length: 2200,
    counting: crate::post_rules::Counting::Chars,
    media: crate::post_rules::MediaNeed::Video,
};

/// Identify the user and publish videos.
pub const SCOPES: [&str; 2] = ["user.info.basic", "video.publish"];

/// Why an ambiguous TikTok publish cannot be checked afterwards. TikTok answers about a publish
/// only by its `publish_id` (`POST /v2/post/publish/status/fetch/`), and `publish` already polls
/// that until TikTok settles the post (a lost status answer is simply asked again). The id
/// exists only in the init's answer: when that answer is lost, nothing names the publish.
/// Listing the user's videos (`/v2/video/list/`) needs `video.list`, which Lifeline does not
/// ask for, and shows public videos only, while Lifeline posts `SELF_ONLY`.
pub const CANNOT_CHECK: &str =
    "TikTok answers only by the publish id its lost answer carried, and lists no private videos";

/// Unaudited apps may only post privately; audited ones can change this.
const PRIVACY_LEVEL: &str = "SELF_ONLY";

pub struct TikTokConnector {
    client_key: String,
    client_secret: SecretString,
    www: url::Url,
    open: url::Url,
    redirect: url::Url,
    http: reqwest::Client,
    poll_interval: Duration,
    polls: u32,
}

impl TikTokConnector {
    /// `LIFELINE_TIKTOK_CLIENT_ID` (TikTok's client key) / `_CLIENT_SECRET`; hosts
    /// `LIFELINE_TIKTOK_WWW_URL` (`https://www.tiktok.com`, sim `<sim>/tiktok/www`) and
    /// `LIFELINE_TIKTOK_OPEN_URL` (`https://open.tiktokapis.com`, sim `<sim>/tiktok/open`);
    /// `LIFELINE_TIKTOK_POLL_INTERVAL` (default 3s) between at most 20 publish-status polls.
    pub fn from_env(
        env: &Env,
        public: &url::Url,
        sim: Option<&url::Url>,
        http: reqwest::Client,
    ) -> Result<Option<Self>, ConfigError> {
        let Some(app) = App::from_env(env, "TIKTOK") else { return Ok(None) };
        let Some(client_secret) = app.client_secret else {
            return Err(ConfigError::Missing {
                name: "LIFELINE_TIKTOK_CLIENT_SECRET".into(),
                hint: "TikTok exchanges and refreshes every token with the app secret; set it with the client id"
                    .into(),
            });
        };
        let www = common::host(env, "TIKTOK", "WWW", "https://www.tiktok.com", sim, "tiktok/www")?;
        let open =
            common::host(env, "TIKTOK", "OPEN", "https://open.tiktokapis.com", sim, "tiktok/open")?;
        let poll_interval =
            env.duration_or("LIFELINE_TIKTOK_POLL_INTERVAL", Duration::from_secs(3))?;
        Ok(Some(TikTokConnector {
            client_key: app.client_id,
            client_secret,
            www,
            open,
            redirect: common::callback(public, Platform::TikTok),
            http,
            poll_interval,
            polls: 20,
        }))
    }

    /// A token endpoint call; `rotating` when it spends a refresh token.
    async fn token_call(&self, form: &[(&str, &str)], rotating: bool) -> Result<Grant, Failure> {
        let req = self.http.post(endpoint(&self.open, "v2/oauth/token/")).form(form);
        let a = send(req, rotating).await?;
        if !a.status.is_success() || wire::TokenError::parse(&a.body).is_some() {
            return Err(classify_token(a.status, &a.headers, &a.body, rotating));
        }
        let token: wire::TokenAnswer = match serde_json::from_slice(&a.body) {
            Ok(t) => t,
            // Our refresh token is spent and we cannot read its successor.
            Err(_) if rotating => {
                return Err(Failure::ambiguous("TikTok refresh answer did not parse"))
            }
            Err(_) => return Err(Failure::transient("TikTok token answer did not parse")),
        };
        Ok(Grant {
            access_token: token.access_token,
            refresh_token: token.refresh_token,
            expires_in: token.expires_in.map(Duration::from_secs),
            refresh_expires_in: token.refresh_expires_in.map(Duration::from_secs),
            scopes: token
                .scope
                .map(|s| {
                    s.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect()
                })
                .unwrap_or_else(|| SCOPES.iter().map(|s| (*s).to_owned()).collect()),
        })
    }

    fn secret(&self) -> &str {
        self.client_secret.expose_secret()
    }

    /// The API's answer as `T`, or its classified failure. TikTok wraps every answer in
    /// `{"data","error"}`; an `error.code` other than `ok` is a failure whatever the status.
    fn api_answer<T: serde::de::DeserializeOwned>(
        a: &Answer,
        token: &AccessToken,
        mutating: bool,
        what: &str,
    ) -> Result<T, Failure> {
        let failed = wire::ApiError::parse(&a.body).is_some_and(|e| e.code != "ok");
        if !a.status.is_success() || failed {
            let expired = token.believed_expired(Utc::now());
            return Err(classify_api(a.status, &a.headers, &a.body, expired, mutating));
        }
        match serde_json::from_slice::<wire::Envelope<T>>(&a.body) {
            Ok(e) => Ok(e.data),
            Err(_) if mutating => {
                Err(Failure::ambiguous(format!("TikTok {what}: unreadable answer")))
            }
            Err(_) => Err(Failure::transient(format!("TikTok {what}: unreadable answer"))),
        }
    }

    /// Polls the publish until TikTok settles it. Everything here happens after TikTok took the
    /// post, so anything but a settled status is ambiguous.
    async fn await_publish(
        &self,
        token: &AccessToken,
        publish_id: &str,
    ) -> Result<Published, Failure> {
        for attempt in 0..self.polls {
            if attempt > 0 {
                tokio::time::sleep(self.poll_interval).await;
            }
            let req = self
                .http
                .post(endpoint(&self.open, "v2/post/publish/status/fetch/"))
                .bearer_auth(token.secret.expose_secret())
                .json(&wire::StatusFetch { publish_id });
            let status = match send(req, false).await {
                Ok(a) => Self::api_answer::<wire::StatusData>(&a, token, false, "publish status"),
                Err(e) => Err(e),
            };
            let status = match status {
                Ok(s) => s,
                // A hiccup while polling: ask again.
                Err(Failure::Transient { .. } | Failure::RateLimited { .. }) => continue,
                Err(e) => {
                    return Err(Failure::ambiguous(format!(
                        "TikTok took the post (publish id {publish_id}) but its status could not be read: {e}"
                    )))
                }
            };
            match status.status.as_str() {
                "PUBLISH_COMPLETE" | "SEND_TO_USER_INBOX" => {
                    let post_id = status
                        .publicaly_available_post_id
                        .and_then(|ids| ids.into_iter().next())
                        .map(|id| match id {
                            serde_json::Value::String(s) => s,
                            other => other.to_string(),
                        });
                    // Private posts get no public id; the publish id names the post then.
                    return Ok(Published::new(post_id.unwrap_or_else(|| publish_id.to_owned())));
                }
                "FAILED" => {
                    return Err(classify_fail_reason(
                        status.fail_reason.as_deref().unwrap_or("unknown"),
                    ))
                }
                _ => {}
            }
        }
        Err(Failure::ambiguous(format!("TikTok still processing publish {publish_id}")))
    }
}

#[async_trait::async_trait]
impl Connector for TikTokConnector {
    fn platform(&self) -> Platform {
        Platform::TikTok
    }

    fn authorize(&self, state: &str) -> AuthorizationStart {
        // Standard S256 (base64url of the SHA-256). TikTok's desktop guide describes a hex
        // digest instead; web apps are documented with the standard form.
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut url = endpoint(&self.www, "v2/auth/authorize/");
        url.query_pairs_mut()
            .append_pair("client_key", &self.client_key)
            .append_pair("response_type", "code")
            .append_pair("scope", &SCOPES.join(","))
            .append_pair("redirect_uri", self.redirect.as_str())
            .append_pair("state", state)
            .append_pair("code_challenge", challenge.as_str())
            .append_pair("code_challenge_method", "S256");
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
        let mut form = vec![
            ("client_key", self.client_key.as_str()),
            ("client_secret", self.secret()),
            ("code", code),
            ("grant_type", "authorization_code"),
            ("redirect_uri", self.redirect.as_str()),
        ];
        if let Some(v) = pkce_verifier {
            form.push(("code_verifier", v.expose_secret()));
        }
        self.token_call(&form, false).await
    }

    /// TikTok rotates: the answer's refresh token replaces ours, which stops working.
    async fn refresh(&self, refresh_token: &SecretString) -> Result<Grant, Failure> {
        let form = [
            ("client_key", self.client_key.as_str()),
            ("client_secret", self.secret()),
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.expose_secret()),
        ];
        self.token_call(&form, true).await
    }

    async fn identify(&self, token: &AccessToken) -> Result<PlatformUser, Failure> {
        let mut url = endpoint(&self.open, "v2/user/info/");
        url.query_pairs_mut().append_pair("fields", "open_id,display_name");
        let a = send(self.http.get(url).bearer_auth(token.secret.expose_secret()), false).await?;
        let data: wire::UserData = Self::api_answer(&a, token, false, "user info")?;
        Ok(PlatformUser {
            // The handle needs `user.info.profile`, which Lifeline does not ask for; without it
            // none is shown (the display name is), rather than a name posing as a handle.
            username: data.user.username.unwrap_or_default(),
            display_name: data.user.display_name,
            id: data.user.open_id,
        })
    }

    async fn publish(
        &self,
        token: &AccessToken,
        _user_id: &str,
        post: &PostDraft,
    ) -> Result<Published, Failure> {
        let video = match &post.media {
            Some(m) if m.kind == MediaKind::Video => m,
            _ => return Err(Failure::rejected("TikTok posts need a video")),
        };
        let body = wire::VideoInit {
            post_info: wire::PostInfo { title: &post.text, privacy_level: PRIVACY_LEVEL },
            source_info: wire::SourceInfo { source: "PULL_FROM_URL", video_url: &video.url },
        };
        let req = self
            .http
            .post(endpoint(&self.open, "v2/post/publish/video/init/"))
            .bearer_auth(token.secret.expose_secret())
            .json(&body);
        // The init starts the post: a lost answer may leave it going out.
        let a = send(req, true).await?;
        let init: wire::InitData = Self::api_answer(&a, token, true, "publish init")?;
        self.await_publish(token, &init.publish_id).await
    }

    fn reconciliation(&self) -> Reconciliation {
        Reconciliation::CannotCheck { why: CANNOT_CHECK }
    }

    /// TikTok cannot be asked after the publish call (see [`CANNOT_CHECK`]): the outcome stays
    /// unknown.
    async fn find_published(
        &self,
        _token: &AccessToken,
        _user_id: &str,
        _post: &PostDraft,
        _since: DateTime<Utc>,
    ) -> Result<Option<Published>, Failure> {
        Err(Failure::ambiguous(format!("TikTok cannot be checked: {CANNOT_CHECK}")))
    }
}
