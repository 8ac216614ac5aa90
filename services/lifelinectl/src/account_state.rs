//! `accounts state`: the `LIFELINE_ACCOUNTS` key-value bucket, read the way a new subscriber
//! should read it — one consistent snapshot (a watch of every key, up to the moment it caught
//! up) — followed by the stream sequence to follow `LIFELINE_EVENTS` from.

use std::time::Duration;

use async_nats::jetstream::consumer::{pull::OrderedConfig, DeliverPolicy};
use futures::StreamExt;
use lifeline_events::{
    v1::{self, AccountState, ConnectionState},
    AuthFailureCause, ExpiringCredential,
};
use prost::Message;
use serde_json::{json, Value};

use crate::{
    cli::{AccountsStateArgs, GlobalArgs, WorkspaceArg},
    events::{enum_value, time_value},
    output::{self, Table},
    CtlError,
};

/// How long the snapshot may take before the command gives up (a bucket of a million accounts
/// reads in seconds).
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(120);

/// What the bucket holds, and where to go on from.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub accounts: Vec<AccountState>,
    /// The highest `stream_sequence` of any key: every connection event up to it is reflected.
    pub max_stream_sequence: u64,
}

impl Snapshot {
    /// The first sequence of `LIFELINE_EVENTS` a subscriber that read this snapshot still needs.
    pub fn follow_from(&self) -> u64 {
        self.max_stream_sequence + 1
    }
}

/// Reads every key of `bucket` as one consistent snapshot. The consumer delivers the last value
/// of each key as of its creation, then every later write, in the bucket's order; reading until it
/// has caught up means every write up to the highest sequence seen is included, which key-by-key
/// `get`s cannot promise while the gateway writes.
pub async fn snapshot(
    js: &async_nats::jetstream::Context,
    bucket: &str,
) -> Result<Snapshot, CtlError> {
    let mut snapshot = Snapshot::default();
    let stream = js
        .get_stream(format!("KV_{bucket}"))
        .await
        .map_err(|e| {
            CtlError::JetStream(format!(
                "cannot open bucket {bucket}: {e} (check --stream-prefix; the gateway creates it at start)"
            ))
        })?;
    if stream.cached_info().state.messages == 0 {
        return Ok(snapshot);
    }
    // The last value of every key, through an ordered consumer with one filter subject (NATS
    // 2.9 ignores the multi-subject filter the clients' own watch uses).
    let prefix = format!("$KV.{bucket}.");
    let consumer = stream
        .create_consumer(OrderedConfig {
            filter_subject: format!("{prefix}>"),
            deliver_policy: DeliverPolicy::LastPerSubject,
            description: Some("lifelinectl accounts state".to_owned()),
            ..Default::default()
        })
        .await
        .map_err(|e| CtlError::JetStream(format!("cannot read bucket {bucket}: {e}")))?;
    let mut messages = consumer
        .messages()
        .await
        .map_err(|e| CtlError::JetStream(format!("cannot read bucket {bucket}: {e}")))?;
    let mut latest = std::collections::BTreeMap::new();
    let read = async {
        while let Some(msg) = messages.next().await {
            let msg = msg.map_err(|e| CtlError::JetStream(format!("reading {bucket}: {e}")))?;
            let key = msg.subject.strip_prefix(prefix.as_str()).unwrap_or_default().to_owned();
            let deleted = msg
                .headers
                .as_ref()
                .and_then(|h| h.get("KV-Operation"))
                .is_some_and(|op| matches!(op.as_str(), "DEL" | "PURGE"));
            let value =
                if deleted { None } else { AccountState::decode(msg.payload.as_ref()).ok() };
            if !deleted && value.is_none() {
                eprintln!("warning: skipping {key}: not an AccountState");
            }
            latest.insert(key, value);
            let pending = msg
                .info()
                .map_err(|e| CtlError::JetStream(format!("reading {bucket}: {e}")))?
                .pending;
            if pending == 0 {
                return Ok(());
            }
        }
        Err(CtlError::JetStream(format!("reading {bucket} ended early")))
    };
    tokio::time::timeout(SNAPSHOT_TIMEOUT, read).await.map_err(|_| {
        CtlError::JetStream(format!("reading {bucket} took longer than {SNAPSHOT_TIMEOUT:?}"))
    })??;
    snapshot.accounts = latest.into_values().flatten().collect();
    snapshot.max_stream_sequence =
        snapshot.accounts.iter().map(|a| a.stream_sequence).max().unwrap_or(0);
    Ok(snapshot)
}

/// One account as JSON: enums as snake_case names, timestamps as RFC 3339.
pub fn to_json(a: &AccountState) -> Value {
    json!({
        "workspace_id": a.workspace_id,
        "account_id": a.account_id,
        "platform": enum_value::<v1::Platform>(a.platform),
        "platform_user_id": a.platform_user_id,
        "display_name": a.display_name,
        "state": enum_value::<ConnectionState>(a.state),
        "cause": if a.cause == 0 { Value::Null } else { enum_value::<AuthFailureCause>(a.cause) },
        "detail": a.detail,
        "scopes": a.scopes,
        "credential_version": a.credential_version,
        "expiring_at": time_value(a.expiring_at.as_ref()),
        "expiring_credential": if a.expiring_credential == 0 { Value::Null } else {
            enum_value::<ExpiringCredential>(a.expiring_credential)
        },
        "connected_at": time_value(a.connected_at.as_ref()),
        "changed_at": time_value(a.changed_at.as_ref()),
        "last_event_id": a.last_event_id,
        "stream_sequence": a.stream_sequence,
    })
}

fn text(v: Value) -> String {
    match v {
        Value::String(s) => s,
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

pub fn table(accounts: &[AccountState]) -> Table {
    let mut t = Table::new(&[
        "ACCOUNT",
        "WORKSPACE",
        "PLATFORM",
        "USER",
        "STATE",
        "CAUSE",
        "CREDENTIAL",
        "SEQ",
        "CHANGED",
    ]);
    for a in accounts {
        let j = to_json(a);
        t.row(vec![
            a.account_id.clone(),
            a.workspace_id.clone(),
            text(j["platform"].clone()),
            a.display_name.clone(),
            text(j["state"].clone()),
            text(j["cause"].clone()),
            a.credential_version.to_string(),
            a.stream_sequence.to_string(),
            text(j["changed_at"].clone()),
        ]);
    }
    t
}

/// `accounts state`.
pub async fn run(global: &GlobalArgs, args: &AccountsStateArgs) -> Result<(), CtlError> {
    let workspace = match global.workspace {
        None => None,
        Some(WorkspaceArg::Id(w)) => Some(w.to_string()),
        Some(WorkspaceArg::New) => {
            return Err(CtlError::Usage("accounts state takes a workspace UUID, not `new`".into()))
        }
    };
    let js = crate::nats::jetstream(global).await?;
    let bucket = format!("{}_ACCOUNTS", global.stream_prefix);
    let mut snapshot = snapshot(&js, &bucket).await?;
    let follow_from = snapshot.follow_from();
    if let Some(w) = &workspace {
        snapshot.accounts.retain(|a| &a.workspace_id == w);
    }
    snapshot
        .accounts
        .sort_by(|a, b| (&a.workspace_id, &a.account_id).cmp(&(&b.workspace_id, &b.account_id)));
    if args.json {
        let accounts: Vec<Value> = snapshot.accounts.iter().map(to_json).collect();
        output::line(
            &json!({ "bucket": bucket, "accounts": accounts, "follow_from_sequence": follow_from })
                .to_string(),
        )
    } else {
        output::line(&table(&snapshot.accounts).render())?;
        // On stderr, so stdout stays the table for pipes.
        eprintln!(
            "{} account(s) in {bucket}; follow {}_EVENTS from stream sequence {follow_from}",
            snapshot.accounts.len(),
            global.stream_prefix
        );
        Ok(())
    }
}
