//! Shared in-memory state: what every platform needs (clock, clients, fault
//! injection, the log of issued secrets) plus the registry of platforms.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use serde::Serialize;

use crate::clock::Clock;
use crate::{ClientRegistration, SimConfig};

/// Locks a mutex, recovering from poisoning: a panicked handler must not take
/// the whole simulator down with it, and every critical section leaves the
/// state consistent between statements.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One simulated platform. Adding a platform means adding a folder that
/// implements this and one line in `SimState::new`.
pub(crate) trait PlatformSim: Send + Sync + 'static {
    /// URL prefix and control-API key, e.g. `"x"`.
    fn name(&self) -> &'static str;
    /// The platform's own routes, mounted under `/{name}`.
    fn router(self: Arc<Self>, common: Arc<Common>) -> Router;
    /// Revokes every token of `username`; `None` when the user is unknown.
    fn revoke_account(&self, username: &str) -> Option<usize>;
    /// Expires every access token of `username` now; `None` when unknown.
    fn expire_account(&self, username: &str) -> Option<usize>;
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
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Outage {
    pub until: Instant,
    pub status: u16,
}

/// State every platform shares.
pub(crate) struct Common {
    pub clock: Clock,
    clients: Vec<ClientRegistration>,
    faults: Mutex<HashMap<&'static str, Faults>>,
    /// Every token and code ever issued, so tests can prove none leaks into logs.
    issued_secrets: Mutex<Vec<String>>,
}

impl Common {
    pub fn client(&self, platform: &str, client_id: &str) -> Option<&ClientRegistration> {
        self.clients.iter().find(|c| c.platform == platform && c.client_id == client_id)
    }

    pub fn record_secret(&self, secret: &str) {
        lock(&self.issued_secrets).push(secret.to_owned());
    }

    pub fn issued_secrets(&self) -> Vec<String> {
        lock(&self.issued_secrets).clone()
    }

    /// The outage in force for `platform`, if any.
    pub fn outage(&self, platform: &'static str) -> Option<Outage> {
        let now = self.clock.now();
        lock(&self.faults).get(platform).and_then(|f| f.outage).filter(|o| o.until > now)
    }

    /// When the injected rate limit for `platform` ends, if one is in force.
    pub fn rate_limited_until(&self, platform: &'static str) -> Option<Instant> {
        let now = self.clock.now();
        lock(&self.faults)
            .get(platform)
            .and_then(|f| f.rate_limited_until)
            .filter(|until| *until > now)
    }

    pub fn set_rate_limit(&self, platform: &'static str, real: Duration) {
        let until = self.clock.now() + real;
        lock(&self.faults).entry(platform).or_default().rate_limited_until = Some(until);
    }

    pub fn set_outage(&self, platform: &'static str, real: Duration, status: u16) {
        let until = self.clock.now() + real;
        lock(&self.faults).entry(platform).or_default().outage = Some(Outage { until, status });
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
    pub fn new(config: SimConfig) -> Self {
        let common = Arc::new(Common {
            clock: Clock::new(config.time_scale),
            clients: config.clients,
            faults: Mutex::default(),
            issued_secrets: Mutex::default(),
        });
        let all: Vec<Arc<dyn PlatformSim>> = vec![Arc::new(crate::x::XSim::default())];
        let platforms = all.into_iter().map(|p| (p.name(), p)).collect();
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
