//! The authorize step every OAuth platform shares: validate the request the
//! platform's way, render a consent page (username, a ticked box per scope,
//! Approve / Deny) or, with `sim_approve_as=<username>`, approve at once and
//! redirect with a code. Like Facebook's, Instagram's, LinkedIn's and
//! TikTok's own screens, the page lets the user untick permissions: the code
//! then grants only the ticked ones, and so do the tokens it is exchanged for.
//! Scripts do the same with `sim_grant_scopes=a,b` beside `sim_approve_as`.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, MethodRouter};

use crate::accounts::{valid_username, AuthRequest};
use crate::state::{Common, Ctx};
use crate::support::{
    error_page, hidden_inputs, html_escape, parse_form, redirect_with, valid_redirect_uri,
};

/// Why an authorize request fails.
#[derive(Debug)]
pub(crate) enum AuthzError {
    /// Shown on the platform's own page: client or redirect_uri not trusted.
    Page(String),
    /// Sent back to the (valid) redirect_uri as query parameters.
    Redirect { redirect_uri: String, pairs: Vec<(String, String)> },
}

/// One platform's authorize rules, implemented on its handler context.
pub(crate) trait Authorizer {
    /// Title of the consent and error pages, e.g. "Sign in with LinkedIn".
    fn title(&self) -> &'static str;
    fn validate(&self, params: &HashMap<String, String>) -> Result<AuthRequest, AuthzError>;
    /// Signs `username` in and issues a code for `request`.
    fn issue_code(&self, request: &AuthRequest, username: &str) -> String;
    /// Query parameters of the redirect when the user denies.
    fn deny_pairs(&self) -> Vec<(&'static str, &'static str)> {
        vec![("error", "access_denied")]
    }
    /// Extra parameters beside `code` and `state` on success (TikTok: `scopes`).
    fn success_extra(&self, _request: &AuthRequest) -> Vec<(&'static str, String)> {
        Vec::new()
    }
    /// Parameters the consent form must carry back.
    fn carried(&self) -> &'static [&'static str];
}

fn fail<S>(a: &Ctx<S>, e: AuthzError) -> Response
where
    Ctx<S>: Authorizer,
{
    match e {
        AuthzError::Page(detail) => error_page(a.title(), &detail),
        AuthzError::Redirect { redirect_uri, pairs } => {
            let pairs: Vec<(&str, &str)> =
                pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            redirect_with(&redirect_uri, &pairs)
        }
    }
}

/// The hidden field that says the form had a box per scope, so an unticked box
/// (which a browser does not send) means "not granted".
const SCOPE_CHOICE: &str = "sim_scope_choice";
/// A ticked box: `grant_scope:<scope>=on`.
const GRANT_PREFIX: &str = "grant_scope:";

/// The scopes the user granted: those of `requested` that `params` names, by
/// the script's `sim_grant_scopes` or by the consent form's ticked boxes; all
/// of them when neither says otherwise.
fn granted_scopes(requested: &[String], params: &HashMap<String, String>) -> Vec<String> {
    if let Some(list) = params.get("sim_grant_scopes") {
        let chosen = split_scopes(list);
        return requested.iter().filter(|s| chosen.contains(s)).cloned().collect();
    }
    if params.contains_key(SCOPE_CHOICE) {
        return requested
            .iter()
            .filter(|s| params.contains_key(&format!("{GRANT_PREFIX}{s}")))
            .cloned()
            .collect();
    }
    requested.to_vec()
}

fn approve<S>(a: &Ctx<S>, request: &AuthRequest, username: &str, granted: Vec<String>) -> Response
where
    Ctx<S>: Authorizer,
{
    if !valid_username(username) {
        return error_page(a.title(), "Invalid username");
    }
    if granted.len() < request.scopes.len() {
        tracing::info!(title = a.title(), username, granted = ?granted, "user unticked permissions");
    }
    let request = &AuthRequest { scopes: granted, ..request.clone() };
    let code = a.issue_code(request, username);
    a.common.record_secret(&code);
    tracing::info!(title = a.title(), username, "authorization approved");
    let extra = a.success_extra(request);
    let mut pairs: Vec<(&str, &str)> = vec![("code", code.as_str())];
    if let Some(state) = &request.state {
        pairs.push(("state", state));
    }
    pairs.extend(extra.iter().map(|(k, v)| (*k, v.as_str())));
    redirect_with(&request.redirect_uri, &pairs)
}

/// GET: the consent page, or an immediate approval with `sim_approve_as`.
pub(crate) fn page<S>(a: &Ctx<S>, params: &HashMap<String, String>) -> Response
where
    Ctx<S>: Authorizer,
{
    let request = match a.validate(params) {
        Ok(r) => r,
        Err(e) => return fail(a, e),
    };
    if let Some(username) = params.get("sim_approve_as") {
        let granted = granted_scopes(&request.scopes, params);
        return approve(a, &request, username.trim(), granted);
    }
    let mut carried: Vec<(&str, &str)> =
        a.carried().iter().filter_map(|k| params.get(*k).map(|v| (*k, v.as_str()))).collect();
    carried.push((SCOPE_CHOICE, "1"));
    let hidden = hidden_inputs(&carried);
    let scopes: String = request
        .scopes
        .iter()
        .map(|s| {
            format!(
                "<li><label><input type=\"checkbox\" name=\"{GRANT_PREFIX}{s}\" checked> {s}</label></li>",
                s = html_escape(s)
            )
        })
        .collect();
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title></head>\
         <body><h1>{title}</h1><form method=\"post\" action=\"\">{hidden}\
         <p>{app} would like to (untick what you do not allow):</p><ul>{scopes}</ul>\
         <label>Username <input type=\"text\" name=\"username\" value=\"demo_user\"></label>\
         <button type=\"submit\" name=\"decision\" value=\"approve\">Allow</button>\
         <button type=\"submit\" name=\"decision\" value=\"deny\">Cancel</button>\
         </form></body></html>",
        title = html_escape(a.title()),
        app = html_escape(&request.client_id),
    );
    (StatusCode::OK, Html(body)).into_response()
}

/// POST: the consent form's decision (its hidden fields are validated again).
pub(crate) fn decision<S>(a: &Ctx<S>, params: &HashMap<String, String>) -> Response
where
    Ctx<S>: Authorizer,
{
    let request = match a.validate(params) {
        Ok(r) => r,
        Err(e) => return fail(a, e),
    };
    match params.get("decision").map(String::as_str) {
        Some("approve") => {
            let username = params.get("username").map_or("demo_user", |u| u.trim());
            let granted = granted_scopes(&request.scopes, params);
            approve(a, &request, username, granted)
        }
        Some("deny") => {
            let mut pairs = a.deny_pairs();
            if let Some(state) = &request.state {
                pairs.push(("state", state));
            }
            redirect_with(&request.redirect_uri, &pairs)
        }
        _ => error_page(a.title(), "Missing required parameter: decision"),
    }
}

/// The authorize path of a platform whose handler context follows its
/// rules: GET shows the page, POST takes the decision.
pub(crate) fn endpoint<S: Send + Sync + 'static>() -> MethodRouter<Ctx<S>>
where
    Ctx<S>: Authorizer,
{
    get(show::<S>).post(decide::<S>)
}

/// `GET <authorize path>`: `page` over the query.
pub(crate) async fn show<S>(State(a): State<Ctx<S>>, RawQuery(q): RawQuery) -> Response
where
    Ctx<S>: Authorizer,
{
    page(&a, &parse_form(q.unwrap_or_default().as_bytes()))
}

/// `POST <authorize path>`: `decision` over the form.
pub(crate) async fn decide<S>(State(a): State<Ctx<S>>, body: Bytes) -> Response
where
    Ctx<S>: Authorizer,
{
    decision(&a, &parse_form(&body))
}

/// How a platform's authorize request names its client, and what its page
/// says to a client or a redirect_uri it cannot trust: the first two checks
/// of every platform.
pub(crate) struct ClientCheck {
    /// The parameter naming the client (`client_id`; TikTok: `client_key`).
    pub param: &'static str,
    pub bad_client: &'static str,
    pub bad_redirect: &'static str,
}

impl ClientCheck {
    /// The client, registered for `platform`, and a valid redirect_uri.
    pub fn apply<'a>(
        &self,
        common: &Common,
        platform: &str,
        params: &'a HashMap<String, String>,
    ) -> Result<(&'a str, &'a str), AuthzError> {
        let client_id = required(params, self.param)
            .filter(|c| common.client(platform, c).is_some())
            .ok_or_else(|| AuthzError::Page(self.bad_client.to_owned()))?;
        let redirect_uri = required(params, "redirect_uri")
            .filter(|r| valid_redirect_uri(r))
            .ok_or_else(|| AuthzError::Page(self.bad_redirect.to_owned()))?;
        Ok((client_id, redirect_uri))
    }
}

/// A required, non-empty parameter.
pub(crate) fn required<'a>(params: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    params.get(name).map(String::as_str).filter(|v| !v.is_empty())
}

/// Splits a scope list on commas and/or spaces, dropping empties.
pub(crate) fn split_scopes(raw: &str) -> Vec<String> {
    raw.split([',', ' ']).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn requested() -> Vec<String> {
        ["openid", "profile", "w_member_social"].map(str::to_owned).to_vec()
    }

    #[test]
    fn without_a_choice_everything_asked_is_granted() {
        assert_eq!(granted_scopes(&requested(), &params(&[("state", "s")])), requested());
    }

    #[test]
    fn a_script_grants_only_what_it_names_and_never_more_than_asked() {
        let p = params(&[("sim_grant_scopes", "openid,profile,r_emailaddress")]);
        assert_eq!(granted_scopes(&requested(), &p), vec!["openid", "profile"]);
    }

    #[test]
    fn unticked_boxes_are_not_granted() {
        let p = params(&[(SCOPE_CHOICE, "1"), ("grant_scope:openid", "on")]);
        assert_eq!(granted_scopes(&requested(), &p), vec!["openid"]);
        let none = params(&[(SCOPE_CHOICE, "1")]);
        assert!(granted_scopes(&requested(), &none).is_empty());
    }
}
