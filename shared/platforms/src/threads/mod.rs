//! Threads: authorization code without PKCE, a 1-hour token exchanged for a 60-day one
//! (`th_exchange_token`), refreshed on itself (`th_refresh_token`; a token not refreshed within
//! its 60 days is gone for good), and two-step publishing (container, then `threads_publish`).
//! Wire types in [`wire`], error mapping in [`errors`] (Graph format, see [`crate::graph`]).
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

/// Read the profile and publish to it.
pub const SCOPES: [&str; 2] = ["threads_basic", "threads_content_publish"];

pub struct ThreadsConnector {
    client_id: String,
    client_secret: Option<SecretString>,
    /// threads.net: the authorize page.
    oauth_host: url::Url,
    /// graph.threads.net: every token call and the API.
    graph: url::Url,
    redirect: url::Url,
    http: reqwest::Client,
}

impl ThreadsConnector {
    /// `LIFELINE_THREADS_CLIENT_ID` / `_CLIENT_SECRET`; hosts `LIFELINE_THREADS_WWW_URL`
    /// (`https://threads.net`, sim `<sim>/threads/www`) and `LIFELINE_THREADS_GRAPH_URL`
    /// (`https://graph.threads.net`, sim `<sim>/threads/graph`).
    pub fn from_env(
        env: &Env,
        public: &url::Url,
        sim: Option<&url::Url>,
        http: reqwest::Client,
    ) -> Result<Option<Self>, ConfigError> {
        let Some(app) = App::from_env(env, "THREADS") else { return Ok(None) };
        let oauth_host =
            common::host(env, "THREADS", "WWW", "https://threads.net", sim, "threads/www")?;
        let graph = common::host(
            env,
            "THREADS",
            "GRAPH",
            "https://graph.threads.net",
            sim,
            "threads/graph",
        )?;
        Ok(Some(ThreadsConnector {
            client_id: app.client_id,
            client_secret: app.client_secret,
            oauth_host,
            graph,
            redirect: common::callback(public, Platform::Threads),
            http,
        }))
    }

    fn secret(&self) -> Result<&str, Failure> {
        // Without the app secret no token can be exchanged: an operator problem, retried later.
        self.client_secret
            .as_ref()
            .map(|s| s.expose_secret())
            .ok_or_else(|| Failure::transient("LIFELINE_THREADS_CLIENT_SECRET is not set"))
    }

    /// A token call (GET with the token in the query, as Threads documents it).
    async fn token_call(&self, url: url::Url) -> Result<wire::LongLived, Failure> {
        let a = send(self.http.get(url), false).await?;
        if !a.status.is_success() {
            return Err(classify_token(a.status, &a.headers, &a.body));
        }
        common::parse(&a.body, "Threads token")
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
                Err(Failure::ambiguous(format!("Threads {path}: unreadable answer")))
            }
            Err(_) => Err(Failure::transient(format!("Threads {path}: unreadable answer"))),
        }
    }

    /// Waits (bounded) until a container is ready to publish.
    async fn wait_for_container(&self, token: &AccessToken, id: &str) -> Result<(), Failure> {
        let mut url = endpoint(&self.graph, id);
        url.query_pairs_mut().append_pair("fields", "status");
        for _ in 0..graph::CONTAINER_POLLS {
            let status: wire::ContainerStatus =
                self.api_get(token, url.clone(), "Threads container").await?;
            match status.status.as_deref() {
                Some("FINISHED") | None => return Ok(()),
                Some("ERROR") | Some("EXPIRED") => {
                    return Err(Failure::rejected("Threads could not process the media"))
                }
                _ => tokio::time::sleep(graph::CONTAINER_POLL_INTERVAL).await,
            }
        }
        // Nothing was published; a retry makes a new container.
        Err(Failure::transient("Threads is still processing the media"))
    }
}

#[async_trait::async_trait]
impl Connector for ThreadsConnector {
    fn platform(&self) -> Platform {
        Platform::Threads
    }

    fn authorize(&self, state: &str) -> AuthorizationStart {
        let mut url = endpoint(&self.oauth_host, "oauth/authorize");
        url.query_pairs_mut()
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", self.redirect.as_str())
            .append_pair("response_type", "code")
            .append_pair("scope", &SCOPES.join(","))
            .append_pair("state", state);
        // Threads documents no PKCE.
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
        let req = self.http.post(endpoint(&self.graph, "oauth/access_token")).form(&form);
        let a = send(req, false).await?;
        if !a.status.is_success() {
            return Err(classify_token(a.status, &a.headers, &a.body));
        }
        let short: wire::ShortLived = common::parse(&a.body, "Threads code exchange")?;
        let scopes = SCOPES.iter().map(|s| (*s).to_owned()).collect();
        let mut url = endpoint(&self.graph, "access_token");
        url.query_pairs_mut()
            .append_pair("grant_type", "th_exchange_token")
            .append_pair("client_secret", secret)
            .append_pair("access_token", short.access_token.expose_secret());
        Ok(Self::grant(self.token_call(url).await?, scopes))
    }

    /// `refresh_token` is the long-lived access token (at least 24 hours old, unexpired).
    async fn refresh(&self, refresh_token: &SecretString) -> Result<Grant, Failure> {
        let mut url = endpoint(&self.graph, "refresh_access_token");
        url.query_pairs_mut()
            .append_pair("grant_type", "th_refresh_token")
            .append_pair("access_token", refresh_token.expose_secret());
        let scopes = SCOPES.iter().map(|s| (*s).to_owned()).collect();
        Ok(Self::grant(self.token_call(url).await?, scopes))
    }

    async fn identify(&self, token: &AccessToken) -> Result<PlatformUser, Failure> {
        let mut url = endpoint(&self.graph, "me");
        url.query_pairs_mut().append_pair("fields", "id,username,name");
        let me: wire::Me = self.api_get(token, url, "Threads /me").await?;
        Ok(PlatformUser {
            id: me.id,
            display_name: me.name.filter(|n| !n.is_empty()).unwrap_or_else(|| me.username.clone()),
            username: me.username,
        })
    }

    async fn publish(
        &self,
        token: &AccessToken,
        user_id: &str,
        post: &PostDraft,
    ) -> Result<Published, Failure> {
        let mut form = vec![("text", post.text.as_str())];
        match &post.media {
            None => form.push(("media_type", "TEXT")),
            Some(m) if m.kind == MediaKind::Image => {
                form.push(("media_type", "IMAGE"));
                form.push(("image_url", m.url.as_str()));
            }
            Some(m) => {
                form.push(("media_type", "VIDEO"));
                form.push(("video_url", m.url.as_str()));
            }
        }
        // A container is not a post: a lost answer here leaves nothing visible behind.
        let container = self.api_post(token, &format!("{user_id}/threads"), &form, false).await?;
        if post.media.is_some() {
            self.wait_for_container(token, &container.id).await?;
        }
        let published = self
            .api_post(
                token,
                &format!("{user_id}/threads_publish"),
                &[("creation_id", container.id.as_str())],
                true,
            )
            .await?;
        Ok(Published { platform_post_id: published.id })
    }

    /// The profile's recent threads whose text is this post's.
    async fn find_published(
        &self,
        token: &AccessToken,
        user_id: &str,
        post: &PostDraft,
        since: DateTime<Utc>,
    ) -> Result<Option<Published>, Failure> {
        let since = since - chrono::Duration::minutes(1);
        let mut url = endpoint(&self.graph, &format!("{user_id}/threads"));
        url.query_pairs_mut()
            .append_pair("fields", "id,text,timestamp")
            .append_pair("since", &since.timestamp().to_string())
            .append_pair("limit", "25");
        let list: wire::ThreadList = self.api_get(token, url, "Threads list").await?;
        Ok(list
            .data
            .into_iter()
            .find(|m| {
                m.text.as_deref() == Some(post.text.as_str())
                    && m.timestamp.as_deref().and_then(graph::parse_time).is_none_or(|t| t >= since)
            })
            .map(|m| Published { platform_post_id: m.id }))
    }

    async fn probe(&self, token: &AccessToken) -> Result<(), Failure> {
        self.identify(token).await.map(|_| ())
    }
}
