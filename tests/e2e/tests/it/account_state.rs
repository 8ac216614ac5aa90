//! The `LIFELINE_ACCOUNTS` key-value bucket (current state for new subscribers) and `lifelinectl consumers`.

use std::{collections::BTreeMap, time::Duration};

use anyhow::{bail, ensure, Context as _};
use async_nats::jetstream::{
    self,
    consumer::{pull, DeliverPolicy},
    kv::{self, Operation},
};
use futures::StreamExt;
use lifeline_e2e::{eventually, System};
use lifeline_events::{
    v1::{AccountState, ConnectionState},
    AccountConnected, AuthFailed, AuthFailureCause, AuthFailureSource, Envelope, Platform, Subject,
    Subjects,
};
use lifeline_kit::ids::WorkspaceId;
use prost::Message as _;
use serde_json::{json, Value};

use crate::{connected_account, post_reaches};

/// The connection events the bucket is kept from.
const CONNECTION_EVENTS: &[&str] = &[
    "account_connected",
    "account_reconnected",
    "account_disconnected",
    "auth_failed",
    "token_refreshed",
    "token_expiring",
];

/// One message of the events stream.
#[derive(Debug, Clone, PartialEq)]
struct StreamEvent {
    seq: u64,
    name: String,
    account: String,
    event_id: String,
}

/// Every event's envelope is its field 1; the rest is skipped.
#[derive(Clone, PartialEq, prost::Message)]
struct EnvelopeOnly {
    #[prost(message, optional, tag = "1")]
    envelope: Option<Envelope>,
}

/// Reads the events stream from `start` up to and including `until` with an ordered consumer.
async fn read_stream(
    system: &System,
    js: &jetstream::Context,
    start: u64,
    until: u64,
) -> anyhow::Result<Vec<StreamEvent>> {
    let mut out = Vec::new();
    if start > until {
        return Ok(out);
    }
    let stream = js.get_stream(format!("{}_EVENTS", system.stream_prefix)).await?;
    let consumer = stream
        .create_consumer(pull::OrderedConfig {
            deliver_policy: DeliverPolicy::ByStartSequence { start_sequence: start },
            ..Default::default()
        })
        .await?;
    let mut messages = consumer.messages().await?;
    let subjects = Subjects::new(system.subject_root.clone());
    let read = async {
        while let Some(msg) = messages.next().await {
            let msg = msg?;
            let seq = msg.info().map_err(|e| anyhow::anyhow!("{e}"))?.stream_sequence;
            if seq > until {
                break;
            }
            let (name, _, account) =
                subjects.parse_event(&msg.subject).context("an event subject")?;
            let envelope = EnvelopeOnly::decode(msg.payload.as_ref())?.envelope.unwrap_or_default();
            out.push(StreamEvent {
                seq,
                name: name.to_owned(),
                account: account.to_owned(),
                event_id: envelope.event_id,
            });
            if seq >= until {
                break;
            }
        }
        anyhow::Ok(())
    };
    tokio::time::timeout(Duration::from_secs(30), read).await.context("reading the stream")??;
    Ok(out)
}

/// The bucket as a new subscriber reads it: the last value of every key through an ordered
/// consumer (one filter subject, for NATS 2.9), until it has caught up.
async fn snapshot(store: &kv::Store) -> anyhow::Result<BTreeMap<String, AccountState>> {
    let stream = store.stream.clone();
    let mut latest: BTreeMap<String, Option<AccountState>> = BTreeMap::new();
    if stream.clone().info().await?.state.messages == 0 {
        return Ok(BTreeMap::new());
    }
    let prefix = format!("$KV.{}.", store.name);
    let consumer = stream
        .create_consumer(pull::OrderedConfig {
            filter_subject: format!("{prefix}>"),
            deliver_policy: DeliverPolicy::LastPerSubject,
            ..Default::default()
        })
        .await?;
    let mut messages = consumer.messages().await?;
    let read = async {
        while let Some(msg) = messages.next().await {
            let msg = msg?;
            let key = msg.subject.strip_prefix(prefix.as_str()).unwrap_or_default().to_owned();
            let deleted = msg.headers.as_ref().and_then(|h| h.get("KV-Operation")).is_some();
            let value =
                if deleted { None } else { Some(AccountState::decode(msg.payload.as_ref())?) };
            latest.insert(key, value);
            if msg.info().map_err(|e| anyhow::anyhow!("{e}"))?.pending == 0 {
                break;
            }
        }
        anyhow::Ok(())
    };
    tokio::time::timeout(Duration::from_secs(20), read)
        .await
        .context("the bucket's snapshot did not catch up")??;
    Ok(latest.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))).collect())
}

/// The key's current entry: its state (`None` once deleted) and revision.
async fn entry(
    store: &kv::Store,
    key: &str,
) -> anyhow::Result<Option<(Option<AccountState>, u64)>> {
    Ok(match store.entry(key).await? {
        None => None,
        Some(e) if e.operation == Operation::Put => {
            Some((Some(AccountState::decode(e.value.as_ref())?), e.revision))
        }
        Some(e) => Some((None, e.revision)),
    })
}

/// Waits until the key holds `state` and returns it with its revision.
async fn reaches(
    store: &kv::Store,
    key: &str,
    state: ConnectionState,
) -> anyhow::Result<(AccountState, u64)> {
    eventually(Duration::from_secs(30), || async {
        match entry(store, key).await? {
            Some((Some(s), rev)) if s.state == state as i32 => Ok((s, rev)),
            other => bail!("{key} is {other:?}, waiting for {state:?}"),
        }
    })
    .await
}

/// Runs the CLI against the system's NATS subjects and streams; returns its stdout.
async fn lifelinectl(
    bin: &std::path::Path,
    system: &System,
    args: &[&str],
) -> anyhow::Result<String> {
    let mut cmd = std::process::Command::new(bin);
    cmd.env_clear()
        .env(
            "NATS_URL",
            std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into()),
        )
        .env("LIFELINE_SUBJECT_ROOT", &system.subject_root)
        .env("LIFELINE_STREAM_PREFIX", &system.stream_prefix)
        .args(args);
    let out = tokio::task::spawn_blocking(move || cmd.output()).await??;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    ensure!(out.status.success(), "lifelinectl {args:?} failed: {stderr}");
    if !stderr.is_empty() {
        eprintln!("{stderr}");
    }
    Ok(stdout)
}

fn key(ws: WorkspaceId, account: &str) -> String {
    format!("{ws}.{account}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_bucket_holds_each_accounts_state_and_hands_over_to_the_stream() -> anyhow::Result<()> {
    let bin = lifeline_e2e::workspace_binary("lifelinectl").await?;
    let system = System::start().await?;
    println!("system started");
    let js = jetstream::new(system.nats.clone());
    let events = js.get_stream(format!("{}_EVENTS", system.stream_prefix)).await?;
    // Another team's subscriber that is created and then never reads: it falls behind.
    let external = "analytics-connections";
    events
        .create_consumer(pull::Config {
            durable_name: Some(external.to_owned()),
            filter_subject: format!("{}.events.v1.>", system.subject_root),
            ..Default::default()
        })
        .await?;

    let (ws_a, a) = connected_account(&system, "statea").await?;
    let (ws_b, b) = connected_account(&system, "stateb").await?;
    let (ws_c, c) = connected_account(&system, "statec").await?;
    let bucket = format!("{}_ACCOUNTS", system.stream_prefix);
    let store = eventually(Duration::from_secs(10), || async {
        Ok(js.get_key_value(bucket.clone()).await?)
    })
    .await
    .map_err(|e| {
        let why: Vec<String> = lifeline_e2e::captured_logs()
            .lines()
            .filter(|l| l.contains("account_state") || l.contains("account-state"))
            .map(str::to_owned)
            .collect();
        e.context(format!("the gateway did not create {bucket}:\n{}", why.join("\n")))
    })?;
    let (key_a, key_b, key_c) = (key(ws_a, &a), key(ws_b, &b), key(ws_c, &c));
    let (state_a, _) = reaches(&store, &key_a, ConnectionState::Healthy).await?;
    let (healthy_b, rev_b1) = reaches(&store, &key_b, ConnectionState::Healthy).await?;
    reaches(&store, &key_c, ConnectionState::Healthy).await?;
    assert_eq!(
        (state_a.account_id.as_str(), state_a.workspace_id.clone()),
        (a.as_str(), ws_a.to_string())
    );
    assert_eq!(state_a.platform, Platform::X.to_proto() as i32);
    let connected_a = system
        .events_of::<AccountConnected>()
        .into_iter()
        .find(|e| e.envelope.as_ref().is_some_and(|env| env.account_id == a))
        .context("A's AccountConnected")?;
    assert_eq!(state_a.display_name, connected_a.display_name, "{state_a:?}");
    assert_eq!(state_a.credential_version, connected_a.credential_version);
    assert!(state_a.connected_at.is_some() && state_a.stream_sequence > 0);

    println!("three accounts healthy in {bucket}");
    // B breaks: the user revokes the app on X and the next post fails for auth reasons.
    system.sim_post("/_sim/x/accounts/stateb/revoke", json!({})).await?;
    let post = system.schedule_post(ws_b, &b, "after revoke").await?;
    post_reaches(&system, ws_b, &post, "failed_auth").await?;
    let (broken_b, rev_b2) = reaches(&store, &key_b, ConnectionState::NeedsReconnect).await?;
    assert_eq!(broken_b.cause, AuthFailureCause::Revoked as i32, "{broken_b:?}");
    assert!(rev_b2 > rev_b1 && broken_b.stream_sequence > healthy_b.stream_sequence);
    // Let the failure's stragglers (the one immediate refresh) land before the snapshot.
    tokio::time::sleep(Duration::from_secs(1)).await;

    // A new subscriber reads the bucket, then follows the stream from max(stream_sequence) + 1.
    let before = snapshot(&store).await?;
    let max = before.values().map(|s| s.stream_sequence).max().context("a state")?;
    assert_eq!(before.len(), 3, "{before:?}");
    println!("snapshot: {} accounts, max stream_sequence {max}", before.len());

    // B is reconnected, C disconnected.
    let (status, body) = system.oauth(ws_b, Some(&b), "stateb").await?;
    assert_eq!((status, body["result"].as_str()), (200, Some("reconnected")), "{body}");
    let (status, body) = system.delete(&system.gateway, &format!("/v1/accounts/{c}"), ws_c).await?;
    ensure!(status == 204, "disconnect: {status} {body}");
    let (healed_b, rev_b3) = reaches(&store, &key_b, ConnectionState::Healthy).await?;
    assert!(rev_b3 > rev_b2 && healed_b.credential_version > broken_b.credential_version);
    assert_eq!((healed_b.cause, healed_b.detail.as_str()), (0, ""), "{healed_b:?}");
    eventually(Duration::from_secs(30), || async {
        match entry(&store, &key_c).await? {
            Some((None, _)) => Ok(()),
            other => bail!("C is still {other:?}"),
        }
    })
    .await?;
    assert!(store.get(key_c.as_str()).await?.is_none(), "deleted on disconnect");
    post_reaches(&system, ws_b, &post, "published").await?;

    // What the stream holds now, and what the follower reads from max + 1.
    let last = events.get_info().await?.state.last_sequence;
    let all = read_stream(&system, &js, 1, last).await?;
    let followed = read_stream(&system, &js, max + 1, last).await?;
    let later: Vec<StreamEvent> = all.iter().filter(|e| e.seq > max).cloned().collect();
    assert_eq!(followed, later, "the follower sees exactly the events after the snapshot");
    // The snapshot reflects every connection event up to max: each one's key is at least there.
    for e in all.iter().filter(|e| e.seq <= max && CONNECTION_EVENTS.contains(&e.name.as_str())) {
        let state = before.values().find(|s| s.account_id == e.account).context("its key")?;
        assert!(state.stream_sequence >= e.seq, "{e:?} is not in the snapshot {state:?}");
    }
    let names = |account: &str| -> Vec<&str> {
        followed.iter().filter(|e| e.account == account).map(|e| e.name.as_str()).collect()
    };
    assert!(names(&b).contains(&"account_reconnected"), "{:?}", names(&b));
    assert!(names(&c).contains(&"account_disconnected"), "{:?}", names(&c));
    // Snapshot + followed connection events = the bucket now: each key's last event is the last
    // followed one of its account, or the snapshot's own when none followed.
    for (k, state) in &before {
        let expected = followed.iter().rev().find(|e| {
            e.account == state.account_id && CONNECTION_EVENTS.contains(&e.name.as_str())
        });
        match entry(&store, k).await? {
            Some((Some(now), _)) => {
                let want = expected.map_or(state.last_event_id.as_str(), |e| e.event_id.as_str());
                assert_eq!(now.last_event_id, want, "{k}");
            }
            Some((None, _)) => {
                assert_eq!(expected.map(|e| e.name.as_str()), Some("account_disconnected"))
            }
            None => bail!("{k} vanished"),
        }
    }

    // A late failure of B's old credential (published after the reconnect) does not break it.
    let stale = AuthFailed {
        envelope: Some(Envelope::build(
            Subject { workspace_id: ws_b.0, account_id: b.parse()?, platform: Platform::X },
            None,
        )),
        cause: AuthFailureCause::Revoked as i32,
        source: AuthFailureSource::Publish as i32,
        detail: "late 401".into(),
        credential_version: broken_b.credential_version,
        post_id: String::new(),
    };
    let subject = format!("{}.events.v1.auth_failed.x.{b}", system.subject_root);
    let ack = js.publish(subject, stale.encode_to_vec().into()).await?.await?;
    eventually(Duration::from_secs(15), || async {
        match entry(&store, &key_b).await? {
            Some((Some(s), _)) if s.stream_sequence >= ack.sequence => Ok(s),
            other => bail!("B has not seen the late failure: {other:?}"),
        }
    })
    .await
    .map(|s| assert_eq!(s.state, ConnectionState::Healthy as i32, "{s:?}"))?;

    // Redelivery: the gateway's durable is lost (deleted); it is recreated and replays the whole
    // stream. No key goes back, none is rewritten, the disconnected one stays deleted.
    let kept = snapshot(&store).await?;
    let revisions: BTreeMap<String, u64> = {
        let mut r = BTreeMap::new();
        for k in kept.keys() {
            r.insert(k.clone(), entry(&store, k).await?.context("entry")?.1);
        }
        r
    };
    let durable = "auth-gateway-account_state";
    events.delete_consumer(durable).await?;
    let last = events.get_info().await?.state.last_sequence;
    eventually(Duration::from_secs(90), || async {
        let info = events.consumer_info(durable).await?;
        if info.ack_floor.stream_sequence >= last && info.num_ack_pending == 0 {
            Ok(())
        } else {
            bail!("replaying: ack floor {} of {last}", info.ack_floor.stream_sequence)
        }
    })
    .await?;
    for (k, state) in &kept {
        let (now, rev) = entry(&store, k).await?.context("entry")?;
        let now = now.context("still there")?;
        if now.stream_sequence == state.stream_sequence {
            assert_eq!((rev, &now), (revisions[k], state), "{k} was rewritten by the replay");
        } else {
            assert!(now.stream_sequence > state.stream_sequence, "{k} went back: {now:?}");
        }
    }
    assert!(store.get(key_c.as_str()).await?.is_none(), "the replay resurrected C");
    assert_eq!(kept.len(), 2);

    // A worked example of the CLI: one workspace's states, then all of them as JSON.
    let one = lifelinectl(&bin, &system, &["accounts", "state", "--workspace", &ws_b.to_string()])
        .await?;
    println!("$ lifelinectl accounts state --workspace {ws_b}\n{one}");
    assert!(one.contains(&b) && one.contains("healthy") && !one.contains(&a), "{one}");
    let all_json: Value =
        serde_json::from_str(&lifelinectl(&bin, &system, &["accounts", "state", "--json"]).await?)?;
    let max_now = kept.values().map(|s| s.stream_sequence).max().unwrap_or(0);
    assert!(all_json["follow_from_sequence"].as_u64() >= Some(max_now + 1), "{all_json}");
    assert_eq!(all_json["accounts"].as_array().map(Vec::len), Some(2), "{all_json}");

    // `lifelinectl consumers` shows the external subscriber behind, with its pending count.
    let (table, listed) = eventually(Duration::from_secs(30), || async {
        let table = lifelinectl(&bin, &system, &["consumers"]).await?;
        let listed: Value =
            serde_json::from_str(&lifelinectl(&bin, &system, &["consumers", "--json"]).await?)?;
        let info = events.consumer_info(external).await?;
        let row = listed["consumers"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["name"] == external).cloned())
            .context("the external durable is listed")?;
        // Nothing is published any more: the CLI's count is the server's.
        if row["pending"].as_u64() != Some(info.num_pending) || info.num_pending == 0 {
            bail!("pending {} vs {}", row["pending"], info.num_pending);
        }
        Ok((table, listed))
    })
    .await?;
    println!("$ lifelinectl consumers\n{table}");
    let rows = listed["consumers"].as_array().context("consumers")?;
    let ext = rows.iter().find(|c| c["name"] == external).context("external")?;
    assert_eq!(ext["owner"], "external");
    let stream_len = events.get_info().await?.state.messages;
    assert_eq!(ext["pending"].as_u64(), Some(stream_len), "it read nothing of {stream_len}");
    let own = rows.iter().find(|c| c["name"] == durable).context("the gateway's durable")?;
    assert_eq!((own["owner"].as_str(), own["pending"].as_u64()), (Some("lifeline"), Some(0)));
    let ext_line = table.lines().find(|l| l.starts_with(external)).context("table row")?;
    assert!(
        ext_line.contains("external") && ext_line.contains(&stream_len.to_string()),
        "{ext_line}"
    );

    // The gateway exports the same lag (every 30 s).
    let metric =
        format!("lifeline_events_consumer_pending{{consumer=\"{external}\",external=\"true\"}}");
    let line = eventually(Duration::from_secs(45), || async {
        let text =
            system.http.get(format!("{}/metrics", system.gateway)).send().await?.text().await?;
        match text.lines().find(|l| l.starts_with(&metric)) {
            Some(l) if l.ends_with(&format!(" {stream_len}")) => Ok(l.to_owned()),
            other => bail!("metric: {other:?}"),
        }
    })
    .await?;
    println!("{line}");

    js.delete_key_value(&bucket).await?;
    system.stop().await
}
