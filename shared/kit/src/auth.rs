//! API authentication: every request carries a bearer JWT (HS256) whose `ws` claim names the
//! workspace; handlers receive that workspace through the [`Workspace`] extractor.

use axum::{
    extract::FromRequestParts,
    http::{header, request::Parts, StatusCode},
    response::{IntoResponse, Response},
};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::{http::ApiError, ids::WorkspaceId};

/// The JWT claims Lifeline reads.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    /// Who is calling (a user or a service); only logged.
    pub sub: String,
    /// The workspace the caller acts for.
    pub ws: WorkspaceId,
    pub exp: i64,
    pub iat: i64,
}

/// Keys derived from the shared secret (`LIFELINE_JWT_SECRET`).
#[derive(Clone)]
pub struct JwtKeys {
    /// `None` for an empty secret (which [`jwt_secret`] never lets through): nothing verifies.
    keys: Option<(DecodingKey, EncodingKey)>,
}

impl JwtKeys {
    pub fn new(secret: &SecretString) -> Self {
        let bytes = secret.expose_secret().as_bytes();
        let keys = DecodingKey::from_secret(bytes).ok().zip(EncodingKey::from_secret(bytes).ok());
        JwtKeys { keys }
    }

    pub fn mint(&self, subject: &str, workspace: WorkspaceId, ttl: std::time::Duration) -> String {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: subject.to_owned(),
            ws: workspace,
            iat: now,
            exp: now + i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2),
        };
        // Encoding HS256 with a valid key cannot fail.
        self.keys
            .as_ref()
            .and_then(|(_, encoding)| {
                jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, encoding).ok()
            })
            .unwrap_or_default()
    }

    pub fn verify(&self, token: &str) -> Result<Claims, jsonwebtoken::errors::Error> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "sub"]);
        let Some((decoding, _)) = &self.keys else {
            return Err(jsonwebtoken::errors::ErrorKind::InvalidKeyFormat.into());
        };
        jsonwebtoken::decode::<Claims>(token, decoding, &validation).map(|d| d.claims)
    }
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

pub struct Unauthorized(&'static str);

impl IntoResponse for Unauthorized {
    fn into_response(self) -> Response {
        let mut r = ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", self.0).into_response();
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
        r
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Workspace {
    type Rejection = Unauthorized;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let keys = parts
            .extensions
            .get::<JwtKeys>()
            .ok_or(Unauthorized("authentication is not configured on this route"))?;
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or(Unauthorized("missing Authorization: Bearer <token> header"))?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .ok_or(Unauthorized("Authorization must use the Bearer scheme"))?;
        let claims =
            keys.verify(token.trim()).map_err(|_| Unauthorized("invalid or expired token"))?;
        Ok(Workspace(claims.ws))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_verify_and_others_do_not() {
        let keys = JwtKeys::new(&SecretString::from("s3cret-for-tests-only-0123456789"));
        let ws = WorkspaceId::new();
        let token = keys.mint("tester", ws, std::time::Duration::from_secs(60));
        assert_eq!(keys.verify(&token).expect("valid").ws, ws);

        let other = JwtKeys::new(&SecretString::from("another-secret-0123456789abcdef"));
        assert!(other.verify(&token).is_err(), "a token signed with another secret is refused");

        let stale = Claims { sub: "tester".into(), ws, iat: 1_000, exp: 2_000 };
        let encoding = EncodingKey::from_secret(b"s3cret-for-tests-only-0123456789").expect("key");
        let expired = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &stale, &encoding)
            .expect("encodes");
        assert!(keys.verify(&expired).is_err(), "an expired token is refused");
    }
}
