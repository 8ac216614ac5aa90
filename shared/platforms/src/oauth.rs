//! The `oauth2` client for platforms whose token endpoint is standard enough (LinkedIn, Google),
//! with a token answer and an error body more forgiving than the crate's defaults: LinkedIn's
//! documented answers carry no `token_type` and list scopes with commas, both platforms add a
//! refresh-token lifetime, and Google explains some `invalid_grant`s in `error_subtype`.

use std::time::Duration;

use oauth2::{
    basic::{BasicRevocationErrorResponse, BasicTokenIntrospectionResponse, BasicTokenType},
    EndpointNotSet, EndpointSet, ErrorResponse, HttpClientError, RefreshToken, RequestTokenError,
    Scope, StandardRevocableToken, TokenResponse,
};
use serde::{Deserialize, Deserializer, Serialize};

use crate::{common::truncate, Failure};

/// A client with authorize and token endpoints set.
pub(crate) type Client = oauth2::Client<
    TokenError,
    TokenAnswer,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// A client that sends its credentials as form fields (LinkedIn and Google both document that).
pub(crate) fn client(
    client_id: String,
    client_secret: Option<&secrecy::SecretString>,
    authorize: url::Url,
    token: url::Url,
    redirect: url::Url,
) -> Client {
    use secrecy::ExposeSecret;
    let client = oauth2::Client::<
        TokenError,
        TokenAnswer,
        BasicTokenIntrospectionResponse,
        StandardRevocableToken,
        BasicRevocationErrorResponse,
    >::new(oauth2::ClientId::new(client_id))
    .set_auth_uri(oauth2::AuthUrl::from_url(authorize))
    .set_token_uri(oauth2::TokenUrl::from_url(token))
    .set_redirect_uri(oauth2::RedirectUrl::from_url(redirect))
    .set_auth_type(oauth2::AuthType::RequestBody);
    match client_secret {
        Some(s) => {
            client.set_client_secret(oauth2::ClientSecret::new(s.expose_secret().to_owned()))
        }
        None => client,
    }
}

pub(crate) type TokenRequestError = RequestTokenError<HttpClientError<reqwest::Error>, TokenError>;

/// A token endpoint's success answer.
#[derive(Debug, Deserialize, Serialize)]
pub(crate) struct TokenAnswer {
    access_token: oauth2::AccessToken,
    /// Every token we get is a bearer token; LinkedIn does not say so.
    #[serde(skip, default = "bearer")]
    token_type: BasicTokenType,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    refresh_token: Option<RefreshToken>,
    /// LinkedIn's `refresh_token_expires_in`, Google's (time-based access only) likewise.
    #[serde(default, alias = "refresh_expires_in")]
    pub refresh_token_expires_in: Option<u64>,
    #[serde(default, deserialize_with = "scopes", rename = "scope")]
    scopes: Option<Vec<Scope>>,
}

fn bearer() -> BasicTokenType {
    BasicTokenType::Bearer
}

/// Scopes separated by spaces (RFC 6749) or commas (LinkedIn).
fn scopes<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<Scope>>, D::Error> {
    let raw: Option<String> = Option::deserialize(d)?;
    Ok(raw.map(|s| {
        s.split([' ', ',']).filter(|s| !s.is_empty()).map(|s| Scope::new(s.to_owned())).collect()
    }))
}

impl TokenResponse for TokenAnswer {
    type TokenType = BasicTokenType;
    fn access_token(&self) -> &oauth2::AccessToken {
        &self.access_token
    }
    fn token_type(&self) -> &BasicTokenType {
        &self.token_type
    }
    fn expires_in(&self) -> Option<Duration> {
        self.expires_in.map(Duration::from_secs)
    }
    fn refresh_token(&self) -> Option<&RefreshToken> {
        self.refresh_token.as_ref()
    }
    fn scopes(&self) -> Option<&Vec<Scope>> {
        self.scopes.as_ref()
    }
}

impl TokenAnswer {
    /// The grant, with `requested` as the scopes when the platform does not list them.
    pub fn grant(&self, requested: &[&str]) -> crate::Grant {
        use secrecy::SecretString;
        crate::Grant {
            access_token: SecretString::from(self.access_token.secret().clone()),
            refresh_token: self
                .refresh_token
                .as_ref()
                .map(|r| SecretString::from(r.secret().clone())),
            expires_in: self.expires_in(),
            refresh_expires_in: self.refresh_token_expires_in.map(Duration::from_secs),
            scopes: self
                .scopes
                .as_ref()
                .map(|s| s.iter().map(|s| s.to_string()).collect())
                .unwrap_or_else(|| requested.iter().map(|s| (*s).to_owned()).collect()),
        }
    }
}

/// A token endpoint's OAuth error body. Read from a JSON object only, with `error` a string:
/// serde's derived form would also accept an array of values in field order, which turns
/// garbage like `["invalid_grant"]` into a revocation.
#[derive(Debug, Deserialize, Serialize)]
#[serde(try_from = "serde_json::Map<String, serde_json::Value>")]
pub struct TokenError {
    pub error: String,
    pub error_description: Option<String>,
    /// Google: `invalid_rapt` when a session-control policy demands re-authentication.
    pub error_subtype: Option<String>,
}

impl TryFrom<serde_json::Map<String, serde_json::Value>> for TokenError {
    type Error = &'static str;
    fn try_from(m: serde_json::Map<String, serde_json::Value>) -> Result<Self, Self::Error> {
        let text = |k: &str| m.get(k).and_then(|v| v.as_str()).map(str::to_owned);
        let error = text("error").filter(|e| !e.is_empty()).ok_or("no error string")?;
        Ok(TokenError {
            error,
            error_description: text("error_description"),
            error_subtype: text("error_subtype"),
        })
    }
}

impl std::fmt::Display for TokenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&truncate(&self.error))?;
        if let Some(d) = &self.error_description {
            write!(f, " ({})", truncate(d))?;
        }
        Ok(())
    }
}

impl ErrorResponse for TokenError {}

/// Turns a failed `oauth2` token request into a [`Failure`]: the platform's OAuth error goes
/// through `classify`, an outage page or empty body is transient, and so is the network (these
/// platforms do not rotate refresh tokens, so a lost answer spends nothing).
pub(crate) fn request_failure(
    platform: &str,
    e: &TokenRequestError,
    classify: impl Fn(&TokenError) -> Failure,
) -> Failure {
    match e {
        RequestTokenError::ServerResponse(err) => classify(err),
        RequestTokenError::Request(HttpClientError::Reqwest(err)) => {
            Failure::from_network(err, false)
        }
        RequestTokenError::Request(_) => {
            Failure::transient(format!("{platform} token endpoint: request failed"))
        }
        RequestTokenError::Parse(_, body) => match serde_json::from_slice::<TokenError>(body) {
            Ok(err) => classify(&err),
            Err(_) => Failure::transient(format!("{platform} token endpoint: unparseable answer")),
        },
        RequestTokenError::Other(msg) => {
            Failure::transient(format!("{platform} token endpoint: {}", truncate(msg)))
        }
    }
}

/// A raw token-endpoint body through `classify`: the same path as [`request_failure`] takes for
/// a body, for tests and fixtures.
pub(crate) fn classify_body(
    platform: &str,
    body: &[u8],
    classify: impl Fn(&TokenError) -> Failure,
) -> Failure {
    match serde_json::from_slice::<TokenError>(body) {
        Ok(err) => classify(&err),
        Err(_) => Failure::transient(format!("{platform} token endpoint: unparseable answer")),
    }
}
