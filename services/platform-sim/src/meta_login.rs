//! Meta's "login with the app's own user" flow, shared by Instagram (API with
//! Instagram Login) and Threads: code → 1-hour token, exchange → 60-day
//! token, refresh of that token itself once ≥ 24 h old, and two-step
//! publishing (container, then publish). Each platform folder supplies a
//! `Config` with its names, scopes and wire differences.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::Router;
use chrono::Utc;
use serde_json::{json, Value};

use crate::accounts::{self, Accounts, Code, Kind, Token, DAY, HOUR};
use crate::authorize::{self, required, split_scopes, AuthRequest, Authorizer, AuthzError};
use crate::faults::{self, FaultCfg};
use crate::graph::{self, GraphError};
use crate::state::{lock, AccountAction, Common, PlatformSim, PostRecord};
use crate::support::{json_no_store, parse_form, query_and_form, valid_redirect_uri};

const SHORT_LIVED: Duration = HOUR;
const LONG_LIVED: Duration = Duration::from_secs(60 * 24 * 60 * 60);

/// How the code exchange reports errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CodeErrors {
    /// api.instagram.com: `{"error_type":"OAuthException","code":400,"error_message"}`.
    Instagram,
    /// graph.threads.net: the Graph error body.
    Graph,
}

/// Parsed container parameters: media type, text, media URL.
pub(crate) type ContainerSpec = (String, String, String);

pub(crate) struct Config {
    pub platform: &'static str,
    pub title: &'static str,
    /// Sub-prefix of the host serving `/oauth/authorize` (`api` or `www`).
    pub authorize_host: &'static str,
    /// Sub-prefix of the host serving the code exchange (`api` or `graph`).
    pub code_host: &'static str,
    pub code_errors: CodeErrors,
    pub token_prefix: &'static str,
    pub exchange_grant: &'static str,
    pub refresh_grant: &'static str,
    pub known_scopes: &'static [&'static str],
    pub basic_scope: &'static str,
    pub publish_scope: &'static str,
    pub container_edge: &'static str,
    pub publish_edge: &'static str,
    pub limit_edge: &'static str,
    pub quota_total: usize,
    pub text_field: &'static str,
    pub first_user_id: u64,
    pub first_media_id: u64,
    pub user_node: fn(&accounts::User, usize) -> Value,
    pub user_node_type: &'static str,
    pub container: fn(&HashMap<String, String>) -> Result<ContainerSpec, GraphError>,
    /// The code exchange's success body.
    pub code_response: fn(&str, &accounts::User, &[String]) -> Value,
    pub rate_limited: fn(&Common, Instant) -> Response,
}

#[derive(Debug, Clone)]
struct Container {
    id: String,
    user_key: String,
    media_type: String,
    text: String,
    published: Option<String>,
}

#[derive(Default)]
struct Store {
    accounts: Accounts,
    containers: HashMap<String, Container>,
    next_id: u64,
}

pub(crate) struct MetaLoginSim {
    cfg: &'static Config,
    store: Mutex<Store>,
}

impl MetaLoginSim {
    pub fn new(cfg: &'static Config) -> Self {
        Self { cfg, store: Mutex::default() }
    }
}

#[derive(Clone)]
struct Ctx {
    sim: Arc<MetaLoginSim>,
    common: Arc<Common>,
}

impl Ctx {
    fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        lock(&self.sim.store)
    }
    fn cfg(&self) -> &'static Config {
        self.sim.cfg
    }
}

impl PlatformSim for MetaLoginSim {
    fn name(&self) -> &'static str {
        self.cfg.platform
    }

    fn router(self: Arc<Self>, common: Arc<Common>) -> Router {
        let cfg = self.cfg;
        let ctx = Ctx { sim: self, common: Arc::clone(&common) };
        let mut r = Router::new()
            .route(
                &format!("/{}/oauth/authorize", cfg.authorize_host),
                get(authorize_page).post(authorize_decision),
            )
            .route("/graph/{*rest}", any(graph_dispatch));
        if cfg.code_host != "graph" {
            r = r.route(&format!("/{}/oauth/access_token", cfg.code_host), post(code_exchange));
        }
        let fc = FaultCfg {
            platform: cfg.platform,
            common,
            outage: graph::outage,
            rate_limited: cfg.rate_limited,
        };
        faults::with_outages(r.with_state(ctx), &fc)
    }

    fn account_action(&self, username: &str, action: &AccountAction) -> Option<usize> {
        graph::account_action(&mut lock(&self.store).accounts, username, action, Instant::now())
    }

    fn posts(&self) -> Vec<PostRecord> {
        lock(&self.store).accounts.post_records(self.cfg.platform)
    }

    fn stats(&self) -> Value {
        lock(&self.store).accounts.stats_json()
    }
}

impl Authorizer for Ctx {
    fn common(&self) -> &Common {
        &self.common
    }
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
        let client_id = required(params, "client_id")
            .ok_or_else(|| AuthzError::Page("Invalid platform app".into()))?;
        if self.common.client(cfg.platform, client_id).is_none() {
            return Err(AuthzError::Page("Invalid platform app".into()));
        }
        let redirect_uri = required(params, "redirect_uri")
            .filter(|r| valid_redirect_uri(r))
            .ok_or_else(|| AuthzError::Page("Invalid redirect_uri".into()))?;
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
        let cfg = self.cfg();
        let mut store = self.store();
        let user = store
            .accounts
            .sign_in(username, |n| ((cfg.first_user_id + n).to_string(), String::new()));
        store.accounts.issue_code(Code::for_request(request, user.key, &self.common.clock))
    }
}

async fn authorize_page(State(ctx): State<Ctx>, RawQuery(q): RawQuery) -> Response {
    authorize::page(&ctx, &parse_form(q.unwrap_or_default().as_bytes()))
}

async fn authorize_decision(State(ctx): State<Ctx>, body: Bytes) -> Response {
    authorize::decision(&ctx, &parse_form(&body))
}

/// An error of the code exchange in the platform's format.
fn code_exchange_error(cfg: &Config, graph: GraphError) -> Response {
    match cfg.code_errors {
        CodeErrors::Graph => graph.into_response(),
        CodeErrors::Instagram => json_no_store(
            StatusCode::BAD_REQUEST,
            json!({ "error_type": "OAuthException", "code": 400, "error_message": graph.message }),
        ),
    }
}

/// Code → short-lived token (`POST /oauth/access_token`).
async fn code_exchange(State(ctx): State<Ctx>, RawQuery(q): RawQuery, body: Bytes) -> Response {
    let params = query_and_form(q.as_deref(), &body);
    exchange_code(&ctx, &params)
}

fn exchange_code(ctx: &Ctx, params: &HashMap<String, String>) -> Response {
    let cfg = ctx.cfg();
    for name in ["client_id", "client_secret", "grant_type", "redirect_uri", "code"] {
        if required(params, name).is_none() {
            return code_exchange_error(
                cfg,
                GraphError::new(100, format!("Missing required field {name}")),
            );
        }
    }
    let p = |n: &str| params.get(n).map(String::as_str).unwrap_or_default();
    let Some(client) = ctx.common.client(cfg.platform, p("client_id")) else {
        return code_exchange_error(cfg, GraphError::new(101, "Invalid platform app"));
    };
    if client.client_secret.as_deref() != Some(p("client_secret")) {
        return code_exchange_error(cfg, graph::bad_client_secret());
    }
    if p("grant_type") != "authorization_code" {
        return code_exchange_error(cfg, graph::invalid_param("Unsupported grant_type"));
    }
    let now = ctx.common.clock.now();
    let mut store = ctx.store();
    let code = match store.accounts.redeem_code(
        p("code"),
        p("client_id"),
        Some(p("redirect_uri")),
        now,
    ) {
        Ok(c) => c,
        Err(e) => {
            let err = match (cfg.code_errors, e) {
                (CodeErrors::Instagram, accounts::CodeError::Spent) => {
                    GraphError::new(100, "This authorization code has been used")
                }
                (CodeErrors::Instagram, accounts::CodeError::RedirectMismatch) => {
                    GraphError::new(100, "Error validating verification code. Please make sure your redirect_uri is identical to the one you used in the OAuth dialog request")
                }
                (CodeErrors::Instagram, _) => GraphError::new(100, "Invalid authorization code"),
                (CodeErrors::Graph, e) => graph::code_error(e),
            };
            return code_exchange_error(cfg, err);
        }
    };
    let grant = store.accounts.new_grant();
    let base =
        accounts::grant_base(&code.user_key, &code.client_id, code.scopes.clone(), grant, now);
    let (token, _) = accounts::timed(&ctx.common.clock, Kind::ShortLived, &base, SHORT_LIVED);
    let access = store.accounts.insert_token(cfg.token_prefix, token);
    store.accounts.stats.tokens_issued += 1;
    let Some(user) = store.accounts.user(&code.user_key).cloned() else {
        return graph::invalid_param("Invalid user").into_response();
    };
    drop(store);
    ctx.common.record_secret(&access);
    tracing::info!(platform = cfg.platform, "short-lived token issued");
    json_no_store(StatusCode::OK, (cfg.code_response)(&access, &user, &code.scopes))
}

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
    let cfg = ctx.cfg();
    if cfg.code_host == "graph" && segs == ["oauth", "access_token"] && method == Method::POST {
        return exchange_code(&ctx, &params);
    }
    let is_get = method == Method::GET;
    match (segs.as_slice(), is_get) {
        (["access_token"], true) => return exchange(&ctx, &params, &headers),
        (["refresh_access_token"], true) => return refresh(&ctx, &params, &headers),
        _ => {}
    }
    if let Some(until) = ctx.common.rate_limited_until(cfg.platform) {
        return (cfg.rate_limited)(&ctx.common, until);
    }
    let result = match (segs.as_slice(), is_get) {
        (["me"], true) => node(&ctx, &params, &headers, None),
        ([id], true) => node(&ctx, &params, &headers, Some(id)),
        ([id, edge], false) if *edge == cfg.container_edge => {
            create_container(&ctx, &params, &headers, id)
        }
        ([id, edge], false) if *edge == cfg.publish_edge => publish(&ctx, &params, &headers, id),
        ([id, edge], true) if *edge == cfg.container_edge => {
            list_media(&ctx, &params, &headers, id)
        }
        ([id, edge], true) if *edge == cfg.limit_edge => {
            publishing_limit(&ctx, &params, &headers, id)
        }
        ([first, ..], false) => Err(graph::no_such_object("post", first)),
        _ => Err(graph::unknown_path(&segs.join("/"))),
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

/// The caller's live access token (short- or long-lived).
fn caller(
    ctx: &Ctx,
    params: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<Token, GraphError> {
    let token = graph::token_of(params, headers).ok_or_else(graph::no_token)?;
    let now = ctx.common.clock.now();
    let store = ctx.store();
    store.accounts.check(&token, &[Kind::ShortLived, Kind::LongLived], now).map_err(|r| {
        let app = store.accounts.token(&token).map(|t| t.client_id.clone()).unwrap_or_default();
        graph::refusal(&r, &app, now)
    })
}

fn need_scope(ctx: &Ctx, t: &Token, scope: &str) -> Result<(), GraphError> {
    let _ = ctx;
    if t.has_scope(scope) {
        Ok(())
    } else {
        Err(GraphError::new(10, "(#10) Application does not have permission for this action"))
    }
}

fn long_lived_response(access: &str, expires_in: u64) -> Response {
    json_no_store(
        StatusCode::OK,
        json!({ "access_token": access, "token_type": "bearer", "expires_in": expires_in }),
    )
}

/// `GET /access_token?grant_type=<exchange>&client_secret=…&access_token=…`.
fn exchange(ctx: &Ctx, params: &HashMap<String, String>, headers: &HeaderMap) -> Response {
    let cfg = ctx.cfg();
    match required(params, "grant_type") {
        None => return graph::missing_param("grant_type").into_response(),
        Some(g) if g != cfg.exchange_grant => {
            return graph::invalid_param(format!("Unsupported grant_type: {g}")).into_response()
        }
        Some(_) => {}
    }
    let Some(secret) = required(params, "client_secret") else {
        return graph::missing_param("client_secret").into_response();
    };
    let t = match caller(ctx, params, headers) {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    if ctx.common.authenticate_client(cfg.platform, &t.client_id, secret).is_none() {
        return graph::bad_client_secret().into_response();
    }
    if t.kind != Kind::ShortLived {
        return graph::invalid_param("The access token must be a short-lived token")
            .into_response();
    }
    let (token, expires_in) = accounts::timed(&ctx.common.clock, Kind::LongLived, &t, LONG_LIVED);
    let access = {
        let mut store = ctx.store();
        store.accounts.stats.tokens_issued += 1;
        store.accounts.insert_token(cfg.token_prefix, token)
    };
    ctx.common.record_secret(&access);
    tracing::info!(platform = cfg.platform, "long-lived token issued");
    long_lived_response(&access, expires_in)
}

/// `GET /refresh_access_token?grant_type=<refresh>&access_token=…`: only a
/// long-lived token at least 24 hours old and unexpired.
fn refresh(ctx: &Ctx, params: &HashMap<String, String>, headers: &HeaderMap) -> Response {
    let cfg = ctx.cfg();
    match required(params, "grant_type") {
        None => return graph::missing_param("grant_type").into_response(),
        Some(g) if g != cfg.refresh_grant => {
            return graph::invalid_param(format!("Unsupported grant_type: {g}")).into_response()
        }
        Some(_) => {}
    }
    let t = match caller(ctx, params, headers) {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    if t.kind != Kind::LongLived {
        return graph::invalid_param(
            "Short-lived access tokens cannot be refreshed: exchange them first",
        )
        .into_response();
    }
    let clock = &ctx.common.clock;
    if clock.now().saturating_duration_since(t.issued_at) < clock.real(DAY) {
        return graph::invalid_param(
            "The access token is too new to be refreshed: long-lived tokens can be refreshed once they are at least 24 hours old",
        )
        .into_response();
    }
    let (token, expires_in) = accounts::timed(clock, Kind::LongLived, &t, LONG_LIVED);
    let access = {
        let mut store = ctx.store();
        store.accounts.stats.tokens_issued += 1;
        store.accounts.stats.refreshes += 1;
        store.accounts.insert_token(cfg.token_prefix, token)
    };
    ctx.common.record_secret(&access);
    tracing::info!(platform = cfg.platform, "long-lived token refreshed");
    long_lived_response(&access, expires_in)
}

fn media_node(cfg: &Config, c: &Container, media_id: &str, username: &str, ts: &str) -> Value {
    json!({
        "id": media_id,
        cfg.text_field: c.text,
        "media_type": c.media_type,
        "timestamp": ts,
        "username": username,
        "permalink": format!("https://www.example.invalid/{}/p/{media_id}", cfg.platform),
    })
}

/// `GET /me` or `GET /{id}`: the user, one of their containers or media.
fn node(
    ctx: &Ctx,
    params: &HashMap<String, String>,
    headers: &HeaderMap,
    id: Option<&str>,
) -> Result<Response, GraphError> {
    let cfg = ctx.cfg();
    let t = caller(ctx, params, headers)?;
    need_scope(ctx, &t, cfg.basic_scope)?;
    let store = ctx.store();
    let user = store
        .accounts
        .user(&t.user_key)
        .cloned()
        .ok_or_else(|| graph::no_such_object("get", "me"))?;
    let fields = graph::fields(params, &["id"]);
    let posts = store.accounts.posts_of(&t.user_key).count();
    if id.is_none() || id == Some(user.id.as_str()) {
        let node = (cfg.user_node)(&user, posts);
        return Ok(axum::Json(graph::select(&node, &fields, cfg.user_node_type)?).into_response());
    }
    let id = id.unwrap_or_default();
    if let Some(c) = store.containers.get(id).filter(|c| c.user_key == t.user_key) {
        let (code, status) = match &c.published {
            Some(_) => ("PUBLISHED", "Published"),
            None => ("FINISHED", "Finished: Media container is ready to be published."),
        };
        let node =
            json!({ "id": c.id, "status_code": code, "status": code, "status_message": status });
        let fields = graph::fields(params, &["id"]);
        return Ok(
            axum::Json(graph::select(&node, &fields, "ShadowIGMediaBuilder")?).into_response()
        );
    }
    let published = store
        .containers
        .values()
        .find(|c| c.published.as_deref() == Some(id) && c.user_key == t.user_key);
    if let Some(c) = published {
        let ts = store
            .accounts
            .posts_of(&t.user_key)
            .find(|p| p.id == id)
            .map(|p| p.created_at.format("%Y-%m-%dT%H:%M:%S%z").to_string())
            .unwrap_or_default();
        let node = media_node(cfg, c, id, &user.username, &ts);
        return Ok(axum::Json(graph::select(&node, &fields, "Media")?).into_response());
    }
    Err(graph::no_such_object("get", id))
}

fn own_user(ctx: &Ctx, t: &Token, id: &str, method: &str) -> Result<(), GraphError> {
    let store = ctx.store();
    match store.accounts.user(&t.user_key) {
        Some(u) if u.id == id || id == "me" => Ok(()),
        _ => Err(graph::no_such_object(method, id)),
    }
}

/// `POST /{user-id}/{media|threads}`: creates a container.
fn create_container(
    ctx: &Ctx,
    params: &HashMap<String, String>,
    headers: &HeaderMap,
    id: &str,
) -> Result<Response, GraphError> {
    let cfg = ctx.cfg();
    let t = caller(ctx, params, headers)?;
    own_user(ctx, &t, id, "post")?;
    need_scope(ctx, &t, cfg.publish_scope)?;
    let (media_type, text, _url) = (cfg.container)(params)?;
    let mut store = ctx.store();
    store.next_id += 1;
    let cid = (cfg.first_media_id + 2 * store.next_id).to_string();
    store.containers.insert(
        cid.clone(),
        Container {
            id: cid.clone(),
            user_key: t.user_key.clone(),
            media_type,
            text,
            published: None,
        },
    );
    Ok(axum::Json(json!({ "id": cid })).into_response())
}

fn quota_usage(ctx: &Ctx, store: &Store, user_key: &str) -> usize {
    let window = chrono::Duration::from_std(ctx.common.clock.real(DAY)).unwrap_or_default();
    let since = Utc::now() - window;
    store.accounts.posts_of(user_key).filter(|p| p.created_at > since).count()
}

/// `POST /{user-id}/{media_publish|threads_publish}` with `creation_id`.
fn publish(
    ctx: &Ctx,
    params: &HashMap<String, String>,
    headers: &HeaderMap,
    id: &str,
) -> Result<Response, GraphError> {
    let cfg = ctx.cfg();
    let t = caller(ctx, params, headers)?;
    own_user(ctx, &t, id, "post")?;
    need_scope(ctx, &t, cfg.publish_scope)?;
    let creation_id =
        required(params, "creation_id").ok_or_else(|| graph::missing_param("creation_id"))?;
    if ctx.common.content_rejected(cfg.platform) {
        return Err(graph::content_refused());
    }
    let mut store = ctx.store();
    let container = store
        .containers
        .get(creation_id)
        .filter(|c| c.user_key == t.user_key)
        .cloned()
        .ok_or_else(|| {
            graph::invalid_param(format!(
                "Param creation_id must be a valid container id: {creation_id}"
            ))
        })?;
    if container.published.is_some() {
        return Err(graph::invalid_param("The media container has already been published"));
    }
    if quota_usage(ctx, &store, &t.user_key) >= cfg.quota_total {
        return Err(GraphError::new(9, "Application request limit reached")
            .subcode(2_207_042)
            .transient());
    }
    let first = cfg.first_media_id;
    let post = store
        .accounts
        .record_post(&t.user_key, &container.text, |n| (first + 2 * n + 1).to_string());
    if let Some(c) = store.containers.get_mut(creation_id) {
        c.published = Some(post.id.clone());
    }
    tracing::info!(platform = cfg.platform, media_id = %post.id, "media published");
    Ok(axum::Json(json!({ "id": post.id })).into_response())
}

/// `GET /{user-id}/{media|threads}`: the user's published media, newest first.
fn list_media(
    ctx: &Ctx,
    params: &HashMap<String, String>,
    headers: &HeaderMap,
    id: &str,
) -> Result<Response, GraphError> {
    let cfg = ctx.cfg();
    let t = caller(ctx, params, headers)?;
    own_user(ctx, &t, id, "get")?;
    need_scope(ctx, &t, cfg.basic_scope)?;
    let store = ctx.store();
    let username = store.accounts.user(&t.user_key).map(|u| u.username.clone()).unwrap_or_default();
    let data: Vec<Value> = store
        .accounts
        .posts_of(&t.user_key)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .filter_map(|p| {
            let c = store
                .containers
                .values()
                .find(|c| c.published.as_deref() == Some(p.id.as_str()))?;
            Some(media_node(
                cfg,
                c,
                &p.id,
                &username,
                &p.created_at.format("%Y-%m-%dT%H:%M:%S%z").to_string(),
            ))
        })
        .collect();
    Ok(axum::Json(json!({ "data": data, "paging": {} })).into_response())
}

/// `GET /{user-id}/{content_publishing_limit|threads_publishing_limit}`.
fn publishing_limit(
    ctx: &Ctx,
    params: &HashMap<String, String>,
    headers: &HeaderMap,
    id: &str,
) -> Result<Response, GraphError> {
    let cfg = ctx.cfg();
    let t = caller(ctx, params, headers)?;
    own_user(ctx, &t, id, "get")?;
    let store = ctx.store();
    let usage = quota_usage(ctx, &store, &t.user_key);
    Ok(axum::Json(json!({ "data": [{
        "quota_usage": usage,
        "config": { "quota_total": cfg.quota_total, "quota_duration": 86400 },
    }]}))
    .into_response())
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

/// Graph throttling: `code` with a usage header; `business` picks
/// `x-business-use-case-usage` over `x-app-usage`.
pub(crate) fn throttled(
    code: u32,
    message: &str,
    business: Option<&str>,
    until: Instant,
) -> Response {
    let minutes = faults::retry_after_secs(until).div_ceil(60);
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
