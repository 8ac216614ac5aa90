//! YouTube via Google OAuth 2.0: consent on accounts.google.com
//! (`/google/accounts`), token and revoke on oauth2.googleapis.com
//! (`/google/oauth2`), `channels`, `playlistItems` and resumable `videos`
//! uploads on www.googleapis.com (`/google/apis`). Mounted under `/google`;
//! the control key stays `youtube`. `authorize.rs`, `token.rs` and `api.rs`
//! are those endpoints, `wire.rs` Google's error bodies.

mod api;
mod authorize;
mod token;
mod wire;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};

use crate::accounts::{Accounts, Death, Kind};
use crate::faults::{self, FaultCfg};
use crate::state::{lock, AccountAction, Common, PlatformSim, PostRecord};

const PLATFORM: &str = "youtube";
const YT: &str = "https://www.googleapis.com/auth/youtube";
const YT_UPLOAD: &str = "https://www.googleapis.com/auth/youtube.upload";
const YT_READONLY: &str = "https://www.googleapis.com/auth/youtube.readonly";
const YT_FORCE_SSL: &str = "https://www.googleapis.com/auth/youtube.force-ssl";
const YT_PARTNER: &str = "https://www.googleapis.com/auth/youtubepartner";

#[derive(Default)]
struct Store {
    accounts: Accounts,
    /// Resumable upload sessions by upload id.
    uploads: HashMap<String, api::UploadSession>,
}

pub(crate) struct YouTubeSim {
    store: Mutex<Store>,
    /// The Google app is in "Testing" publishing status: refresh tokens
    /// then die after 7 days.
    testing_mode: AtomicBool,
}

impl YouTubeSim {
    pub fn new(testing_mode: bool) -> Self {
        Self { store: Mutex::default(), testing_mode: AtomicBool::new(testing_mode) }
    }
}

/// What every YouTube handler gets.
type Ctx = crate::state::Ctx<YouTubeSim>;

impl Ctx {
    fn store(&self) -> MutexGuard<'_, Store> {
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
        let ctx = Ctx::new(self, Arc::clone(&common));
        let oauth = Router::new()
            .route("/accounts/o/oauth2/v2/auth", crate::authorize::endpoint())
            .route("/oauth2/token", post(token::token))
            .route("/oauth2/revoke", post(token::revoke))
            .with_state(ctx.clone());
        let api = Router::new()
            .route("/apis/youtube/v3/channels", get(api::channels))
            .route("/apis/youtube/v3/playlistItems", get(api::playlist_items))
            .route("/apis/upload/youtube/v3/videos", post(api::upload_init).put(api::upload_bytes))
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
        let a = &mut lock(&self.store).accounts;
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
