//! X (Twitter) API v2: OAuth 2.0 authorization code + PKCE, rotating refresh
//! tokens, `users/me` and tweets, mounted under `/x` with X's own paths.

mod api;
mod oauth;
mod store;
mod wire;

use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::{HeaderName, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde_json::json;

use crate::state::{lock, AccountAction, Common, PlatformSim, PostRecord};
use store::XStore;

pub(crate) const PLATFORM: &str = "x";

/// The X simulator's state.
#[derive(Default)]
pub(crate) struct XSim {
    store: Mutex<XStore>,
}

/// What every X handler gets.
#[derive(Clone)]
pub(crate) struct Ctx {
    sim: Arc<XSim>,
    common: Arc<Common>,
}

impl Ctx {
    fn store(&self) -> std::sync::MutexGuard<'_, XStore> {
        lock(&self.sim.store)
    }
}

impl PlatformSim for XSim {
    fn name(&self) -> &'static str {
        PLATFORM
    }

    fn router(self: Arc<Self>, common: Arc<Common>) -> Router {
        let ctx = Ctx { sim: self, common };
        // Injected rate limits hit API calls only; the OAuth endpoints have
        // their own (unsimulated) limits.
        let api = Router::new()
            .route("/2/users/me", get(api::users_me))
            .route("/2/tweets", post(api::create_tweet))
            .route("/2/users/{id}/tweets", get(api::user_tweets))
            .layer(middleware::from_fn_with_state(ctx.clone(), rate_limit));
        Router::new()
            .route(
                "/i/oauth2/authorize",
                get(oauth::authorize_page).post(oauth::authorize_decision),
            )
            .route("/2/oauth2/token", post(oauth::token))
            .route("/2/oauth2/revoke", post(oauth::revoke))
            .merge(api)
            // An outage takes every endpoint down, the token endpoint included.
            .layer(middleware::from_fn_with_state(ctx.clone(), outage))
            .with_state(ctx)
    }

    fn account_action(&self, username: &str, action: &AccountAction) -> Option<usize> {
        let mut store = lock(&self.store);
        match action {
            AccountAction::Expire => store.expire_user(username, std::time::Instant::now()),
            AccountAction::RemoveScope(scope) => store.remove_scope_user(username, scope),
            // X has no separate signal for these: the tokens simply stop working.
            AccountAction::Revoke
            | AccountAction::PasswordChange
            | AccountAction::SecurityCheckpoint
            | AccountAction::Deauthorize => store.revoke_user(username),
        }
    }

    fn posts(&self) -> Vec<PostRecord> {
        lock(&self.store)
            .all_tweets()
            .into_iter()
            .map(|(t, u)| PostRecord {
                platform: PLATFORM,
                id: t.id,
                user_id: u.id,
                username: u.username,
                text: t.text,
                created_at: api::x_timestamp(t.created_at),
            })
            .collect()
    }

    fn stats(&self) -> serde_json::Value {
        let store = lock(&self.store);
        let s = &store.stats;
        json!({
            "refresh_token_reuse": s.refresh_token_reuse,
            // X refuses duplicates (403) instead of accepting them twice.
            "duplicate_posts": 0,
            "tokens_issued": s.tokens_issued,
            "refreshes": s.refreshes,
            "posts": s.posts,
        })
    }
}

async fn outage(State(ctx): State<Ctx>, req: Request, next: Next) -> Response {
    let mut resp = match ctx.common.before_request(PLATFORM).await {
        Some(o) => {
            let status = StatusCode::from_u16(o.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            wire::outage(status)
        }
        None => next.run(req).await,
    };
    resp.headers_mut().insert(HeaderName::from_static("x-transaction-id"), wire::transaction_id());
    resp
}

/// Limit reported with an injected 429; X's per-user limit for most v2 reads.
const INJECTED_LIMIT: u32 = 75;

async fn rate_limit(State(ctx): State<Ctx>, req: Request, next: Next) -> Response {
    match ctx.common.rate_limited_until(PLATFORM) {
        Some(until) => wire::too_many_requests(INJECTED_LIMIT, ctx.common.clock.epoch_secs(until)),
        None => next.run(req).await,
    }
}
