//! Facebook Pages (Graph API): authorization code without PKCE; the code's short-lived user
//! token is exchanged for a long-lived one (`fb_exchange_token`), which lists the user's Pages
//! (`/me/accounts`); the first Page's access token becomes the grant. Page tokens fetched this
//! way do not expire and there is no refresh token: a Facebook grant carries none, so the
//! refresher never calls [`Connector::refresh`] and health comes from probes. Wire types in
//! [`wire`], error mapping in [`errors`] (Graph format, see [`crate::graph`]).

mod errors;
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
    endpoint, graph, AccessToken, AuthorizationStart, Connector, Failure, Grant, MediaKind,
    PlatformUser, PostDraft, Published,
};

pub use errors::{classify_api, classify_token};

/// A Page post's message takes at most 63,206 characters.
pub(crate) const POST_RULES: crate::post_rules::PostRules = crate::post_rules::PostRules {
    max_length: 63_206,
    counting: crate::post_rules::Counting::Chars,
    media: crate::post_rules::MediaNeed::Optional,
};

/// The Graph API version every path is written against.
pub const GRAPH_VERSION: &str = "v21.0";

/// List the user's Pages, and post to them.
pub const SCOPES: [&str; 3] = ["pages_show_list", "pages_read_engagement", "pages_manage_posts"];

pub struct FacebookConnector {
    client_id: String,
    client_secret: SecretString,
    www: url::Url,
    graph: url::Url,
    redirect: url::Url,
    http: reqwest::Client,
}

impl FacebookConnector {
    /// `LIFELINE_FACEBOOK_CLIENT_ID` / `_CLIENT_SECRET`; hosts `LIFELINE_FACEBOOK_WWW_URL`
    /// (`https://www.facebook.com`, sim `<sim>/facebook/www`) and `LIFELINE_FACEBOOK_GRAPH_URL`
    /// (`https://graph.facebook.com`, sim `<sim>/facebook/graph`).
    pub fn from_env(
        env: &Env,
        public: &url::Url,
        sim: Option<&url::Url>,
        http: reqwest::Client,
    ) -> Result<Option<Self>, ConfigError> {
        let Some(app) = App::from_env(env, "FACEBOOK") else { return Ok(None) };
        let Some(client_secret) = app.client_secret else {
            return Err(ConfigError::Missing {
                name: "LIFELINE_FACEBOOK_CLIENT_SECRET".into(),
                hint: "Facebook exchanges and refreshes every token with the app secret; set it with the client id"
                    .into(),
            });
        };
        let www =
            common::host(env, "FACEBOOK", "WWW", "https://www.facebook.com", sim, "facebook/www")?;
        let graph = common::host(
            env,
            "FACEBOOK",
            "GRAPH",
            "https://graph.facebook.com",
            sim,
            "facebook/graph",
        )?;
        Ok(Some(FacebookConnector {
            client_id: app.client_id,
            client_secret,
            www,
            graph,
            redirect: common::callback(public, Platform::Facebook),
            http,
        }))
    }

    fn graph_url(&self, path: &str) -> url::Url {
        endpoint(&self.graph, &format!("{GRAPH_VERSION}/{path}"))
    }

    fn secret(&self) -> &str {
        self.client_secret.expose_secret()
    }

    /// A call made while connecting: errors are the token kind.
    async fn connect_call<T: serde::de::DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
        what: &str,
    ) -> Result<T, Failure> {
        let a = send(req, false).await?;
        if !a.status.is_success() {
            return Err(classify_token(a.status, &a.headers, &a.body));
        }
        common::parse(&a.body, what)
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
}

#[async_trait::async_trait]
impl Connector for FacebookConnector {
    fn platform(&self) -> Platform {
        Platform::Facebook
    }

    fn authorize(&self, state: &str) -> AuthorizationStart {
        let mut url = endpoint(&self.www, &format!("{GRAPH_VERSION}/dialog/oauth"));
        url.query_pairs_mut()
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", self.redirect.as_str())
            .append_pair("response_type", "code")
            .append_pair("scope", &SCOPES.join(","))
            .append_pair("state", state);
        // Facebook Login for the web has no PKCE.
        AuthorizationStart { url, pkce_verifier: None }
    }

    async fn exchange_code(
        &self,
        code: &str,
        _pkce_verifier: Option<&SecretString>,
    ) -> Result<Grant, Failure> {
        let secret = self.secret();
        let mut url = self.graph_url("oauth/access_token");
        url.query_pairs_mut()
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", self.redirect.as_str())
            .append_pair("client_secret", secret)
            .append_pair("code", code);
        let short: wire::UserToken =
            self.connect_call(self.http.get(url), "Facebook code exchange").await?;

        let mut url = self.graph_url("oauth/access_token");
        url.query_pairs_mut()
            .append_pair("grant_type", "fb_exchange_token")
            .append_pair("client_id", &self.client_id)
            .append_pair("client_secret", secret)
            .append_pair("fb_exchange_token", short.access_token.expose_secret());
        let long: wire::UserToken =
            self.connect_call(self.http.get(url), "Facebook long-lived exchange").await?;
        // The user may have unticked permissions; without `pages_show_list` there is no Page
        // to take a token from, so the grant is the user token with what was granted (the
        // gateway stores no grant that lacks a publishing permission).
        let granted = self.granted_scopes(&long.access_token).await?;
        if !granted.iter().any(|s| s == "pages_show_list") {
            return Ok(Grant {
                access_token: long.access_token,
                refresh_token: None,
                expires_in: None,
                refresh_expires_in: None,
                scopes: granted,
            });
        }

        let mut url = self.graph_url("me/accounts");
        url.query_pairs_mut().append_pair("fields", "id,name,access_token,tasks");
        let req = self.http.get(url).bearer_auth(long.access_token.expose_secret());
        let accounts: wire::Accounts = self.connect_call(req, "Facebook /me/accounts").await?;
        // Lifeline connects one Page per account: the first one the user manages.
        let page = accounts
            .data
            .into_iter()
            .next()
            .ok_or_else(|| Failure::rejected("the Facebook user manages no Page"))?;
        tracing::debug!(page_id = %page.id, tasks = ?page.tasks, "facebook page selected");
        Ok(Grant {
            access_token: page.access_token,
            refresh_token: None,
            expires_in: None,
            refresh_expires_in: None,
            scopes: granted,
        })
    }

    /// Never called by the refresher (the grant has no refresh token); a page token is
    /// replaced only by connecting again.
    async fn refresh(&self, _refresh_token: &SecretString) -> Result<Grant, Failure> {
        Err(Failure::rejected("Facebook page tokens cannot be refreshed"))
    }

    /// With a page token, `/me` is the Page. This is also the probe (the trait's default): page
    /// tokens have no expiry, so this cheap authenticated call is how a dead one is noticed.
    async fn identify(&self, token: &AccessToken) -> Result<PlatformUser, Failure> {
        let mut url = self.graph_url("me");
        url.query_pairs_mut().append_pair("fields", "id,name");
        let me: wire::Me = self.api_get(token, url, "Facebook /me").await?;
        // A Page is shown by its name; Lifeline does not read a Page username.
        Ok(PlatformUser { id: me.id, username: String::new(), display_name: me.name })
    }

    async fn publish(
        &self,
        token: &AccessToken,
        user_id: &str,
        post: &PostDraft,
    ) -> Result<Published, Failure> {
        let (path, form) = match &post.media {
            Some(m) if m.kind == MediaKind::Image => (
                format!("{user_id}/photos"),
                vec![("url", m.url.as_str()), ("message", post.text.as_str())],
            ),
            Some(m) => (
                format!("{user_id}/feed"),
                vec![("message", post.text.as_str()), ("link", m.url.as_str())],
            ),
            None => (format!("{user_id}/feed"), vec![("message", post.text.as_str())]),
        };
        let req = self
            .http
            .post(self.graph_url(&path))
            .bearer_auth(token.secret.expose_secret())
            .form(&form);
        let a = send(req, true).await?;
        if !a.status.is_success() {
            let expired = token.believed_expired(Utc::now());
            return Err(classify_api(a.status, &a.headers, &a.body, expired, true));
        }
        match serde_json::from_slice::<wire::Created>(&a.body) {
            Ok(c) => Ok(Published::new(c.post_id.unwrap_or(c.id))),
            Err(_) => {
                Err(Failure::ambiguous("Facebook accepted the post but its answer did not parse"))
            }
        }
    }

    /// The Page's recent posts whose message is this post's text.
    async fn find_published(
        &self,
        token: &AccessToken,
        user_id: &str,
        post: &PostDraft,
        since: DateTime<Utc>,
    ) -> Result<Option<Published>, Failure> {
        let since = since - chrono::Duration::minutes(1);
        let mut url = self.graph_url(&format!("{user_id}/posts"));
        url.query_pairs_mut()
            .append_pair("fields", "id,message,created_time")
            .append_pair("since", &since.timestamp().to_string())
            .append_pair("limit", "25");
        let posts: wire::Posts = self.api_get(token, url, "Facebook page posts").await?;
        Ok(posts
            .data
            .into_iter()
            .find(|p| {
                p.message.as_deref() == Some(post.text.as_str())
                    && p.created_time
                        .as_deref()
                        .and_then(graph::parse_time)
                        .is_none_or(|t| t >= since)
            })
            .map(|p| Published::new(p.id)))
    }
}
