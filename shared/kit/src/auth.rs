//! API authentication: every request carries a bearer JWT (HS256) whose `ws` claim names the
//! workspace; handlers receive that workspace through the [`Workspace`] extractor, and operator
//! endpoints the caller through [`Operator`], which needs `role: operator`.
//!
//! A token is accepted only if it is signed with `LIFELINE_JWT_SECRET`, names issuer
//! [`ISSUER`] and audience [`AUDIENCE`], has `exp`, `iat` and `sub`, is not used before its
//! `nbf`, and lives no longer than `LIFELINE_JWT_MAX_TTL` (`exp - iat`, default 24 h): a leaked
//! token is worth a day at most. See docs/configuration.md.

use axum::{
    extract::FromRequestParts,
    http::{header, request::Parts, StatusCode},
    response::{IntoResponse, Response},
};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::time::Duration;

use crate::{http::ApiError, ids::WorkspaceId};

/// The `iss` every Lifeline token names.
pub const ISSUER: &str = "lifeline";
/// The `aud` every Lifeline token names.
pub const AUDIENCE: &str = "lifeline-api";
/// `LIFELINE_JWT_MAX_TTL`'s default.
pub const DEFAULT_MAX_TTL: Duration = Duration::from_secs(24 * 3600);
/// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds.
const LEEWAY: u64 = 5;

/// What a caller may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Acts for its own workspace only.
    #[default]
    Member,
    /// May also use the operator endpoints, across workspaces.
    Operator,
}

/// The JWT claims Lifeline reads.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    /// Who is calling (a user or a service); logged, and recorded by operator actions.
    pub sub: String,
    /// The workspace the caller acts for.
    pub ws: WorkspaceId,
    pub iss: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// `member` when absent.
    #[serde(default)]
    pub role: Role,
}

/// Keys derived from the shared secret (`LIFELINE_JWT_SECRET`), and the longest lifetime a
/// token may have.
#[derive(Clone)]
pub struct JwtKeys {
    /// `None` for an empty secret (which [`jwt_secret`] never lets through): nothing verifies.
    keys: Option<(DecodingKey, EncodingKey)>,
    max_ttl: Duration,
}

/// Why a token was refused (the API answers 401 and says which).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("invalid token: {0}")]
    Invalid(String),
    #[error("token expired")]
    Expired,
    #[error("token not valid yet (nbf)")]
    NotYetValid,
    #[error("token issuer must be {ISSUER:?}")]
    Issuer,
    #[error("token audience must be {AUDIENCE:?}")]
    Audience,
    #[error("token lives {0} s, longer than the {1} s this Lifeline allows")]
    TooLong(i64, u64),
    #[error("token issued in the future")]
    IssuedInFuture,
}

impl JwtKeys {
    pub fn new(secret: &SecretString) -> Self {
        let bytes = secret.expose_secret().as_bytes();
        let keys = DecodingKey::from_secret(bytes).ok().zip(EncodingKey::from_secret(bytes).ok());
        JwtKeys { keys, max_ttl: DEFAULT_MAX_TTL }
    }

    /// `LIFELINE_JWT_SECRET` and `LIFELINE_JWT_MAX_TTL` (1 min to 30 days, default 24 h).
    pub fn from_env(env: &crate::config::Env) -> Result<Self, crate::config::ConfigError> {
        let max_ttl = max_ttl(env)?;
        Ok(JwtKeys { max_ttl, ..JwtKeys::new(&jwt_secret(env)?) })
    }

    pub fn with_max_ttl(self, max_ttl: Duration) -> Self {
        JwtKeys { max_ttl, ..self }
    }

    pub fn max_ttl(&self) -> Duration {
        self.max_ttl
    }

    /// A member token for `workspace`.
    pub fn mint(&self, subject: &str, workspace: WorkspaceId, ttl: Duration) -> String {
        self.mint_as(subject, workspace, Role::Member, ttl)
    }

    /// A token with `role`. Verification refuses it if `ttl` exceeds the maximum; callers that
    /// take a TTL from a person check [`JwtKeys::max_ttl`] first and say so.
    pub fn mint_as(
        &self,
        subject: &str,
        workspace: WorkspaceId,
        role: Role,
        ttl: Duration,
    ) -> String {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: subject.to_owned(),
            ws: workspace,
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
            iat: now,
            exp: now + i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2),
            nbf: None,
            role,
        };
        self.encode(&claims)
    }

    /// Signs any claims (tests use it to build the tokens verification must refuse).
    pub fn encode(&self, claims: &Claims) -> String {
        // Encoding HS256 with a valid key cannot fail.
        self.keys
            .as_ref()
            .and_then(|(_, encoding)| {
                jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, encoding).ok()
            })
            .unwrap_or_default()
    }

    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        use jsonwebtoken::errors::ErrorKind;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "iat", "sub", "iss", "aud"]);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        let Some((decoding, _)) = &self.keys else {
            return Err(TokenError::Invalid("authentication is not configured".into()));
        };
        let claims = jsonwebtoken::decode::<Claims>(token, decoding, &validation)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                ErrorKind::ImmatureSignature => TokenError::NotYetValid,
                ErrorKind::InvalidIssuer => TokenError::Issuer,
                ErrorKind::InvalidAudience => TokenError::Audience,
                ErrorKind::MissingRequiredClaim(c) => {
                    TokenError::Invalid(format!("missing claim {c}"))
                }
                _ => TokenError::Invalid("bad signature or malformed token".into()),
            })?
            .claims;
        let now = chrono::Utc::now().timestamp();
        if claims.iat > now + LEEWAY as i64 {
            return Err(TokenError::IssuedInFuture);
        }
        let lifetime = claims.exp - claims.iat;
        if lifetime > self.max_ttl.as_secs() as i64 {
            return Err(TokenError::TooLong(lifetime, self.max_ttl.as_secs()));
        }
        Ok(claims)
    }
}

/// `LIFELINE_JWT_MAX_TTL`: the longest lifetime (`exp - iat`) a token may have.
pub fn max_ttl(env: &crate::config::Env) -> Result<Duration, crate::config::ConfigError> {
    env.duration_in(
        "LIFELINE_JWT_MAX_TTL",
        DEFAULT_MAX_TTL,
        Duration::from_secs(60)..=Duration::from_secs(30 * 24 * 3600),
    )
}

/// `LIFELINE_JWT_SECRET`: the HS256 secret, at least 32 characters.
pub fn jwt_secret(env: &crate::config::Env) -> Result<SecretString, crate::config::ConfigError> {
    let secret =
        env.secret("LIFELINE_JWT_SECRET", "the HS256 secret API tokens are signed with")?;
    if secret.expose_secret().len() < 32 {
        return Err(env.invalid("LIFELINE_JWT_SECRET", "must be at least 32 characters"));
    }
    Ok(secret)
}

/// The caller's workspace, from `Authorization: Bearer <jwt>`. Needs `JwtKeys` as a request
/// extension (add `Extension(keys)` to the router).
#[derive(Debug, Clone, Copy)]
pub struct Workspace(pub WorkspaceId);

pub struct Unauthorized(String);

impl IntoResponse for Unauthorized {
    fn into_response(self) -> Response {
        let mut r = ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", self.0).into_response();
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
        r
    }
}

/// The verified claims of `Authorization: Bearer <jwt>`.
fn claims_of(parts: &Parts) -> Result<Claims, Unauthorized> {
    let keys = parts
        .extensions
        .get::<JwtKeys>()
        .ok_or(Unauthorized("authentication is not configured on this route".into()))?;
    let value = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or(Unauthorized("missing Authorization: Bearer <token> header".into()))?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .ok_or(Unauthorized("Authorization must use the Bearer scheme".into()))?;
    keys.verify(token.trim()).map_err(|e| Unauthorized(e.to_string()))
}

impl<S: Send + Sync> FromRequestParts<S> for Workspace {
    type Rejection = Unauthorized;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Workspace(claims_of(parts)?.ws))
    }
}

/// Whoever calls, with their role: for endpoints that members and operators share, where an
/// operator may reach further (other workspaces) and `sub` is recorded.
#[derive(Debug, Clone)]
pub struct Caller {
    pub sub: String,
    pub ws: WorkspaceId,
    pub role: Role,
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Unauthorized;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let claims = claims_of(parts)?;
        Ok(Caller { sub: claims.sub, ws: claims.ws, role: claims.role })
    }
}

/// An operator: a caller whose token has `role: operator`. Operator endpoints may span
/// workspaces; `sub` is recorded with what they do.
#[derive(Debug, Clone)]
pub struct Operator {
    pub sub: String,
}

/// A member token on an operator endpoint.
pub enum OperatorRejection {
    Unauthorized(Unauthorized),
    Forbidden,
}

impl IntoResponse for OperatorRejection {
    fn into_response(self) -> Response {
        match self {
            OperatorRejection::Unauthorized(u) => u.into_response(),
            OperatorRejection::Forbidden => ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "this endpoint needs a token with role operator",
            )
            .into_response(),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Operator {
    type Rejection = OperatorRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let claims = claims_of(parts).map_err(OperatorRejection::Unauthorized)?;
        if claims.role != Role::Operator {
            return Err(OperatorRejection::Forbidden);
        }
        Ok(Operator { sub: claims.sub })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "s3cret-for-tests-only-0123456789";

    fn keys() -> JwtKeys {
        JwtKeys::new(&SecretString::from(SECRET))
    }

    fn claims(ws: WorkspaceId, iat: i64, exp: i64) -> Claims {
        Claims {
            sub: "tester".into(),
            ws,
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            iat,
            exp,
            nbf: None,
            role: Role::Member,
        }
    }

    #[test]
    fn minted_tokens_verify_and_others_do_not() {
        let keys = keys();
        let ws = WorkspaceId::new();
        let token = keys.mint("tester", ws, Duration::from_secs(60));
        let verified = keys.verify(&token).expect("valid");
        assert_eq!((verified.ws, verified.role), (ws, Role::Member));
        let op = keys.mint_as("ops", ws, Role::Operator, Duration::from_secs(60));
        assert_eq!(keys.verify(&op).expect("valid").role, Role::Operator);

        let other = JwtKeys::new(&SecretString::from("another-secret-0123456789abcdef"));
        assert!(matches!(other.verify(&token), Err(TokenError::Invalid(_))), "another secret");
        assert_eq!(
            keys.verify(&keys.encode(&claims(ws, 1_000, 2_000))).err(),
            Some(TokenError::Expired)
        );
    }

    #[test]
    fn issuer_audience_lifetime_and_nbf_are_checked() {
        let keys = keys().with_max_ttl(Duration::from_secs(3600));
        let ws = WorkspaceId::new();
        let now = chrono::Utc::now().timestamp();
        let ok = claims(ws, now, now + 60);
        assert!(keys.verify(&keys.encode(&ok)).is_ok());

        let wrong_iss = Claims { iss: "someone-else".into(), ..claims(ws, now, now + 60) };
        assert_eq!(keys.verify(&keys.encode(&wrong_iss)).err(), Some(TokenError::Issuer));
        let wrong_aud = Claims { aud: "another-api".into(), ..claims(ws, now, now + 60) };
        assert_eq!(keys.verify(&keys.encode(&wrong_aud)).err(), Some(TokenError::Audience));
        // Longer than the maximum, even if not expired; the maximum itself is fine.
        let long = claims(ws, now, now + 3601);
        assert_eq!(keys.verify(&keys.encode(&long)).err(), Some(TokenError::TooLong(3601, 3600)));
        assert!(keys.verify(&keys.encode(&claims(ws, now, now + 3600))).is_ok());
        // Not before: refused until then.
        let later = Claims { nbf: Some(now + 600), ..claims(ws, now, now + 1200) };
        assert_eq!(keys.verify(&keys.encode(&later)).err(), Some(TokenError::NotYetValid));
        let started = Claims { nbf: Some(now - 1), ..claims(ws, now, now + 60) };
        assert!(keys.verify(&keys.encode(&started)).is_ok());
        // Issued in the future (a way around the lifetime check).
        let future = claims(ws, now + 3000, now + 3060);
        assert_eq!(keys.verify(&keys.encode(&future)).err(), Some(TokenError::IssuedInFuture));
    }

    #[test]
    fn tokens_without_the_required_claims_are_refused() {
        let keys = keys();
        let now = chrono::Utc::now().timestamp();
        let encoding = EncodingKey::from_secret(SECRET.as_bytes()).expect("key");
        let ws = WorkspaceId::new().to_string();
        for (missing, body) in [
            (
                "exp",
                serde_json::json!({"sub": "a", "ws": ws, "iss": ISSUER, "aud": AUDIENCE, "iat": now}),
            ),
            (
                "iat",
                serde_json::json!({"sub": "a", "ws": ws, "iss": ISSUER, "aud": AUDIENCE, "exp": now + 60}),
            ),
            (
                "iss",
                serde_json::json!({"sub": "a", "ws": ws, "aud": AUDIENCE, "iat": now, "exp": now + 60}),
            ),
            (
                "aud",
                serde_json::json!({"sub": "a", "ws": ws, "iss": ISSUER, "iat": now, "exp": now + 60}),
            ),
        ] {
            let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &body, &encoding)
                .expect("encodes");
            assert!(keys.verify(&token).is_err(), "a token without {missing} is refused");
        }
        // An unknown role is refused rather than read as member.
        let body = serde_json::json!({"sub": "a", "ws": ws, "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 60, "role": "admin"});
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &body, &encoding)
            .expect("encodes");
        assert!(keys.verify(&token).is_err());
    }
}
