//! LinkedIn: OAuth 2.0 authorization code (no PKCE for web apps), 60-day access tokens,
//! non-rotating refresh tokens for approved partners (365 days from the first grant), OpenID
//! `userinfo` for identity and the versioned Posts API. Wire types in [`wire`], error mapping in
//! [`errors`].

mod errors;
pub(crate) mod scopes;
mod wire;

use chrono::{DateTime, Utc};
use lifeline_kit::{
    config::{ConfigError, Env},
    Platform,
};
use oauth2::{AuthorizationCode, CsrfToken, RefreshToken, Scope};
use secrecy::{ExposeSecret, SecretString};

use crate::{
    common::{self, send, App},
    endpoint, oauth, AccessToken, AuthorizationStart, Connector, Failure, Grant, PlatformUser,
    PostDraft, Published, Reconciliation,
};

pub use errors::{classify_api, classify_token_body, classify_token_error};

/// The Posts API's `commentary` takes at most 3,000 characters.
pub(crate) const POST_RULES: crate::post_rules::PostRules = crate::post_rules::PostRules {
    max_length: 3000,
    counting: crate::post_rules::Counting::Chars,
    media: crate::post_rules::MediaNeed::Optional,
};

/// OpenID for `userinfo` (`openid profile`) and posting as the member (`w_member_social`).
pub const SCOPES: [&str; 3] = ["openid", "profile", "w_member_social"];

/// Why an ambiguous LinkedIn publish cannot be checked. Reading a member's posts (`GET
/// /rest/posts?q=author`, or any other read of member posts) needs `r_member_social`, a
/// restricted permission LinkedIn grants only to approved partners; Lifeline asks for
/// `w_member_social` (posting), which reads nothing, and the create call has no idempotency key.
pub const CANNOT_CHECK: &str = "reading a member's posts needs r_member_social, a restricted permission Lifeline does not hold";

/// The `LinkedIn-Version` (YYYYMM) the Posts API calls are written against.
pub const API_VERSION: &str = "202411";

pub struct LinkedInConnector {
    oauth: oauth::Client,
    api: url::Url,
    http: reqwest::Client,
}

impl LinkedInConnector {
    /// `LIFELINE_LINKEDIN_CLIENT_ID` / `_CLIENT_SECRET`; hosts `LIFELINE_LINKEDIN_WWW_URL`
    /// (default `https://www.linkedin.com`, sim `<sim>/linkedin/www`) and
    /// `LIFELINE_LINKEDIN_API_URL` (default `https://api.linkedin.com`, sim `<sim>/linkedin/api`).
    pub fn from_env(
        env: &Env,
        public: &url::Url,
        sim: Option<&url::Url>,
        http: reqwest::Client,
    ) -> Result<Option<Self>, ConfigError> {
        let Some(app) = App::from_env(env, "LINKEDIN") else { return Ok(None) };
        let www =
            common::host(env, "LINKEDIN", "WWW", "https://www.linkedin.com", sim, "linkedin/www")?;
        let api =
            common::host(env, "LINKEDIN", "API", "https://api.linkedin.com", sim, "linkedin/api")?;
        let client = oauth::client(
            app.client_id,
            app.client_secret.as_ref(),
            endpoint(&www, "oauth/v2/authorization"),
            endpoint(&www, "oauth/v2/accessToken"),
            common::callback(public, Platform::LinkedIn),
        );
        Ok(Some(LinkedInConnector { oauth: client, api, http }))
    }

    fn versioned(
        &self,
        req: reqwest::RequestBuilder,
        token: &AccessToken,
    ) -> reqwest::RequestBuilder {
        req.bearer_auth(token.secret.expose_secret())
            .header("LinkedIn-Version", API_VERSION)
            .header("X-Restli-Protocol-Version", "2.0.0")
    }
}

/// Escapes LinkedIn's "little text" reserved characters, which the Posts API would otherwise
/// read as markup (an unescaped `(` can truncate the post).
pub fn escape_commentary(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(
            c,
            '\\' | '|'
                | '{'
                | '}'
                | '@'
                | '['
                | ']'
                | '('
                | ')'
                | '<'
                | '>'
                | '#'
                | '*'
                | '_'
                | '~'
        ) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[async_trait::async_trait]
impl Connector for LinkedInConnector {
    fn platform(&self) -> Platform {
        Platform::LinkedIn
    }

    fn authorize(&self, state: &str) -> AuthorizationStart {
        let state = state.to_owned();
        let (url, _) = self
            .oauth
            .authorize_url(move || CsrfToken::new(state))
            .add_scopes(SCOPES.iter().map(|s| Scope::new((*s).to_owned())))
            .url();
        // PKCE is only for native apps LinkedIn enabled it for.
        AuthorizationStart { url, pkce_verifier: None }
    }

    async fn exchange_code(
        &self,
        code: &str,
        _pkce_verifier: Option<&SecretString>,
    ) -> Result<Grant, Failure> {
        let token = self
            .oauth
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .request_async(&self.http)
            .await
            .map_err(|e| oauth::request_failure("LinkedIn", &e, classify_token_error))?;
        Ok(token.grant(&SCOPES))
    }

    async fn refresh(&self, refresh_token: &SecretString) -> Result<Grant, Failure> {
        let token = self
            .oauth
            .exchange_refresh_token(&RefreshToken::new(refresh_token.expose_secret().to_owned()))
            .request_async(&self.http)
            .await
            .map_err(|e| oauth::request_failure("LinkedIn", &e, classify_token_error))?;
        // LinkedIn returns the same refresh token with its remaining lifetime; the grant carries
        // both, so the 365-day horizon is never extended by mistake.
        Ok(token.grant(&SCOPES))
    }

    async fn identify(&self, token: &AccessToken) -> Result<PlatformUser, Failure> {
        let req = self
            .http
            .get(endpoint(&self.api, "v2/userinfo"))
            .bearer_auth(token.secret.expose_secret());
        let a = send(req, false).await?;
        if !a.status.is_success() {
            return Err(classify_api(
                a.status,
                &a.headers,
                &a.body,
                token.believed_expired(Utc::now()),
                false,
            ));
        }
        let me: wire::UserInfo = common::parse(&a.body, "LinkedIn userinfo")?;
        let name = me.name.unwrap_or_default();
        Ok(PlatformUser {
            // LinkedIn members have no public handle: none is shown (the name is).
            username: String::new(),
            display_name: name,
            id: me.sub,
        })
    }

    async fn publish(
        &self,
        token: &AccessToken,
        user_id: &str,
        post: &PostDraft,
    ) -> Result<Published, Failure> {
        let author = format!("urn:li:person:{user_id}");
        let commentary = escape_commentary(&post.text);
        let body = wire::CreatePost {
            author: &author,
            commentary: &commentary,
            visibility: "PUBLIC",
            distribution: wire::Distribution {
                feed_distribution: "MAIN_FEED",
                target_entities: &[],
                third_party_distribution_channels: &[],
            },
            lifecycle_state: "PUBLISHED",
            is_reshare_disabled_by_author: false,
        };
        let req =
            self.versioned(self.http.post(endpoint(&self.api, "rest/posts")), token).json(&body);
        let a = send(req, true).await?;
        if !a.status.is_success() {
            return Err(classify_api(
                a.status,
                &a.headers,
                &a.body,
                token.believed_expired(Utc::now()),
                true,
            ));
        }
        // 201 Created; the post's URN is in `x-restli-id` (the body is empty).
        match a.headers.get("x-restli-id").and_then(|v| v.to_str().ok()).filter(|v| !v.is_empty()) {
            Some(id) => Ok(Published::new(id.to_owned())),
            None => Err(Failure::ambiguous("LinkedIn accepted the post but named no post id")),
        }
    }

    fn reconciliation(&self) -> Reconciliation {
        Reconciliation::CannotCheck { why: CANNOT_CHECK }
    }

    /// LinkedIn cannot be asked (see [`CANNOT_CHECK`]): the outcome stays unknown.
    async fn find_published(
        &self,
        _token: &AccessToken,
        _user_id: &str,
        _post: &PostDraft,
        _since: DateTime<Utc>,
    ) -> Result<Option<Published>, Failure> {
        Err(Failure::ambiguous(format!("LinkedIn cannot be checked: {CANNOT_CHECK}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commentary_escapes_little_text_markup() {
        assert_eq!(escape_commentary("Hi (all) #rust @me"), r"Hi \(all\) \#rust \@me");
        assert_eq!(escape_commentary("plain"), "plain");
    }
}
