//! YouTube via Google OAuth 2.0: consent on accounts.google.com
//! (`/google/accounts`), token and revoke on oauth2.googleapis.com
//! (`/google/oauth2`), `channels` and resumable `videos` uploads on
//! www.googleapis.com (`/google/apis`). Mounted under `/google`; the
//! control key stays `youtube`.

// Handlers bail out with the platform's finished error response; boxing it
// would only add noise on a path that runs once per request.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};

use crate::accounts::{
    self, rfc3339, Accounts, Code, Death, Kind, Pkce, Refusal, Token, DAY, HOUR,
};
use crate::authorize::{self, required, AuthRequest, Authorizer, AuthzError};
use crate::faults::{self, FaultCfg};
use crate::state::{lock, AccountAction, Common, PlatformSim, PostRecord};
use crate::support::{
    bearer, json_no_store, parse_basic, parse_form, query_and_form, random_b64, request_base,
    valid_redirect_uri,
};

const PLATFORM: &str = "youtube";
const ACCESS_LIFETIME: Duration = HOUR;
/// Refresh tokens of apps in "Testing" publishing status.
const TESTING_REFRESH_LIFETIME: Duration = Duration::from_secs(7 * DAY.as_secs());
const YT: &str = "https://www.googleapis.com/auth/youtube";
const YT_UPLOAD: &str = "https://www.googleapis.com/auth/youtube.upload";
const YT_READONLY: &str = "https://www.googleapis.com/auth/youtube.readonly";
const YT_FORCE_SSL: &str = "https://www.googleapis.com/auth/youtube.force-ssl";
const YT_PARTNER: &str = "https://www.googleapis.com/auth/youtubepartner";
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
const CHANNEL_PARTS: &[&str] =
    &["id", "snippet", "contentDetails", "statistics", "status", "brandingSettings"];

#[derive(Debug, Clone)]
struct UploadSession {
    user_key: String,
    snippet: Value,
    privacy: String,
    video: Option<Value>,
}

#[derive(Default)]
struct Store {
    accounts: Accounts,
    uploads: HashMap<String, UploadSession>,
}

pub(crate) struct YouTubeSim {
    store: Mutex<Store>,
    testing_mode: AtomicBool,
}

impl YouTubeSim {
    pub fn new(testing_mode: bool) -> Self {
        Self { store: Mutex::default(), testing_mode: AtomicBool::new(testing_mode) }
    }
}

#[derive(Clone)]
struct Ctx {
    sim: Arc<YouTubeSim>,
    common: Arc<Common>,
}

impl Ctx {
    fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        lock(&self.sim.store)
    }
}

impl PlatformSim for YouTubeSim {
    fn name(&self) -> &'static str {
        PLATFORM
    }

    fn prefix(&self) -> &'static str {
        "google"
    }

    fn router(self: Arc<Self>, common: Arc<Common>) -> Router {
        let ctx = Ctx { sim: self, common: Arc::clone(&common) };
        let oauth = Router::new()
            .route("/accounts/o/oauth2/v2/auth", get(authorize_page).post(authorize_decision))
            .route("/oauth2/token", post(token))
            .route("/oauth2/revoke", post(revoke))
            .with_state(ctx.clone());
        let api = Router::new()
            .route("/apis/youtube/v3/channels", get(channels))
            .route("/apis/youtube/v3/playlistItems", get(playlist_items))
            .route("/apis/upload/youtube/v3/videos", post(upload_init).put(upload_bytes))
            .with_state(ctx);
        let fc = FaultCfg { platform: PLATFORM, common, outage, rate_limited };
        faults::mount(oauth, api, &fc)
    }

    fn account_action(&self, username: &str, action: &AccountAction) -> Option<usize> {
        let mut s = lock(&self.store);
        let a = &mut s.accounts;
        match action {
            AccountAction::Expire => {
                a.expire_user(username, Instant::now(), |t| t.kind == Kind::Access)
            }
            AccountAction::RemoveScope(scope) => a.remove_scope(username, scope),
            // Google revokes refresh tokens on a password change; access
            // tokens live out their hour.
            AccountAction::PasswordChange => {
                a.kill_user(username, Death::PasswordChanged, |t| t.kind == Kind::Refresh)
            }
            // A session-control policy demands re-authentication: `invalid_rapt`.
            AccountAction::SecurityCheckpoint => {
                a.kill_user(username, Death::Checkpoint, |t| t.kind == Kind::Refresh)
            }
            AccountAction::Revoke | AccountAction::Deauthorize => {
                a.kill_user(username, Death::Revoked, |_| true)
            }
        }
    }

    fn configure(&self, settings: &Value) -> Result<Value, String> {
        match settings.get("testing_mode").and_then(Value::as_bool) {
            Some(on) => {
                self.testing_mode.store(on, Ordering::SeqCst);
                Ok(json!({ "testing_mode": on }))
            }
            None => Err("expected {\"testing_mode\": bool}".to_owned()),
        }
    }

    fn posts(&self) -> Vec<PostRecord> {
        lock(&self.store).accounts.post_records(PLATFORM)
    }

    fn stats(&self) -> Value {
        lock(&self.store).accounts.stats_json()
    }
}

// ---- wire -----------------------------------------------------------------

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    json_no_store(status, json!({ "error": error, "error_description": description }))
}

fn dead_grant() -> Response {
    oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "Token has been expired or revoked.")
}

/// A Google API error with one `errors[]` entry.
fn api_error(
    status: StatusCode,
    message: &str,
    reason: &str,
    domain: &str,
    rpc: Option<&str>,
) -> Response {
    let mut err = json!({
        "code": status.as_u16(),
        "message": message,
        "errors": [{ "message": message, "domain": domain, "reason": reason }],
    });
    if let Some(rpc) = rpc {
        err["status"] = json!(rpc);
    }
    (status, axum::Json(json!({ "error": err }))).into_response()
}

fn unauthenticated() -> Response {
    let mut resp = (
        StatusCode::UNAUTHORIZED,
        axum::Json(json!({ "error": {
            "code": 401,
            "message": "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
            "errors": [{
                "message": "Invalid Credentials",
                "domain": "global",
                "reason": "authError",
                "location": "Authorization",
                "locationType": "header",
            }],
            "status": "UNAUTHENTICATED",
        }})),
    )
        .into_response();
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(
            "Bearer realm=\"https://accounts.google.com/\", error=\"invalid_token\"",
        ),
    );
    resp
}

fn insufficient_scope() -> Response {
    let mut resp = api_error(
        StatusCode::FORBIDDEN,
        "Request had insufficient authentication scopes.",
        "insufficientPermissions",
        "global",
        Some("PERMISSION_DENIED"),
    );
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(
            "Bearer realm=\"https://accounts.google.com/\", error=\"insufficient_scope\"",
        ),
    );
    resp
}

fn bad_request(message: &str, reason: &str) -> Response {
    api_error(StatusCode::BAD_REQUEST, message, reason, "youtube.api", Some("INVALID_ARGUMENT"))
}

fn outage(status: StatusCode) -> Response {
    let (message, rpc) = match status.as_u16() {
        500 => ("Internal error encountered.", "INTERNAL"),
        504 => ("The request timed out.", "DEADLINE_EXCEEDED"),
        _ => ("The service is currently unavailable.", "UNAVAILABLE"),
    };
    (
        status,
        axum::Json(json!({ "error": {
            "code": status.as_u16(),
            "message": message,
            "errors": [{ "message": message, "domain": "global", "reason": "backendError" }],
            "status": rpc,
        }})),
    )
        .into_response()
}

/// YouTube signals quota exhaustion with 403 `quotaExceeded` (not 429) and
/// no Retry-After: the daily quota resets at midnight Pacific time.
fn rate_limited(_: &Common, _until: Instant) -> Response {
    api_error(
        StatusCode::FORBIDDEN,
        "The request cannot be completed because you have exceeded your <a href=\"/youtube/v3/getting-started#quota\">quota</a>.",
        "quotaExceeded",
        "youtube.quota",
        None,
    )
}

// ---- authorize ------------------------------------------------------------

impl Authorizer for Ctx {
    fn common(&self) -> &Common {
        &self.common
    }
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
        let page = |e: &str, d: &str| AuthzError::Page(format!("Error {e}: {d}"));
        let client_id = required(params, "client_id")
            .filter(|c| self.common.client(PLATFORM, c).is_some())
            .ok_or_else(|| page("401", "invalid_client. The OAuth client was not found."))?;
        let redirect_uri = required(params, "redirect_uri")
            .filter(|r| valid_redirect_uri(r))
            .ok_or_else(|| page("400", "redirect_uri_mismatch"))?;
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
        let offline = match params.get("access_type").map(String::as_str) {
            None | Some("online") => false,
            Some("offline") => true,
            Some(other) => {
                return Err(page("400", &format!("invalid_request. Invalid access_type: {other}")))
            }
        };
        let pkce = match required(params, "code_challenge") {
            None => None,
            Some(challenge) => {
                let method = params.get("code_challenge_method").map_or("plain", String::as_str);
                if method != "S256" && method != "plain" {
                    return Err(page("400", "invalid_request. Invalid code_challenge_method"));
                }
                Some(Pkce { challenge: challenge.to_owned(), method: method.to_owned() })
            }
        };
        let prompt_consent =
            params.get("prompt").is_some_and(|p| p.split_whitespace().any(|v| v == "consent"));
        Ok(AuthRequest {
            client_id: client_id.to_owned(),
            redirect_uri: redirect_uri.to_owned(),
            scopes,
            state: params.get("state").cloned(),
            pkce,
            offline,
            prompt_consent,
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

async fn authorize_page(State(ctx): State<Ctx>, RawQuery(q): RawQuery) -> Response {
    authorize::page(&ctx, &parse_form(q.unwrap_or_default().as_bytes()))
}

async fn authorize_decision(State(ctx): State<Ctx>, body: Bytes) -> Response {
    authorize::decision(&ctx, &parse_form(&body))
}

// ---- token ----------------------------------------------------------------

/// Google accepts client credentials in the form or as HTTP Basic.
fn authenticate_client(
    ctx: &Ctx,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<String, Response> {
    let (id, secret) = match headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        Some(raw) => parse_basic(raw).ok_or_else(|| {
            oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "Unauthorized")
        })?,
        None => (
            form.get("client_id").cloned().unwrap_or_default(),
            form.get("client_secret").cloned().unwrap_or_default(),
        ),
    };
    if id.is_empty() {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Could not determine client ID from request.",
        ));
    }
    if ctx.common.client(PLATFORM, &id).is_none() {
        return Err(oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "The OAuth client was not found.",
        ));
    }
    ctx.common
        .authenticate_client(PLATFORM, &id, &secret)
        .map(|c| c.client_id.clone())
        .ok_or_else(|| oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "Unauthorized"))
}

fn missing(name: &str) -> Response {
    oauth_error(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        &format!("Missing required parameter: {name}"),
    )
}

/// `POST /token`: `authorization_code` and `refresh_token`.
async fn token(State(ctx): State<Ctx>, headers: HeaderMap, body: Bytes) -> Response {
    let form = parse_form(&body);
    let client_id = match authenticate_client(&ctx, &headers, &form) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let clock = &ctx.common.clock;
    let now = clock.now();
    let testing = ctx.sim.testing_mode.load(Ordering::SeqCst);
    let mut store = ctx.store();
    let a = &mut store.accounts;
    let (access, expires_in, refresh, scope) = match required(&form, "grant_type") {
        None => return missing("grant_type"),
        Some("authorization_code") => {
            let Some(code) = required(&form, "code") else { return missing("code") };
            let Some(redirect_uri) = required(&form, "redirect_uri") else {
                return missing("redirect_uri");
            };
            let code = match a.redeem_code(code, &client_id, Some(redirect_uri), now) {
                Ok(c) => c,
                Err(accounts::CodeError::Unknown) => {
                    return oauth_error(
                        StatusCode::BAD_REQUEST,
                        "invalid_grant",
                        "Malformed auth code.",
                    )
                }
                Err(_) => {
                    return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "Bad Request")
                }
            };
            if let Some(pkce) = &code.pkce {
                match required(&form, "code_verifier") {
                    None => {
                        return oauth_error(
                            StatusCode::BAD_REQUEST,
                            "invalid_grant",
                            "Missing code verifier.",
                        )
                    }
                    Some(v) if !pkce.verifies(v) => {
                        return oauth_error(
                            StatusCode::BAD_REQUEST,
                            "invalid_grant",
                            "Invalid code verifier.",
                        )
                    }
                    Some(_) => {}
                }
            }
            let grant = a.new_grant();
            let base =
                accounts::grant_base(&code.user_key, &client_id, code.scopes.clone(), grant, now);
            let (at, expires_in) = accounts::timed(clock, Kind::Access, &base, ACCESS_LIFETIME);
            let access = a.insert_token("ya29.", at);
            let refresh = code.offline.then(|| {
                let mut rt = Token { kind: Kind::Refresh, ..base.clone() };
                if testing {
                    rt = accounts::timed(clock, Kind::Refresh, &base, TESTING_REFRESH_LIFETIME).0;
                }
                a.insert_token("1//", rt)
            });
            (access, expires_in, refresh, base.scopes.join(" "))
        }
        Some("refresh_token") => {
            let Some(rt) = required(&form, "refresh_token") else {
                return missing("refresh_token");
            };
            let t = match a.check(rt, &[Kind::Refresh], now) {
                Ok(t) if t.client_id == client_id => t,
                Ok(_) => {
                    return oauth_error(
                        StatusCode::BAD_REQUEST,
                        "unauthorized_client",
                        "Unauthorized",
                    )
                }
                Err(Refusal::Dead(Death::Checkpoint)) => {
                    return json_no_store(
                        StatusCode::BAD_REQUEST,
                        json!({
                            "error": "invalid_grant",
                            "error_description": "reauth related error (invalid_rapt)",
                            "error_uri": "https://support.google.com/a/answer/9368756",
                            "error_subtype": "invalid_rapt",
                        }),
                    )
                }
                Err(reason) => {
                    tracing::info!(platform = PLATFORM, ?reason, "refresh refused");
                    return dead_grant();
                }
            };
            let (at, expires_in) = accounts::timed(clock, Kind::Access, &t, ACCESS_LIFETIME);
            a.stats.refreshes += 1;
            (a.insert_token("ya29.", at), expires_in, None, t.scopes.join(" "))
        }
        Some(other) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                &format!("Invalid grant_type: {other}"),
            )
        }
    };
    a.stats.tokens_issued += 1;
    drop(store);
    ctx.common.record_secret(&access);
    let mut body = json!({
        "access_token": access,
        "expires_in": expires_in,
        "scope": scope,
        "token_type": "Bearer",
    });
    if let Some(rt) = refresh {
        ctx.common.record_secret(&rt);
        body["refresh_token"] = json!(rt);
        if testing {
            body["refresh_token_expires_in"] =
                json!(clock.wire_expires_in(TESTING_REFRESH_LIFETIME));
        }
    }
    tracing::info!(platform = PLATFORM, client_id, "tokens issued");
    json_no_store(StatusCode::OK, body)
}

/// `POST /revoke?token=…` (or in the form): revoking either token of a grant
/// revokes the whole grant.
async fn revoke(State(ctx): State<Ctx>, RawQuery(q): RawQuery, body: Bytes) -> Response {
    let params = query_and_form(q.as_deref(), &body);
    let Some(token) = required(&params, "token") else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Missing required parameter: token",
        );
    };
    let mut s = ctx.store();
    let now = ctx.common.clock.now();
    let live = s.accounts.check(token, &[Kind::Access, Kind::Refresh], now).ok();
    match live {
        Some(t) => {
            s.accounts.kill_grant(t.grant, Death::Revoked);
            (StatusCode::OK, [(header::CONTENT_TYPE, "application/json; charset=utf-8")], "{}")
                .into_response()
        }
        None => oauth_error(StatusCode::BAD_REQUEST, "invalid_token", "Token expired or revoked"),
    }
}

// ---- API ------------------------------------------------------------------

fn caller(ctx: &Ctx, headers: &HeaderMap) -> Result<Token, Response> {
    let token = bearer(headers).ok_or_else(unauthenticated)?;
    ctx.store()
        .accounts
        .check(&token, &[Kind::Access], ctx.common.clock.now())
        .map_err(|_| unauthenticated())
}

fn has_any(t: &Token, scopes: &[&str]) -> bool {
    scopes.iter().any(|s| t.has_scope(s))
}

/// `GET /youtube/v3/channels?part=…&mine=true`.
async fn channels(State(ctx): State<Ctx>, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    let t = match caller(&ctx, &headers) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let params = parse_form(q.unwrap_or_default().as_bytes());
    let Some(part) = required(&params, "part") else {
        return bad_request("Required parameter: part", "required");
    };
    let parts: Vec<&str> = part.split(',').map(str::trim).collect();
    if let Some(bad) = parts.iter().find(|p| !CHANNEL_PARTS.contains(p)) {
        return bad_request(&format!("'{bad}'"), "unknownPart");
    }
    if params.get("mine").map(String::as_str) != Some("true") {
        return bad_request(
            "No filter selected. Expected one of: forUsername, managedByMe, id, mine, categoryId, forHandle",
            "missingRequiredParameter",
        );
    }
    if !has_any(&t, &[YT, YT_READONLY, YT_FORCE_SSL, YT_PARTNER]) {
        return insufficient_scope();
    }
    let s = ctx.store();
    let Some(u) = s.accounts.user(&t.user_key).cloned() else { return unauthenticated() };
    let videos = s.accounts.posts_of(&t.user_key).count();
    drop(s);
    let full = json!({
        "kind": "youtube#channel",
        "etag": random_b64(12),
        "id": u.id,
        "snippet": {
            "title": u.name,
            "description": "",
            "customUrl": format!("@{}", u.key),
            "publishedAt": "2020-01-01T00:00:00Z",
            "thumbnails": {},
            "localized": { "title": u.name, "description": "" },
        },
        "contentDetails": { "relatedPlaylists": { "likes": "", "uploads": format!("UU{}", &u.id[2..]) } },
        "statistics": { "viewCount": "0", "subscriberCount": "0", "hiddenSubscriberCount": false, "videoCount": videos.to_string() },
        "status": { "privacyStatus": "public", "isLinked": true, "longUploadsStatus": "allowed" },
        "brandingSettings": { "channel": { "title": u.name } },
    });
    let mut item = json!({ "kind": "youtube#channel", "etag": full["etag"], "id": u.id });
    for p in parts.iter().filter(|p| **p != "id") {
        item[*p] = full[*p].clone();
    }
    axum::Json(json!({
        "kind": "youtube#channelListResponse",
        "etag": random_b64(12),
        "pageInfo": { "totalResults": 1, "resultsPerPage": 5 },
        "items": [item],
    }))
    .into_response()
}

/// `GET /youtube/v3/playlistItems?part=snippet&playlistId=UU…&maxResults=N`: the caller's
/// uploads playlist (the one `channels` names in `contentDetails.relatedPlaylists.uploads`),
/// newest first. Other playlists do not exist here.
async fn playlist_items(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let t = match caller(&ctx, &headers) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let params = parse_form(q.unwrap_or_default().as_bytes());
    let Some(part) = required(&params, "part") else {
        return bad_request("Required parameter: part", "required");
    };
    let parts: Vec<&str> = part.split(',').map(str::trim).collect();
    if let Some(bad) =
        parts.iter().find(|p| !["id", "snippet", "contentDetails", "status"].contains(p))
    {
        return bad_request(&format!("'{bad}'"), "unknownPart");
    }
    let Some(playlist) = required(&params, "playlistId") else {
        return bad_request(
            "No filter selected. Expected one of: id, playlistId",
            "missingRequiredParameter",
        );
    };
    let max = match params.get("maxResults").map(|m| m.parse::<usize>()) {
        None => 5,
        Some(Ok(n)) if n <= 50 => n,
        Some(_) => return bad_request("Invalid value for maxResults", "invalidValue"),
    };
    if !has_any(&t, &[YT, YT_READONLY, YT_FORCE_SSL, YT_PARTNER]) {
        return insufficient_scope();
    }
    let s = ctx.store();
    let Some(u) = s.accounts.user(&t.user_key).cloned() else { return unauthenticated() };
    if playlist != format!("UU{}", &u.id[2..]) {
        return api_error(
            StatusCode::NOT_FOUND,
            "The playlist identified with the request's <code>playlistId</code> parameter cannot be found.",
            "playlistNotFound",
            "youtube.playlistItem",
            Some("NOT_FOUND"),
        );
    }
    let mut videos: Vec<&Value> = s
        .uploads
        .values()
        .filter(|u| u.user_key == t.user_key)
        .filter_map(|u| u.video.as_ref())
        .collect();
    videos.sort_by(|a, b| {
        let at = |v: &Value| {
            v.pointer("/snippet/publishedAt").and_then(Value::as_str).map(str::to_owned)
        };
        at(b).cmp(&at(a))
    });
    let total = videos.len();
    let items: Vec<Value> = videos
        .into_iter()
        .take(max)
        .enumerate()
        .map(|(position, v)| {
            let full = json!({
                "kind": "youtube#playlistItem",
                "etag": random_b64(12),
                "id": random_b64(24),
                "snippet": {
                    "publishedAt": v["snippet"]["publishedAt"],
                    "channelId": u.id,
                    "title": v["snippet"]["title"],
                    "description": v["snippet"]["description"],
                    "thumbnails": {},
                    "channelTitle": u.name,
                    "playlistId": playlist,
                    "position": position,
                    "resourceId": { "kind": "youtube#video", "videoId": v["id"] },
                },
                "contentDetails": { "videoId": v["id"], "videoPublishedAt": v["snippet"]["publishedAt"] },
                "status": { "privacyStatus": v["status"]["privacyStatus"] },
            });
            let mut item = json!({ "kind": full["kind"], "etag": full["etag"], "id": full["id"] });
            for p in parts.iter().filter(|p| **p != "id") {
                item[*p] = full[*p].clone();
            }
            item
        })
        .collect();
    axum::Json(json!({
        "kind": "youtube#playlistItemListResponse",
        "etag": random_b64(12),
        "pageInfo": { "totalResults": total, "resultsPerPage": max },
        "items": items,
    }))
    .into_response()
}

/// `POST /upload/youtube/v3/videos?uploadType=resumable&part=…` with the
/// video metadata: opens an upload session, answered by its `Location`.
async fn upload_init(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    let t = match caller(&ctx, &headers) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let params = parse_form(q.as_deref().unwrap_or_default().as_bytes());
    match required(&params, "uploadType") {
        Some("resumable") => {}
        Some(other) => {
            return bad_request(
                &format!(
                    "Invalid value for uploadType: {other}. The simulator supports resumable."
                ),
                "invalidValue",
            )
        }
        None => return bad_request("Media upload requires uploadType", "required"),
    }
    let Some(part) = required(&params, "part") else {
        return bad_request("Required parameter: part", "required");
    };
    if let Some(bad) = part.split(',').map(str::trim).find(|p| {
        !["snippet", "status", "id", "contentDetails", "recordingDetails", "localizations"]
            .contains(p)
    }) {
        return bad_request(&format!("'{bad}'"), "unknownPart");
    }
    if !has_any(&t, &[YT_UPLOAD, YT, YT_FORCE_SSL, YT_PARTNER]) {
        return insufficient_scope();
    }
    let meta: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(v @ Value::Object(_)) => v,
            _ => return bad_request("Parse Error", "parseError"),
        }
    };
    let mut snippet = meta.get("snippet").cloned().unwrap_or_else(|| json!({}));
    let title = match snippet.get("title") {
        None | Some(Value::Null) => "unknown".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => {
            return bad_request(
                "The request metadata specifies an invalid video title.",
                "invalidTitle",
            )
        }
    };
    if title.trim().is_empty() || title.chars().count() > 100 || title.contains(['<', '>']) {
        return bad_request(
            "The request metadata specifies an invalid video title.",
            "invalidTitle",
        );
    }
    snippet["title"] = json!(title);
    let privacy = meta
        .pointer("/status/privacyStatus")
        .and_then(Value::as_str)
        .unwrap_or("public")
        .to_owned();
    if !["public", "private", "unlisted"].contains(&privacy.as_str()) {
        return bad_request(
            "The request metadata specifies an invalid privacy status.",
            "invalidVideoMetadata",
        );
    }
    if ctx.common.content_rejected(PLATFORM) {
        return api_error(
            StatusCode::BAD_REQUEST,
            "The request metadata is invalid.",
            "invalidVideoMetadata",
            "youtube.video",
            None,
        );
    }
    let upload_id: String = random_b64(48).chars().filter(char::is_ascii_alphanumeric).collect();
    ctx.store().uploads.insert(
        upload_id.clone(),
        UploadSession { user_key: t.user_key, snippet, privacy, video: None },
    );
    let location = format!(
        "{}/google/apis/upload/youtube/v3/videos?uploadType=resumable&part={}&upload_id={upload_id}",
        request_base(&headers),
        url::form_urlencoded::byte_serialize(part.as_bytes()).collect::<String>()
    );
    let mut resp = StatusCode::OK.into_response();
    if let (Ok(loc), Ok(id)) = (HeaderValue::from_str(&location), HeaderValue::from_str(&upload_id))
    {
        resp.headers_mut().insert(header::LOCATION, loc);
        resp.headers_mut().insert(HeaderName::from_static("x-guploader-uploadid"), id);
    }
    resp
}

/// `PUT <Location>` with the video bytes: creates the video. A repeated PUT
/// to a finished session answers the same video again.
async fn upload_bytes(State(ctx): State<Ctx>, RawQuery(q): RawQuery, body: Bytes) -> Response {
    let params = parse_form(q.as_deref().unwrap_or_default().as_bytes());
    let Some(upload_id) = required(&params, "upload_id") else {
        return bad_request("Required parameter: upload_id", "required");
    };
    let mut s = ctx.store();
    let Some(session) = s.uploads.get(upload_id).cloned() else {
        return api_error(
            StatusCode::NOT_FOUND,
            "Upload session not found.",
            "notFound",
            "global",
            Some("NOT_FOUND"),
        );
    };
    if let Some(video) = session.video {
        return axum::Json(video).into_response();
    }
    if body.is_empty() {
        return bad_request("The request does not include the video content.", "mediaBodyRequired");
    }
    let title = session.snippet["title"].as_str().unwrap_or("unknown").to_owned();
    let Some(user) = s.accounts.user(&session.user_key).cloned() else { return unauthenticated() };
    let post = s.accounts.record_post(&session.user_key, &title, |_| {
        random_b64(9)
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .take(11)
            .collect()
    });
    let mut snippet = session.snippet.clone();
    snippet["publishedAt"] = json!(rfc3339(post.created_at));
    snippet["channelId"] = json!(user.id);
    snippet["channelTitle"] = json!(user.name);
    snippet["description"] = snippet.get("description").cloned().unwrap_or_else(|| json!(""));
    snippet["categoryId"] = snippet.get("categoryId").cloned().unwrap_or_else(|| json!("22"));
    snippet["liveBroadcastContent"] = json!("none");
    snippet["thumbnails"] = json!({});
    let video = json!({
        "kind": "youtube#video",
        "etag": random_b64(12),
        "id": post.id,
        "snippet": snippet,
        "status": {
            "uploadStatus": "uploaded",
            "privacyStatus": session.privacy,
            "license": "youtube",
            "embeddable": true,
            "publicStatsViewable": true,
            "selfDeclaredMadeForKids": false,
        },
    });
    if let Some(sess) = s.uploads.get_mut(upload_id) {
        sess.video = Some(video.clone());
    }
    drop(s);
    tracing::info!(platform = PLATFORM, video_id = %post.id, bytes = body.len(), "video uploaded");
    axum::Json(video).into_response()
}
