//! Contract tests' harness: the platform simulator in-process on an ephemeral port, the
//! production connectors (`Connectors::from_env`) pointed at it, and the steps every scenario is
//! made of (connect through the consent page, call the connector, inject a fault through the
//! control API, assert the classified outcome). Nothing here imitates a platform: every call is
//! real HTTP between a connector and the simulator.
//!
//! Expected values come from the platforms' documentation (`../shared/PLATFORMS.md`,
//! `docs/platform-sim.md`), never from running the code.

pub mod scenarios;

use std::{ops::RangeInclusive, sync::Arc, time::Duration};

use chrono::Utc;
use lifeline_kit::{config::Env, Platform};
use lifeline_platforms::{
    AccessToken, AuthCause, Connector, Connectors, Failure, Grant, Media, MediaKind, PlatformUser,
    PostDraft, Published,
};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

/// Where the connectors believe the auth-gateway is: callbacks go to
/// `<PUBLIC>/oauth/callback/<platform>`. Nothing listens there; the tests read the redirect.
pub const PUBLIC: &str = "http://127.0.0.1:9";

pub const DAY: u64 = 24 * 3600;

/// A running simulator and the connectors configured against it; the simulator stops on drop.
pub struct Sim {
    pub base: String,
    pub connectors: Connectors,
    http: reqwest::Client,
    shutdown: CancellationToken,
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// How a [`Sim`] is started.
#[derive(Clone, Copy)]
pub struct Options {
    /// `SIM_TIME_SCALE`: platform time runs this many times faster.
    pub time_scale: f64,
    /// `LIFELINE_PLATFORM_TIMEOUT` for the connectors' HTTP client.
    pub platform_timeout: &'static str,
}

impl Default for Options {
    fn default() -> Self {
        Options { time_scale: 1.0, platform_timeout: "15s" }
    }
}

impl Sim {
    pub async fn start() -> Sim {
        Sim::start_with(Options::default()).await
    }

    pub async fn scaled(time_scale: f64) -> Sim {
        Sim::start_with(Options { time_scale, ..Options::default() }).await
    }

    /// Starts the simulator with its default apps (`lifeline-<p>-dev` / `sim-<p>-secret`) and
    /// builds the connectors exactly as a service does, from environment variables: the same
    /// client ids and secrets, differing from production only in `LIFELINE_SIM_URL`.
    pub async fn start_with(options: Options) -> Sim {
        let config = platform_sim::SimConfig {
            time_scale: options.time_scale,
            ..platform_sim::SimConfig::default()
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("local addr"));
        let shutdown = CancellationToken::new();
        tokio::spawn(platform_sim::run(listener, config, shutdown.clone()));
        let mut vars = vec![
            ("LIFELINE_SIM_URL".to_owned(), base.clone()),
            ("LIFELINE_PUBLIC_URL".to_owned(), PUBLIC.to_owned()),
            ("LIFELINE_PLATFORM_TIMEOUT".to_owned(), options.platform_timeout.to_owned()),
            ("LIFELINE_TIKTOK_POLL_INTERVAL".to_owned(), "50ms".to_owned()),
            // The simulator serves media over http on loopback, which production refuses.
            ("LIFELINE_MEDIA_ALLOW_HTTP".to_owned(), "true".to_owned()),
            ("LIFELINE_MEDIA_ALLOW_HOSTS".to_owned(), "127.0.0.1".to_owned()),
        ];
        for p in Platform::ALL {
            let upper = p.as_str().to_ascii_uppercase();
            vars.push((
                format!("LIFELINE_{upper}_CLIENT_ID"),
                format!("lifeline-{}-dev", p.as_str()),
            ));
            vars.push((
                format!("LIFELINE_{upper}_CLIENT_SECRET"),
                format!("sim-{}-secret", p.as_str()),
            ));
        }
        let connectors = Connectors::from_env(&Env::from_pairs(vars)).expect("connector config");
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .expect("http client");
        Sim { base, connectors, http, shutdown }
    }

    pub fn connector(&self, p: Platform) -> Arc<dyn Connector> {
        Arc::clone(self.connectors.get(p).unwrap_or_else(|| panic!("{p:?} is not configured")))
    }

    /// The consent step: the connector's authorize URL, approved on the simulator as
    /// `username` (`sim_approve_as`). Returns the code from the redirect to our callback, after
    /// checking that the redirect goes to the callback and carries our `state`.
    pub async fn consent(&self, p: Platform, username: &str) -> (String, Option<SecretString>) {
        let state = format!("st-{}", uuid::Uuid::new_v4().simple());
        let start = self.connector(p).authorize(&state);
        let mut url = start.url.clone();
        assert!(
            url.as_str().starts_with(&self.base),
            "{p:?}: the authorize URL must point at the simulator: {url}"
        );
        url.query_pairs_mut().append_pair("sim_approve_as", username);
        let resp = self.http.get(url).send().await.expect("authorize request");
        let status = resp.status();
        let location = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let Some(location) = location.filter(|_| status == reqwest::StatusCode::FOUND) else {
            let body = resp.text().await.unwrap_or_default();
            panic!("{p:?}: consent did not redirect: {status} {body}");
        };
        let callback = format!("{PUBLIC}/oauth/callback/{}", p.as_str());
        assert!(location.starts_with(&callback), "{p:?}: redirected to {location}");
        let location = url::Url::parse(&location).expect("absolute Location");
        let param = |name: &str| {
            location.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
        };
        assert_eq!(param("state").as_deref(), Some(state.as_str()), "{p:?}: state echoed");
        assert_eq!(param("error"), None, "{p:?}: {location}");
        let code = param("code").unwrap_or_else(|| panic!("{p:?}: no code in {location}"));
        (code, start.pkce_verifier)
    }

    /// Connect: consent, code exchange (with the PKCE verifier the authorize step made), identify.
    pub async fn connect(&self, p: Platform, username: &str) -> Connected {
        let (code, verifier) = self.consent(p, username).await;
        let connector = self.connector(p);
        let grant = connector
            .exchange_code(&code, verifier.as_ref())
            .await
            .unwrap_or_else(|e| panic!("{p:?}: code exchange failed: {e:?}"));
        let token = access_token(&grant);
        let user = connector
            .identify(&token)
            .await
            .unwrap_or_else(|e| panic!("{p:?}: identify failed: {e:?}"));
        Connected { platform: p, username: username.to_owned(), connector, grant, token, user }
    }

    /// A control-API call that must succeed; returns its JSON answer.
    pub async fn control(&self, path: &str, body: Value) -> Value {
        let resp = self
            .http
            .post(format!("{}/_sim/{path}", self.base))
            .json(&body)
            .send()
            .await
            .expect("control request");
        let status = resp.status();
        let body: Value = resp.json().await.expect("control answers JSON");
        assert!(status.is_success(), "/_sim/{path}: {status} {body}");
        body
    }

    /// An account action (`revoke`, `expire`, …) that must affect at least one token.
    pub async fn account_action(&self, p: Platform, username: &str, action: &str, body: Value) {
        let answer =
            self.control(&format!("{}/accounts/{username}/{action}", p.as_str()), body).await;
        let affected = answer.as_object().and_then(|o| o.values().next()).and_then(Value::as_u64);
        assert!(affected.is_some_and(|n| n >= 1), "{p:?} {action}: {answer}");
    }

    /// The simulator's post log for one user of one platform.
    pub async fn posts(&self, p: Platform, username: &str) -> Vec<Value> {
        let url = format!("{}/_sim/posts?platform={}&username={username}", self.base, p.as_str());
        let log: Value =
            self.http.get(url).send().await.expect("posts").json().await.expect("json");
        log["posts"].as_array().cloned().unwrap_or_default()
    }

    /// `GET /_sim/stats`: the counters of every platform.
    pub async fn stats(&self) -> Value {
        let url = format!("{}/_sim/stats", self.base);
        self.http.get(url).send().await.expect("stats").json().await.expect("json")
    }

    /// The sample media the simulator serves.
    pub fn media(&self, kind: MediaKind) -> Media {
        let file = match kind {
            MediaKind::Image => "sample.jpg",
            MediaKind::Video => "sample.mp4",
        };
        Media { url: format!("{}/_sim/media/{file}", self.base), kind }
    }

    /// A post with a unique text and the media `p` needs (Instagram an image; YouTube and
    /// TikTok a video; the others none).
    pub fn draft(&self, p: Platform, label: &str) -> PostDraft {
        let media = match p {
            Platform::Instagram => Some(self.media(MediaKind::Image)),
            Platform::YouTube | Platform::TikTok => Some(self.media(MediaKind::Video)),
            _ => None,
        };
        PostDraft { text: format!("{label} {}", uuid::Uuid::new_v4().simple()), media }
    }
}

/// The access token of a grant as the services keep it: with the expiry the grant announced.
pub fn access_token(grant: &Grant) -> AccessToken {
    AccessToken {
        secret: grant.access_token.clone(),
        expires_at: grant.access_expires_at(Utc::now()),
    }
}

/// A connected account.
pub struct Connected {
    pub platform: Platform,
    pub username: String,
    pub connector: Arc<dyn Connector>,
    pub grant: Grant,
    pub token: AccessToken,
    pub user: PlatformUser,
}

impl Connected {
    pub async fn probe(&self) -> Result<(), Failure> {
        self.connector.probe(&self.token).await
    }

    pub async fn publish(&self, post: &PostDraft) -> Result<Published, Failure> {
        self.connector.publish(&self.token, &self.user.id, post).await
    }

    /// Refreshes with the grant's refresh token.
    pub async fn refresh(&self) -> Result<Grant, Failure> {
        let rt = self.grant.refresh_token.as_ref().expect("the grant has a refresh token");
        self.connector.refresh(rt).await
    }

    /// Makes `grant` the current one (keeping the refresh token when the answer has none, as
    /// the token-refresher does for platforms that do not rotate).
    pub fn adopt(&mut self, mut grant: Grant) {
        if grant.refresh_token.is_none() {
            grant.refresh_token = self.grant.refresh_token.clone();
        }
        self.token = access_token(&grant);
        self.grant = grant;
    }
}

/// A call a scenario makes after injecting something.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    Probe,
    Refresh,
    Publish,
}

/// The outcome a call must have: success or exactly this classification.
#[derive(Debug, Clone, PartialEq)]
pub enum Expect {
    Ok,
    Auth(AuthCause),
    /// Rate limited; `Some(range)`: `retry_after` must be given and within the range (seconds);
    /// `None`: the platform sends no hint, so `retry_after` must be `None`.
    RateLimited(Option<RangeInclusive<u64>>),
    Transient,
    Rejected,
    Ambiguous,
}

pub use AuthCause::{Expired, PasswordChanged, PermissionRemoved, Policy, Revoked, SecurityEvent};
pub use Call::{Probe, Publish, Refresh};

pub fn auth(cause: AuthCause) -> Expect {
    Expect::Auth(cause)
}

/// Asserts that `got` is exactly `want`.
pub fn assert_outcome<T: std::fmt::Debug>(what: &str, got: &Result<T, Failure>, want: &Expect) {
    let ok = match (got, want) {
        (Ok(_), Expect::Ok) => true,
        (Err(Failure::Auth { cause, .. }), Expect::Auth(want)) => cause == want,
        (Err(Failure::RateLimited { retry_after, .. }), Expect::RateLimited(range)) => {
            match (retry_after, range) {
                (None, None) => true,
                (Some(d), Some(r)) => r.contains(&d.as_secs()),
                _ => false,
            }
        }
        (Err(Failure::Transient { .. }), Expect::Transient)
        | (Err(Failure::Rejected { .. }), Expect::Rejected)
        | (Err(Failure::Ambiguous { .. }), Expect::Ambiguous) => true,
        _ => false,
    };
    assert!(ok, "{what}: expected {want:?}, got {got:?}");
}

impl Connected {
    /// Makes each call and asserts its outcome.
    pub async fn expect(&self, sim: &Sim, calls: &[(Call, Expect)]) {
        for (call, want) in calls {
            let what = format!("{:?} {call:?}", self.platform);
            match call {
                Call::Probe => assert_outcome(&what, &self.probe().await, want),
                Call::Refresh => assert_outcome(&what, &self.refresh().await, want),
                Call::Publish => {
                    let post = sim.draft(self.platform, "contract");
                    let got = self.publish(&post).await;
                    assert_outcome(&what, &got, want);
                    if !matches!(want, Expect::Ok | Expect::Ambiguous) {
                        // A refused publish must have left nothing behind.
                        let log = sim.posts(self.platform, &self.username).await;
                        assert!(
                            log.iter().all(|p| p["text"] != post.text.as_str()),
                            "{what}: refused, yet posted: {log:?}"
                        );
                    }
                }
            }
        }
    }
}

/// A fresh username for a test: at most 15 characters, which every platform accepts (X
/// handles are the shortest).
pub fn username(label: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let label: String = label.chars().take(6).collect();
    format!("{label}_{}", &id[..8])
}

/// The display name platforms derive from a username: `contract_user` → "Contract User".
pub fn display_name(username: &str) -> String {
    username
        .split(['_', '.'])
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut cs = p.chars();
            cs.next().map(|f| f.to_uppercase().chain(cs).collect::<String>()).unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn secret(s: &Option<SecretString>) -> Option<&str> {
    s.as_ref().map(|s| s.expose_secret())
}

/// A control body for a fault lasting `seconds`.
pub fn for_seconds(seconds: f64) -> Value {
    json!({ "for_seconds": seconds })
}
