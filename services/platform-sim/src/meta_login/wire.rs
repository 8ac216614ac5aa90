//! Wire shapes Instagram and Threads share: the code exchange's error (in
//! each platform's own body), the long-lived token answer, media nodes and
//! media URL parameters. Every other error is Graph's `GraphError`.

use std::collections::HashMap;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::{CodeErrors, Config};
use crate::authorize::required;
use crate::graph::{self, GraphError};
use crate::support::json_no_store;

/// A refused code exchange, in the format of the host that answers it.
#[derive(Debug)]
pub(crate) struct CodeExchangeError {
    pub format: CodeErrors,
    pub error: GraphError,
}

impl CodeExchangeError {
    pub fn new(cfg: &Config, error: GraphError) -> Self {
        Self { format: cfg.code_errors, error }
    }
}

impl IntoResponse for CodeExchangeError {
    fn into_response(self) -> Response {
        match self.format {
            CodeErrors::Graph => self.error.into_response(),
            CodeErrors::Instagram => json_no_store(
                StatusCode::BAD_REQUEST,
                json!({
                    "error_type": "OAuthException",
                    "code": 400,
                    "error_message": self.error.message,
                }),
            ),
        }
    }
}

/// The answer of the exchange and the refresh.
pub(crate) fn long_lived_response(access: &str, expires_in: u64) -> Response {
    json_no_store(
        StatusCode::OK,
        json!({ "access_token": access, "token_type": "bearer", "expires_in": expires_in }),
    )
}

/// A published media item (Instagram: `caption`, Threads: `text`).
pub(crate) fn media_node(
    cfg: &Config,
    text: &str,
    media_type: &str,
    media_id: &str,
    username: &str,
    ts: &str,
) -> Value {
    json!({
        "id": media_id,
        cfg.text_field: text,
        "media_type": media_type,
        "timestamp": ts,
        "username": username,
        "permalink": format!("https://www.example.invalid/{}/p/{media_id}", cfg.platform),
    })
}

/// A required http(s) media URL parameter.
pub(crate) fn media_url(
    params: &HashMap<String, String>,
    name: &str,
) -> Result<String, GraphError> {
    let raw = required(params, name).ok_or_else(|| graph::missing_param(name))?;
    match url::Url::parse(raw) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(raw.to_owned()),
        _ => Err(graph::invalid_param(format!("The parameter {name} is not a valid URL"))),
    }
}
