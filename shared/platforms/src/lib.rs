//! The connector layer: one connector per platform behind one trait, and one error taxonomy
//! every platform answer is classified into. A platform lives in its own folder with its wire
//! types and error mapping side by side; adding one means adding a folder and a line in
//! [`Connectors::from_env`]. Instagram and Threads share one Meta-login connector
//! (`meta_login`), configured by `instagram::CONFIG` and `threads::CONFIG`. The contract tests
//! (`tests/contract`) run every connector against platform-sim.

mod common;
pub mod facebook;
mod graph;
pub mod instagram;
pub mod linkedin;
mod media_url;
mod meta_login;
mod oauth;
mod permissions;
mod post_rules;
mod taxonomy;
pub mod threads;
pub mod tiktok;
pub mod x;
pub mod youtube;

use std::{collections::HashMap, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use lifeline_kit::{
    config::{ConfigError, Env},
    Platform,
};
use secrecy::SecretString;

pub use media_url::{is_public, Fetched, MediaError, MediaFetcher, MediaPolicy};
pub use permissions::{ask_again, missing_for_publishing, publishing_needs, Needed};
pub use post_rules::{check_post, Violation};
pub use taxonomy::{AuthCause, Failure};

/// What a completed authorization or refresh gave us.
#[derive(Debug, Clone)]
pub struct Grant {
    pub access_token: SecretString,
    pub refresh_token: Option<SecretString>,
    pub expires_in: Option<Duration>,
    pub refresh_expires_in: Option<Duration>,
    pub scopes: Vec<String>,
}

impl Grant {
    pub fn access_expires_at(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.expires_in.and_then(|d| chrono::Duration::from_std(d).ok()).map(|d| now + d)
    }
    pub fn refresh_expires_at(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.refresh_expires_in.and_then(|d| chrono::Duration::from_std(d).ok()).map(|d| now + d)
    }
}

/// The platform user a token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformUser {
    pub id: String,
    pub username: String,
    pub display_name: String,
}

/// An access token with what we believe about it.
#[derive(Debug, Clone)]
pub struct AccessToken {
    pub secret: SecretString,
    pub expires_at: Option<DateTime<Utc>>,
}

impl AccessToken {
    pub fn believed_expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|e| e <= now)
    }
}

/// A post as a platform receives it.
#[derive(Debug, Clone)]
pub struct PostDraft {
    pub text: String,
    /// An image or video the platform needs (Instagram, YouTube, TikTok): a public URL the
    /// platform (or the connector, for uploads) fetches.
    pub media: Option<Media>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    pub url: String,
    pub kind: MediaKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    Image,
    Video,
}

impl MediaKind {
    /// The name the APIs and the database use: `image` or `video`.
    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Image => "image",
            MediaKind::Video => "video",
        }
    }

    /// The kind named `image` or `video`; `None` for anything else.
    pub fn parse(name: &str) -> Option<MediaKind> {
        match name {
            "image" => Some(MediaKind::Image),
            "video" => Some(MediaKind::Video),
            _ => None,
        }
    }
}

// Stored as its name in the publisher's `media_kind` column.
lifeline_kit::events::text_column!(MediaKind, "media kind", MediaKind::parse);

impl serde::Serialize for MediaKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A post the platform accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub platform_post_id: String,
    /// What the platform said is left of the account's posting limit, where it says so.
    pub rate_budget: Option<RateBudget>,
}

impl Published {
    /// A post the platform accepted, with nothing said about its limits.
    pub fn new(platform_post_id: impl Into<String>) -> Self {
        Published { platform_post_id: platform_post_id.into(), rate_budget: None }
    }
}

/// An account's posting budget as the platform reported it with an answer (X's
/// `x-rate-limit-limit`, `-remaining` and `-reset`): how many more calls the current window
/// allows, and when the next window opens. A platform that reports its limits adds it to its
/// publish results; the publisher paces the account's posts by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateBudget {
    /// Calls a whole window allows, when the platform says.
    pub limit: Option<u32>,
    /// Calls left in the current window.
    pub remaining: u32,
    /// When the current window ends and a full one begins.
    pub reset_at: DateTime<Utc>,
}

/// How a connector can tell whether a publish whose answer was lost went out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reconciliation {
    /// The account's recent posts can be read with the scopes Lifeline asks for:
    /// [`Connector::find_published`] looks there.
    Lists,
    /// The platform offers no way to look. `why` says what is missing, for the operator who
    /// has to check the account instead. A post whose outcome is unknown on such a platform
    /// must never be sent again on its own: it may be out already.
    CannotCheck { why: &'static str },
}

/// The start of an authorization: where to send the user, and the PKCE verifier to keep
/// (server-side) for the code exchange.
#[derive(Debug)]
pub struct AuthorizationStart {
    pub url: url::Url,
    pub pkce_verifier: Option<SecretString>,
}

/// One platform's OAuth and publishing API.
#[async_trait::async_trait]
pub trait Connector: Send + Sync {
    fn platform(&self) -> Platform;

    /// The authorize URL for `state`, with a fresh PKCE challenge where the platform supports it.
    fn authorize(&self, state: &str) -> AuthorizationStart;

    async fn exchange_code(
        &self,
        code: &str,
        pkce_verifier: Option<&SecretString>,
    ) -> Result<Grant, Failure>;

    async fn refresh(&self, refresh_token: &SecretString) -> Result<Grant, Failure>;

    /// Who the token belongs to (used to refuse a reconnect as a different user).
    async fn identify(&self, token: &AccessToken) -> Result<PlatformUser, Failure>;

    async fn publish(
        &self,
        token: &AccessToken,
        user_id: &str,
        post: &PostDraft,
    ) -> Result<Published, Failure>;

    /// Whether this platform reports the account's posting budget with every publish answer
    /// ([`Published::rate_budget`], and the reset of a rate limit): the publisher then paces the
    /// account's posts to fit it instead of running into rate limits.
    fn reports_rate_budget(&self) -> bool {
        false
    }

    /// Whether [`find_published`](Connector::find_published) can tell if an ambiguous publish
    /// went out. Most platforms list the account's recent posts.
    fn reconciliation(&self) -> Reconciliation {
        Reconciliation::Lists
    }

    /// Looks for `post` among the user's posts since `since`: after an ambiguous attempt this
    /// tells whether it went out, so a retry never doubles it. On a platform that
    /// [cannot check](Reconciliation::CannotCheck) it answers `Failure::Ambiguous`: the outcome
    /// stays unknown (never `Ok(None)`, which would invite a blind resend).
    async fn find_published(
        &self,
        token: &AccessToken,
        user_id: &str,
        post: &PostDraft,
        since: DateTime<Utc>,
    ) -> Result<Option<Published>, Failure>;

    /// A cheap authenticated call that proves the token still works. Every platform's
    /// `identify` is one, so that is the default.
    async fn probe(&self, token: &AccessToken) -> Result<(), Failure> {
        self.identify(token).await.map(|_| ())
    }
}

/// The configured connectors, by platform.
#[derive(Clone, Default)]
pub struct Connectors {
    by_platform: HashMap<Platform, Arc<dyn Connector>>,
    /// What a post's media URL may point at (`LIFELINE_MEDIA_*`), checked when a post is
    /// scheduled and again on every fetch.
    media: MediaPolicy,
}

impl Connectors {
    /// Builds a connector for every platform whose client id is configured.
    ///
    /// `LIFELINE_PUBLIC_URL` (default `http://127.0.0.1:8080`) is where the auth-gateway is
    /// reachable; callbacks go to `<public>/oauth/callback/<platform>`. `LIFELINE_SIM_URL`, when
    /// set, points every platform host at the simulator (`<sim>/x`, `<sim>/linkedin/www`,
    /// `<sim>/google/apis`, …: each connector's `from_env` lists its hosts), unless that host's
    /// own `LIFELINE_<P>_<HOST>_URL` is set.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let public = env.string_or("LIFELINE_PUBLIC_URL", "http://127.0.0.1:8080");
        let public = url::Url::parse(&public)
            .map_err(|e| env.invalid("LIFELINE_PUBLIC_URL", e.to_string()))?;
        let sim = env
            .raw("LIFELINE_SIM_URL")
            .map(|s| {
                url::Url::parse(&s).map_err(|e| env.invalid("LIFELINE_SIM_URL", e.to_string()))
            })
            .transpose()?;
        let http = http_client(env)?;
        let media = MediaPolicy::from_env(env)?;
        let mut by_platform: HashMap<Platform, Arc<dyn Connector>> = HashMap::new();
        if let Some(c) = x::XConnector::from_env(env, &public, sim.as_ref(), http.clone())? {
            by_platform.insert(Platform::X, Arc::new(c));
        }
        if let Some(c) =
            linkedin::LinkedInConnector::from_env(env, &public, sim.as_ref(), http.clone())?
        {
            by_platform.insert(Platform::LinkedIn, Arc::new(c));
        }
        if let Some(c) =
            youtube::YouTubeConnector::from_env(env, &public, sim.as_ref(), http.clone(), &media)?
        {
            by_platform.insert(Platform::YouTube, Arc::new(c));
        }
        for meta in [&instagram::CONFIG, &threads::CONFIG] {
            if let Some(c) = meta_login::MetaLoginConnector::from_env(
                meta,
                env,
                &public,
                sim.as_ref(),
                http.clone(),
            )? {
                by_platform.insert(meta.platform, Arc::new(c));
            }
        }
        if let Some(c) =
            facebook::FacebookConnector::from_env(env, &public, sim.as_ref(), http.clone())?
        {
            by_platform.insert(Platform::Facebook, Arc::new(c));
        }
        if let Some(c) =
            tiktok::TikTokConnector::from_env(env, &public, sim.as_ref(), http.clone())?
        {
            by_platform.insert(Platform::TikTok, Arc::new(c));
        }
        Ok(Connectors { by_platform, media })
    }

    /// What a post's media URL may point at.
    pub fn media_policy(&self) -> &MediaPolicy {
        &self.media
    }

    pub fn insert(&mut self, connector: Arc<dyn Connector>) {
        self.by_platform.insert(connector.platform(), connector);
    }

    pub fn get(&self, platform: Platform) -> Option<&Arc<dyn Connector>> {
        self.by_platform.get(&platform)
    }

    pub fn platforms(&self) -> impl Iterator<Item = Platform> + '_ {
        self.by_platform.keys().copied()
    }
}

/// One HTTP client for all platform calls: bounded timeouts, and no redirects, so a token
/// endpoint cannot bounce a secret to another host.
fn http_client(env: &Env) -> Result<reqwest::Client, ConfigError> {
    let timeout = env.duration_or("LIFELINE_PLATFORM_TIMEOUT", Duration::from_secs(15))?;
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("lifeline/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| env.invalid("LIFELINE_PLATFORM_TIMEOUT", e.to_string()))
}

/// Joins a path onto a base URL that may itself carry a path prefix (the simulator's `/x`).
pub(crate) fn endpoint(base: &url::Url, path: &str) -> url::Url {
    let mut u = base.clone();
    let joined = format!("{}/{}", base.path().trim_end_matches('/'), path.trim_start_matches('/'));
    u.set_path(&joined);
    u
}
