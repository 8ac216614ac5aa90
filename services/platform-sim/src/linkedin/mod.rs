//! LinkedIn: OAuth 2.0 on www.linkedin.com (`/linkedin/www`), OpenID
//! `userinfo` and versioned `rest/posts` on api.linkedin.com
//! (`/linkedin/api`). Access tokens live 60 days; the refresh token lives
//! 365 days from the first grant and is returned unchanged by each refresh.
//! `authorize.rs`, `token.rs` and `api.rs` are those endpoints, `wire.rs`
//! LinkedIn's error bodies.

mod api;
mod authorize;
mod token;
mod wire;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use axum::routing::{get, post};
use axum::Router;
use serde_json::Value;

use crate::accounts::Accounts;
use crate::faults::{self, FaultCfg};
use crate::state::{lock, AccountAction, Common, PlatformSim, PostRecord};

const PLATFORM: &str = "linkedin";

#[derive(Default)]
pub(crate) struct LinkedInSim {
    accounts: Mutex<Accounts>,
}

/// What every LinkedIn handler gets.
type Ctx = crate::state::Ctx<LinkedInSim>;

impl Ctx {
    fn accounts(&self) -> MutexGuard<'_, Accounts> {
        lock(&self.sim.accounts)
    }
}

impl PlatformSim for LinkedInSim {
    fn name(&self) -> &'static str {
        PLATFORM
    }

    fn router(self: Arc<Self>, common: Arc<Common>) -> Router {
        let ctx = Ctx::new(self, Arc::clone(&common));
        let oauth = Router::new()
            .route("/www/oauth/v2/authorization", crate::authorize::endpoint())
            .route("/www/oauth/v2/accessToken", post(token::token))
            .route("/www/oauth/v2/revoke", post(token::revoke))
            .with_state(ctx.clone());
        let api = Router::new()
            .route("/api/v2/userinfo", get(api::userinfo))
            .route("/api/rest/posts", post(api::create_post).get(api::list_posts))
            .with_state(ctx);
        let fc = FaultCfg {
            platform: PLATFORM,
            common,
            outage: wire::outage,
            rate_limited: wire::rate_limited,
        };
        faults::mount(oauth, api, &fc)
    }

    fn account_action(&self, username: &str, action: &AccountAction) -> Option<usize> {
        // LinkedIn has one signal for every way a connection dies: the token
        // is revoked.
        lock(&self.accounts).apply_revoking(username, action, Instant::now())
    }

    fn posts(&self) -> Vec<PostRecord> {
        lock(&self.accounts).post_records(PLATFORM)
    }

    fn stats(&self) -> Value {
        lock(&self.accounts).stats_json()
    }
}
