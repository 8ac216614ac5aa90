//! `events tail`: reads the events stream through an ephemeral ordered consumer (nothing is
//! acknowledged, no service's consumer is disturbed) and prints each event as one line, human or
//! JSON. Decoding goes by the subject's `<event>` segment, the public contract.

use std::time::Duration;

use async_nats::jetstream::{consumer::pull::OrderedConfig, consumer::DeliverPolicy};
use chrono::SecondsFormat;
use futures::StreamExt;
use lifeline_events::{
    from_timestamp, v1, AccountConnected, AccountDisconnected, AccountFlapping, AccountReconnected,
    AuthFailed, AuthFailureCause, AuthFailureSource, Envelope, Event, ExpiringCredential, Platform,
    PostCancelled, PostDeadLettered, PostFailed, PostFailureKind, PostPublished,
    PostRetryRequested, ReconnectReason, RetryReason, Subjects, TokenExpiring, TokenRefreshed,
    VERSION,
};
use lifeline_kit::ids::AccountId;
use prost::Message;
use serde_json::{json, Map, Value};

use crate::{
    cli::{GlobalArgs, TailArgs},
    output, CtlError,
};

/// After this many stream errors in a row (NATS gone for good, stream deleted) tail gives up
/// instead of printing warnings forever.
const MAX_CONSECUTIVE_ERRORS: u32 = 30;

/// The consumer filter for the chosen event, platform and account. Unchosen tokens before a
/// chosen one are `*`; trailing unchosen tokens collapse into one `>`. A single filter subject,
/// because NATS 2.9 silently ignores `filter_subjects`.
pub fn filter_subject(
    subjects: &Subjects,
    event: Option<&str>,
    platform: Option<Platform>,
    account: Option<AccountId>,
) -> String {
    let tokens =
        [event.map(str::to_owned), platform.map(|p| p.to_string()), account.map(|a| a.to_string())];
    let mut filter = format!("{}.events.{VERSION}", subjects.root());
    let chosen = tokens.iter().rposition(Option::is_some).map_or(0, |last| last + 1);
    for token in &tokens[..chosen] {
        filter.push('.');
        filter.push_str(token.as_deref().unwrap_or("*"));
    }
    if chosen < tokens.len() {
        filter.push_str(".>");
    }
    filter
}

/// Why a message could not be shown.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("subject is not <root>.events.{VERSION}.<event>.<platform>.<account>")]
    Subject,
    #[error("unknown event {0:?} (a newer producer?)")]
    UnknownEvent(String),
    #[error("payload is not a valid {event}: {source}")]
    Payload { event: &'static str, source: prost::DecodeError },
}

/// A protobuf enum whose value names share a prefix (`AUTH_FAILURE_CAUSE_REVOKED`); the CLI
/// shows the rest in snake_case (`revoked`), as the APIs and the database do.
pub(crate) trait ProtoEnum: TryFrom<i32> {
    const PREFIX: &'static str;
    fn full_name(&self) -> &'static str;
}

macro_rules! proto_enums {
    ($($ty:ty => $prefix:literal),+ $(,)?) => {
        $(impl ProtoEnum for $ty {
            const PREFIX: &'static str = $prefix;
            fn full_name(&self) -> &'static str {
                self.as_str_name()
            }
        })+
    };
}

proto_enums! {
    v1::Platform => "PLATFORM_",
    AuthFailureCause => "AUTH_FAILURE_CAUSE_",
    AuthFailureSource => "AUTH_FAILURE_SOURCE_",
    ExpiringCredential => "EXPIRING_CREDENTIAL_",
    ReconnectReason => "RECONNECT_REASON_",
    RetryReason => "RETRY_REASON_",
    PostFailureKind => "POST_FAILURE_KIND_",
    v1::ConnectionState => "CONNECTION_STATE_",
}

/// The snake_case name of an enum value; a value this build does not know (from a newer proto)
/// stays a number rather than failing the whole event.
pub(crate) fn enum_value<E: ProtoEnum>(raw: i32) -> Value {
    match E::try_from(raw) {
        Ok(v) => {
            let full = v.full_name();
            Value::String(full.strip_prefix(E::PREFIX).unwrap_or(full).to_ascii_lowercase())
        }
        Err(_) => json!(raw),
    }
}

pub(crate) fn time_value(t: Option<&prost_types::Timestamp>) -> Value {
    t.and_then(from_timestamp)
        .map_or(Value::Null, |t| Value::String(t.to_rfc3339_opts(SecondsFormat::Millis, true)))
}

macro_rules! any_event {
    ($($ty:ident),+ $(,)?) => {
        /// One decoded event of any kind.
        #[derive(Debug, Clone, PartialEq)]
        pub enum AnyEvent {
            $($ty($ty)),+
        }

        impl AnyEvent {
            /// Decodes `payload` as the event named by a subject's `<event>` segment.
            pub fn decode(name: &str, payload: &[u8]) -> Result<AnyEvent, DecodeError> {
                $(if name == <$ty as Event>::NAME {
                    return $ty::decode(payload)
                        .map(AnyEvent::$ty)
                        .map_err(|source| DecodeError::Payload { event: <$ty as Event>::NAME, source });
                })+
                Err(DecodeError::UnknownEvent(name.to_owned()))
            }

            /// The snake_case subject segment of this event.
            pub fn name(&self) -> &'static str {
                match self {
                    $(AnyEvent::$ty(_) => <$ty as Event>::NAME),+
                }
            }

            pub fn envelope(&self) -> Option<&Envelope> {
                match self {
                    $(AnyEvent::$ty(e) => e.envelope()),+
                }
            }
        }
    };
}

any_event! {
    TokenExpiring,
    AuthFailed,
    AccountConnected,
    AccountReconnected,
    AccountDisconnected,
    TokenRefreshed,
    PostRetryRequested,
    PostPublished,
    PostFailed,
    PostDeadLettered,
    PostCancelled,
    AccountFlapping,
}

impl AnyEvent {
    /// The event's own fields (everything but the envelope), in proto order, as JSON values:
    /// one list serves both the human line and the `--json` payload, so they never disagree.
    pub fn fields(&self) -> Vec<(&'static str, Value)> {
        match self {
            AnyEvent::TokenExpiring(e) => vec![
                ("expires_at", time_value(e.expires_at.as_ref())),
                ("credential", enum_value::<ExpiringCredential>(e.credential)),
                ("horizon_seconds", json!(e.horizon_seconds)),
                ("reason", json!(e.reason)),
            ],
            AnyEvent::AuthFailed(e) => vec![
                ("cause", enum_value::<AuthFailureCause>(e.cause)),
                ("source", enum_value::<AuthFailureSource>(e.source)),
                ("detail", json!(e.detail)),
                ("credential_version", json!(e.credential_version)),
                ("post_id", json!(e.post_id)),
            ],
            AnyEvent::AccountConnected(e) => vec![
                ("platform_user_id", json!(e.platform_user_id)),
                ("display_name", json!(e.display_name)),
                ("scopes", json!(e.scopes)),
                ("credential_version", json!(e.credential_version)),
            ],
            AnyEvent::AccountReconnected(e) => vec![
                ("platform_user_id", json!(e.platform_user_id)),
                ("scopes", json!(e.scopes)),
                ("credential_version", json!(e.credential_version)),
                ("reason", enum_value::<ReconnectReason>(e.reason)),
            ],
            AnyEvent::AccountDisconnected(e) => vec![("reason", json!(e.reason))],
            AnyEvent::TokenRefreshed(e) => vec![
                ("access_expires_at", time_value(e.access_expires_at.as_ref())),
                ("refresh_expires_at", time_value(e.refresh_expires_at.as_ref())),
                ("credential_version", json!(e.credential_version)),
            ],
            AnyEvent::PostRetryRequested(e) => {
                vec![("post_id", json!(e.post_id)), ("reason", enum_value::<RetryReason>(e.reason))]
            }
            AnyEvent::PostPublished(e) => vec![
                ("post_id", json!(e.post_id)),
                ("platform_post_id", json!(e.platform_post_id)),
                ("attempt", json!(e.attempt)),
            ],
            AnyEvent::PostFailed(e) => vec![
                ("post_id", json!(e.post_id)),
                ("kind", enum_value::<PostFailureKind>(e.kind)),
                ("detail", json!(e.detail)),
                ("attempt", json!(e.attempt)),
                ("will_retry", json!(e.will_retry)),
                ("next_attempt_at", time_value(e.next_attempt_at.as_ref())),
            ],
            AnyEvent::PostDeadLettered(e) => vec![
                ("post_id", json!(e.post_id)),
                ("kind", enum_value::<PostFailureKind>(e.kind)),
                ("reason", json!(e.reason)),
                ("attempts", json!(e.attempts)),
            ],
            AnyEvent::PostCancelled(e) => vec![
                ("post_id", json!(e.post_id)),
                ("attempts", json!(e.attempts)),
                ("was_waiting_for_reconnect", json!(e.was_waiting_for_reconnect)),
            ],
            AnyEvent::AccountFlapping(e) => vec![
                ("incidents_in_window", json!(e.incidents_in_window)),
                ("threshold", json!(e.threshold)),
                ("window_seconds", json!(e.window_seconds)),
                ("first_incident_at", time_value(e.first_incident_at.as_ref())),
                ("cause", enum_value::<AuthFailureCause>(e.cause)),
                ("incident_id", json!(e.incident_id)),
            ],
        }
    }
}

/// A message's subject and its decoded event.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub subject: String,
    pub event: AnyEvent,
    /// The subject's platform and account tokens, shown when the envelope lacks them.
    platform: String,
    account: String,
}

/// Decodes one message; never panics, whatever the subject or bytes.
pub fn decode_message(
    subjects: &Subjects,
    subject: &str,
    payload: &[u8],
) -> Result<Decoded, DecodeError> {
    let (name, platform, account) = subjects.parse_event(subject).ok_or(DecodeError::Subject)?;
    let event = AnyEvent::decode(name, payload)?;
    Ok(Decoded {
        subject: subject.to_owned(),
        event,
        platform: platform.to_owned(),
        account: account.to_owned(),
    })
}

fn envelope_json(envelope: Option<&Envelope>) -> Value {
    let Some(e) = envelope else { return Value::Null };
    json!({
        "event_id": e.event_id,
        "occurred_at": time_value(e.occurred_at.as_ref()),
        "workspace_id": e.workspace_id,
        "account_id": e.account_id,
        "platform": enum_value::<v1::Platform>(e.platform),
        "correlation_id": e.correlation_id,
        "causation_id": e.causation_id,
    })
}

impl Decoded {
    /// `{"subject","event","envelope":{…},"payload":{…}}`, enums as snake_case names and
    /// timestamps as RFC 3339, for `jq`.
    pub fn to_json(&self) -> Value {
        let payload: Map<String, Value> =
            self.event.fields().into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        json!({
            "subject": self.subject,
            "event": self.event.name(),
            "envelope": envelope_json(self.event.envelope()),
            "payload": payload,
        })
    }

    /// `<occurred_at> <event> <platform> <account> key=value… correlation=<id>`; empty fields are
    /// left out so the line stays short.
    pub fn to_line(&self) -> String {
        let envelope = self.event.envelope();
        let occurred_at = envelope
            .and_then(Envelope::occurred_at)
            .map_or_else(|| "-".to_owned(), |t| t.to_rfc3339_opts(SecondsFormat::Millis, true));
        let platform = envelope
            .and_then(|e| v1::Platform::try_from(e.platform).ok())
            .and_then(Platform::from_proto)
            .map_or_else(|| self.platform.clone(), |p| p.to_string());
        let account = envelope
            .map(|e| e.account_id.as_str())
            .filter(|a| !a.is_empty())
            .unwrap_or(&self.account);
        let mut line =
            format!("{occurred_at} {} {} {}", self.event.name(), token(&platform), token(account));
        let correlation = envelope.map(|e| e.correlation_id.as_str()).unwrap_or_default();
        let fields = self
            .event
            .fields()
            .into_iter()
            .chain((!correlation.is_empty()).then(|| ("correlation", json!(correlation))));
        for (key, value) in fields {
            if let Some(text) = human_value(&value) {
                line.push(' ');
                line.push_str(key);
                line.push('=');
                line.push_str(&text);
            }
        }
        line
    }
}

/// A value as one `key=value` token, or `None` when it carries nothing (empty, unset).
fn human_value(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => Some(token(s)),
        Value::Array(items) if items.is_empty() => None,
        Value::Array(items) => {
            let joined: Vec<String> = items
                .iter()
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                .collect();
            Some(token(&joined.join(",")))
        }
        other => Some(other.to_string()),
    }
}

/// Quotes text that would break the one-line, space-separated form (spaces, `=`, quotes, control
/// characters such as terminal escapes in a platform's error text).
fn token(s: &str) -> String {
    if s.is_empty()
        || s.chars().any(|c| c.is_whitespace() || c.is_control() || c == '=' || c == '"')
    {
        format!("{s:?}")
    } else {
        s.to_owned()
    }
}

/// Runs `events tail` until `--count` events were printed, the stream ends, or Ctrl-C.
pub async fn tail(global: &GlobalArgs, args: &TailArgs) -> Result<(), CtlError> {
    let subjects = Subjects::new(global.subject_root.clone());
    let filter = filter_subject(&subjects, args.event.as_deref(), args.platform, args.account);
    let stream_name = format!("{}_EVENTS", global.stream_prefix);

    let js = crate::nats::jetstream(global).await?;
    let stream = js.get_stream(&stream_name).await.map_err(|e| {
        CtlError::JetStream(format!(
            "cannot open stream {stream_name}: {e} (check --stream-prefix or LIFELINE_STREAM_PREFIX)"
        ))
    })?;
    let consumer = stream
        .create_consumer(OrderedConfig {
            filter_subject: filter.clone(),
            deliver_policy: if args.all { DeliverPolicy::All } else { DeliverPolicy::New },
            description: Some("lifelinectl events tail".to_owned()),
            ..Default::default()
        })
        .await
        .map_err(|e| CtlError::JetStream(format!("cannot create a consumer on {filter}: {e}")))?;
    let mut messages = consumer
        .messages()
        .await
        .map_err(|e| CtlError::JetStream(format!("cannot read from {stream_name}: {e}")))?;
    // Status goes to stderr so stdout holds only events, for pipes and `--json | jq`.
    eprintln!("tailing {filter} on {stream_name} (Ctrl-C to stop)");

    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut printed = 0u64;
    let mut consecutive_errors = 0u32;
    loop {
        let next = tokio::select! {
            _ = &mut ctrl_c => return Ok(()),
            next = messages.next() => next,
        };
        let msg = match next {
            None => return Ok(()),
            Some(Ok(msg)) => msg,
            Some(Err(e)) => {
                consecutive_errors += 1;
                if consecutive_errors >= MAX_CONSECUTIVE_ERRORS {
                    return Err(CtlError::JetStream(format!(
                        "giving up after repeated errors: {e}"
                    )));
                }
                eprintln!("warning: {e}; retrying");
                // The ordered consumer recreates itself; pause so a dead server is not hammered.
                tokio::select! {
                    _ = &mut ctrl_c => return Ok(()),
                    () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        consecutive_errors = 0;
        match decode_message(&subjects, msg.subject.as_str(), &msg.payload) {
            Ok(decoded) => {
                let text =
                    if args.json { decoded.to_json().to_string() } else { decoded.to_line() };
                output::line(&text)?;
                printed += 1;
                if args.count.is_some_and(|n| printed >= n) {
                    return Ok(());
                }
            }
            Err(e) => eprintln!("warning: skipping {}: {e}", msg.subject),
        }
    }
}

#[cfg(test)]
#[path = "events_tests.rs"]
mod tests;
