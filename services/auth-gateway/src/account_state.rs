//! The `LIFELINE_ACCOUNTS` key-value bucket: every connected account's current connection state
//! (`AccountState`, key `<workspace_id>.<account_id>`), so a new subscriber can read where things
//! stand and then follow `LIFELINE_EVENTS` from there (docs/account-state.md). One durable
//! applies the connection events in stream order; [`decide`] is the pure rule, [`apply`] the
//! read-modify-write on the bucket. Also exports every events-stream durable's lag as gauges.

use std::{collections::BTreeSet, time::Duration};

use chrono::{DateTime, Utc};
use lifeline_kit::{
    backoff::Backoff,
    bus::{is_lifeline_durable, kv, Bus, HandlerError, RawDelivery},
    config::CommonConfig,
    events::{
        v1::{AccountState, ConnectionState},
        AccountConnected, AccountDisconnected, AccountReconnected, AuthFailed, AuthFailureCause,
        Envelope, Event, ExpiringCredential, ReconnectReason, Subject, Subjects, TokenExpiring,
        TokenRefreshed,
    },
};
use prost::Message as _;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// The durable is `auth-gateway-account_state`.
pub const DURABLE: &str = "account_state";
/// How often the consumer-lag gauges are refreshed.
const LAG_INTERVAL: Duration = Duration::from_secs(30);
/// Compare-and-set attempts before the message is handed back for redelivery (only another
/// writer of the same key, e.g. during a rolling update, can make one fail).
const CAS_ATTEMPTS: usize = 20;

/// The bucket's name for a stream prefix: `LIFELINE_ACCOUNTS` beside `LIFELINE_EVENTS`.
pub fn bucket_name(stream_prefix: &str) -> String {
    format!("{stream_prefix}_ACCOUNTS")
}

/// The key of one account: `<workspace_id>.<account_id>`.
pub fn key_of(about: &Subject) -> String {
    format!("{}.{}", about.workspace_id, about.account_id)
}

/// Spawns the bucket's keeper and the lag exporter.
pub(crate) fn spawn(
    tasks: &mut JoinSet<()>,
    bus: &Bus,
    common: &CommonConfig,
    shutdown: &CancellationToken,
) {
    let bucket = bucket_name(&common.stream_prefix);
    // The bucket is replicated as the streams are (`LIFELINE_STREAM_REPLICAS`).
    tasks.spawn(keep_bucket(bus.clone(), bucket, common.stream_replicas, shutdown.clone()));
    tasks.spawn(export_consumer_lag(bus.clone(), shutdown.clone()));
}

/// Creates (or updates) the bucket and runs the in-order consumer; either failing (NATS away,
/// the durable deleted by an operator) starts both again after a pause. A recreated durable
/// replays the stream from its start, which the stream-sequence guard makes harmless.
async fn keep_bucket(bus: Bus, bucket: String, replicas: usize, shutdown: CancellationToken) {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    let filter = format!("{}.events.{}.>", bus.subjects().root(), lifeline_kit::events::VERSION);
    while !shutdown.is_cancelled() {
        let run = async {
            let store = bus
                .ensure_bucket(
                    &bucket,
                    "Lifeline: the current connection state of every account",
                    replicas,
                )
                .await
                .map_err(|e| format!("cannot create the bucket {bucket}: {e}"))?;
            let subjects = bus.subjects().clone();
            let handler = |d: RawDelivery| {
                let (store, subjects) = (store.clone(), subjects.clone());
                async move { apply(&store, &subjects, &d).await }
            };
            bus.consume_in_order(DURABLE, filter.clone(), handler, shutdown.clone())
                .await
                .map_err(|e| e.to_string())
        };
        match run.await {
            Ok(()) if shutdown.is_cancelled() => return,
            Ok(()) => {
                tracing::warn!(consumer = DURABLE, "account-state consumer ended; restarting")
            }
            Err(e) => {
                tracing::warn!(consumer = DURABLE, error = %e, "account-state consumer failed; restarting")
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            () = tokio::time::sleep(backoff.next_delay()) => {}
        }
    }
}

/// The events that change an account's state.
#[derive(Debug, Clone, PartialEq)]
pub enum ConnectionEvent {
    Connected(AccountConnected),
    Reconnected(AccountReconnected),
    Disconnected(AccountDisconnected),
    AuthFailed(AuthFailed),
    Refreshed(TokenRefreshed),
    Expiring(TokenExpiring),
}

impl ConnectionEvent {
    /// Decodes the event a subject's `<event>` segment names; `None` for the events that do not
    /// concern the connection (the post events).
    pub fn decode(name: &str, payload: &[u8]) -> Result<Option<Self>, prost::DecodeError> {
        fn is<E: Event>(name: &str) -> bool {
            name == E::NAME
        }
        Ok(Some(if is::<AccountConnected>(name) {
            Self::Connected(AccountConnected::decode(payload)?)
        } else if is::<AccountReconnected>(name) {
            Self::Reconnected(AccountReconnected::decode(payload)?)
        } else if is::<AccountDisconnected>(name) {
            Self::Disconnected(AccountDisconnected::decode(payload)?)
        } else if is::<AuthFailed>(name) {
            Self::AuthFailed(AuthFailed::decode(payload)?)
        } else if is::<TokenRefreshed>(name) {
            Self::Refreshed(TokenRefreshed::decode(payload)?)
        } else if is::<TokenExpiring>(name) {
            Self::Expiring(TokenExpiring::decode(payload)?)
        } else {
            return Ok(None);
        }))
    }

    pub fn envelope(&self) -> Option<&Envelope> {
        match self {
            Self::Connected(e) => e.envelope(),
            Self::Reconnected(e) => e.envelope(),
            Self::Disconnected(e) => e.envelope(),
            Self::AuthFailed(e) => e.envelope(),
            Self::Refreshed(e) => e.envelope(),
            Self::Expiring(e) => e.envelope(),
        }
    }

    fn occurred_at(&self) -> Option<DateTime<Utc>> {
        self.envelope().and_then(Envelope::occurred_at)
    }
}

/// What the bucket holds for a key.
#[derive(Debug, Clone, Copy)]
pub enum Stored<'a> {
    /// Never written (or unreadable: it is overwritten).
    Absent,
    /// Deleted when the account was disconnected, at this time.
    Deleted {
        at: DateTime<Utc>,
    },
    Present(&'a AccountState),
}

/// What to do with the key.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Nothing: a redelivered or replayed event, or one about a disconnected account.
    Keep,
    Put(Box<AccountState>),
    Delete,
}

/// The next state of an account after the event at `stream_sequence`, under the same rules as
/// the gateway's read model (`consumers.rs`).
pub fn decide(
    stored: Stored<'_>,
    event: &ConnectionEvent,
    about: &Subject,
    stream_sequence: u64,
) -> Change {
    let before = match stored {
        Stored::Present(s) if s.stream_sequence >= stream_sequence => return Change::Keep,
        Stored::Present(s) => Some(s),
        // Only a connection that happened after the disconnect brings the key back: a replayed
        // older event must not resurrect it.
        Stored::Deleted { at } => match event {
            ConnectionEvent::Connected(_) if event.occurred_at().is_some_and(|t| t > at) => None,
            _ => return Change::Keep,
        },
        Stored::Absent => None,
    };
    if let ConnectionEvent::Disconnected(_) = event {
        return if before.is_some() { Change::Delete } else { Change::Keep };
    }
    let mut next = before.cloned().unwrap_or_else(|| AccountState {
        // First seen on a later event (the stream no longer holds its connection): what the
        // envelope says, healthy until an event says otherwise.
        workspace_id: about.workspace_id.to_string(),
        account_id: about.account_id.to_string(),
        platform: about.platform.to_proto() as i32,
        state: ConnectionState::Healthy as i32,
        ..AccountState::default()
    });
    apply_event(&mut next, event);
    if before.is_none_or(|b| b.state != next.state || b.cause != next.cause) {
        next.changed_at = event.occurred_at().map(lifeline_kit::events::timestamp);
    }
    next.stream_sequence = stream_sequence;
    next.last_event_id = event.envelope().map(|e| e.event_id.clone()).unwrap_or_default();
    Change::Put(Box::new(next))
}

/// `expired`, `unknown` and unspecified causes are often inferred; a specific one replaces them.
fn is_vague(cause: i32) -> bool {
    matches!(
        AuthFailureCause::try_from(cause),
        Ok(AuthFailureCause::Expired | AuthFailureCause::Unknown | AuthFailureCause::Unspecified)
            | Err(_)
    )
}

fn clear_expiring(s: &mut AccountState) {
    s.expiring_at = None;
    s.expiring_credential = ExpiringCredential::Unspecified as i32;
}

fn apply_event(s: &mut AccountState, event: &ConnectionEvent) {
    const HEALTHY: i32 = ConnectionState::Healthy as i32;
    const EXPIRING: i32 = ConnectionState::Expiring as i32;
    const NEEDS_RECONNECT: i32 = ConnectionState::NeedsReconnect as i32;
    const ACCESS: i32 = ExpiringCredential::AccessToken as i32;
    match event {
        ConnectionEvent::Connected(e) => {
            s.platform_user_id.clone_from(&e.platform_user_id);
            s.display_name.clone_from(&e.display_name);
            s.scopes.clone_from(&e.scopes);
            s.credential_version = s.credential_version.max(e.credential_version);
            s.state = HEALTHY;
            s.cause = AuthFailureCause::Unspecified as i32;
            s.detail.clear();
            clear_expiring(s);
            if s.connected_at.is_none() {
                s.connected_at = event.occurred_at().map(lifeline_kit::events::timestamp);
            }
        }
        // A reconnect with an older credential than one stored since changes nothing.
        ConnectionEvent::Reconnected(e) if e.credential_version < s.credential_version => {}
        ConnectionEvent::Reconnected(e) => {
            s.credential_version = e.credential_version;
            if !e.platform_user_id.is_empty() {
                s.platform_user_id.clone_from(&e.platform_user_id);
            }
            if !e.scopes.is_empty() {
                s.scopes.clone_from(&e.scopes);
            }
            s.cause = AuthFailureCause::Unspecified as i32;
            s.detail.clear();
            // The owner's consent renews every credential; a refresh only the access token.
            if e.reason == ReconnectReason::UserReauthorized as i32
                || s.expiring_credential == ACCESS
            {
                clear_expiring(s);
            }
            s.state = if s.expiring_at.is_some() { EXPIRING } else { HEALTHY };
        }
        // The refusal of a credential older than the stored one does not break the account.
        ConnectionEvent::AuthFailed(e) if e.credential_version < s.credential_version => {}
        ConnectionEvent::AuthFailed(e) => {
            s.credential_version = e.credential_version;
            if s.state != NEEDS_RECONNECT || (is_vague(s.cause) && !is_vague(e.cause)) {
                s.state = NEEDS_RECONNECT;
                s.cause = e.cause;
                s.detail.clone_from(&e.detail);
                clear_expiring(s);
            }
        }
        ConnectionEvent::Refreshed(e) => {
            s.credential_version = s.credential_version.max(e.credential_version);
            if s.expiring_credential == ACCESS {
                clear_expiring(s);
                if s.state == EXPIRING {
                    s.state = HEALTHY;
                }
            }
        }
        ConnectionEvent::Expiring(_) if s.state == NEEDS_RECONNECT => {}
        ConnectionEvent::Expiring(e) => {
            s.state = EXPIRING;
            s.expiring_at.clone_from(&e.expires_at);
            s.expiring_credential = match ExpiringCredential::try_from(e.credential) {
                Ok(ExpiringCredential::RefreshToken) => ExpiringCredential::RefreshToken as i32,
                _ => ACCESS,
            };
        }
        ConnectionEvent::Disconnected(_) => {}
    }
}

fn transient(what: &str, e: impl std::fmt::Display) -> HandlerError {
    HandlerError::Transient(format!("bucket {what}: {e}"))
}

/// Applies one message of the events stream to the bucket: reads the key (value and revision),
/// decides, and writes with compare-and-set on that revision (a key never written has revision
/// 0), reading again after a conflict.
pub async fn apply(
    store: &kv::Store,
    subjects: &Subjects,
    d: &RawDelivery,
) -> Result<(), HandlerError> {
    let Some((name, _, _)) = subjects.parse_event(&d.subject) else { return Ok(()) };
    let event = match ConnectionEvent::decode(name, &d.payload) {
        Ok(Some(event)) => event,
        Ok(None) => return Ok(()),
        Err(e) => return Err(HandlerError::Poison(format!("undecodable {name}: {e}"))),
    };
    let about = event
        .envelope()
        .ok_or_else(|| HandlerError::Poison(format!("{name} without an envelope")))?
        .subject()
        .map_err(|e| HandlerError::Poison(format!("invalid {name}: {e}")))?;
    let key = key_of(&about);
    for _ in 0..CAS_ATTEMPTS {
        let entry = store.entry(key.as_str()).await.map_err(|e| transient("read", e))?;
        let (current, revision) = match &entry {
            None => (None, 0),
            Some(entry) => {
                let deleted = !matches!(entry.operation, kv::Operation::Put);
                let value =
                    if deleted { None } else { AccountState::decode(entry.value.as_ref()).ok() };
                if !deleted && value.is_none() {
                    tracing::warn!(key = %key, "unreadable account state; overwriting it");
                }
                (value.map(Ok).or_else(|| deleted.then(|| Err(deleted_at(entry)))), entry.revision)
            }
        };
        let stored = match &current {
            None => Stored::Absent,
            Some(Ok(state)) => Stored::Present(state),
            Some(Err(at)) => Stored::Deleted { at: *at },
        };
        let written = match decide(stored, &event, &about, d.stream_sequence) {
            Change::Keep => return Ok(()),
            Change::Put(state) => {
                store.update(key.as_str(), state.encode_to_vec().into(), revision).await.map(drop)
            }
            Change::Delete => store.delete_expect_revision(key.as_str(), Some(revision)).await,
        };
        match written {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                tracing::debug!(key = %key, "account state changed under us; reading it again");
            }
            Err(e) => return Err(transient("write", e)),
        }
    }
    Err(HandlerError::Transient(format!(
        "{key}: {CAS_ATTEMPTS} compare-and-set conflicts in a row"
    )))
}

/// When a deletion marker was written.
fn deleted_at(entry: &kv::Entry) -> DateTime<Utc> {
    let nanos = entry.created.unix_timestamp_nanos();
    DateTime::from_timestamp_nanos(i64::try_from(nanos).unwrap_or(i64::MAX))
}

/// Every [`LAG_INTERVAL`], sets `lifeline_events_consumer_pending` and
/// `lifeline_events_consumer_ack_pending` for each durable of the events stream, labelled with
/// whether it is Lifeline's own or another team's. A durable that went away is set to 0 once,
/// so a deleted subscriber does not keep an alert firing.
async fn export_consumer_lag(bus: Bus, shutdown: CancellationToken) {
    let mut exported: BTreeSet<(String, bool)> = BTreeSet::new();
    loop {
        match bus.events_consumers().await {
            Ok(infos) => {
                let mut now = BTreeSet::new();
                for info in infos.iter().filter(|i| i.config.durable_name.is_some()) {
                    let external = !is_lifeline_durable(&info.name);
                    set_lag(
                        &info.name,
                        external,
                        info.num_pending as f64,
                        info.num_ack_pending as f64,
                    );
                    now.insert((info.name.clone(), external));
                }
                for (name, external) in exported.difference(&now) {
                    set_lag(name, *external, 0.0, 0.0);
                }
                exported = now;
            }
            Err(e) => tracing::warn!(error = %e, "cannot list the events stream's consumers"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            () = tokio::time::sleep(LAG_INTERVAL) => {}
        }
    }
}

fn set_lag(consumer: &str, external: bool, pending: f64, ack_pending: f64) {
    let labels = [("consumer", consumer.to_owned()), ("external", external.to_string())];
    metrics::gauge!("lifeline_events_consumer_pending", &labels).set(pending);
    metrics::gauge!("lifeline_events_consumer_ack_pending", &labels).set(ack_pending);
}

#[cfg(test)]
mod tests {
    use lifeline_kit::events::Platform;

    use super::*;

    fn about() -> Subject {
        Subject {
            workspace_id: uuid::Uuid::now_v7(),
            account_id: uuid::Uuid::now_v7(),
            platform: Platform::X,
        }
    }

    fn envelope(about: &Subject, at: DateTime<Utc>) -> Option<Envelope> {
        let mut e = Envelope::build(*about, None);
        e.occurred_at = Some(lifeline_kit::events::timestamp(at));
        Some(e)
    }

    fn connected(about: &Subject, version: u64) -> ConnectionEvent {
        ConnectionEvent::Connected(AccountConnected {
            envelope: envelope(about, Utc::now()),
            platform_user_id: "u1".into(),
            display_name: "@u1".into(),
            scopes: vec!["tweet.write".into()],
            credential_version: version,
        })
    }

    fn failed(about: &Subject, version: u64, cause: AuthFailureCause) -> ConnectionEvent {
        ConnectionEvent::AuthFailed(AuthFailed {
            envelope: envelope(about, Utc::now()),
            cause: cause as i32,
            detail: "invalid_grant".into(),
            credential_version: version,
            ..AuthFailed::default()
        })
    }

    fn put(change: Change) -> AccountState {
        match change {
            Change::Put(s) => *s,
            other => panic!("expected a new state, got {other:?}"),
        }
    }

    fn state(s: &AccountState) -> ConnectionState {
        ConnectionState::try_from(s.state).expect("known state")
    }

    #[test]
    fn a_connection_is_healthy_and_carries_its_event() {
        let a = about();
        let event = connected(&a, 1);
        let s = put(decide(Stored::Absent, &event, &a, 7));
        assert_eq!(state(&s), ConnectionState::Healthy);
        assert_eq!((s.platform_user_id.as_str(), s.credential_version), ("u1", 1));
        assert_eq!(s.account_id, a.account_id.to_string());
        assert_eq!(s.stream_sequence, 7);
        assert_eq!(
            s.last_event_id,
            event.envelope().map(|e| e.event_id.clone()).unwrap_or_default()
        );
        assert!(s.connected_at.is_some() && s.changed_at.is_some());
    }

    #[test]
    fn a_redelivered_event_changes_nothing() {
        let a = about();
        let s = put(decide(Stored::Absent, &connected(&a, 1), &a, 7));
        let broken =
            put(decide(Stored::Present(&s), &failed(&a, 1, AuthFailureCause::Revoked), &a, 9));
        for seq in [7, 8, 9] {
            let again = failed(&a, 1, AuthFailureCause::Revoked);
            assert_eq!(
                decide(Stored::Present(&broken), &again, &a, seq),
                Change::Keep,
                "seq {seq}"
            );
        }
    }

    #[test]
    fn a_failure_of_an_older_credential_does_not_break_and_a_reconnect_heals() {
        let a = about();
        let s = put(decide(Stored::Absent, &connected(&a, 2), &a, 1));
        let stale =
            put(decide(Stored::Present(&s), &failed(&a, 1, AuthFailureCause::Revoked), &a, 2));
        assert_eq!(state(&stale), ConnectionState::Healthy);
        let broken =
            put(decide(Stored::Present(&stale), &failed(&a, 2, AuthFailureCause::Revoked), &a, 3));
        assert_eq!(state(&broken), ConnectionState::NeedsReconnect);
        assert_eq!(broken.cause, AuthFailureCause::Revoked as i32);
        // Within one incident a vague cause does not replace a specific one.
        let later =
            put(decide(Stored::Present(&broken), &failed(&a, 2, AuthFailureCause::Unknown), &a, 4));
        assert_eq!(later.cause, AuthFailureCause::Revoked as i32);
        let reconnect = ConnectionEvent::Reconnected(AccountReconnected {
            envelope: envelope(&a, Utc::now()),
            credential_version: 3,
            reason: ReconnectReason::UserReauthorized as i32,
            ..AccountReconnected::default()
        });
        let healed = put(decide(Stored::Present(&later), &reconnect, &a, 5));
        assert_eq!(state(&healed), ConnectionState::Healthy);
        assert_eq!((healed.cause, healed.detail.as_str(), healed.credential_version), (0, "", 3));
    }

    #[test]
    fn expiring_until_the_access_token_is_refreshed_unless_broken() {
        let a = about();
        let s = put(decide(Stored::Absent, &connected(&a, 1), &a, 1));
        let expiring = ConnectionEvent::Expiring(TokenExpiring {
            envelope: envelope(&a, Utc::now()),
            expires_at: Some(lifeline_kit::events::timestamp(Utc::now())),
            credential: ExpiringCredential::AccessToken as i32,
            ..TokenExpiring::default()
        });
        let warned = put(decide(Stored::Present(&s), &expiring, &a, 2));
        assert_eq!(state(&warned), ConnectionState::Expiring);
        assert!(warned.expiring_at.is_some());
        let refreshed = ConnectionEvent::Refreshed(TokenRefreshed {
            envelope: envelope(&a, Utc::now()),
            credential_version: 2,
            ..TokenRefreshed::default()
        });
        let fresh = put(decide(Stored::Present(&warned), &refreshed, &a, 3));
        assert_eq!(state(&fresh), ConnectionState::Healthy);
        assert_eq!((fresh.expiring_at, fresh.credential_version), (None, 2));
        let broken =
            put(decide(Stored::Present(&fresh), &failed(&a, 2, AuthFailureCause::Revoked), &a, 4));
        let still = put(decide(Stored::Present(&broken), &expiring, &a, 5));
        assert_eq!(state(&still), ConnectionState::NeedsReconnect);
    }

    #[test]
    fn a_disconnect_deletes_and_only_a_later_connection_brings_the_key_back() {
        let a = about();
        let old = connected(&a, 1);
        let s = put(decide(Stored::Absent, &old, &a, 1));
        let gone = ConnectionEvent::Disconnected(AccountDisconnected {
            envelope: envelope(&a, Utc::now()),
            reason: "owner".into(),
        });
        assert_eq!(decide(Stored::Present(&s), &gone, &a, 2), Change::Delete);
        let deleted = Stored::Deleted { at: Utc::now() };
        assert_eq!(decide(deleted, &old, &a, 1), Change::Keep, "a replayed connection");
        assert_eq!(decide(deleted, &failed(&a, 1, AuthFailureCause::Revoked), &a, 3), Change::Keep);
        let mut again = connected(&a, 2);
        if let ConnectionEvent::Connected(e) = &mut again {
            e.envelope = envelope(&a, Utc::now() + chrono::Duration::seconds(5));
        }
        assert_eq!(state(&put(decide(deleted, &again, &a, 4))), ConnectionState::Healthy);
    }

    #[test]
    fn an_account_first_seen_on_a_later_event_gets_its_ids_from_the_envelope() {
        let a = about();
        let s = put(decide(Stored::Absent, &failed(&a, 3, AuthFailureCause::Revoked), &a, 11));
        assert_eq!(state(&s), ConnectionState::NeedsReconnect);
        assert_eq!(s.workspace_id, a.workspace_id.to_string());
        assert_eq!(s.platform, Platform::X.to_proto() as i32);
        assert_eq!((s.credential_version, s.connected_at), (3, None));
    }
}
