//! kill -9 a notifier replica in the middle of webhook deliveries (`make test-cluster`,
//! docs/testing.md and docs/notifications.md).
//!
//! Four workspaces each have a webhook channel to one real receiver on loopback that answers
//! 200 after 50–100 ms; 200 accounts (50 per workspace) are revoked at once (the refresher's
//! `AuthFailed`, published on the bus); once a quarter of the messages reached the receiver,
//! `notifier-1` is SIGKILLed and stays down, and the verdicts of 50 accounts are published
//! again (as a redelivery would bring them). Two notifier replicas ran until the kill.
//!
//! The guarantee checked, and no more: every message reaches the receiver, each with one
//! `webhook-id`; a message is sent twice only when a replica POSTed it and died before it
//! recorded the attempt — the delivery's lease then runs out and the survivor sends it again
//! with the same `webhook-id` (and body), which a receiver dedupes by. So an id may arrive twice
//! only if its first arrival came before the kill and the delivery log records one attempt for
//! it; any other repeat (an id three times, a repeat the log explains otherwise, two ids for
//! one account) is a failure.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    time::{Duration, Instant},
};

use anyhow::{ensure, Context as _};
use futures::{StreamExt as _, TryStreamExt as _};
use lifeline_cluster::{
    eventually,
    notify::{publish_auth_failed, SlowReceiver},
    Cluster, Options,
};
use lifeline_kit::ids::WorkspaceId;
use serde_json::Value;

const WORKSPACES: usize = 4;
/// At most 100, the delivery log's page.
const ACCOUNTS_PER_WORKSPACE: usize = 50;
const REPUBLISHED: usize = 50;
const ROOT: &str = "lifeline";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "starts 3 nats-servers, a Postgres and 9 processes; run with `make test-cluster`"]
async fn kill_9_a_notifier_mid_delivery_sends_each_message_once_but_the_one_in_flight(
) -> anyhow::Result<()> {
    let test_start = Instant::now();
    let mut options = Options::from_env();
    // A short attempt timeout keeps the lease of a killed replica's deliveries (timeout + 30 s)
    // within the test's minute.
    for (k, v) in [
        ("LIFELINE_NOTIFY_DELIVERY_TIMEOUT", "2s"),
        ("LIFELINE_NOTIFY_POLL_INTERVAL", "100ms"),
        ("LIFELINE_NOTIFY_RETRY_SCHEDULE", "0s,500ms,1s,2s,5s"),
    ] {
        options.env.push((k.into(), v.into()));
    }
    let mut cluster = Cluster::start(options).await?;
    println!("\n== lifeline-cluster notify kill -9: {} ==", cluster.nats.version);
    println!("scratch directory (logs): {}", cluster.scratch().display());

    let receiver = SlowReceiver::start(50..101).await?;
    let mut workspaces = Vec::new();
    for i in 0..WORKSPACES {
        let ws = WorkspaceId::new();
        let channel = cluster.webhook_channel(ws, &receiver.url, i).await?;
        workspaces.push((ws, channel));
    }
    let accounts: Vec<(WorkspaceId, uuid::Uuid)> = workspaces
        .iter()
        .flat_map(|(ws, _)| (0..ACCOUNTS_PER_WORKSPACE).map(|_| (*ws, uuid::Uuid::now_v7())))
        .collect();
    let total = accounts.len();
    let js = async_nats::jetstream::new(cluster.nats.client().await?);

    let t_revoke = Instant::now();
    futures::stream::iter(&accounts)
        .map(|(ws, a)| publish_auth_failed(&js, ROOT, *ws, *a))
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await?;

    let distinct = |hits: &[lifeline_cluster::notify::Hit]| {
        hits.iter().map(|h| h.webhook_id.clone()).collect::<HashSet<_>>().len()
    };
    let at_kill = eventually(Duration::from_secs(60), "a quarter of the messages out", || async {
        let n = distinct(&receiver.hits());
        ensure!(n >= total / 4, "{n} of {total} out");
        Ok(n)
    })
    .await?;
    cluster.service("notifier-1").context("notifier-1")?.proc.kill();
    let kill_at = Instant::now();
    println!(
        "kill -9 notifier-1 {:.2} s after the revocations, {at_kill} of {total} messages out",
        t_revoke.elapsed().as_secs_f64()
    );
    ensure!(at_kill < total, "every message was out before the kill; nothing was in flight");
    // The same verdicts again, as a redelivery of the bus would bring them.
    for (ws, a) in accounts.iter().take(REPUBLISHED) {
        publish_auth_failed(&js, ROOT, *ws, *a).await?;
    }

    let logs = eventually(Duration::from_secs(90), "every delivery delivered", || async {
        let mut logs: HashMap<String, Value> = HashMap::new();
        let mut delivered = 0;
        for (ws, channel) in &workspaces {
            for d in cluster.delivery_log(*ws, channel).await? {
                delivered += usize::from(d["status"] == "delivered");
                logs.insert(d["id"].as_str().context("delivery id")?.to_owned(), d);
            }
        }
        ensure!(delivered == total, "{delivered} of {total} delivered ({} logged)", logs.len());
        Ok(logs)
    })
    .await?;
    let settled = t_revoke.elapsed();
    // Room for anything more to arrive: the republished verdicts, a retry after a lost record.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let hits = receiver.hits();

    let mut failures = Vec::new();
    let mut by_id: BTreeMap<&str, Vec<&lifeline_cluster::notify::Hit>> = BTreeMap::new();
    for h in &hits {
        by_id.entry(h.webhook_id.as_str()).or_default().push(h);
    }
    let mut ids_of_account: HashMap<String, HashSet<&str>> = HashMap::new();
    let mut in_flight_at_kill = 0;
    for (id, arrivals) in &by_id {
        let first = arrivals[0];
        let account = first.json()["data"]["account_id"].as_str().unwrap_or_default().to_owned();
        ids_of_account.entry(account).or_default().insert(id);
        if arrivals.iter().any(|h| h.body != first.body) {
            failures.push(format!("{id}: different bodies under one webhook-id"));
        }
        let Some(logged) = logs.get(*id) else {
            failures.push(format!("{id}: arrived but is in no delivery log"));
            continue;
        };
        let recorded = logged["attempts"].as_array().map_or(0, Vec::len);
        match arrivals.len() {
            1 if recorded == 1 => {}
            2 if first.at < kill_at && recorded == 1 => in_flight_at_kill += 1,
            n => failures.push(format!(
                "{id}: arrived {n} times (first {} the kill), {recorded} attempts recorded",
                if first.at < kill_at { "before" } else { "after" }
            )),
        }
    }
    for (ws, account) in &accounts {
        let ids = ids_of_account.get(&account.to_string()).map_or(0, HashSet::len);
        if ids != 1 {
            failures.push(format!("account {account} of {ws}: {ids} messages"));
        }
    }
    if ids_of_account.len() != total {
        failures
            .push(format!("{} accounts in the messages, {total} revoked", ids_of_account.len()));
    }
    println!(
        "notify kill -9: {total} messages to 4 webhook channels, {} requests, {} distinct ids; \
         sent again after the kill with the same webhook-id (POSTed, not recorded): \
         {in_flight_at_kill}; failures (other repeats, gaps): {}; republished verdicts: {REPUBLISHED}; all \
         delivered {:.1} s after the revocations",
        hits.len(),
        by_id.len(),
        failures.len(),
        settled.as_secs_f64()
    );
    println!("test time: {:.1} s", test_start.elapsed().as_secs_f64());
    ensure!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
    cluster.succeeded();
    Ok(())
}
