//! The Meta-login authorize rules (`/oauth/authorize`): the platform's
//! basic scope is required; every error is the platform's page; no PKCE.

use std::collections::HashMap;

use super::Ctx;
use crate::accounts::{AuthRequest, Code};
use crate::authorize::{required, split_scopes, Authorizer, AuthzError, ClientCheck};

/// How the authorize request names the client, and the pages for a bad one.
const CLIENT: ClientCheck = ClientCheck {
    param: "client_id",
    bad_client: "Invalid platform app",
    bad_redirect: "Invalid redirect_uri",
};

impl Authorizer for Ctx {
    fn title(&self) -> &'static str {
        self.cfg().title
    }
    fn carried(&self) -> &'static [&'static str] {
        &["client_id", "redirect_uri", "response_type", "scope", "state"]
    }
    fn deny_pairs(&self) -> Vec<(&'static str, &'static str)> {
        vec![
            ("error", "access_denied"),
            ("error_reason", "user_denied"),
            ("error_description", "The user denied your request."),
        ]
    }

    fn validate(&self, params: &HashMap<String, String>) -> Result<AuthRequest, AuthzError> {
        let cfg = self.cfg();
        let (client_id, redirect_uri) = CLIENT.apply(&self.common, cfg.platform, params)?;
        if required(params, "response_type") != Some("code") {
            return Err(AuthzError::Page("Invalid response_type: must be code".into()));
        }
        let scopes = split_scopes(required(params, "scope").unwrap_or(""));
        if let Some(bad) = scopes.iter().find(|s| !cfg.known_scopes.contains(&s.as_str())) {
            return Err(AuthzError::Page(format!("Invalid Scopes: {bad}")));
        }
        if !scopes.iter().any(|s| s == cfg.basic_scope) {
            return Err(AuthzError::Page(format!(
                "Invalid Scopes: {} is required",
                cfg.basic_scope
            )));
        }
        Ok(AuthRequest::plain(client_id, redirect_uri, scopes, params.get("state").cloned()))
    }

    fn issue_code(&self, request: &AuthRequest, username: &str) -> String {
        let cfg = self.cfg();
        let mut store = self.store();
        let user = store
            .accounts
            .sign_in(username, |n| ((cfg.first_user_id + n).to_string(), String::new()));
        store.accounts.issue_code(Code::for_request(request, user.key, &self.common.clock))
    }
}
