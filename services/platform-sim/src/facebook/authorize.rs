//! Facebook's login dialog (`/dialog/oauth`, versioned or not): each bad
//! client, redirect or scope gets its own page; no PKCE.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::response::Response;

use super::{Ctx, PLATFORM};
use crate::accounts::{AuthRequest, Code};
use crate::authorize::{self, split_scopes, Authorizer, AuthzError, ClientCheck};

const FIRST_USER_ID: u64 = 10_000_000_000_000;
const FIRST_PAGE_ID: u64 = 100_000_000_000_000;

const KNOWN_SCOPES: &[&str] = &[
    "public_profile",
    "email",
    "pages_show_list",
    "pages_manage_posts",
    "pages_read_engagement",
    "pages_manage_metadata",
    "pages_read_user_content",
    "pages_manage_engagement",
    "business_management",
    "publish_video",
];

/// How the authorize request names the client, and the pages for a bad one.
const CLIENT: ClientCheck = ClientCheck {
    param: "client_id",
    bad_client: "Invalid App ID: The provided app ID does not look like a valid app ID.",
    bad_redirect: "URL Blocked: This redirect failed because the redirect URI is not whitelisted in the app's Client OAuth Settings.",
};

impl Authorizer for Ctx {
    fn title(&self) -> &'static str {
        "Log in with Facebook"
    }
    fn carried(&self) -> &'static [&'static str] {
        &["client_id", "redirect_uri", "response_type", "scope", "state"]
    }
    fn deny_pairs(&self) -> Vec<(&'static str, &'static str)> {
        vec![
            ("error", "access_denied"),
            ("error_code", "200"),
            ("error_description", "Permissions error"),
            ("error_reason", "user_denied"),
        ]
    }

    fn validate(&self, params: &HashMap<String, String>) -> Result<AuthRequest, AuthzError> {
        let (client_id, redirect_uri) = CLIENT.apply(&self.common, PLATFORM, params)?;
        if params.get("response_type").is_some_and(|r| r != "code") {
            return Err(AuthzError::Page("Unsupported response_type".into()));
        }
        let scopes = split_scopes(params.get("scope").map_or("public_profile", String::as_str));
        if let Some(bad) = scopes.iter().find(|s| !KNOWN_SCOPES.contains(&s.as_str())) {
            return Err(AuthzError::Page(format!("Invalid Scopes: {bad}")));
        }
        Ok(AuthRequest::plain(client_id, redirect_uri, scopes, params.get("state").cloned()))
    }

    fn issue_code(&self, request: &AuthRequest, username: &str) -> String {
        let mut a = self.accounts();
        let user = a.sign_in(username, |n| {
            ((FIRST_USER_ID + n).to_string(), (FIRST_PAGE_ID + n).to_string())
        });
        a.issue_code(Code::for_request(request, user.key, &self.common.clock))
    }
}

/// `GET /{version}/dialog/oauth`.
pub(crate) async fn page_versioned(
    ctx: State<Ctx>,
    Path(_version): Path<String>,
    query: RawQuery,
) -> Response {
    authorize::show(ctx, query).await
}

/// `POST /{version}/dialog/oauth`.
pub(crate) async fn decision_versioned(
    ctx: State<Ctx>,
    Path(_version): Path<String>,
    body: Bytes,
) -> Response {
    authorize::decide(ctx, body).await
}
