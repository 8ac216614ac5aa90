//! X (Twitter) API v2: OAuth 2.0 authorization code + PKCE, rotating refresh
//! tokens, `users/me` and tweets, mounted under `/x` with X's own paths.
//! `authorize.rs` is the consent flow, `token.rs` the token and revoke
//! endpoints, `api.rs` the v2 API and `wire.rs` X's bodies and headers.

mod api;
mod authorize;
mod token;
mod wire;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use axum::http::HeaderName;
use axum::middleware::map_response;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde_json::json;

use crate::accounts::Accounts;
use crate::faults::{self, FaultCfg};
use crate::state::{lock, AccountAction, Common, PlatformSim, PostRecord};

pub(crate) const PLATFORM: &str = "x";

/// Limit reported with an injected 429; X's per-user limit for most v2 reads.
const INJECTED_LIMIT: u32 = 75;

/// X's state: the shared account model plus what only X keeps.
#[derive(Default)]
struct Store {
    accounts: Accounts,
    /// 15-minute call windows per endpoint and user, for `x-rate-limit-*`.
    windows: HashMap<(&'static str, String), api::Window>,
    /// The last tweet id handed out: ids only ever increase.
    last_tweet_id: u64,
    /// Tweets refused because their user was past X's per-user limit.
    rate_limited: u64,
}

/// The X simulator's state.
#[derive(Default)]
pub(crate) struct XSim {
    store: Mutex<Store>,
}

/// What every X handler gets.
type Ctx = crate::state::Ctx<XSim>;

impl Ctx {
    fn store(&self) -> MutexGuard<'_, Store> {
        lock(&self.sim.store)
    }
}

impl PlatformSim for XSim {
    fn name(&self) -> &'static str {
        PLATFORM
    }

    fn router(self: Arc<Self>, common: Arc<Common>) -> Router {
        let ctx = Ctx::new(self, Arc::clone(&common));
        let oauth = Router::new()
            .route(
                "/i/oauth2/authorize",
                get(authorize::authorize_page).post(authorize::authorize_decision),
            )
            .route("/2/oauth2/token", post(token::token))
            .route("/2/oauth2/revoke", post(token::revoke))
            .with_state(ctx.clone());
        let api = Router::new()
            .route("/2/users/me", get(api::users_me))
            .route("/2/tweets", post(api::create_tweet))
            .route("/2/users/{id}/tweets", get(api::user_tweets))
            .with_state(ctx);
        let fc = FaultCfg { platform: PLATFORM, common, outage: wire::outage, rate_limited };
        // Every answer, an injected outage included, carries a transaction id.
        faults::mount(oauth, api, &fc).layer(map_response(with_transaction_id))
    }

    fn account_action(&self, username: &str, action: &AccountAction) -> Option<usize> {
        // X has no separate signal for a password change, a checkpoint or a
        // deauthorization: the tokens simply stop working.
        lock(&self.store).accounts.apply_revoking(username, action, Instant::now())
    }

    fn posts(&self) -> Vec<PostRecord> {
        lock(&self.store).accounts.post_records_as(PLATFORM, api::x_timestamp)
    }

    fn stats(&self) -> serde_json::Value {
        let store = lock(&self.store);
        let mut stats = store.accounts.stats_json();
        // X refuses duplicates (403) instead of accepting them twice.
        stats["duplicate_posts"] = json!(0);
        // Posts refused with a 429 for being past the per-user limit (not injected ones).
        stats["rate_limited_posts"] = json!(store.rate_limited);
        stats
    }
}

fn rate_limited(common: &Common, until: Instant) -> Response {
    wire::too_many_requests(INJECTED_LIMIT, common.clock.epoch_secs(until))
}

async fn with_transaction_id(mut resp: Response) -> Response {
    resp.headers_mut().insert(HeaderName::from_static("x-transaction-id"), wire::transaction_id());
    resp
}
