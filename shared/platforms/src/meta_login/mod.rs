//! Meta's "log in with the app's own user" flow, shared by Instagram (API with Instagram Login)
//! and Threads, configured per platform ([`Config`]; see [`crate::instagram`] and
//! [`crate::threads`]): authorization code without PKCE, a 1-hour token exchanged for a 60-day
//! one, refreshed on itself once it is 24 hours old, and two-step publishing (a container, then
//! publishing it). Wire types in [`wire`], error mapping in [`errors`] (Graph format, see
//! [`crate::graph`]).
//!
//! There is no separate refresh token: the grant's `refresh_token` is the long-lived access
//! token itself, which is what `refresh` is called with.

pub(crate) mod errors;
pub(crate) mod scopes;
mod wire;

use chrono::{DateTime, Utc};
use lifeline_kit::{
    config::{ConfigError, Env},
    Platform,
};
use secrecy::{ExposeSecret, SecretString};

use crate::{
    common::{self, send, App},
    endpoint, graph, AccessToken, AuthorizationStart, Connector, Failure, Grant, PlatformUser,
    PostDraft, Published,
};

/// One of a platform's hosts: `LIFELINE_<P>_<var>_URL`, the real host, the simulator prefix.
pub(crate) struct Host {
    pub var: &'static str,
    pub real: &'static str,
    pub sim_prefix: &'static str,
}

/// The container form for a post: `(field, value)` pairs, or why the post cannot go out.
pub(crate) type ContainerForm =
    for<'a> fn(&'a PostDraft) -> Result<Vec<(&'static str, &'a str)>, Failure>;

/// What differs between Instagram and Threads.
pub(crate) struct Config {
    pub platform: Platform,
    /// Used in failure details: "Instagram", "Threads".
    pub name: &'static str,
    /// `LIFELINE_<env>_CLIENT_ID`, `_CLIENT_SECRET`, `_<host>_URL`.
    pub env: &'static str,
    /// The authorize page's host (Instagram's code exchange is there too).
    pub oauth_host: Host,
    /// Long-lived tokens and the API.
    pub graph_host: Host,
    /// The code exchange is `POST <graph>/oauth/access_token` (Threads), not on the oauth host.
    pub code_exchange_on_graph: bool,
    pub scopes: &'static [&'static str],
    /// `grant_type` of the long-lived exchange and of the refresh.
    pub exchange_grant: &'static str,
    pub refresh_grant: &'static str,
    /// `GET /me?fields=…`, and which field is the user id publishing uses.
    pub me_fields: &'static str,
    pub id_field: &'static str,
    /// `POST /{user}/{container_edge}`, `POST /{user}/{publish_edge}`, `GET /{user}/{container_edge}`.
    pub container_edge: &'static str,
    pub publish_edge: &'static str,
    /// The post text's field in listed media (`caption`, `text`).
    pub text_field: &'static str,
    /// The container's processing-status field (`status_code`, `status`).
    pub status_field: &'static str,
    /// The media list takes `since` (epoch seconds).
    pub list_since: bool,
    pub container: ContainerForm,
    /// Which containers need processing before they can be published.
    pub needs_processing: fn(&PostDraft) -> bool,
}

pub struct MetaLoginConnector {
    cfg: &'static Config,
    client_id: String,
    client_secret: SecretString,
    oauth_host: url::Url,
    graph: url::Url,
    redirect: url::Url,
    http: reqwest::Client,
}

impl MetaLoginConnector {
    /// `None` without `LIFELINE_<P>_CLIENT_ID`. A client id without `LIFELINE_<P>_CLIENT_SECRET`
    /// is a configuration error: no token can be exchanged or made long-lived without the secret.
    pub(crate) fn from_env(
        cfg: &'static Config,
        env: &Env,
        public: &url::Url,
        sim: Option<&url::Url>,
        http: reqwest::Client,
    ) -> Result<Option<Self>, ConfigError> {
        let Some(app) = App::from_env(env, cfg.env) else { return Ok(None) };
        let Some(client_secret) = app.client_secret else {
            return Err(ConfigError::Missing {
                name: format!("LIFELINE_{}_CLIENT_SECRET", cfg.env),
                hint: format!(
                    "{} exchanges every token with the app secret; set it with the client id",
                    cfg.name
                ),
            });
        };
        let host = |h: &Host| common::host(env, cfg.env, h.var, h.real, sim, h.sim_prefix);
        Ok(Some(MetaLoginConnector {
            cfg,
            client_id: app.client_id,
            client_secret,
            oauth_host: host(&cfg.oauth_host)?,
            graph: host(&cfg.graph_host)?,
            redirect: common::callback(public, cfg.platform),
            http,
        }))
    }

    fn scopes(&self) -> Vec<String> {
        self.cfg.scopes.iter().map(|s| (*s).to_owned()).collect()
    }

    /// A token call (GET with the token in the query, as Meta documents it).
    async fn token_call(&self, url: url::Url) -> Result<wire::LongLived, Failure> {
        let a = send(self.http.get(url), false).await?;
        if !a.status.is_success() {
            return Err(errors::classify_token(self.cfg.name, a.status, &a.headers, &a.body));
        }
        common::parse(&a.body, &format!("{} token", self.cfg.name))
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
            return Err(self.classify_api(&a, expired, false));
        }
        common::parse(&a.body, &format!("{} {what}", self.cfg.name))
    }

    fn classify_api(&self, a: &common::Answer, expired: bool, mutating: bool) -> Failure {
        errors::classify_api(self.cfg.name, a.status, &a.headers, &a.body, expired, mutating)
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
            return Err(self.classify_api(&a, expired, mutating));
        }
        let name = self.cfg.name;
        match serde_json::from_slice(&a.body) {
            Ok(c) => Ok(c),
            Err(_) if mutating => {
                Err(Failure::ambiguous(format!("{name} {path}: unreadable answer")))
            }
            Err(_) => Err(Failure::transient(format!("{name} {path}: unreadable answer"))),
        }
    }

    /// Waits (bounded) until a container is ready to publish.
    async fn wait_for_container(&self, token: &AccessToken, id: &str) -> Result<(), Failure> {
        let mut url = endpoint(&self.graph, id);
        url.query_pairs_mut().append_pair("fields", self.cfg.status_field);
        let name = self.cfg.name;
        for _ in 0..graph::CONTAINER_POLLS {
            let status: wire::ContainerStatus =
                self.api_get(token, url.clone(), "container").await?;
            let status = match self.cfg.status_field {
                "status_code" => status.status_code,
                _ => status.status,
            };
            match status.as_deref() {
                Some("FINISHED") | None => return Ok(()),
                Some("ERROR") | Some("EXPIRED") => {
                    return Err(Failure::rejected(format!("{name} could not process the media")))
                }
                _ => tokio::time::sleep(graph::CONTAINER_POLL_INTERVAL).await,
            }
        }
        // Nothing was published; a retry makes a new container.
        Err(Failure::transient(format!("{name} is still processing the media")))
    }
}

#[async_trait::async_trait]
impl Connector for MetaLoginConnector {
    fn platform(&self) -> Platform {
        self.cfg.platform
    }

    fn authorize(&self, state: &str) -> AuthorizationStart {
        let mut url = endpoint(&self.oauth_host, "oauth/authorize");
        url.query_pairs_mut()
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", self.redirect.as_str())
            .append_pair("response_type", "code")
            .append_pair("scope", &self.cfg.scopes.join(","))
            .append_pair("state", state);
        // Meta documents no PKCE for either platform.
        AuthorizationStart { url, pkce_verifier: None }
    }

    async fn exchange_code(
        &self,
        code: &str,
        _pkce_verifier: Option<&SecretString>,
    ) -> Result<Grant, Failure> {
        let secret = self.client_secret.expose_secret();
        let form = [
            ("client_id", self.client_id.as_str()),
            ("client_secret", secret),
            ("grant_type", "authorization_code"),
            ("redirect_uri", self.redirect.as_str()),
            ("code", code),
        ];
        let host = if self.cfg.code_exchange_on_graph { &self.graph } else { &self.oauth_host };
        let req = self.http.post(endpoint(host, "oauth/access_token")).form(&form);
        let a = send(req, false).await?;
        let name = self.cfg.name;
        if !a.status.is_success() {
            return Err(errors::classify_token(name, a.status, &a.headers, &a.body));
        }
        let short = match common::parse(&a.body, &format!("{name} code exchange"))? {
            wire::CodeAnswer::Flat(s) => s,
            wire::CodeAnswer::Wrapped { data } => data.into_iter().next().ok_or_else(|| {
                Failure::transient(format!("{name} code exchange returned no token"))
            })?,
        };
        let scopes = short
            .permissions
            .as_ref()
            .map(wire::Permissions::scopes)
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| self.scopes());
        let mut url = endpoint(&self.graph, "access_token");
        url.query_pairs_mut()
            .append_pair("grant_type", self.cfg.exchange_grant)
            .append_pair("client_secret", secret)
            .append_pair("access_token", short.access_token.expose_secret());
        Ok(Self::grant(self.token_call(url).await?, scopes))
    }

    /// `refresh_token` is the long-lived access token (at least 24 hours old, unexpired).
    async fn refresh(&self, refresh_token: &SecretString) -> Result<Grant, Failure> {
        let mut url = endpoint(&self.graph, "refresh_access_token");
        url.query_pairs_mut()
            .append_pair("grant_type", self.cfg.refresh_grant)
            .append_pair("access_token", refresh_token.expose_secret());
        Ok(Self::grant(self.token_call(url).await?, self.scopes()))
    }

    async fn identify(&self, token: &AccessToken) -> Result<PlatformUser, Failure> {
        let mut url = endpoint(&self.graph, "me");
        url.query_pairs_mut().append_pair("fields", self.cfg.me_fields);
        let me: wire::Me = self.api_get(token, url, "/me").await?;
        let id = match self.cfg.id_field {
            "user_id" => me.user_id,
            _ => me.id,
        };
        let id = match id {
            Some(serde_json::Value::String(s)) if !s.is_empty() => s,
            Some(serde_json::Value::Number(n)) => n.to_string(),
            _ => {
                let field = self.cfg.id_field;
                return Err(Failure::transient(format!("{} /me: no {field}", self.cfg.name)));
            }
        };
        Ok(PlatformUser {
            id,
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
        let form = (self.cfg.container)(post)?;
        // A container is not a post: a lost answer here leaves nothing visible behind.
        let path = format!("{user_id}/{}", self.cfg.container_edge);
        let container = self.api_post(token, &path, &form, false).await?;
        if (self.cfg.needs_processing)(post) {
            self.wait_for_container(token, &container.id).await?;
        }
        let path = format!("{user_id}/{}", self.cfg.publish_edge);
        let published =
            self.api_post(token, &path, &[("creation_id", container.id.as_str())], true).await?;
        Ok(Published::new(published.id))
    }

    /// The user's recent media whose text is this post's.
    async fn find_published(
        &self,
        token: &AccessToken,
        user_id: &str,
        post: &PostDraft,
        since: DateTime<Utc>,
    ) -> Result<Option<Published>, Failure> {
        let since = since - chrono::Duration::minutes(1);
        let mut url = endpoint(&self.graph, &format!("{user_id}/{}", self.cfg.container_edge));
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("fields", &format!("id,{},timestamp", self.cfg.text_field));
            if self.cfg.list_since {
                q.append_pair("since", &since.timestamp().to_string());
            }
            q.append_pair("limit", "25");
        }
        let list: wire::MediaList = self.api_get(token, url, "media list").await?;
        Ok(list
            .data
            .into_iter()
            .find(|m| {
                let text = match self.cfg.text_field {
                    "caption" => m.caption.as_deref(),
                    _ => m.text.as_deref(),
                };
                text == Some(post.text.as_str())
                    && m.timestamp.as_deref().and_then(graph::parse_time).is_none_or(|t| t >= since)
            })
            .map(|m| Published::new(m.id)))
    }
}
