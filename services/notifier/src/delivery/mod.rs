//! Pushing notifications out: deliveries are written with their notification
//! ([`enqueue`]), claimed and sent by [`worker`] under a per-channel cap, signed per the
//! Standard Webhooks spec ([`signing`]), rendered for Slack ([`slack`]) and email ([`email`]),
//! sent only where a target's name leads at send time is allowed ([`resolve`]), and retried and
//! disabled by the pure rules in [`policy`].

pub mod email;
pub(crate) mod enqueue;
pub mod policy;
pub(crate) mod resolve;
pub(crate) mod signing;
pub(crate) mod slack;
pub(crate) mod worker;

use std::time::Duration;

use lifeline_kit::config::{ConfigError, Env};

use policy::RetrySchedule;

/// How deliveries are made; every field from a `LIFELINE_NOTIFY_*` variable.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `LIFELINE_NOTIFY_RETRY_SCHEDULE`: the delay before each attempt.
    pub schedule: RetrySchedule,
    /// `LIFELINE_NOTIFY_DELIVERY_TIMEOUT` (10s): one attempt's whole HTTP exchange.
    pub timeout: Duration,
    /// `LIFELINE_NOTIFY_CHANNEL_CONCURRENCY` (4): attempts in flight per channel, so a hanging
    /// endpoint holds at most this many of the workers.
    pub channel_concurrency: u32,
    /// `LIFELINE_NOTIFY_WORKERS` (64): attempts in flight per replica.
    pub workers: u32,
    /// `LIFELINE_NOTIFY_DISABLE_AFTER` (5d): a channel failing this long is disabled.
    pub disable_after: Duration,
    /// `LIFELINE_NOTIFY_ALLOW_PRIVATE_TARGETS` (false): allow URLs that resolve to loopback,
    /// private or link-local addresses (local development and tests).
    pub allow_private_targets: bool,
    /// `LIFELINE_NOTIFY_POLL_INTERVAL` (500ms): how often due retries are looked for (new
    /// deliveries written by this replica wake the worker at once).
    pub poll: Duration,
    /// `LIFELINE_SMTP_*`: the email channel's server; none: email channels are refused.
    pub smtp: Option<email::Smtp>,
    /// `LIFELINE_NOTIFY_LINK_TTL` (24h, at most 24h): how long the sign-in link in an email or
    /// a Slack message works (it signs in once; minted by the gateway when the message is sent).
    pub link_ttl: Duration,
}

/// How long a rotated-out signing secret keeps signing.
pub const SECRET_OVERLAP: Duration = Duration::from_secs(24 * 3600);

impl Settings {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let raw = env.string_or("LIFELINE_NOTIFY_RETRY_SCHEDULE", policy::DEFAULT_SCHEDULE);
        let schedule = RetrySchedule::parse(&raw).ok_or_else(|| {
            env.invalid(
                "LIFELINE_NOTIFY_RETRY_SCHEDULE",
                "a comma-separated list of 1 to 20 durations such as 0s,5s,5m",
            )
        })?;
        Ok(Settings {
            schedule,
            timeout: env.duration_in(
                "LIFELINE_NOTIFY_DELIVERY_TIMEOUT",
                Duration::from_secs(10),
                Duration::from_millis(100)..=Duration::from_secs(120),
            )?,
            channel_concurrency: env.parse_in("LIFELINE_NOTIFY_CHANNEL_CONCURRENCY", 4, 1..=100)?,
            workers: env.parse_in("LIFELINE_NOTIFY_WORKERS", 64, 1..=1000)?,
            disable_after: env.duration_in(
                "LIFELINE_NOTIFY_DISABLE_AFTER",
                Duration::from_secs(5 * 86_400),
                Duration::from_secs(1)..=Duration::from_secs(90 * 86_400),
            )?,
            allow_private_targets: env.bool_or("LIFELINE_NOTIFY_ALLOW_PRIVATE_TARGETS", false)?,
            poll: env.duration_in(
                "LIFELINE_NOTIFY_POLL_INTERVAL",
                Duration::from_millis(500),
                Duration::from_millis(10)..=Duration::from_secs(60),
            )?,
            smtp: email::Smtp::from_env(env)?,
            link_ttl: env.duration_in(
                "LIFELINE_NOTIFY_LINK_TTL",
                Duration::from_secs(24 * 3600),
                Duration::from_secs(10)..=Duration::from_secs(24 * 3600),
            )?,
        })
    }

    /// A claimed delivery's lease: the attempt's timeout plus room to write its outcome, so a
    /// lease only runs out under a replica that died.
    pub fn lease(&self) -> Duration {
        self.timeout + Duration::from_secs(30)
    }
}
