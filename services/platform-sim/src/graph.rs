//! Meta's Graph API conventions shared by Facebook, Instagram and Threads:
//! the `{"error":{…,"type":"OAuthException","code",…}}` body, code 190 and
//! its subcodes, optional `/vXX.X/` path versions, tokens in the query, the
//! form or a Bearer header, and what each control action does to a token.

use std::collections::HashMap;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::accounts::{Accounts, CodeError, Death, Refusal};
use crate::faults::retry_after_secs;
use crate::state::AccountAction;
use crate::support::{bearer, query_and_form, random_b64};

/// What a Graph handler answers: the response, or a Graph error.
pub(crate) type Answer = Result<Response, GraphError>;

/// A Graph error. `status` is what Graph uses for that code (mostly 400).
#[derive(Debug, Clone)]
pub(crate) struct GraphError {
    pub status: StatusCode,
    pub message: String,
    pub kind: &'static str,
    pub code: u32,
    pub subcode: Option<u32>,
    pub transient: bool,
    pub extra_headers: Vec<(&'static str, String)>,
}

impl GraphError {
    pub fn new(code: u32, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            kind: "OAuthException",
            code,
            subcode: None,
            transient: false,
            extra_headers: Vec::new(),
        }
    }

    pub fn subcode(mut self, subcode: u32) -> Self {
        self.subcode = Some(subcode);
        self
    }

    pub fn status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    pub fn kind(mut self, kind: &'static str) -> Self {
        self.kind = kind;
        self
    }

    pub fn transient(mut self) -> Self {
        self.transient = true;
        self
    }

    pub fn header(mut self, name: &'static str, value: String) -> Self {
        self.extra_headers.push((name, value));
        self
    }
}

fn trace_id() -> String {
    random_b64(9).chars().filter(char::is_ascii_alphanumeric).collect()
}

impl IntoResponse for GraphError {
    fn into_response(self) -> Response {
        let trace = trace_id();
        let mut err = json!({
            "message": self.message,
            "type": self.kind,
            "code": self.code,
            "fbtrace_id": trace,
        });
        if let Some(sub) = self.subcode {
            err["error_subcode"] = json!(sub);
        }
        if self.transient {
            err["is_transient"] = json!(true);
        }
        let mut resp = (self.status, axum::Json(json!({ "error": err }))).into_response();
        let h = resp.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&trace) {
            h.insert(HeaderName::from_static("x-fb-trace-id"), v);
        }
        if self.code == 190 || self.code == 104 {
            // Graph names the token problem in WWW-Authenticate too.
            let msg: String = self.message.chars().filter(|c| *c != '"').collect();
            if let Ok(v) = HeaderValue::from_str(&format!(
                "OAuth \"Facebook Platform\" \"invalid_token\" \"{msg}\""
            )) {
                h.insert(header::WWW_AUTHENTICATE, v);
            }
        }
        for (name, value) in self.extra_headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                h.insert(HeaderName::from_static(name), v);
            }
        }
        resp
    }
}

/// A request to a platform's `/graph/{*rest}` route, as its dispatcher
/// reads it: the method, the path after `/graph`, the parameters (query,
/// form or JSON body) and the headers. Unparsable parameters are refused
/// with Graph's own error.
pub(crate) struct GraphRequest {
    pub method: Method,
    rest: String,
    pub params: HashMap<String, String>,
    pub headers: HeaderMap,
}

impl GraphRequest {
    /// The path segments without an optional leading version.
    pub fn segments(&self) -> Vec<&str> {
        segments(&self.rest)
    }
}

impl<S: Send + Sync> FromRequest<S> for GraphRequest {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let Path(rest) = Path::<String>::from_request_parts(&mut parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let query = parts.uri.query().map(str::to_owned);
        let (method, headers) = (parts.method.clone(), parts.headers.clone());
        let body = Bytes::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(IntoResponse::into_response)?;
        let params = params(query.as_deref(), &body).map_err(IntoResponse::into_response)?;
        Ok(Self { method, rest, params, headers })
    }
}

/// One Graph call as a platform's dispatcher hands it on: the platform's
/// handler context, the merged parameters and the headers.
pub(crate) struct Call<'a, C> {
    pub ctx: &'a C,
    pub params: &'a HashMap<String, String>,
    pub headers: &'a HeaderMap,
}

impl<C> Call<'_, C> {
    /// The call's access token, or Graph's code 104.
    pub fn token(&self) -> Result<String, GraphError> {
        token_of(self.params, self.headers).ok_or_else(no_token)
    }
}

/// The request's access token: `access_token` parameter or Bearer header.
pub(crate) fn token_of(params: &HashMap<String, String>, headers: &HeaderMap) -> Option<String> {
    params.get("access_token").filter(|t| !t.is_empty()).cloned().or_else(|| bearer(headers))
}

pub(crate) fn no_token() -> GraphError {
    GraphError::new(104, "An access token is required to request this resource.")
}

/// Graph's answer for a token `check` refused.
pub(crate) fn refusal(r: &Refusal, app_id: &str, now: Instant) -> GraphError {
    match r {
        Refusal::Unknown | Refusal::WrongKind | Refusal::Spent => {
            GraphError::new(190, "Invalid OAuth access token - Cannot parse access token")
        }
        Refusal::Expired { at } => {
            let ago = now.saturating_duration_since(*at);
            let when = Utc::now() - chrono::Duration::from_std(ago).unwrap_or_default();
            let fmt = "%A, %d-%b-%y %H:%M:%S UTC";
            GraphError::new(
                190,
                format!(
                    "Error validating access token: Session has expired on {}. The current time is {}.",
                    when.format(fmt),
                    Utc::now().format(fmt)
                ),
            )
            .subcode(463)
        }
        Refusal::Dead(Death::Revoked | Death::Deauthorized) => GraphError::new(
            190,
            format!(
                "Error validating access token: The user has not authorized application {app_id}."
            ),
        )
        .subcode(458),
        Refusal::Dead(Death::PasswordChanged) => GraphError::new(
            190,
            "Error validating access token: The session has been invalidated because the user \
             changed their password or Facebook has changed the session for security reasons.",
        )
        .subcode(460),
        Refusal::Dead(Death::Checkpoint) => GraphError::new(
            190,
            "Error validating access token: You cannot access the app till you log in to \
             www.facebook.com and follow the instructions given.",
        )
        .subcode(459),
    }
}

pub(crate) fn missing_param(name: &str) -> GraphError {
    GraphError::new(100, format!("(#100) The parameter {name} is required"))
}

pub(crate) fn invalid_param(message: impl Into<String>) -> GraphError {
    GraphError::new(100, format!("(#100) {}", message.into()))
}

/// Graph's answer when `id` is not an object the caller may touch.
pub(crate) fn no_such_object(method: &str, id: &str) -> GraphError {
    GraphError::new(
        100,
        format!(
            "Unsupported {method} request. Object with ID '{id}' does not exist, cannot be loaded \
             due to missing permissions, or does not support this operation. Please read the \
             Graph API documentation at https://developers.facebook.com/docs/graph-api"
        ),
    )
    .kind("GraphMethodException")
    .subcode(33)
}

pub(crate) fn unknown_path(path: &str) -> GraphError {
    GraphError::new(2500, format!("Unknown path components: /{path}"))
}

/// Injected outage: Graph's transient code 2.
pub(crate) fn outage(status: StatusCode) -> Response {
    GraphError::new(2, "An unexpected error has occurred. Please retry your request later.")
        .status(status)
        .transient()
        .into_response()
}

/// Content refused by policy (reject-content fault): code 368.
pub(crate) fn content_refused() -> GraphError {
    GraphError::new(368, "The action attempted has been deemed abusive or is otherwise disallowed")
        .subcode(1_390_008)
}

/// A code's failure in Graph's own words (Facebook and Threads code exchange).
pub(crate) fn code_error(e: CodeError) -> GraphError {
    match e {
        CodeError::Unknown | CodeError::WrongClient => {
            GraphError::new(100, "Invalid verification code format.")
        }
        CodeError::Spent => {
            GraphError::new(100, "This authorization code has been used.").subcode(36009)
        }
        CodeError::Expired => {
            GraphError::new(100, "This authorization code has expired.").subcode(36007)
        }
        CodeError::RedirectMismatch => GraphError::new(
            100,
            "Error validating verification code. Please make sure your redirect_uri is identical \
             to the one you used in the OAuth dialog request",
        )
        .subcode(36008),
    }
}

pub(crate) fn bad_client_id() -> GraphError {
    GraphError::new(101, "Error validating application. Invalid application ID.")
}

pub(crate) fn bad_client_secret() -> GraphError {
    GraphError::new(1, "Error validating client secret.")
}

/// A Graph call's parameters: the query, then a form or JSON body (a JSON value that is not a
/// string is kept as its JSON text).
pub(crate) fn params(
    query: Option<&str>,
    body: &[u8],
) -> Result<HashMap<String, String>, GraphError> {
    let mut params = query_and_form(query, body);
    if body.starts_with(b"{") {
        let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) else {
            return Err(invalid_param("Invalid JSON in request body"));
        };
        for (k, v) in map {
            let s = match v {
                Value::String(s) => s,
                other => other.to_string(),
            };
            params.entry(k).or_insert(s);
        }
    }
    Ok(params)
}

/// Path segments without an optional leading `vNN.N` version.
pub(crate) fn segments(path: &str) -> Vec<&str> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segs.first() {
        Some(v) if is_version(v) => segs[1..].to_vec(),
        _ => segs,
    }
}

fn is_version(s: &str) -> bool {
    let Some(rest) = s.strip_prefix('v') else { return false };
    let mut parts = rest.splitn(2, '.');
    let major = parts.next().unwrap_or("");
    let minor = parts.next().unwrap_or("0");
    !major.is_empty()
        && major.bytes().all(|b| b.is_ascii_digit())
        && minor.bytes().all(|b| b.is_ascii_digit())
}

/// What each control action does to a Meta user's tokens.
pub(crate) fn account_action(
    accounts: &mut Accounts,
    username: &str,
    action: &AccountAction,
    now: Instant,
) -> Option<usize> {
    match action {
        AccountAction::Revoke => accounts.kill_user(username, Death::Revoked, |_| true),
        AccountAction::Deauthorize => accounts.kill_user(username, Death::Deauthorized, |_| true),
        AccountAction::PasswordChange => {
            accounts.kill_user(username, Death::PasswordChanged, |_| true)
        }
        AccountAction::SecurityCheckpoint => {
            accounts.kill_user(username, Death::Checkpoint, |_| true)
        }
        AccountAction::Expire => accounts.expire_user(username, now, |t| t.kind.is_access()),
        AccountAction::RemoveScope(scope) => accounts.remove_scope(username, scope),
    }
}

/// Graph's timestamp format: `2024-05-01T12:00:00+0000`.
pub(crate) fn timestamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%z").to_string()
}

/// `fields=a,b` as a list; `default` when absent.
pub(crate) fn fields(params: &HashMap<String, String>, default: &[&str]) -> Vec<String> {
    match params.get("fields").filter(|f| !f.trim().is_empty()) {
        Some(f) => f.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect(),
        None => default.iter().map(|s| (*s).to_owned()).collect(),
    }
}

/// Picks `fields` out of `node`; an unknown field is Graph's code 100.
pub(crate) fn select(
    node: &Value,
    wanted: &[String],
    node_type: &str,
) -> Result<Value, GraphError> {
    let mut out = serde_json::Map::new();
    for f in wanted {
        match node.get(f) {
            Some(v) => {
                out.insert(f.clone(), v.clone());
            }
            None => {
                return Err(invalid_param(format!(
                    "Tried accessing nonexisting field ({f}) on node type ({node_type})"
                )))
            }
        }
    }
    if let Some(id) = node.get("id") {
        out.entry("id").or_insert_with(|| id.clone());
    }
    Ok(Value::Object(out))
}

/// Graph throttling: `code` with a usage header; `business` picks
/// `x-business-use-case-usage` over `x-app-usage`.
pub(crate) fn throttled(
    code: u32,
    message: &str,
    business: Option<&str>,
    until: Instant,
) -> Response {
    let minutes = retry_after_secs(until).div_ceil(60);
    let mut e = GraphError::new(code, message).status(StatusCode::FORBIDDEN).transient();
    e = match business {
        Some(kind) => e.header(
            "x-business-use-case-usage",
            json!({ "0": [{ "type": kind, "call_count": 100, "total_cputime": 100, "total_time": 100, "estimated_time_to_regain_access": minutes }] }).to_string(),
        ),
        None => e.header("x-app-usage", json!({ "call_count": 100, "total_cputime": 100, "total_time": 100 }).to_string()),
    };
    e.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_segments() {
        assert_eq!(segments("/v21.0/me/accounts"), vec!["me", "accounts"]);
        assert_eq!(segments("/v1.0/me"), vec!["me"]);
        assert_eq!(segments("/me"), vec!["me"]);
        assert_eq!(segments("/vid/feed"), vec!["vid", "feed"]);
        assert_eq!(segments("/123/media"), vec!["123", "media"]);
    }
}
