//! TikTok Login Kit and Content Posting API: authorize on www.tiktok.com
//! (`/tiktok/www`), token, revoke, user info and video publishing on
//! open.tiktokapis.com (`/tiktok/open`), file uploads on
//! open-upload.tiktokapis.com (`/tiktok/upload`). Refresh tokens rotate.
//! `authorize.rs`, `token.rs` and `api.rs` are those endpoints, `wire.rs`
//! TikTok's envelopes and errors.

mod api;
mod authorize;
mod token;
mod wire;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use axum::routing::{get, post, put};
use axum::Router;
use serde_json::Value;

use crate::accounts::Accounts;
use crate::faults::{self, FaultCfg};
use crate::state::{lock, AccountAction, Common, PlatformSim, PostRecord};

const PLATFORM: &str = "tiktok";

#[derive(Default)]
struct Store {
    accounts: Accounts,
    /// Direct Post publishes by `publish_id`.
    publishes: HashMap<String, api::Publish>,
    next_publish: u64,
}

#[derive(Default)]
pub(crate) struct TikTokSim {
    store: Mutex<Store>,
}

/// What every TikTok handler gets.
type Ctx = crate::state::Ctx<TikTokSim>;

impl Ctx {
    fn store(&self) -> MutexGuard<'_, Store> {
        lock(&self.sim.store)
    }
}

impl PlatformSim for TikTokSim {
    fn name(&self) -> &'static str {
        PLATFORM
    }

    fn router(self: Arc<Self>, common: Arc<Common>) -> Router {
        let ctx = Ctx::new(self, Arc::clone(&common));
        let oauth = Router::new()
            .route("/www/v2/auth/authorize/", crate::authorize::endpoint())
            .route("/www/v2/auth/authorize", crate::authorize::endpoint())
            .route("/open/v2/oauth/token/", post(token::token))
            .route("/open/v2/oauth/revoke/", post(token::revoke))
            .with_state(ctx.clone());
        let api = Router::new()
            .route("/open/v2/user/info/", get(api::user_info))
            .route("/open/v2/post/publish/creator_info/query/", post(api::creator_info))
            .route("/open/v2/post/publish/video/init/", post(api::video_init))
            .route("/open/v2/post/publish/status/fetch/", post(api::status_fetch))
            .route("/upload/video/", put(api::upload))
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
        lock(&self.store).accounts.apply_revoking(username, action, Instant::now())
    }

    fn posts(&self) -> Vec<PostRecord> {
        lock(&self.store).accounts.post_records(PLATFORM)
    }

    fn stats(&self) -> Value {
        lock(&self.store).accounts.stats_json()
    }
}
