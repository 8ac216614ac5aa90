//! LinkedIn's authorize rules (`/oauth/v2/authorization`): no PKCE; a bad
//! client or redirect_uri gets the error page, anything else wrong goes back
//! to the redirect_uri.

use std::collections::HashMap;

use super::{Ctx, PLATFORM};
use crate::accounts::{AuthRequest, Code};
use crate::authorize::{required, split_scopes, Authorizer, AuthzError, ClientCheck};
use crate::support::random_b64;

const KNOWN_SCOPES: &[&str] = &[
    "openid",
    "profile",
    "email",
    "w_member_social",
    "r_member_social",
    "r_basicprofile",
    "r_liteprofile",
    "r_emailaddress",
    "w_organization_social",
    "r_organization_social",
    "rw_organization_admin",
];

/// How the authorize request names the client, and the pages for a bad one.
const CLIENT: ClientCheck = ClientCheck {
    param: "client_id",
    bad_client: "The passed in client_id is invalid",
    bad_redirect: "The redirect_uri does not match the registered value",
};

impl Authorizer for Ctx {
    fn title(&self) -> &'static str {
        "LinkedIn: Sign in"
    }
    fn carried(&self) -> &'static [&'static str] {
        &["response_type", "client_id", "redirect_uri", "scope", "state"]
    }
    fn deny_pairs(&self) -> Vec<(&'static str, &'static str)> {
        vec![
            ("error", "user_cancelled_authorize"),
            ("error_description", "The user cancelled the authorization"),
        ]
    }

    fn validate(&self, params: &HashMap<String, String>) -> Result<AuthRequest, AuthzError> {
        let (client_id, redirect_uri) = CLIENT.apply(&self.common, PLATFORM, params)?;
        let back = |error: &str, description: String| AuthzError::Redirect {
            redirect_uri: redirect_uri.to_owned(),
            pairs: [("error", error.to_owned()), ("error_description", description)]
                .into_iter()
                .chain(params.get("state").map(|s| ("state", s.clone())))
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
        };
        if required(params, "response_type") != Some("code") {
            return Err(back("invalid_request", "Invalid response_type".into()));
        }
        let scopes = split_scopes(required(params, "scope").unwrap_or(""));
        if scopes.is_empty() {
            return Err(back(
                "invalid_request",
                "A required parameter \"scope\" is missing".into(),
            ));
        }
        if let Some(bad) = scopes.iter().find(|s| !KNOWN_SCOPES.contains(&s.as_str())) {
            return Err(back(
                "unauthorized_scope_error",
                format!("Scope \"{bad}\" is not authorized for your application"),
            ));
        }
        Ok(AuthRequest::plain(client_id, redirect_uri, scopes, params.get("state").cloned()))
    }

    fn issue_code(&self, request: &AuthRequest, username: &str) -> String {
        let mut a = self.accounts();
        let user = a.sign_in(username, |_| {
            let sub: String =
                random_b64(12).chars().filter(char::is_ascii_alphanumeric).take(10).collect();
            (sub, String::new())
        });
        a.issue_code(Code::for_request(request, user.key, &self.common.clock))
    }
}
