//! Meta's "login with the app's own user" flow, shared by Instagram (API with
//! Instagram Login) and Threads: code → 1-hour token, exchange → 60-day
//! token, refresh of that token itself once ≥ 24 h old, and two-step
//! publishing (container, then publish). `instagram.rs` and `threads.rs`
//! each supply a `Config` with their names, scopes and wire differences;
//! this file routes, `authorize.rs`, `token.rs` and `api.rs` answer, and
//! `wire.rs` holds the shapes both platforms share.

mod api;
mod authorize;
mod instagram;
mod threads;
mod token;
mod wire;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use axum::extract::State;
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use axum::Router;
use serde_json::Value;

use crate::accounts::{Accounts, User};
use crate::faults::{self, FaultCfg};
use crate::graph::{self, GraphError};
use crate::state::{lock, AccountAction, Common, PlatformSim, PostRecord};

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

/// What one Meta-login platform names and answers differently.
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
    pub user_node: fn(&User, usize) -> Value,
    pub user_node_type: &'static str,
    pub container: fn(&HashMap<String, String>) -> Result<ContainerSpec, GraphError>,
    /// The code exchange's success body.
    pub code_response: fn(&str, &User, &[String]) -> Value,
    pub rate_limited: fn(&Common, Instant) -> Response,
}

#[derive(Default)]
struct Store {
    accounts: Accounts,
    containers: HashMap<String, api::Container>,
    next_id: u64,
}

pub(crate) struct MetaLoginSim {
    cfg: &'static Config,
    store: Mutex<Store>,
}

impl MetaLoginSim {
    fn new(cfg: &'static Config) -> Self {
        Self { cfg, store: Mutex::default() }
    }
}

/// The Instagram simulator.
pub(crate) fn instagram() -> MetaLoginSim {
    MetaLoginSim::new(&instagram::CONFIG)
}

/// The Threads simulator.
pub(crate) fn threads() -> MetaLoginSim {
    MetaLoginSim::new(&threads::CONFIG)
}

/// What every handler of a Meta-login platform gets.
type Ctx = crate::state::Ctx<MetaLoginSim>;

/// A Graph call of this platform, as `graph_dispatch` hands it on.
type Call<'a> = graph::Call<'a, Ctx>;

impl Ctx {
    fn store(&self) -> MutexGuard<'_, Store> {
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
        let ctx = Ctx::new(self, Arc::clone(&common));
        let mut r = Router::new()
            .route(
                &format!("/{}/oauth/authorize", cfg.authorize_host),
                crate::authorize::endpoint(),
            )
            .route("/graph/{*rest}", any(graph_dispatch));
        if cfg.code_host != "graph" {
            r = r.route(
                &format!("/{}/oauth/access_token", cfg.code_host),
                post(token::code_exchange),
            );
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

/// Every Graph path. The token endpoints are never rate limited; everything
/// else answers an injected rate limit first.
async fn graph_dispatch(State(ctx): State<Ctx>, req: graph::GraphRequest) -> Response {
    let (params, headers, method) = (&req.params, &req.headers, &req.method);
    let segs = req.segments();
    let call = Call { ctx: &ctx, params, headers };
    let cfg = ctx.cfg();
    if cfg.code_host == "graph" && segs == ["oauth", "access_token"] && *method == Method::POST {
        return token::exchange_code(&ctx, params).unwrap_or_else(IntoResponse::into_response);
    }
    let is_get = *method == Method::GET;
    let token_call = match (segs.as_slice(), is_get) {
        (["access_token"], true) => Some(token::exchange(&call)),
        (["refresh_access_token"], true) => Some(token::refresh(&call)),
        _ => None,
    };
    if let Some(result) = token_call {
        return result.unwrap_or_else(IntoResponse::into_response);
    }
    if let Some(until) = ctx.common.rate_limited_until(cfg.platform) {
        return (cfg.rate_limited)(&ctx.common, until);
    }
    let result = match (segs.as_slice(), is_get) {
        (["me"], true) => api::node(&call, None),
        ([id], true) => api::node(&call, Some(id)),
        ([id, edge], false) if *edge == cfg.container_edge => api::create_container(&call, id),
        ([id, edge], false) if *edge == cfg.publish_edge => api::publish(&call, id),
        ([id, edge], true) if *edge == cfg.container_edge => api::list_media(&call, id),
        ([id, edge], true) if *edge == cfg.limit_edge => api::publishing_limit(&call, id),
        ([first, ..], false) => Err(graph::no_such_object("post", first)),
        _ => Err(graph::unknown_path(&segs.join("/"))),
    };
    result.unwrap_or_else(IntoResponse::into_response)
}
