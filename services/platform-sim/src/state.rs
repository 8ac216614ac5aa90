//! Shared in-memory state: what every platform needs (clock, clients, fault
//! injection, the log of issued secrets) and the table of platforms, which
//! `lib.rs` fills in: this module names none of them.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use serde::Serialize;

use crate::clock::Clock;
use crate::config::{ClientRegistration, SimConfig};

/// Locks a mutex, recovering from poisoning: a panicked handler must not take
/// the whole simulator down with it, and every critical section leaves the
/// state consistent between statements.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Something that happened to one platform account, injected through
/// `POST /_sim/{platform}/accounts/{username}/{action}`. Each platform maps it
/// to what it really answers afterwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AccountAction {
    /// The user removed the app in the platform's settings.
    Revoke,
    /// The user's access tokens lapse now.
    Expire,
    /// The user changed their password.
    PasswordChange,
    /// The user unticked one permission.
    RemoveScope(String),
    /// The platform locked the account until the user passes a checkpoint.
    SecurityCheckpoint,
    /// The app was deauthorized (Meta's "deauthorize callback" event).
    Deauthorize,
}

impl AccountAction {
    /// The JSON key of the control API's answer, e.g. `revoked_tokens`.
    pub fn answer_key(&self) -> &'static str {
        match self {
            Self::Revoke => "revoked_tokens",
            Self::Expire => "expired_tokens",
            _ => "affected_tokens",
        }
    }
}

/// One simulated platform. Adding a platform means adding a folder that
/// implements this and one line in `lib.rs`.
pub(crate) trait PlatformSim: Send + Sync + 'static {
    /// Control-API key and client-registration key, e.g. `"x"`.
    fn name(&self) -> &'static str;
    /// URL prefix the platform's routes are mounted under (`/{prefix}`);
    /// defaults to the name (YouTube lives under `/google`).
    fn prefix(&self) -> &'static str {
        self.name()
    }
    /// The platform's own routes, mounted under `/{prefix}`.
    fn router(self: Arc<Self>, common: Arc<Common>) -> Router;
    /// Applies a control action to every token of `username`; returns how
    /// many tokens it touched, `None` when the user is unknown.
    fn account_action(&self, username: &str, action: &AccountAction) -> Option<usize>;
    /// Platform-specific settings (`POST /_sim/{platform}/settings`); returns
    /// the settings now in force, or a message for a 400.
    fn configure(&self, _settings: &serde_json::Value) -> Result<serde_json::Value, String> {
        Err(format!("{} has no settings", self.name()))
    }
    /// The post log, in acceptance order.
    fn posts(&self) -> Vec<PostRecord>;
    /// Counters for `GET /_sim/stats`.
    fn stats(&self) -> serde_json::Value;
}

/// A post the platform accepted, as listed by `GET /_sim/posts`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct PostRecord {
    pub platform: &'static str,
    pub id: String,
    pub user_id: String,
    pub username: String,
    pub text: String,
    pub created_at: String,
}

/// Faults injected through the control API for one platform. Deadlines are
/// real instants: "for_seconds" in the control API is real time.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Faults {
    pub rate_limited_until: Option<Instant>,
    pub outage: Option<Outage>,
    pub latency: Option<Latency>,
    pub reject_content_until: Option<Instant>,
    pub ambiguous: Option<Ambiguous>,
}

/// The "ambiguous" fault: the platform takes the post (stored, listed, in
/// the post log) and then drops the connection instead of answering.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Ambiguous {
    /// The next `n` publishes.
    Next(u32),
    /// Every publish until then.
    Until(Instant),
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Outage {
    pub until: Instant,
    pub status: u16,
    /// Requests hang until the outage ends instead of failing fast.
    pub hang: bool,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Latency {
    pub until: Instant,
    pub extra: Duration,
}

/// State every platform shares.
pub(crate) struct Common {
    pub clock: Clock,
    clients: Vec<ClientRegistration>,
    faults: Mutex<HashMap<&'static str, Faults>>,
    /// Every token and code ever issued, so tests can prove none leaks into logs.
    issued_secrets: Mutex<Vec<String>>,
    /// Answers dropped by the ambiguous fault, per platform (`GET /_sim/stats`).
    lost_answers: Mutex<HashMap<&'static str, u64>>,
}

impl Common {
    pub fn client(&self, platform: &str, client_id: &str) -> Option<&ClientRegistration> {
        self.clients.iter().find(|c| c.platform == platform && c.client_id == client_id)
    }

    /// The client when `client_id` is registered for `platform` and
    /// `secret` is its secret.
    pub fn authenticate_client(
        &self,
        platform: &str,
        client_id: &str,
        secret: &str,
    ) -> Option<&ClientRegistration> {
        self.client(platform, client_id).filter(|c| c.client_secret.as_deref() == Some(secret))
    }

    pub fn record_secret(&self, secret: &str) {
        lock(&self.issued_secrets).push(secret.to_owned());
    }

    pub fn issued_secrets(&self) -> Vec<String> {
        lock(&self.issued_secrets).clone()
    }

    fn faults(&self, platform: &'static str) -> Faults {
        lock(&self.faults).get(platform).copied().unwrap_or_default()
    }

    /// The outage in force for `platform`, if any.
    pub fn outage(&self, platform: &'static str) -> Option<Outage> {
        let now = self.clock.now();
        self.faults(platform).outage.filter(|o| o.until > now)
    }

    /// Applies injected latency and hangs, then returns the outage the
    /// request must answer with, if any. Every platform's outermost layer.
    pub async fn before_request(&self, platform: &'static str) -> Option<Outage> {
        let now = self.clock.now();
        let faults = self.faults(platform);
        if let Some(l) = faults.latency.filter(|l| l.until > now) {
            tokio::time::sleep(l.extra).await;
        }
        let outage = self.outage(platform)?;
        if outage.hang {
            tokio::time::sleep_until(outage.until.into()).await;
        }
        Some(outage)
    }

    /// When the injected rate limit for `platform` ends, if one is in force.
    pub fn rate_limited_until(&self, platform: &'static str) -> Option<Instant> {
        let now = self.clock.now();
        self.faults(platform).rate_limited_until.filter(|until| *until > now)
    }

    /// Whether the platform currently refuses content (reject-content fault).
    pub fn content_rejected(&self, platform: &'static str) -> bool {
        let now = self.clock.now();
        self.faults(platform).reject_content_until.is_some_and(|until| until > now)
    }

    pub fn set_rate_limit(&self, platform: &'static str, real: Duration) {
        let until = self.clock.now() + real;
        lock(&self.faults).entry(platform).or_default().rate_limited_until = Some(until);
    }

    pub fn set_outage(&self, platform: &'static str, real: Duration, status: u16, hang: bool) {
        let until = self.clock.now() + real;
        lock(&self.faults).entry(platform).or_default().outage =
            Some(Outage { until, status, hang });
    }

    pub fn set_latency(&self, platform: &'static str, real: Duration, extra: Duration) {
        let until = self.clock.now() + real;
        lock(&self.faults).entry(platform).or_default().latency = Some(Latency { until, extra });
    }

    pub fn set_reject_content(&self, platform: &'static str, real: Duration) {
        let until = self.clock.now() + real;
        lock(&self.faults).entry(platform).or_default().reject_content_until = Some(until);
    }

    pub fn set_ambiguous(&self, platform: &'static str, fault: Ambiguous) {
        lock(&self.faults).entry(platform).or_default().ambiguous = Some(fault);
    }

    /// Called by a publish endpoint once the post is stored: whether the
    /// ambiguous fault takes this answer (one of `Next(n)` is used up). The
    /// caller then answers [`crate::faults::lost_answer`].
    pub fn answer_lost(&self, platform: &'static str) -> bool {
        let now = self.clock.now();
        let mut faults = lock(&self.faults);
        let Some(f) = faults.get_mut(platform) else { return false };
        let lost = match f.ambiguous {
            Some(Ambiguous::Next(n)) if n > 0 => {
                f.ambiguous = (n > 1).then(|| Ambiguous::Next(n - 1));
                true
            }
            Some(Ambiguous::Until(until)) => until > now,
            _ => false,
        };
        drop(faults);
        if lost {
            *lock(&self.lost_answers).entry(platform).or_default() += 1;
        }
        lost
    }

    /// How many answers the ambiguous fault dropped on `platform`.
    pub fn lost_answers(&self, platform: &'static str) -> u64 {
        lock(&self.lost_answers).get(platform).copied().unwrap_or_default()
    }

    pub fn clear_faults(&self, platform: &'static str) {
        lock(&self.faults).remove(platform);
    }
}

/// The simulator's whole state; cheap to clone.
#[derive(Clone)]
pub struct SimState {
    common: Arc<Common>,
    platforms: Arc<BTreeMap<&'static str, Arc<dyn PlatformSim>>>,
}

impl SimState {
    /// The shared state for `config` and the given platforms, keyed by name.
    pub(crate) fn new(config: &SimConfig, platforms: Vec<Arc<dyn PlatformSim>>) -> Self {
        let common = Arc::new(Common {
            clock: Clock::new(config.time_scale),
            clients: config.clients.clone(),
            faults: Mutex::default(),
            issued_secrets: Mutex::default(),
            lost_answers: Mutex::default(),
        });
        let platforms = platforms.into_iter().map(|p| (p.name(), p)).collect();
        Self { common, platforms: Arc::new(platforms) }
    }

    pub(crate) fn common(&self) -> Arc<Common> {
        Arc::clone(&self.common)
    }

    pub(crate) fn platforms(&self) -> impl Iterator<Item = &Arc<dyn PlatformSim>> {
        self.platforms.values()
    }

    pub(crate) fn platform(&self, name: &str) -> Option<&Arc<dyn PlatformSim>> {
        self.platforms.get(name)
    }
}

/// What every handler of one platform gets: that platform's own state (`S`)
/// and the state all platforms share.
pub(crate) struct Ctx<S> {
    pub sim: Arc<S>,
    pub common: Arc<Common>,
}

impl<S> Ctx<S> {
    pub fn new(sim: Arc<S>, common: Arc<Common>) -> Self {
        Self { sim, common }
    }
}

// By hand: a derive would demand `S: Clone`, but only the `Arc`s are cloned.
impl<S> Clone for Ctx<S> {
    fn clone(&self) -> Self {
        Self { sim: Arc::clone(&self.sim), common: Arc::clone(&self.common) }
    }
}
