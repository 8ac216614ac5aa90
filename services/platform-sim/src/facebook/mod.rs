//! Facebook Pages: the login dialog on www.facebook.com (`/facebook/www`)
//! and the Graph API on graph.facebook.com (`/facebook/graph`): code
//! exchange, `fb_exchange_token`, `me`, `me/accounts` (Page tokens),
//! `{page-id}/feed` and `debug_token`. Every user owns exactly one Page.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use serde_json::{json, Value};

use crate::accounts::{self, Accounts, Code, Kind, Refusal, Token, TokenState, HOUR};
use crate::authorize::{self, required, split_scopes, AuthRequest, Authorizer, AuthzError};
use crate::faults::{self, FaultCfg};
use crate::graph::{self, GraphError};
use crate::state::{lock, AccountAction, Common, PlatformSim, PostRecord};
use crate::support::{json_no_store, parse_form, valid_redirect_uri};

const PLATFORM: &str = "facebook";
const SHORT_LIVED: Duration = HOUR;
const LONG_LIVED: Duration = Duration::from_secs(60 * 24 * 60 * 60);
const DATA_ACCESS: Duration = Duration::from_secs(90 * 24 * 60 * 60);
const FIRST_USER_ID: u64 = 10_000_000_000_000;
const FIRST_PAGE_ID: u64 = 100_000_000_000_000;
const USER_KINDS: &[Kind] = &[Kind::ShortLived, Kind::LongLived];
const ALL_KINDS: &[Kind] = &[Kind::ShortLived, Kind::LongLived, Kind::Page];

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

#[derive(Default)]
pub(crate) struct FacebookSim {
    accounts: Mutex<Accounts>,
}

#[derive(Clone)]
struct Ctx {
    sim: Arc<FacebookSim>,
    common: Arc<Common>,
}

impl Ctx {
    fn accounts(&self) -> std::sync::MutexGuard<'_, Accounts> {
        lock(&self.sim.accounts)
    }
}

impl PlatformSim for FacebookSim {
    fn name(&self) -> &'static str {
        PLATFORM
    }

    fn router(self: Arc<Self>, common: Arc<Common>) -> Router {
        let ctx = Ctx { sim: self, common: Arc::clone(&common) };
        let r = Router::new()
            .route("/www/{version}/dialog/oauth", get(authorize_page_v).post(authorize_decision_v))
            .route("/www/dialog/oauth", get(authorize_page).post(authorize_decision))
            .route("/graph/{*rest}", any(graph_dispatch))
            .with_state(ctx);
        let fc = FaultCfg { platform: PLATFORM, common, outage: graph::outage, rate_limited };
        faults::with_outages(r, &fc)
    }

    fn account_action(&self, username: &str, action: &AccountAction) -> Option<usize> {
        graph::account_action(&mut lock(&self.accounts), username, action, Instant::now())
    }

    fn posts(&self) -> Vec<PostRecord> {
        lock(&self.accounts).post_records(PLATFORM)
    }

    fn stats(&self) -> Value {
        lock(&self.accounts).stats_json()
    }
}

fn rate_limited(_: &Common, until: Instant) -> Response {
    crate::meta_login::throttled(
        80001,
        "There have been too many calls to this Page account. Wait a bit and try again.",
        Some("pages"),
        until,
    )
}

// ---- login dialog ---------------------------------------------------------

impl Authorizer for Ctx {
    fn common(&self) -> &Common {
        &self.common
    }
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
        let client_id = required(params, "client_id")
            .filter(|c| self.common.client(PLATFORM, c).is_some())
            .ok_or_else(|| {
                AuthzError::Page(
                    "Invalid App ID: The provided app ID does not look like a valid app ID.".into(),
                )
            })?;
        let redirect_uri = required(params, "redirect_uri")
            .filter(|r| valid_redirect_uri(r))
            .ok_or_else(|| {
                AuthzError::Page(
                    "URL Blocked: This redirect failed because the redirect URI is not whitelisted in the app's Client OAuth Settings.".into(),
                )
            })?;
        if params.get("response_type").is_some_and(|r| r != "code") {
            return Err(AuthzError::Page("Unsupported response_type".into()));
        }
        let scopes = split_scopes(params.get("scope").map_or("public_profile", String::as_str));
        if let Some(bad) = scopes.iter().find(|s| !KNOWN_SCOPES.contains(&s.as_str())) {
            return Err(AuthzError::Page(format!("Invalid Scopes: {bad}")));
        }
        Ok(AuthRequest {
            client_id: client_id.to_owned(),
            redirect_uri: redirect_uri.to_owned(),
            scopes,
            state: params.get("state").cloned(),
            pkce: None,
            offline: false,
            prompt_consent: false,
        })
    }

    fn issue_code(&self, request: &AuthRequest, username: &str) -> String {
        let mut a = self.accounts();
        let user = a.sign_in(username, |n| {
            ((FIRST_USER_ID + n).to_string(), (FIRST_PAGE_ID + n).to_string())
        });
        a.issue_code(Code::for_request(request, user.key, &self.common.clock))
    }
}

async fn authorize_page(State(ctx): State<Ctx>, RawQuery(q): RawQuery) -> Response {
    authorize::page(&ctx, &parse_form(q.unwrap_or_default().as_bytes()))
}

async fn authorize_decision(State(ctx): State<Ctx>, body: Bytes) -> Response {
    authorize::decision(&ctx, &parse_form(&body))
}

async fn authorize_page_v(
    State(ctx): State<Ctx>,
    Path(_version): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    authorize::page(&ctx, &parse_form(q.unwrap_or_default().as_bytes()))
}

async fn authorize_decision_v(
    State(ctx): State<Ctx>,
    Path(_version): Path<String>,
    body: Bytes,
) -> Response {
    authorize::decision(&ctx, &parse_form(&body))
}

// ---- Graph ----------------------------------------------------------------

async fn graph_dispatch(
    State(ctx): State<Ctx>,
    method: Method,
    Path(rest): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params = match graph::params(q.as_deref(), &body) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let segs = graph::segments(&rest);
    let is_get = method == Method::GET;
    if segs == ["oauth", "access_token"] {
        return access_token(&ctx, &params).unwrap_or_else(IntoResponse::into_response);
    }
    if let Some(until) = ctx.common.rate_limited_until(PLATFORM) {
        return rate_limited(&ctx.common, until);
    }
    let result = match (segs.as_slice(), is_get) {
        (["debug_token"], true) => debug_token(&ctx, &params),
        (["me"], true) => node(&ctx, &params, &headers, None),
        (["me", "accounts"], true) => me_accounts(&ctx, &params, &headers),
        ([id], true) => node(&ctx, &params, &headers, Some(id)),
        ([id, "feed"], false) => create_post(&ctx, &params, &headers, id, false),
        ([id, "photos"], false) => create_post(&ctx, &params, &headers, id, true),
        ([id, "feed" | "posts" | "published_posts"], true) => {
            list_posts(&ctx, &params, &headers, id)
        }
        ([first, ..], false) => Err(graph::no_such_object("post", first)),
        _ => Err(graph::unknown_path(&segs.join("/"))),
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

fn token_response(access: &str, expires_in: u64) -> Response {
    json_no_store(
        StatusCode::OK,
        json!({ "access_token": access, "token_type": "bearer", "expires_in": expires_in }),
    )
}

/// `oauth/access_token`: the code exchange, or `grant_type=fb_exchange_token`.
fn access_token(ctx: &Ctx, params: &HashMap<String, String>) -> Result<Response, GraphError> {
    let client_id =
        required(params, "client_id").ok_or_else(|| graph::missing_param("client_id"))?;
    let client = ctx.common.client(PLATFORM, client_id).ok_or_else(graph::bad_client_id)?;
    let secret =
        required(params, "client_secret").ok_or_else(|| graph::missing_param("client_secret"))?;
    if client.client_secret.as_deref() != Some(secret) {
        return Err(graph::bad_client_secret());
    }
    let clock = &ctx.common.clock;
    let now = clock.now();
    let (access, expires_in, what) = match params.get("grant_type").map(String::as_str) {
        Some("fb_exchange_token") => {
            let old = required(params, "fb_exchange_token")
                .ok_or_else(|| graph::missing_param("fb_exchange_token"))?;
            let mut a = ctx.accounts();
            let t =
                a.check(old, USER_KINDS, now).map_err(|r| graph::refusal(&r, client_id, now))?;
            if t.client_id != client_id {
                return Err(GraphError::new(
                    190,
                    "Invalid OAuth access token - Cannot parse access token",
                ));
            }
            let (token, expires_in) = accounts::timed(clock, Kind::LongLived, &t, LONG_LIVED);
            a.stats.tokens_issued += 1;
            (a.insert_token("EAAG", token), expires_in, "long-lived user token")
        }
        None | Some("authorization_code") => {
            let code = required(params, "code").ok_or_else(|| graph::missing_param("code"))?;
            let redirect_uri = required(params, "redirect_uri")
                .ok_or_else(|| graph::missing_param("redirect_uri"))?;
            let mut a = ctx.accounts();
            let code = a
                .redeem_code(code, client_id, Some(redirect_uri), now)
                .map_err(graph::code_error)?;
            let grant = a.new_grant();
            let base = accounts::grant_base(&code.user_key, client_id, code.scopes, grant, now);
            let (token, expires_in) = accounts::timed(clock, Kind::ShortLived, &base, SHORT_LIVED);
            a.stats.tokens_issued += 1;
            (a.insert_token("EAAG", token), expires_in, "short-lived user token")
        }
        Some(other) => {
            return Err(graph::invalid_param(format!("Unsupported grant_type: {other}")))
        }
    };
    ctx.common.record_secret(&access);
    tracing::info!(platform = PLATFORM, what, "token issued");
    Ok(token_response(&access, expires_in))
}

fn caller(
    ctx: &Ctx,
    params: &HashMap<String, String>,
    headers: &HeaderMap,
    kinds: &[Kind],
) -> Result<Token, GraphError> {
    let token = graph::token_of(params, headers).ok_or_else(graph::no_token)?;
    let now = ctx.common.clock.now();
    let a = ctx.accounts();
    a.check(&token, kinds, now).map_err(|r| {
        let app = a.token(&token).map(|t| t.client_id.clone()).unwrap_or_default();
        graph::refusal(&r, &app, now)
    })
}

fn user_node(u: &accounts::User, t: &Token) -> Value {
    let mut v = json!({ "id": u.id, "name": u.name });
    if t.has_scope("email") {
        v["email"] = json!(format!("{}@example.com", u.key));
    }
    v
}

fn page_node(u: &accounts::User) -> Value {
    json!({
        "id": u.secondary_id,
        "name": format!("{}'s Page", u.name),
        "category": "Personal blog",
        "category_list": [{ "id": "2700", "name": "Personal blog" }],
        "tasks": ["ADVERTISE", "ANALYZE", "CREATE_CONTENT", "MESSAGING", "MODERATE", "MANAGE"],
    })
}

/// Issues a Page token for the user of `t`: never expires when `t` is
/// long-lived, otherwise lapses with `t`.
fn page_token(ctx: &Ctx, t: &Token) -> String {
    let mut a = ctx.accounts();
    let token = Token {
        kind: Kind::Page,
        issued_at: ctx.common.clock.now(),
        expires_at: if t.kind == Kind::LongLived { None } else { t.expires_at },
        state: TokenState::Live,
        ..t.clone()
    };
    a.stats.tokens_issued += 1;
    let s = a.insert_token("EAAG", token);
    drop(a);
    ctx.common.record_secret(&s);
    s
}

fn permissions_error(message: &str) -> GraphError {
    GraphError::new(200, format!("(#200) {message}")).status(StatusCode::FORBIDDEN)
}

/// `GET /me` (user, or the Page for a Page token) and `GET /{id}`.
fn node(
    ctx: &Ctx,
    params: &HashMap<String, String>,
    headers: &HeaderMap,
    id: Option<&str>,
) -> Result<Response, GraphError> {
    let t = caller(ctx, params, headers, ALL_KINDS)?;
    let user = ctx
        .accounts()
        .user(&t.user_key)
        .cloned()
        .ok_or_else(|| graph::no_such_object("get", "me"))?;
    let fields = graph::fields(params, &["id", "name"]);
    let is_page = match id {
        None => t.kind == Kind::Page,
        Some(id) if id == user.secondary_id => true,
        Some(id) if id == user.id && t.kind != Kind::Page => false,
        Some(id) => return Err(graph::no_such_object("get", id)),
    };
    if !is_page {
        return Ok(
            axum::Json(graph::select(&user_node(&user, &t), &fields, "User")?).into_response()
        );
    }
    let mut node = page_node(&user);
    if fields.iter().any(|f| f == "access_token") {
        if t.kind == Kind::Page {
            return Err(permissions_error("Requires a user access token"));
        }
        if !t.has_scope("pages_show_list") {
            return Err(permissions_error("Permissions error"));
        }
        node["access_token"] = json!(page_token(ctx, &t));
    }
    Ok(axum::Json(graph::select(&node, &fields, "Page")?).into_response())
}

/// `GET /me/accounts`: the user's Pages with their Page tokens.
fn me_accounts(
    ctx: &Ctx,
    params: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<Response, GraphError> {
    let t = caller(ctx, params, headers, ALL_KINDS)?;
    if t.kind == Kind::Page {
        return Err(graph::invalid_param(
            "Tried accessing nonexisting field (accounts) on node type (Page)",
        ));
    }
    if !t.has_scope("pages_show_list") {
        return Err(permissions_error("Permissions error"));
    }
    let user = ctx
        .accounts()
        .user(&t.user_key)
        .cloned()
        .ok_or_else(|| graph::no_such_object("get", "me"))?;
    let mut page = page_node(&user);
    page["access_token"] = json!(page_token(ctx, &t));
    Ok(axum::Json(json!({
        "data": [page],
        "paging": { "cursors": { "before": "QVFIUmsim", "after": "QVFIUmsim" } },
    }))
    .into_response())
}

/// `POST /{page-id}/feed` with `message` (and/or `link`), or `POST /{page-id}/photos` with an
/// image `url` and an optional `message` (or `caption`); Page token only.
fn create_post(
    ctx: &Ctx,
    params: &HashMap<String, String>,
    headers: &HeaderMap,
    id: &str,
    photo: bool,
) -> Result<Response, GraphError> {
    let t = caller(ctx, params, headers, ALL_KINDS)?;
    let user = ctx
        .accounts()
        .user(&t.user_key)
        .cloned()
        .ok_or_else(|| graph::no_such_object("post", id))?;
    if id != user.secondary_id && id != "me" {
        return Err(graph::no_such_object("post", id));
    }
    if t.kind != Kind::Page
        || !t.has_scope("pages_manage_posts")
        || !t.has_scope("pages_read_engagement")
    {
        return Err(permissions_error(
            "If posting to a page, requires both pages_read_engagement and pages_manage_posts as an admin with sufficient administrative permission",
        ));
    }
    let message = params.get("message").or(params.get("caption")).cloned().unwrap_or_default();
    if photo {
        let url = required(params, "url").ok_or_else(|| graph::missing_param("url"))?;
        if !url::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https")) {
            return Err(graph::invalid_param("The parameter url is not a valid URL"));
        }
    } else if message.trim().is_empty() && required(params, "link").is_none() {
        return Err(graph::invalid_param("Missing message or attachment"));
    }
    if message.chars().count() > 63_206 {
        return Err(graph::invalid_param("Message is too long"));
    }
    if ctx.common.content_rejected(PLATFORM) {
        return Err(graph::content_refused());
    }
    let page_id = user.secondary_id.clone();
    let post = ctx.accounts().record_post(&t.user_key, &message, |n| {
        format!("{page_id}_{}", 122_000_000_000_000_000u64 + n)
    });
    tracing::info!(platform = PLATFORM, post_id = %post.id, photo, "page post created");
    if photo {
        // The photo object's own id, and the Page post that shows it.
        let photo_id = post.id.rsplit('_').next().unwrap_or_default().to_owned();
        return Ok(axum::Json(json!({ "id": photo_id, "post_id": post.id })).into_response());
    }
    Ok(axum::Json(json!({ "id": post.id })).into_response())
}

/// `GET /{page-id}/feed`: the Page's posts, newest first.
fn list_posts(
    ctx: &Ctx,
    params: &HashMap<String, String>,
    headers: &HeaderMap,
    id: &str,
) -> Result<Response, GraphError> {
    let t = caller(ctx, params, headers, ALL_KINDS)?;
    let a = ctx.accounts();
    let user = a.user(&t.user_key).ok_or_else(|| graph::no_such_object("get", id))?;
    if id != user.secondary_id {
        return Err(graph::no_such_object("get", id));
    }
    let data: Vec<Value> = a
        .posts_of(&t.user_key)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .map(|p| json!({ "id": p.id, "message": p.text, "created_time": p.created_at.format("%Y-%m-%dT%H:%M:%S%z").to_string() }))
        .collect();
    Ok(axum::Json(json!({ "data": data })).into_response())
}

/// Wall-clock epoch seconds of a real instant, past or future.
fn epoch(at: Instant) -> u64 {
    let now_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let now = Instant::now();
    let e = if at >= now { now_epoch + (at - now) } else { now_epoch.saturating_sub(now - at) };
    e.as_secs()
}

/// `GET /debug_token?input_token=…&access_token=<app token or user token>`.
fn debug_token(ctx: &Ctx, params: &HashMap<String, String>) -> Result<Response, GraphError> {
    let input =
        required(params, "input_token").ok_or_else(|| graph::missing_param("input_token"))?;
    let app_token = required(params, "access_token").ok_or_else(graph::no_token)?;
    let now = ctx.common.clock.now();
    let a = ctx.accounts();
    let app_id = match app_token.split_once('|') {
        Some((id, secret)) => {
            ctx.common.authenticate_client(PLATFORM, id, secret).ok_or_else(|| {
                GraphError::new(190, "Invalid OAuth access token - Cannot parse access token")
            })?;
            id.to_owned()
        }
        None => {
            a.check(app_token, ALL_KINDS, now).map_err(|r| graph::refusal(&r, "", now))?.client_id
        }
    };
    let Some(t) = a.token(input).filter(|t| t.kind != Kind::Refresh && t.client_id == app_id)
    else {
        return Ok(axum::Json(json!({ "data": {
            "error": { "code": 190, "message": "Invalid OAuth access token." },
            "is_valid": false,
            "scopes": [],
        }}))
        .into_response());
    };
    let user = a.user(&t.user_key).cloned().unwrap_or_else(|| accounts::User {
        key: String::new(),
        username: String::new(),
        name: String::new(),
        id: String::new(),
        secondary_id: String::new(),
    });
    let mut data = json!({
        "app_id": app_id,
        "type": if t.kind == Kind::Page { "PAGE" } else { "USER" },
        "application": app_id,
        "data_access_expires_at": epoch(t.granted_at + ctx.common.clock.real(DATA_ACCESS)),
        "expires_at": t.expires_at.map_or(0, epoch),
        "is_valid": true,
        "issued_at": epoch(t.issued_at),
        "scopes": t.scopes,
        "user_id": user.id,
    });
    if t.kind == Kind::Page {
        data["profile_id"] = json!(user.secondary_id);
    }
    if let Err(r) = a.check(input, ALL_KINDS, now) {
        let e = graph::refusal(&r, &app_id, now);
        data["is_valid"] = json!(false);
        let mut err = json!({ "code": e.code, "message": e.message });
        if let Some(sub) = e.subcode {
            err["subcode"] = json!(sub);
        }
        if matches!(r, Refusal::Unknown) {
            data = json!({ "error": err, "is_valid": false, "scopes": [] });
        } else {
            data["error"] = err;
        }
    }
    Ok(axum::Json(json!({ "data": data })).into_response())
}
