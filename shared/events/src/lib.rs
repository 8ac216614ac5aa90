//! Lifeline's event contract: the protobuf types generated from `proto/`, their subjects, and the
//! envelope every event carries.

use std::fmt;

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// Generated from `proto/lifeline/events/v1/events.proto`.
#[allow(clippy::all, missing_docs, rust_2018_idioms)]
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/lifeline.events.v1.rs"));
}

#[cfg(feature = "sqlx")]
pub mod text_column;

pub use v1::{
    AccountConnected, AccountDisconnected, AccountFlapping, AccountReconnected, AuthFailed,
    AuthFailureCause, AuthFailureSource, Envelope, ExpiringCredential, PostCancelled,
    PostDeadLettered, PostFailed, PostFailureKind, PostPublished, PostRetryRequested,
    ReconnectReason, RetryReason, TokenExpiring, TokenRefreshed,
};

/// The version segment of every subject; a breaking change to a payload means a new version.
pub const VERSION: &str = "v1";

/// A social platform, as it appears in subjects, URLs, config and the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Platform {
    X,
    LinkedIn,
    Instagram,
    Facebook,
    YouTube,
    TikTok,
    Threads,
}

impl Platform {
    pub const ALL: [Platform; 7] = [
        Platform::X,
        Platform::LinkedIn,
        Platform::Instagram,
        Platform::Facebook,
        Platform::YouTube,
        Platform::TikTok,
        Platform::Threads,
    ];

    /// The lowercase token used in subjects, URLs and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::X => "x",
            Platform::LinkedIn => "linkedin",
            Platform::Instagram => "instagram",
            Platform::Facebook => "facebook",
            Platform::YouTube => "youtube",
            Platform::TikTok => "tiktok",
            Platform::Threads => "threads",
        }
    }

    /// The platform's name as people write it.
    pub fn display_name(self) -> &'static str {
        match self {
            Platform::X => "X",
            Platform::LinkedIn => "LinkedIn",
            Platform::Instagram => "Instagram",
            Platform::Facebook => "Facebook",
            Platform::YouTube => "YouTube",
            Platform::TikTok => "TikTok",
            Platform::Threads => "Threads",
        }
    }

    pub fn to_proto(self) -> v1::Platform {
        match self {
            Platform::X => v1::Platform::X,
            Platform::LinkedIn => v1::Platform::Linkedin,
            Platform::Instagram => v1::Platform::Instagram,
            Platform::Facebook => v1::Platform::Facebook,
            Platform::YouTube => v1::Platform::Youtube,
            Platform::TikTok => v1::Platform::Tiktok,
            Platform::Threads => v1::Platform::Threads,
        }
    }

    pub fn from_proto(p: v1::Platform) -> Option<Self> {
        Some(match p {
            v1::Platform::Unspecified => return None,
            v1::Platform::X => Platform::X,
            v1::Platform::Linkedin => Platform::LinkedIn,
            v1::Platform::Instagram => Platform::Instagram,
            v1::Platform::Facebook => Platform::Facebook,
            v1::Platform::Youtube => Platform::YouTube,
            v1::Platform::Tiktok => Platform::TikTok,
            v1::Platform::Threads => Platform::Threads,
        })
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for Platform {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Platform {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown platform {0:?} (expected one of x, linkedin, instagram, facebook, youtube, tiktok, threads)")]
pub struct UnknownPlatform(pub String);

impl std::str::FromStr for Platform {
    type Err = UnknownPlatform;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Platform::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| UnknownPlatform(s.to_owned()))
    }
}

/// Implemented by every event message: its subject segment and its envelope.
pub trait Event: prost::Message + Default + Sized {
    /// The snake_case `<event>` segment of the subject.
    const NAME: &'static str;
    fn envelope(&self) -> Option<&Envelope>;
}

macro_rules! events {
    ($($ty:ident => $name:literal),+ $(,)?) => {
        $(impl Event for $ty {
            const NAME: &'static str = $name;
            fn envelope(&self) -> Option<&Envelope> { self.envelope.as_ref() }
        })+
        /// Every event name, in the order of the proto file.
        pub const EVENT_NAMES: &[&str] = &[$($name),+];
    };
}

events! {
    TokenExpiring => "token_expiring",
    AuthFailed => "auth_failed",
    AccountConnected => "account_connected",
    AccountReconnected => "account_reconnected",
    AccountDisconnected => "account_disconnected",
    TokenRefreshed => "token_refreshed",
    PostRetryRequested => "post_retry_requested",
    PostPublished => "post_published",
    PostFailed => "post_failed",
    PostDeadLettered => "post_dead_lettered",
    PostCancelled => "post_cancelled",
    AccountFlapping => "account_flapping",
}

/// Builds subjects under a root (`lifeline` in production; tests use a unique root each so they
/// can share one NATS server).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subjects {
    root: String,
}

impl Default for Subjects {
    fn default() -> Self {
        Subjects::new("lifeline")
    }
}

impl Subjects {
    pub fn new(root: impl Into<String>) -> Self {
        Subjects { root: root.into() }
    }

    pub fn root(&self) -> &str {
        &self.root
    }

    /// `<root>.events.v1.<event>.<platform>.<account_id>`
    pub fn event(&self, name: &str, platform: Platform, account_id: Uuid) -> String {
        format!("{}.events.{VERSION}.{name}.{platform}.{account_id}", self.root)
    }

    /// Every subject of one event kind: `<root>.events.v1.<event>.>`.
    pub fn event_filter(&self, name: &str) -> String {
        format!("{}.events.{VERSION}.{name}.>", self.root)
    }

    /// Every event: `<root>.events.>` (the subjects of the events stream).
    pub fn all_events(&self) -> String {
        format!("{}.events.>", self.root)
    }

    /// Where a consumer copies a message it cannot process: `<root>.dlq.<consumer>`.
    pub fn dlq(&self, consumer: &str) -> String {
        format!("{}.dlq.{consumer}", self.root)
    }

    pub fn all_dlq(&self) -> String {
        format!("{}.dlq.>", self.root)
    }

    /// Splits an event subject into (event name, platform, account id).
    pub fn parse_event<'a>(&self, subject: &'a str) -> Option<(&'a str, &'a str, &'a str)> {
        let rest = subject.strip_prefix(self.root.as_str())?;
        let rest = rest.strip_prefix(".events.")?;
        let rest = rest.strip_prefix(VERSION)?.strip_prefix('.')?;
        let mut parts = rest.splitn(3, '.');
        Some((parts.next()?, parts.next()?, parts.next()?))
    }
}

/// What an event is about; the rest of the envelope is filled in by [`Envelope::build`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subject {
    pub workspace_id: Uuid,
    pub account_id: Uuid,
    pub platform: Platform,
}

impl Envelope {
    /// A new envelope with a fresh UUIDv7 event id. `cause` is the event this one follows from:
    /// its correlation id is inherited; without a cause the event starts a new correlation.
    pub fn build(about: Subject, cause: Option<&Envelope>) -> Envelope {
        let event_id = Uuid::now_v7().to_string();
        let (correlation_id, causation_id) = match cause {
            Some(c) if !c.correlation_id.is_empty() => {
                (c.correlation_id.clone(), c.event_id.clone())
            }
            Some(c) => (c.event_id.clone(), c.event_id.clone()),
            None => (event_id.clone(), String::new()),
        };
        Envelope {
            event_id,
            occurred_at: Some(timestamp(Utc::now())),
            workspace_id: about.workspace_id.to_string(),
            account_id: about.account_id.to_string(),
            platform: about.platform.to_proto() as i32,
            correlation_id,
            causation_id,
        }
    }

    /// Parses the identifying fields; consumers reject an event whose envelope does not parse.
    pub fn subject(&self) -> Result<Subject, EnvelopeError> {
        let workspace_id = Uuid::parse_str(&self.workspace_id)
            .map_err(|_| EnvelopeError::Field("workspace_id"))?;
        let account_id =
            Uuid::parse_str(&self.account_id).map_err(|_| EnvelopeError::Field("account_id"))?;
        let platform = v1::Platform::try_from(self.platform)
            .ok()
            .and_then(Platform::from_proto)
            .ok_or(EnvelopeError::Field("platform"))?;
        Ok(Subject { workspace_id, account_id, platform })
    }

    pub fn occurred_at(&self) -> Option<DateTime<Utc>> {
        self.occurred_at.as_ref().and_then(from_timestamp)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvelopeError {
    #[error("event has no envelope")]
    Missing,
    #[error("envelope field {0} is missing or invalid")]
    Field(&'static str),
}

/// The parsed envelope of any event.
pub fn subject_of<E: Event>(event: &E) -> Result<Subject, EnvelopeError> {
    event.envelope().ok_or(EnvelopeError::Missing)?.subject()
}

pub fn timestamp(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: t.timestamp(), nanos: t.timestamp_subsec_nanos() as i32 }
}

pub fn from_timestamp(t: &prost_types::Timestamp) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).ok()?)
}

impl AuthFailureCause {
    /// The cause in plain words, for the Accounts page and notifications.
    pub fn explain(self) -> &'static str {
        match self {
            AuthFailureCause::Expired => "the connection expired",
            AuthFailureCause::Revoked => "access was revoked on the platform",
            AuthFailureCause::PasswordChanged => "the account's password was changed",
            AuthFailureCause::PermissionRemoved => "a permission Lifeline needs was removed",
            AuthFailureCause::SecurityEvent => {
                "the platform locked the session after a security check"
            }
            AuthFailureCause::Policy => "the platform blocked the app for a policy reason",
            AuthFailureCause::Unknown | AuthFailureCause::Unspecified => {
                "the platform refused the connection"
            }
        }
    }

    /// The snake_case name used in APIs and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthFailureCause::Unspecified => "unspecified",
            AuthFailureCause::Expired => "expired",
            AuthFailureCause::Revoked => "revoked",
            AuthFailureCause::PasswordChanged => "password_changed",
            AuthFailureCause::PermissionRemoved => "permission_removed",
            AuthFailureCause::SecurityEvent => "security_event",
            AuthFailureCause::Policy => "policy",
            AuthFailureCause::Unknown => "unknown",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            AuthFailureCause::Expired,
            AuthFailureCause::Revoked,
            AuthFailureCause::PasswordChanged,
            AuthFailureCause::PermissionRemoved,
            AuthFailureCause::SecurityEvent,
            AuthFailureCause::Policy,
            AuthFailureCause::Unknown,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn subjects_follow_the_public_contract() {
        let s = Subjects::default();
        let id = Uuid::nil();
        assert_eq!(
            s.event(AuthFailed::NAME, Platform::X, id),
            "lifeline.events.v1.auth_failed.x.00000000-0000-0000-0000-000000000000"
        );
        assert_eq!(s.event_filter("post_published"), "lifeline.events.v1.post_published.>");
        let subject = s.event(PostRetryRequested::NAME, Platform::LinkedIn, id);
        assert_eq!(
            s.parse_event(&subject),
            Some(("post_retry_requested", "linkedin", "00000000-0000-0000-0000-000000000000"))
        );
        assert_eq!(s.parse_event("other.events.v1.a.b.c"), None);
    }

    #[test]
    fn platform_round_trips() {
        for p in Platform::ALL {
            assert_eq!(p.as_str().parse::<Platform>().ok(), Some(p));
            assert_eq!(Platform::from_proto(p.to_proto()), Some(p));
        }
        assert!("myspace".parse::<Platform>().is_err());
    }

    #[test]
    fn envelope_inherits_correlation() {
        let about = Subject {
            workspace_id: Uuid::now_v7(),
            account_id: Uuid::now_v7(),
            platform: Platform::X,
        };
        let root = Envelope::build(about, None);
        assert_eq!(root.correlation_id, root.event_id);
        assert!(root.causation_id.is_empty());
        let child = Envelope::build(about, Some(&root));
        assert_eq!(child.correlation_id, root.event_id);
        assert_eq!(child.causation_id, root.event_id);
        assert_ne!(child.event_id, root.event_id);

        let event = AuthFailed { envelope: Some(child), ..Default::default() };
        let decoded = AuthFailed::decode(event.encode_to_vec().as_slice()).expect("decodes");
        let parsed = subject_of(&decoded).expect("envelope parses");
        assert_eq!(parsed.account_id, about.account_id);
        assert_eq!(parsed.platform, Platform::X);
    }

    #[test]
    fn envelope_rejects_garbage() {
        assert_eq!(subject_of(&AuthFailed::default()), Err(EnvelopeError::Missing));
        let bad = AuthFailed {
            envelope: Some(Envelope { workspace_id: "nope".into(), ..Default::default() }),
            ..Default::default()
        };
        assert_eq!(subject_of(&bad), Err(EnvelopeError::Field("workspace_id")));
    }
}
