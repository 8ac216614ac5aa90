//! TikTok's authorize rules (`/v2/auth/authorize/`): the client is the
//! `client_key`, PKCE is optional, every error is TikTok's page, and the
//! redirect carries the granted `scopes`.

use std::collections::HashMap;

use super::{Ctx, PLATFORM};
use crate::accounts::{AuthRequest, Code, Pkce};
use crate::authorize::{required, split_scopes, Authorizer, AuthzError, ClientCheck};

const KNOWN_SCOPES: &[&str] = &[
    "user.info.basic",
    "user.info.profile",
    "user.info.stats",
    "video.list",
    "video.publish",
    "video.upload",
];

/// How the authorize request names the client, and the pages for a bad one.
const CLIENT: ClientCheck = ClientCheck {
    param: "client_key",
    bad_client: "Something went wrong. error_type: client_key",
    bad_redirect: "Something went wrong. error_type: redirect_uri",
};

impl Authorizer for Ctx {
    fn title(&self) -> &'static str {
        "TikTok: Authorize"
    }
    fn carried(&self) -> &'static [&'static str] {
        &[
            "client_key",
            "redirect_uri",
            "response_type",
            "scope",
            "state",
            "code_challenge",
            "code_challenge_method",
        ]
    }
    fn deny_pairs(&self) -> Vec<(&'static str, &'static str)> {
        vec![
            ("error", "access_denied"),
            ("error_description", "The user denied the authorization request."),
        ]
    }
    fn success_extra(&self, request: &AuthRequest) -> Vec<(&'static str, String)> {
        vec![("scopes", request.scopes.join(","))]
    }

    fn validate(&self, params: &HashMap<String, String>) -> Result<AuthRequest, AuthzError> {
        let (client_key, redirect_uri) = CLIENT.apply(&self.common, PLATFORM, params)?;
        if required(params, "response_type") != Some("code") {
            return Err(AuthzError::Page("Something went wrong. error_type: response_type".into()));
        }
        let scopes = split_scopes(required(params, "scope").unwrap_or(""));
        if scopes.is_empty() || scopes.iter().any(|s| !KNOWN_SCOPES.contains(&s.as_str())) {
            return Err(AuthzError::Page("Something went wrong. error_type: scope".into()));
        }
        let pkce = required(params, "code_challenge").map(|c| Pkce {
            challenge: c.to_owned(),
            method: params.get("code_challenge_method").cloned().unwrap_or_else(|| "S256".into()),
        });
        Ok(AuthRequest {
            pkce,
            offline: true,
            ..AuthRequest::plain(client_key, redirect_uri, scopes, params.get("state").cloned())
        })
    }

    fn issue_code(&self, request: &AuthRequest, username: &str) -> String {
        let mut s = self.store();
        let user = s.accounts.sign_in(username, |_| {
            (uuid::Uuid::new_v4().to_string(), uuid::Uuid::new_v4().to_string())
        });
        s.accounts.issue_code(Code {
            pkce: request.pkce.clone(),
            offline: true,
            ..Code::for_request(request, user.key, &self.common.clock)
        })
    }
}
