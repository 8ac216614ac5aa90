//! Facebook Pages: the login dialog on www.facebook.com (`/facebook/www`)
//! and the Graph API on graph.facebook.com (`/facebook/graph`): code
//! exchange, `fb_exchange_token`, `me`, `me/accounts` (Page tokens),
//! `{page-id}/feed` and `debug_token`. Every user owns exactly one Page.
//! This file routes the Graph paths; `authorize.rs`, `token.rs` and `api.rs`
//! answer them, `wire.rs` holds Facebook's nodes and errors.

mod api;
mod authorize;
mod token;
mod wire;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use axum::extract::State;
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use serde_json::Value;

use crate::accounts::{Accounts, Kind};
use crate::faults::{self, FaultCfg};
use crate::graph;
use crate::state::{lock, AccountAction, Common, PlatformSim, PostRecord};

const PLATFORM: &str = "facebook";
const USER_KINDS: &[Kind] = &[Kind::ShortLived, Kind::LongLived];
const ALL_KINDS: &[Kind] = &[Kind::ShortLived, Kind::LongLived, Kind::Page];

#[derive(Default)]
pub(crate) struct FacebookSim {
    accounts: Mutex<Accounts>,
}

/// What every Facebook handler gets.
type Ctx = crate::state::Ctx<FacebookSim>;

/// A Graph call of this platform, as `graph_dispatch` hands it on.
type Call<'a> = graph::Call<'a, Ctx>;

impl Ctx {
    fn accounts(&self) -> MutexGuard<'_, Accounts> {
        lock(&self.sim.accounts)
    }
}

impl PlatformSim for FacebookSim {
    fn name(&self) -> &'static str {
        PLATFORM
    }

    fn router(self: Arc<Self>, common: Arc<Common>) -> Router {
        let ctx = Ctx::new(self, Arc::clone(&common));
        let r = Router::new()
            .route(
                "/www/{version}/dialog/oauth",
                get(authorize::page_versioned).post(authorize::decision_versioned),
            )
            .route("/www/dialog/oauth", crate::authorize::endpoint())
            .route("/graph/{*rest}", any(graph_dispatch))
            .with_state(ctx);
        let fc = FaultCfg {
            platform: PLATFORM,
            common,
            outage: graph::outage,
            rate_limited: wire::rate_limited,
        };
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

/// Every Graph path. The token exchange is never rate limited; everything
/// else answers an injected rate limit first.
async fn graph_dispatch(State(ctx): State<Ctx>, req: graph::GraphRequest) -> Response {
    let (params, headers, method) = (&req.params, &req.headers, &req.method);
    let segs = req.segments();
    let call = Call { ctx: &ctx, params, headers };
    let is_get = *method == Method::GET;
    if segs == ["oauth", "access_token"] {
        return token::access_token(&ctx, params).unwrap_or_else(IntoResponse::into_response);
    }
    if let Some(until) = ctx.common.rate_limited_until(PLATFORM) {
        return wire::rate_limited(&ctx.common, until);
    }
    let result = match (segs.as_slice(), is_get) {
        (["debug_token"], true) => token::debug_token(&ctx, params),
        (["me"], true) => api::node(&call, None),
        (["me", "accounts"], true) => api::me_accounts(&call),
        ([id], true) => api::node(&call, Some(id)),
        ([id, "feed"], false) => api::create_post(&call, id, false),
        ([id, "photos"], false) => api::create_post(&call, id, true),
        ([id, "feed" | "posts" | "published_posts"], true) => api::list_posts(&call, id),
        ([first, ..], false) => Err(graph::no_such_object("post", first)),
        _ => Err(graph::unknown_path(&segs.join("/"))),
    };
    result.unwrap_or_else(IntoResponse::into_response)
}
