//! X (API v2): OAuth 2.0 authorization code with PKCE, rotating single-use refresh tokens,
//! `POST /2/tweets`. Wire types in [`wire`], error mapping in [`errors`].

mod errors;
pub(crate) mod scopes;
mod wire;

use chrono::{DateTime, Utc};
use lifeline_kit::{
    config::{ConfigError, Env},
    Platform,
};
use oauth2::{
    basic::BasicClient, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken,
    EndpointNotSet, EndpointSet, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RefreshToken,
    Scope, TokenResponse, TokenUrl,
};
use secrecy::{ExposeSecret, SecretString};

use crate::{
    endpoint, AccessToken, AuthorizationStart, Connector, Failure, Grant, PlatformUser, PostDraft,
    Published,
};

pub use errors::{classify_api, classify_token_error, rate_budget};

/// X's limit: 280 weighted characters (docs.x.com, counting characters).
pub(crate) const POST_RULES: crate::post_rules::PostRules = crate::post_rules::PostRules {
    max_length: 280,
    counting: crate::post_rules::Counting::XWeighted,
    media: crate::post_rules::MediaNeed::Optional,
};

/// Scopes Lifeline asks X for: read the user, post, and `offline.access` for a refresh token.
pub const SCOPES: [&str; 4] = ["tweet.read", "tweet.write", "users.read", "offline.access"];

type OAuthClient =
    BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

pub struct XConnector {
    oauth: OAuthClient,
    api: url::Url,
    http: reqwest::Client,
}

impl XConnector {
    /// `LIFELINE_X_CLIENT_ID` / `LIFELINE_X_CLIENT_SECRET`; base URLs `LIFELINE_X_AUTHORIZE_URL`
    /// (default `https://x.com/i/oauth2/authorize`) and `LIFELINE_X_API_URL` (default
    /// `https://api.x.com`), or the simulator's when `sim` is given. `None` without a client id.
    pub fn from_env(
        env: &Env,
        public: &url::Url,
        sim: Option<&url::Url>,
        http: reqwest::Client,
    ) -> Result<Option<Self>, ConfigError> {
        let Some(client_id) = env.raw("LIFELINE_X_CLIENT_ID") else { return Ok(None) };
        let secret = env.raw("LIFELINE_X_CLIENT_SECRET");
        let (default_auth, default_api) = match sim {
            Some(s) => {
                (endpoint(s, "x/i/oauth2/authorize").to_string(), endpoint(s, "x").to_string())
            }
            None => ("https://x.com/i/oauth2/authorize".to_owned(), "https://api.x.com".to_owned()),
        };
        let authorize = env.string_or("LIFELINE_X_AUTHORIZE_URL", &default_auth);
        let api = env.string_or("LIFELINE_X_API_URL", &default_api);
        let api =
            url::Url::parse(&api).map_err(|e| env.invalid("LIFELINE_X_API_URL", e.to_string()))?;
        let token = endpoint(&api, "2/oauth2/token");
        let redirect = endpoint(public, "oauth/callback/x");
        let mut oauth = BasicClient::new(ClientId::new(client_id))
            .set_auth_uri(
                AuthUrl::new(authorize)
                    .map_err(|e| env.invalid("LIFELINE_X_AUTHORIZE_URL", e.to_string()))?,
            )
            .set_token_uri(TokenUrl::from_url(token))
            .set_redirect_uri(RedirectUrl::from_url(redirect));
        if let Some(secret) = secret {
            oauth = oauth.set_client_secret(ClientSecret::new(secret));
        }
        Ok(Some(XConnector { oauth, api, http }))
    }

    fn grant(token: &oauth2::basic::BasicTokenResponse) -> Grant {
        Grant {
            access_token: SecretString::from(token.access_token().secret().clone()),
            refresh_token: token.refresh_token().map(|r| SecretString::from(r.secret().clone())),
            expires_in: token.expires_in(),
            // X documents no lifetime for refresh tokens.
            refresh_expires_in: None,
            scopes: token
                .scopes()
                .map(|s| s.iter().map(|s| s.to_string()).collect())
                .unwrap_or_else(|| SCOPES.iter().map(|s| (*s).to_owned()).collect()),
        }
    }

    /// Sends a request and reads the whole answer; network failures are classified here.
    async fn send(
        &self,
        req: reqwest::RequestBuilder,
        mutating: bool,
    ) -> Result<(reqwest::StatusCode, reqwest::header::HeaderMap, Vec<u8>), Failure> {
        let resp = req.send().await.map_err(|e| Failure::from_network(&e, mutating))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.map_err(|e| Failure::from_network(&e, mutating))?;
        Ok((status, headers, body.to_vec()))
    }
}

#[async_trait::async_trait]
impl Connector for XConnector {
    fn platform(&self) -> Platform {
        Platform::X
    }

    fn authorize(&self, state: &str) -> AuthorizationStart {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let state = state.to_owned();
        let (url, _) = self
            .oauth
            .authorize_url(move || CsrfToken::new(state))
            .add_scopes(SCOPES.iter().map(|s| Scope::new((*s).to_owned())))
            .set_pkce_challenge(challenge)
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
        let verifier =
            pkce_verifier.ok_or_else(|| Failure::rejected("X requires a PKCE verifier"))?;
        let token = self
            .oauth
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(verifier.expose_secret().to_owned()))
            .request_async(&self.http)
            .await
            .map_err(|e| classify_token_error(&e, false))?;
        Ok(Self::grant(&token))
    }

    async fn refresh(&self, refresh_token: &SecretString) -> Result<Grant, Failure> {
        let token = self
            .oauth
            .exchange_refresh_token(&RefreshToken::new(refresh_token.expose_secret().to_owned()))
            .request_async(&self.http)
            .await
            // X rotates refresh tokens: an unanswered refresh may have spent ours.
            .map_err(|e| classify_token_error(&e, true))?;
        Ok(Self::grant(&token))
    }

    async fn identify(&self, token: &AccessToken) -> Result<PlatformUser, Failure> {
        let req = self
            .http
            .get(endpoint(&self.api, "2/users/me"))
            .bearer_auth(token.secret.expose_secret());
        let (status, headers, body) = self.send(req, false).await?;
        if !status.is_success() {
            return Err(classify_api(status, &headers, &body, token.believed_expired(Utc::now())));
        }
        let me: wire::Data<wire::User> = serde_json::from_slice(&body)
            .map_err(|e| Failure::transient(format!("unexpected /2/users/me body: {e}")))?;
        Ok(PlatformUser { id: me.data.id, username: me.data.username, display_name: me.data.name })
    }

    async fn publish(
        &self,
        token: &AccessToken,
        _user_id: &str,
        post: &PostDraft,
    ) -> Result<Published, Failure> {
        let req = self
            .http
            .post(endpoint(&self.api, "2/tweets"))
            .bearer_auth(token.secret.expose_secret())
            .json(&wire::CreateTweet { text: &post.text });
        let (status, headers, body) = self.send(req, true).await?;
        if !status.is_success() {
            return Err(classify_api(status, &headers, &body, token.believed_expired(Utc::now())));
        }
        match serde_json::from_slice::<wire::Data<wire::Tweet>>(&body) {
            Ok(t) => {
                Ok(Published { rate_budget: rate_budget(&headers), ..Published::new(t.data.id) })
            }
            // Accepted, but we cannot tell which post it made.
            Err(e) => Err(Failure::ambiguous(format!(
                "X accepted the post but its answer did not parse: {e}"
            ))),
        }
    }

    /// Every API answer carries `x-rate-limit-*` (100 posts per user per 15 minutes).
    fn reports_rate_budget(&self) -> bool {
        true
    }

    async fn find_published(
        &self,
        token: &AccessToken,
        user_id: &str,
        post: &PostDraft,
        since: DateTime<Utc>,
    ) -> Result<Option<Published>, Failure> {
        let mut url = endpoint(&self.api, &format!("2/users/{user_id}/tweets"));
        url.query_pairs_mut()
            .append_pair("max_results", "100")
            .append_pair("tweet.fields", "created_at")
            .append_pair("start_time", &since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        let req = self.http.get(url).bearer_auth(token.secret.expose_secret());
        let (status, headers, body) = self.send(req, false).await?;
        if !status.is_success() {
            return Err(classify_api(status, &headers, &body, token.believed_expired(Utc::now())));
        }
        let list: wire::TweetList = serde_json::from_slice(&body)
            .map_err(|e| Failure::transient(format!("unexpected timeline body: {e}")))?;
        Ok(list
            .data
            .unwrap_or_default()
            .into_iter()
            .find(|t| t.text == post.text)
            .map(|t| Published::new(t.id)))
    }
}
