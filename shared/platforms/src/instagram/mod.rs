//! Instagram (API with Instagram Login): authorization code without PKCE, a 1-hour token
//! exchanged for a 60-day one (`ig_exchange_token`), refreshed on itself (`ig_refresh_token`),
//! and two-step publishing (media container, then `media_publish`). Wire types in [`wire`],
//! error mapping in [`errors`] (Graph format, see [`crate::graph`]).
//!
//! There is no separate refresh token: the grant's `refresh_token` is the long-lived access
//! token itself, which is what `refresh` is called with.

mod errors;
mod wire;

use chrono::{DateTime, Utc};
use lifeline_kit::{
    config::{ConfigError, Env},
    Platform,
};
use secrecy::{ExposeSecret, SecretString};

use crate::{
    common::{self, send, App},
    endpoint, graph, AccessToken, AuthorizationStart, Connector, Failure, Grant, MediaKind,
    PlatformUser, PostDraft, Published,
};

pub use errors::{classify_api, classify_token};

/// Read the professional account and publish content to it.
pub const SCOPES: [&str; 2] = ["instagram_business_basic", "instagram_business_content_publish"];

pub struct InstagramConnector {
    client_id: String,
    client_secret: Option<SecretString>,
    /// api.instagram.com: authorize and the code exchange.
    oauth_host: url::Url,
    /// graph.instagram.com: long-lived tokens and the API.
    graph: url::Url,
    redirect: url::Url,
    http: reqwest::Client,
}

impl InstagramConnector {
    /// `LIFELINE_INSTAGRAM_CLIENT_ID` / `_CLIENT_SECRET`; hosts `LIFELINE_INSTAGRAM_API_URL`
    /// (`https://api.instagram.com`, sim `<sim>/instagram/api`) and
    /// `LIFELINE_INSTAGRAM_GRAPH_URL` (`https://graph.instagram.com`, sim `<sim>/instagram/graph`).
    pub fn from_env(
        env: &Env,
        public: &url::Url,
        sim: Option<&url::Url>,
        http: reqwest::Client,
    ) -> Result<Option<Self>, ConfigError> {
        let Some(app) = App::from_env(env, "INSTAGRAM") else { return Ok(None) };
        let oauth_host = common::host(
            env,
            "INSTAGRAM",
            "API",
            "https://api.instagram.com",
            sim,
            "instagram/api",
        )?;
        let graph = common::host(
            env,
            "INSTAGRAM",
            "GRAPH",
            "https://graph.instagram.com",
            sim,
            "instagram/graph",
        )?;
        Ok(Some(InstagramConnector {
            client_id: app.client_id,
            client_secret: app.client_secret,
            oauth_host,
            graph,
            redirect: common::callback(public, Platform::Instagram),
            http,
        }))
    }

    fn secret(&self) -> Result<&str, Failure> {
        // Without the app secret no token can be exchanged: an operator problem, retried later.
        self.client_secret
            .as_ref()
            .map(|s| s.expose_secret())
            .ok_or_else(|| Failure::transient("LIFELINE_INSTAGRAM_CLIENT_SECRET is not set"))
    }

    /// A token call (GET with the token in the query, as Instagram documents it).
    async fn token_call(&self, url: url::Url) -> Result<wire::LongLived, Failure> {
        let a = send(self.http.get(url), false).await?;
        if !a.status.is_success() {
            return Err(classify_token(a.status, &a.headers, &a.body));
        }
        common::parse(&a.body, "Instagram token")
    }

    fn grant(long: wire::LongLived, scopes: Vec<String>) -> Grant {
        let lifetime = long.expires_in.map(std::time::Duration::from_secs);
        Grant {
            refresh_token: Some(long.access_token.clone()),
            access_token: long.access_token,
            expires_in: lifetime,
            // The token refreshes itself for as long as it is valid.
            refresh_expires_in: lifetime,
            scopes,
        }
    }

    async fn api_get<T: serde::de::DeserializeOwned>(
        &self,
        token: &AccessToken,
        url: url::Url,
        what: &str,
    ) -> Result<T, Failure> {
        let a = send(self.http.get(url).bearer_auth(token.secret.expose_secret()), false).await?;
        if !a.status.is_success() {
            let expired = token.believed_expired(Utc::now());
            return Err(classify_api(a.status, &a.headers, &a.body, expired, false));
        }
        common::parse(&a.body, what)
    }

    async fn api_post(
        &self,
        token: &AccessToken,
        path: &str,
        form: &[(&str, &str)],
        mutating: bool,
    ) -> Result<wire::Created, Failure> {
        let req = self
            .http
            .post(endpoint(&self.graph, path))
            .bearer_auth(token.secret.expose_secret())
            .form(form);
        let a = send(req, mutating).await?;
        if !a.status.is_success() {
            let expired = token.believed_expired(Utc::now());
            return Err(classify_api(a.status, &a.headers, &a.body, expired, mutating));
        }
        match serde_json::from_slice(&a.body) {
            Ok(c) => Ok(c),
            Err(_) if mutating => {
                Err(Failure::ambiguous(format!("Instagram {path}: unreadable answer")))
            }
            Err(_) => Err(Failure::transient(format!("Instagram {path}: unreadable answer"))),
        }
    }

    /// Waits (bounded) until a container is ready to publish.
    async fn wait_for_container(&self, token: &AccessToken, id: &str) -> Result<(), Failure> {
        let mut url = endpoint(&self.graph, id);
        url.query_pairs_mut().append_pair("fields", "status_code");
        for _ in 0..graph::CONTAINER_POLLS {
            let status: wire::ContainerStatus =
                self.api_get(token, url.clone(), "Instagram container").await?;
            match status.status_code.as_deref() {
                Some("FINISHED") | None => return Ok(()),
                Some("ERROR") | Some("EXPIRED") => {
                    return Err(Failure::rejected("Instagram could not process the media"))
                }
                _ => tokio::time::sleep(graph::CONTAINER_POLL_INTERVAL).await,
            }
        }
        // Nothing was published; a retry makes a new container.
        Err(Failure::transient("Instagram is still processing the media"))
    }
}

#[async_trait::async_trait]
impl Connector for InstagramConnector {
    fn platform(&self) -> Platform {
        Platform::Instagram
    }

    fn authorize(&self, state: &str) -> AuthorizationStart {
        let mut url = endpoint(&self.oauth_host, "oauth/authorize");
        url.query_pairs_mut()
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", self.redirect.as_str())
            .append_pair("response_type", "code")
            .append_pair("scope", &SCOPES.join(","))
            .append_pair("state", state);
        // Instagram documents no PKCE.
        AuthorizationStart { url, pkce_verifier: None }
    }

    async fn exchange_code(
        &self,
        code: &str,
        _pkce_verifier: Option<&SecretString>,
    ) -> Result<Grant, Failure> {
        let secret = self.secret()?;
        let form = [
            ("client_id", self.client_id.as_str()),
            ("client_secret", secret),
            ("grant_type", "authorization_code"),
            ("redirect_uri", self.redirect.as_str()),
            ("code", code),
        ];
        let req = self.http.post(endpoint(&self.oauth_host, "oauth/access_token")).form(&form);
        let a = send(req, false).await?;
        if !a.status.is_success() {
            return Err(classify_token(a.status, &a.headers, &a.body));
        }
        let short = match common::parse::<wire::CodeAnswer>(&a.body, "Instagram code exchange")? {
            wire::CodeAnswer::Flat(s) => s,
            wire::CodeAnswer::Wrapped { data } => data
                .into_iter()
                .next()
                .ok_or_else(|| Failure::transient("Instagram code exchange returned no token"))?,
        };
        let scopes = short
            .permissions
            .as_ref()
            .map(wire::Permissions::scopes)
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| SCOPES.iter().map(|s| (*s).to_owned()).collect());
        let mut url = endpoint(&self.graph, "access_token");
        url.query_pairs_mut()
            .append_pair("grant_type", "ig_exchange_token")
            .append_pair("client_secret", secret)
            .append_pair("access_token", short.access_token.expose_secret());
        Ok(Self::grant(self.token_call(url).await?, scopes))
    }

    /// `refresh_token` is the long-lived access token (at least 24 hours old, unexpired).
    async fn refresh(&self, refresh_token: &SecretString) -> Result<Grant, Failure> {
        let mut url = endpoint(&self.graph, "refresh_access_token");
        url.query_pairs_mut()
            .append_pair("grant_type", "ig_refresh_token")
            .append_pair("access_token", refresh_token.expose_secret());
        let scopes = SCOPES.iter().map(|s| (*s).to_owned()).collect();
        Ok(Self::grant(self.token_call(url).await?, scopes))
    }

    async fn identify(&self, token: &AccessToken) -> Result<PlatformUser, Failure> {
        let mut url = endpoint(&self.graph, "me");
        url.query_pairs_mut().append_pair("fields", "user_id,username");
        let me: wire::Me = self.api_get(token, url, "Instagram /me").await?;
        // Graph sends ids as strings, but a number must not break identity.
        let id = match me.user_id {
            serde_json::Value::String(s) => s,
            serde_json::Value::Number(n) => n.to_string(),
            _ => return Err(Failure::transient("Instagram /me: no user_id")),
        };
        Ok(PlatformUser { id, display_name: me.username.clone(), username: me.username })
    }

    async fn publish(
        &self,
        token: &AccessToken,
        user_id: &str,
        post: &PostDraft,
    ) -> Result<Published, Failure> {
        let Some(media) = &post.media else {
            return Err(Failure::rejected("Instagram posts need an image or a video"));
        };
        let mut form = vec![("caption", post.text.as_str())];
        match media.kind {
            MediaKind::Image => form.push(("image_url", media.url.as_str())),
            MediaKind::Video => {
                form.push(("media_type", "REELS"));
                form.push(("video_url", media.url.as_str()));
            }
        }
        // A container is not a post: a lost answer here leaves nothing visible behind.
        let container = self.api_post(token, &format!("{user_id}/media"), &form, false).await?;
        if media.kind == MediaKind::Video {
            self.wait_for_container(token, &container.id).await?;
        }
        let published = self
            .api_post(
                token,
                &format!("{user_id}/media_publish"),
                &[("creation_id", container.id.as_str())],
                true,
            )
            .await?;
        Ok(Published { platform_post_id: published.id })
    }

    /// Recent media of the account whose caption is this post's text.
    async fn find_published(
        &self,
        token: &AccessToken,
        user_id: &str,
        post: &PostDraft,
        since: DateTime<Utc>,
    ) -> Result<Option<Published>, Failure> {
        let mut url = endpoint(&self.graph, &format!("{user_id}/media"));
        url.query_pairs_mut()
            .append_pair("fields", "id,caption,timestamp")
            .append_pair("limit", "25");
        let list: wire::MediaList = self.api_get(token, url, "Instagram media list").await?;
        let since = since - chrono::Duration::minutes(1);
        Ok(list
            .data
            .into_iter()
            .find(|m| {
                m.caption.as_deref() == Some(post.text.as_str())
                    && m.timestamp.as_deref().and_then(graph::parse_time).is_none_or(|t| t >= since)
            })
            .map(|m| Published { platform_post_id: m.id }))
    }

    async fn probe(&self, token: &AccessToken) -> Result<(), Failure> {
        self.identify(token).await.map(|_| ())
    }
}
