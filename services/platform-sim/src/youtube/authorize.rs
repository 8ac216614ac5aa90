//! Google's authorize rules (`/o/oauth2/v2/auth`): every error is Google's
//! "Error 400" page; `access_type=offline` asks for a refresh token, which
//! Google gives on the first consent only, or again with `prompt=consent`.

use std::collections::HashMap;

use super::{Ctx, PLATFORM, YT, YT_FORCE_SSL, YT_PARTNER, YT_READONLY, YT_UPLOAD};
use crate::accounts::{AuthRequest, Code, Kind, Pkce};
use crate::authorize::{required, Authorizer, AuthzError, ClientCheck};
use crate::support::random_b64;

const KNOWN_SCOPES: &[&str] = &[
    "openid",
    "email",
    "profile",
    "https://www.googleapis.com/auth/userinfo.email",
    "https://www.googleapis.com/auth/userinfo.profile",
    YT,
    YT_UPLOAD,
    YT_READONLY,
    YT_FORCE_SSL,
    YT_PARTNER,
];

/// Google's error page text: `Error 400: invalid_request. …`.
fn page(e: &str, d: &str) -> AuthzError {
    AuthzError::Page(format!("Error {e}: {d}"))
}

/// `scope` (space-separated, all known).
fn scopes(params: &HashMap<String, String>) -> Result<Vec<String>, AuthzError> {
    let scopes: Vec<String> =
        required(params, "scope").unwrap_or("").split_whitespace().map(str::to_owned).collect();
    if scopes.is_empty() {
        return Err(page("400", "invalid_request. Missing required parameter: scope"));
    }
    if let Some(bad) = scopes.iter().find(|s| !KNOWN_SCOPES.contains(&s.as_str())) {
        return Err(page(
            "400",
            &format!("invalid_scope. Some requested scopes were invalid: {bad}"),
        ));
    }
    Ok(scopes)
}

/// `code_challenge` with its method (`plain` when absent), if any.
fn pkce(params: &HashMap<String, String>) -> Result<Option<Pkce>, AuthzError> {
    let Some(challenge) = required(params, "code_challenge") else { return Ok(None) };
    let method = params.get("code_challenge_method").map_or("plain", String::as_str);
    if method != "S256" && method != "plain" {
        return Err(page("400", "invalid_request. Invalid code_challenge_method"));
    }
    Ok(Some(Pkce { challenge: challenge.to_owned(), method: method.to_owned() }))
}

/// How the authorize request names the client, and the pages for a bad one.
const CLIENT: ClientCheck = ClientCheck {
    param: "client_id",
    bad_client: "Error 401: invalid_client. The OAuth client was not found.",
    bad_redirect: "Error 400: redirect_uri_mismatch",
};

impl Authorizer for Ctx {
    fn title(&self) -> &'static str {
        "Sign in with Google"
    }
    fn carried(&self) -> &'static [&'static str] {
        &[
            "client_id",
            "redirect_uri",
            "response_type",
            "scope",
            "state",
            "access_type",
            "prompt",
            "code_challenge",
            "code_challenge_method",
            "include_granted_scopes",
            "login_hint",
        ]
    }

    fn validate(&self, params: &HashMap<String, String>) -> Result<AuthRequest, AuthzError> {
        let (client_id, redirect_uri) = CLIENT.apply(&self.common, PLATFORM, params)?;
        match required(params, "response_type") {
            Some("code") => {}
            None => {
                return Err(page(
                    "400",
                    "invalid_request. Required parameter is missing: response_type",
                ))
            }
            Some(other) => {
                return Err(page(
                    "400",
                    &format!("invalid_request. Invalid response_type: {other}"),
                ))
            }
        }
        let scopes = scopes(params)?;
        let offline = match params.get("access_type").map(String::as_str) {
            None | Some("online") => false,
            Some("offline") => true,
            Some(other) => {
                return Err(page("400", &format!("invalid_request. Invalid access_type: {other}")))
            }
        };
        let pkce = pkce(params)?;
        let prompt_consent =
            params.get("prompt").is_some_and(|p| p.split_whitespace().any(|v| v == "consent"));
        Ok(AuthRequest {
            pkce,
            offline,
            prompt_consent,
            ..AuthRequest::plain(client_id, redirect_uri, scopes, params.get("state").cloned())
        })
    }

    fn issue_code(&self, request: &AuthRequest, username: &str) -> String {
        let mut s = self.store();
        let user = s.accounts.sign_in(username, |_| {
            let id: String = random_b64(24)
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .take(22)
                .collect();
            (format!("UC{id}"), String::new())
        });
        // Google returns a refresh token on the first offline consent only,
        // or again when the app asks for `prompt=consent`.
        let first_consent =
            !s.accounts.has_live_grant(&user.key, &request.client_id, Kind::Refresh);
        s.accounts.issue_code(Code {
            pkce: request.pkce.clone(),
            offline: request.offline && (request.prompt_consent || first_consent),
            ..Code::for_request(request, user.key, &self.common.clock)
        })
    }
}
