//! The reconnect story on a real cluster under failure (`make test-cluster`, docs/testing.md).
//!
//! Many accounts on several platforms are connected through OAuth, revoked on the simulator,
//! and 1,000 posts due now park as `failed_auth`. Then every account is reconnected and, while
//! the retries run, the events stream's NATS leader is SIGKILLed (and restarted 5 s later),
//! a publisher replica is SIGKILLed (and restarted 5 s later), and the throwaway Postgres is
//! restarted once. The simulator's post log, the services' APIs and a durable subscriber of
//! `lifeline.events.v1.>` must then tell the same complete story: every post out exactly once,
//! every account healthy, one notification per incident, one event of each kind per post and
//! per account. The time to recover from each fault is printed.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    time::{Duration, Instant, SystemTime},
};

use anyhow::{bail, ensure, Context as _};
use futures::{StreamExt as _, TryStreamExt as _};
use lifeline_cluster::{
    eventually,
    process::epoch,
    watch::{not_ready_after, ReadyWatch},
    Account, Cluster, Options, Recorded, Recorder,
};
use lifeline_events::{
    AccountReconnected, AuthFailed, AuthFailureSource, PostFailed, PostFailureKind, PostPublished,
    PostRetryRequested, ReconnectReason,
};
use lifeline_kit::ids::WorkspaceId;
use prost::Message as _;
use serde_json::json;

const STREAM: &str = "LIFELINE_EVENTS";
const ROOT: &str = "lifeline";

/// Accounts per platform: only platforms whose connector reconciles after an unknown outcome
/// (LinkedIn and TikTok cannot look up a post, so a publisher killed mid-call may double one
/// there, by design). X counts 100 posts per user per 15 minutes and Instagram 100 per day, so
/// 50 posts per account stay inside every platform's limit. Override with
/// `LIFELINE_CLUSTER_ACCOUNTS=x:10,facebook:4,…`.
const DEFAULT_ACCOUNTS: &str = "x:10,facebook:4,youtube:3,threads:2,instagram:1";

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn account_plan() -> anyhow::Result<Vec<(String, usize)>> {
    let spec =
        std::env::var("LIFELINE_CLUSTER_ACCOUNTS").unwrap_or_else(|_| DEFAULT_ACCOUNTS.into());
    spec.split(',')
        .map(|part| {
            let (p, n) =
                part.trim().split_once(':').context("LIFELINE_CLUSTER_ACCOUNTS: platform:count")?;
            Ok((p.to_owned(), n.parse()?))
        })
        .collect()
}

fn now() -> f64 {
    epoch(SystemTime::now())
}

/// A fault as it happened: when (epoch seconds) and what was still to do.
#[derive(Debug, Default, Clone)]
struct Fault {
    what: String,
    at: f64,
    /// When the fault ended: the process restarted, Postgres accepting again.
    healed_at: Option<f64>,
    /// Posts not yet accepted by the simulator when it struck.
    pending: u64,
    /// Replicas killed on purpose, not counted in readiness: (name, from, to).
    down: Vec<(String, f64, f64)>,
    notes: Vec<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "starts 3 nats-servers, a Postgres and 9 processes; run with `make test-cluster`"]
async fn reconnect_story_survives_nats_node_publisher_and_postgres_failures() -> anyhow::Result<()>
{
    let test_start = Instant::now();
    let options = Options::from_env();
    let mut cluster = Cluster::start(options).await?;
    let started = cluster.started_at;
    println!("\n== lifeline-cluster: {} ==", cluster.nats.version);
    println!("scratch directory (logs): {}", cluster.scratch().display());
    let mut ready: BTreeMap<String, Duration> = BTreeMap::new();
    for (name, d) in &cluster.ready_after {
        ready.insert(name.clone(), *d);
    }
    let slowest = ready.iter().max_by_key(|(_, d)| **d).map(|(n, d)| (n.clone(), *d));
    println!(
        "start: all {} processes ready {:.2} s after they were started together (slowest: {:?})",
        ready.len(),
        slowest.as_ref().map(|s| s.1.as_secs_f64()).unwrap_or(0.0),
        slowest.map(|s| s.0)
    );

    let mut order: Vec<(&String, &Duration)> = ready.iter().collect();
    order.sort_by_key(|(_, d)| **d);
    let line: Vec<String> =
        order.iter().map(|(n, d)| format!("{n} {:.2}", d.as_secs_f64())).collect();
    println!("  ready (s after the common start): {}", line.join(", "));
    for line in cluster.startup_summary() {
        println!("  {line}");
    }

    let client = cluster.nats.client().await?;
    let recorder = Recorder::start(client.clone(), STREAM.into(), ROOT.into()).await?;
    let targets: Vec<(String, String)> =
        cluster.services.iter().map(|s| (s.name.clone(), s.url())).collect();
    let watch = ReadyWatch::start(cluster.http.clone(), targets, Duration::from_millis(200));

    // Accounts, each in its own workspace, connected through OAuth; half the callbacks are
    // answered by the other gateway replica.
    let plan = account_plan()?;
    let total_posts: usize = env_or("LIFELINE_CLUSTER_POSTS", 1000);
    let platforms: Vec<&str> = plan.iter().map(|(p, _)| p.as_str()).collect();
    let mut wanted = Vec::new();
    for (platform, n) in &plan {
        for i in 1..=*n {
            wanted.push((platform.clone(), format!("{platform}_{i:02}")));
        }
    }
    let t = Instant::now();
    let accounts: Vec<Account> = futures::stream::iter(wanted.iter().enumerate())
        .map(|(i, (platform, user))| {
            let cluster = &cluster;
            async move {
                let ws = WorkspaceId::new();
                let (status, body) = cluster.oauth(platform, ws, None, user, i, i + 1).await?;
                ensure!(
                    status == 200 && body["result"] == "connected",
                    "connecting {user} on {platform}: {status} {body}"
                );
                Ok(Account {
                    platform: platform.clone(),
                    username: user.clone(),
                    workspace: ws,
                    id: body["account_id"].as_str().context("account_id")?.to_owned(),
                })
            }
        })
        .buffered(4)
        .try_collect()
        .await?;
    println!(
        "connect: {} accounts on {:?} in {:.2} s",
        accounts.len(),
        platforms,
        t.elapsed().as_secs_f64()
    );

    // The users revoke the app on every platform; every post then fails for auth reasons.
    for a in &accounts {
        cluster
            .sim_post(&format!("/_sim/{}/accounts/{}/revoke", a.platform, a.username), json!({}))
            .await?;
    }
    let t_schedule = Instant::now();
    let jobs: Vec<(usize, String)> = (0..total_posts)
        .map(|n| {
            let a = n % accounts.len();
            (a, format!("cluster post {n:04} by {}", accounts[a].username))
        })
        .collect();
    let posts: Vec<(usize, String, String)> = futures::stream::iter(jobs.into_iter().enumerate())
        .map(|(i, (a, text))| {
            let cluster = &cluster;
            let account = &accounts[a];
            async move {
                let id = cluster.schedule(account, &text, i).await?;
                Ok::<_, anyhow::Error>((a, id, text))
            }
        })
        .buffer_unordered(16)
        .try_collect()
        .await?;
    println!(
        "schedule: {} posts due now in {:.2} s",
        posts.len(),
        t_schedule.elapsed().as_secs_f64()
    );

    let per_account: HashMap<usize, usize> =
        posts.iter().fold(HashMap::new(), |mut m, (a, _, _)| {
            *m.entry(*a).or_insert(0) += 1;
            m
        });
    eventually(Duration::from_secs(120), "every post parked as failed_auth", || async {
        let n = parked(&cluster, &accounts).await?;
        ensure!(n == total_posts, "{n} of {total_posts} parked");
        Ok(())
    })
    .await?;
    println!(
        "park: all {total_posts} posts failed_auth {:.2} s after scheduling began",
        t_schedule.elapsed().as_secs_f64()
    );

    // Each account shows needs_reconnect and its owner got exactly one notification.
    eventually(
        Duration::from_secs(60),
        "every account needs_reconnect with one notification",
        || async {
            for a in &accounts {
                let acct = cluster.account(a).await?;
                ensure!(
                    acct["status"] == "needs_reconnect",
                    "{} is {}",
                    a.username,
                    acct["status"]
                );
                let n = cluster.notifications(a.workspace).await?;
                ensure!(!n.is_empty(), "no notification for {} yet", a.username);
            }
            Ok(())
        },
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    for a in &accounts {
        let n = cluster.notifications(a.workspace).await?;
        ensure!(n.len() == 1, "one notification per incident for {}: {n:?}", a.username);
    }
    println!("incident: every account needs_reconnect, one notification each");

    // The owners reconnect once the services have dealt with the breakage (every durable
    // consumer drained), as people do minutes later. LIFELINE_CLUSTER_RECONNECT_AT_ONCE=1
    // reconnects while the refresher still works through the 1,000 publish failures, which
    // makes it announce a "recovered by refresh" for stale failures (see docs/testing.md).
    if std::env::var_os("LIFELINE_CLUSTER_RECONNECT_AT_ONCE").is_none() {
        let t = Instant::now();
        drained(&client, Duration::from_secs(90)).await?;
        println!(
            "drain: every durable consumer caught up {:.2} s later",
            t.elapsed().as_secs_f64()
        );
    }

    // Platform latency stretches the retries over tens of seconds so that the faults land while
    // they run.
    let latency: u64 = env_or("LIFELINE_CLUSTER_LATENCY_MS", 200);
    for p in &platforms {
        cluster
            .sim_post(&format!("/_sim/{p}/latency"), json!({"ms": latency, "for_seconds": 600}))
            .await?;
    }

    // Reconnect every account (again across gateway replicas).
    let t_reconnect = Instant::now();
    let reconnect_wall = now();
    futures::stream::iter(accounts.iter().enumerate())
        .map(|(i, a)| {
            let cluster = &cluster;
            async move {
                let (status, body) = cluster
                    .oauth(&a.platform, a.workspace, Some(&a.id), &a.username, i + 1, i)
                    .await?;
                ensure!(
                    status == 200 && body["result"] == "reconnected",
                    "reconnecting {}: {status} {body}",
                    a.username
                );
                Ok(())
            }
        })
        .buffer_unordered(5)
        .try_collect::<Vec<()>>()
        .await?;
    println!(
        "reconnect: {} accounts in {:.2} s",
        accounts.len(),
        t_reconnect.elapsed().as_secs_f64()
    );

    // The faults, while the retries run.
    let total = total_posts as u64;
    let mut faults: Vec<Fault> = Vec::new();
    async fn published(cluster: &Cluster, platforms: &[&str]) -> u64 {
        cluster.sim_posts_total(platforms).await.unwrap_or(0)
    }
    async fn wait_for(
        cluster: &Cluster,
        platforms: &[&str],
        at_least: u64,
        within: Duration,
    ) -> u64 {
        let deadline = Instant::now() + within;
        loop {
            let n = published(cluster, platforms).await;
            if n >= at_least || Instant::now() > deadline {
                return n;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let restart_after = Duration::from_secs(env_or("LIFELINE_CLUSTER_RESTART_AFTER_S", 5));

    // 1. SIGKILL the NATS node that leads the events stream; restart it later.
    let done = wait_for(&cluster, &platforms, total / 10, Duration::from_secs(60)).await;
    let leader = stream_leader(&client).await.unwrap_or_else(|| "n1".to_owned());
    let mut f = Fault {
        what: format!("SIGKILL NATS node {leader} (leader of {STREAM})"),
        pending: total - done.min(total),
        ..Default::default()
    };
    {
        let node = cluster.nats.node(&leader).context("leader node")?;
        f.at = now();
        node.proc.kill();
    }
    tokio::time::sleep(restart_after).await;
    {
        let node = cluster.nats.node(&leader).context("leader node")?;
        node.proc.start()?;
        f.healed_at = Some(now());
    }
    let healthz = cluster
        .nats
        .nodes
        .iter()
        .find(|n| n.name == leader)
        .map(|n| n.healthz())
        .unwrap_or_default();
    let restarted = Instant::now();
    let current = eventually(Duration::from_secs(60), "restarted NATS node healthy", || async {
        let r = cluster.http.get(&healthz).send().await?;
        ensure!(r.status().is_success(), "{}", r.status());
        Ok(restarted.elapsed())
    })
    .await;
    match current {
        Ok(d) => f.notes.push(format!(
            "restarted after {:.1} s; JetStream healthz 200 {:.2} s after its restart",
            restart_after.as_secs_f64(),
            d.as_secs_f64()
        )),
        Err(e) => f.notes.push(format!("restarted node not healthy: {e:#}")),
    }
    f.notes.push(format!(
        "new stream leader: {}",
        stream_leader(&client).await.unwrap_or_else(|| "?".into())
    ));
    faults.push(f);

    // 2. SIGKILL a publisher replica; restart it later.
    let done = wait_for(&cluster, &platforms, total * 35 / 100, Duration::from_secs(90)).await;
    let victim = "publisher-1".to_owned();
    let mut f = Fault {
        what: format!("SIGKILL {victim}"),
        pending: total - done.min(total),
        ..Default::default()
    };
    {
        let s = cluster.service(&victim).context("publisher-1")?;
        f.at = now();
        s.proc.kill();
    }
    tokio::time::sleep(restart_after).await;
    let url = {
        let s = cluster.service(&victim).context("publisher-1")?;
        s.proc.start()?;
        s.url()
    };
    let healed = now();
    f.healed_at = Some(healed);
    f.down.push((victim.clone(), f.at, healed));
    let restarted = Instant::now();
    match eventually(Duration::from_secs(60), "restarted publisher ready", || async {
        let r = cluster.http.get(format!("{url}/readyz")).send().await?;
        ensure!(r.status().is_success(), "{}", r.status());
        Ok(restarted.elapsed())
    })
    .await
    {
        Ok(d) => {
            f.down[0].2 = now();
            f.notes.push(format!(
                "restarted after {:.1} s; /readyz 200 {:.2} s after its restart",
                restart_after.as_secs_f64(),
                d.as_secs_f64()
            ))
        }
        Err(e) => {
            f.down[0].2 = f64::MAX;
            f.notes.push(format!("restarted publisher not ready: {e:#}"))
        }
    }
    faults.push(f);

    // 3. Restart Postgres (fast shutdown: every connection is cut).
    let done = wait_for(&cluster, &platforms, total * 60 / 100, Duration::from_secs(90)).await;
    let mut f = Fault {
        what: "restart Postgres (pg_ctl restart -m fast)".into(),
        pending: total - done.min(total),
        ..Default::default()
    };
    f.at = now();
    let took = tokio::task::block_in_place(|| cluster.pg.restart())?;
    f.healed_at = Some(now());
    f.notes.push(format!("down and back up in {:.2} s", took.as_secs_f64()));
    faults.push(f);

    // Every post reaches the platform, and its event the stream.
    let all_out =
        eventually(Duration::from_secs(180), "every post accepted by the simulator", || async {
            let n = published(&cluster, &platforms).await;
            ensure!(n >= total, "{n} of {total} accepted");
            Ok(t_reconnect.elapsed())
        })
        .await?;
    let all_events =
        eventually(Duration::from_secs(90), "every post_published recorded", || async {
            let n = recorder.count("post_published");
            ensure!(n >= total_posts, "{n} of {total_posts} post_published recorded");
            Ok(t_reconnect.elapsed())
        })
        .await?;
    for p in &platforms {
        cluster.sim_post(&format!("/_sim/{p}/clear-faults"), json!({})).await?;
    }
    // Let stragglers (duplicates, late notifications, stale failures) show up before counting.
    tokio::time::sleep(Duration::from_secs(3)).await;

    // ---- The checks ----
    let mut failures: Vec<String> = Vec::new();

    // The simulator's post log: every post exactly once, nothing else from these users.
    let log = cluster.sim_get("/_sim/posts").await?;
    let users: HashSet<&str> = accounts.iter().map(|a| a.username.as_str()).collect();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for p in log["posts"].as_array().cloned().unwrap_or_default() {
        if users.contains(p["username"].as_str().unwrap_or_default()) {
            *seen.entry(p["text"].as_str().unwrap_or_default().to_owned()).or_insert(0) += 1;
        }
    }
    let missing: Vec<&str> = posts
        .iter()
        .filter(|(_, _, t)| !seen.contains_key(t))
        .map(|(_, _, t)| t.as_str())
        .collect();
    let twice: Vec<(&String, &usize)> = seen.iter().filter(|(_, n)| **n > 1).collect();
    let expected_texts: HashSet<&str> = posts.iter().map(|(_, _, t)| t.as_str()).collect();
    let unexpected: Vec<&String> =
        seen.keys().filter(|t| !expected_texts.contains(t.as_str())).collect();
    if !missing.is_empty() {
        failures.push(format!(
            "{} posts never reached the platform, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        ));
    }
    if !twice.is_empty() {
        failures.push(format!(
            "{} posts published more than once: {:?}",
            twice.len(),
            &twice[..twice.len().min(5)]
        ));
    }
    if !unexpected.is_empty() {
        failures.push(format!("unexpected posts: {unexpected:?}"));
    }
    let stats = cluster.sim_get("/_sim/stats").await?;
    for p in &platforms {
        let d = stats[*p]["duplicate_posts"].as_u64().unwrap_or(0);
        if d > 0 {
            failures.push(format!("the simulator counted {d} duplicate posts on {p}"));
        }
    }

    // The publisher: every post published; the gateway: every account healthy; the notifier:
    // still one notification per incident.
    for (i, a) in accounts.iter().enumerate() {
        let published = cluster.posts_with_status(a.workspace, "published").await?;
        let want = per_account.get(&i).copied().unwrap_or(0);
        if published.len() != want {
            let dead = cluster
                .posts_with_status(a.workspace, "dead_lettered")
                .await
                .map(|p| p.len())
                .unwrap_or(0);
            failures.push(format!(
                "{}: {} of {want} posts published ({dead} dead-lettered)",
                a.username,
                published.len()
            ));
        }
        let acct = cluster.account(a).await?;
        if acct["status"] != "healthy" {
            failures.push(format!(
                "{} is {} at the end ({})",
                a.username, acct["status"], acct["cause"]
            ));
        }
        let n = cluster.notifications(a.workspace).await?;
        let broken = n.iter().filter(|n| n["kind"] == "connection_broken").count();
        if n.len() != 1 || broken != 1 {
            failures.push(format!(
                "{}: {} notifications ({broken} connection_broken), want 1",
                a.username,
                n.len()
            ));
        }
    }

    // The subscriber saw the complete story.
    let events = recorder.events();
    let post_ids: HashSet<&str> = posts.iter().map(|(_, id, _)| id.as_str()).collect();
    let account_ids: HashSet<&str> = accounts.iter().map(|a| a.id.as_str()).collect();
    let by_account = |name: &str| -> HashMap<String, usize> {
        let mut m = HashMap::new();
        for e in events.iter().filter(|e| e.name == name) {
            let account = e.subject.rsplit('.').next().unwrap_or_default().to_owned();
            *m.entry(account).or_insert(0) += 1;
        }
        m
    };
    let reasons: BTreeMap<i32, usize> = events
        .iter()
        .filter(|e| e.name == "account_reconnected")
        .filter_map(|e| AccountReconnected::decode(e.payload.as_slice()).ok())
        .fold(BTreeMap::new(), |mut m, r| {
            *m.entry(r.reason).or_insert(0) += 1;
            m
        });
    if reasons.iter().any(|(r, _)| *r != ReconnectReason::UserReauthorized as i32) {
        failures.push(format!(
            "account_reconnected by reason (1 user_reauthorized, 2 recovered_by_refresh): {reasons:?}; \
             no refresh ran, so every recovered_by_refresh is spurious"
        ));
    }
    for name in ["account_connected", "account_reconnected"] {
        let m = by_account(name);
        let wrong: Vec<(&&str, usize)> = account_ids
            .iter()
            .map(|a| (a, m.get(*a).copied().unwrap_or(0)))
            .filter(|(_, n)| *n != 1)
            .collect();
        if !wrong.is_empty() {
            failures.push(format!("{name}: not exactly one per account: {wrong:?}"));
        }
    }
    let per_post =
        |name: &str, decode: &dyn Fn(&[u8]) -> Option<String>| -> HashMap<String, usize> {
            let mut m = HashMap::new();
            for e in events.iter().filter(|e| e.name == name) {
                if let Some(id) = decode(&e.payload) {
                    *m.entry(id).or_insert(0) += 1;
                }
            }
            m
        };
    let published_by_post =
        per_post("post_published", &|b| PostPublished::decode(b).ok().map(|e| e.post_id));
    let retried_by_post = per_post("post_retry_requested", &|b| {
        PostRetryRequested::decode(b).ok().map(|e| e.post_id)
    });
    let auth_failed_by_post = per_post("auth_failed", &|b| {
        AuthFailed::decode(b)
            .ok()
            .filter(|e| e.source == AuthFailureSource::Publish as i32)
            .map(|e| e.post_id)
    });
    let failed_by_post = per_post("post_failed", &|b| {
        PostFailed::decode(b)
            .ok()
            .filter(|e| e.kind == PostFailureKind::Auth as i32)
            .map(|e| e.post_id)
    });
    for (name, m, exactly) in [
        ("post_published", &published_by_post, true),
        ("post_retry_requested", &retried_by_post, true),
        ("auth_failed (source publish)", &auth_failed_by_post, false),
        ("post_failed (kind auth)", &failed_by_post, false),
    ] {
        let none = post_ids.iter().filter(|p| !m.contains_key(**p)).count();
        let many = post_ids.iter().filter(|p| m.get(**p).copied().unwrap_or(0) > 1).count();
        let foreign = m.keys().filter(|p| !post_ids.contains(p.as_str())).count();
        if none > 0 || (exactly && many > 0) || foreign > 0 {
            failures.push(format!("{name}: {none} posts without one, {many} with more than one, {foreign} of unknown posts"));
        }
    }
    let mut by_id: HashMap<&str, usize> = HashMap::new();
    for e in &events {
        if let Some(id) = &e.msg_id {
            *by_id.entry(id.as_str()).or_insert(0) += 1;
        }
    }
    let dup_ids = by_id.values().filter(|n| **n > 1).count();
    if dup_ids > 0 {
        failures.push(format!("{dup_ids} events stored more than once under the same Nats-Msg-Id"));
    }
    let dead = events.iter().filter(|e| e.name == "post_dead_lettered").count();
    if dead > 0 {
        failures.push(format!("{dead} post_dead_lettered events"));
    }

    // ---- The figures ----
    let samples = watch.samples();
    let published_times: Vec<f64> = {
        let mut t: Vec<f64> =
            events.iter().filter(|e| e.name == "post_published").map(|e| e.stored_at).collect();
        t.sort_by(f64::total_cmp);
        t
    };
    let next_published_after = |at: f64| published_times.iter().find(|t| **t > at).map(|t| t - at);
    println!("\nfaults while {} retries ran ({} ms platform latency):", total_posts, latency);
    let mut ends: Vec<f64> = faults.iter().skip(1).map(|f| f.at).collect();
    ends.push(now());
    for (f, until) in faults.iter().zip(ends) {
        let down = f.down.clone();
        let ignore = move |name: &str, at: f64| {
            down.iter().any(|(n, from, to)| n == name && at >= *from && at <= *to)
        };
        let (went, back) = not_ready_after(&samples, f.at, until, &ignore);
        println!("- {} ({} posts still to go)", f.what, f.pending);
        match next_published_after(f.at) {
            Some(d) => println!("    next post_published stored {d:.2} s after the fault"),
            None => println!("    no post_published after the fault"),
        }
        if let Some(h) = f.healed_at {
            if let Some(d) = next_published_after(h) {
                println!(
                    "    next post_published stored {d:.2} s after it was healed (restart done)"
                );
            }
        }
        match (went.is_empty(), back) {
            (true, _) => println!("    every other replica's /readyz stayed 200"),
            (false, Some(d)) => {
                println!("    /readyz not 200 on {went:?}; all 200 again {d:.2} s after the fault")
            }
            (false, None) => println!(
                "    /readyz not 200 on {went:?}; NOT all ready again before the next fault"
            ),
        }
        for n in &f.notes {
            println!("    {n}");
        }
    }
    let gaps: Vec<(f64, f64)> = published_times
        .windows(2)
        .filter(|w| w[0] >= reconnect_wall)
        .map(|w| (w[0], w[1] - w[0]))
        .collect();
    if let Some((at, gap)) = gaps.iter().copied().max_by(|a, b| a.1.total_cmp(&b.1)) {
        println!("longest pause between two post_published: {gap:.2} s (from {:.2} s after the reconnects began)", at - reconnect_wall);
    }
    let late = events
        .iter()
        .filter(|e| e.name == "post_published")
        .filter_map(|e| PostPublished::decode(e.payload.as_slice()).ok())
        .filter(|p| p.attempt > 2)
        .count();
    println!(
        "posts published at a later attempt than the first retry (crash, lost commit): {late}"
    );
    println!(
        "subscriber: {} events ({} kinds), {} redeliveries, {} recoverable errors",
        events.len(),
        kinds(&events).len(),
        recorder.redeliveries(),
        recorder.errors().len()
    );
    println!("events: {:?}", kinds(&events));
    println!(
        "totals: reconnect → every post on the platform {:.1} s; → every post_published recorded {:.1} s; since the processes started {:.1} s; whole test (build check included) {:.1} s",
        all_out.as_secs_f64(),
        all_events.as_secs_f64(),
        started.elapsed().as_secs_f64(),
        test_start.elapsed().as_secs_f64(),
    );
    let errors = cluster.error_lines();
    if !errors.is_empty() {
        println!("ERROR log lines: {} (first: {} {})", errors.len(), errors[0].0, errors[0].1);
    }
    for f in &faults {
        if f.pending == 0 {
            failures.push(format!(
                "'{}' struck after every post was out: raise LIFELINE_CLUSTER_LATENCY_MS",
                f.what
            ));
        }
    }
    if !failures.is_empty() {
        bail!(
            "{} failed checks:\n- {}\n(logs in {})",
            failures.len(),
            failures.join("\n- "),
            cluster.logs().display()
        );
    }
    println!("all checks passed");
    cluster.succeeded();
    drop(watch);
    drop(recorder);
    Ok(())
}

/// Posts parked as `failed_auth`, over every account's workspace.
async fn parked(cluster: &Cluster, accounts: &[Account]) -> anyhow::Result<usize> {
    let counts = futures::future::try_join_all(accounts.iter().map(|a| async move {
        cluster.posts_with_status(a.workspace, "failed_auth").await.map(|p| p.len())
    }))
    .await?;
    Ok(counts.into_iter().sum())
}

fn kinds(events: &[Recorded]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for e in events {
        *m.entry(e.name.clone()).or_insert(0) += 1;
    }
    m
}

/// Waits until every durable consumer on the events stream has nothing pending or unacked.
async fn drained(client: &async_nats::Client, within: Duration) -> anyhow::Result<()> {
    let js = async_nats::jetstream::new(client.clone());
    eventually(within, "every durable consumer drained", || async {
        let stream = js.get_stream(STREAM).await?;
        let infos: Vec<async_nats::jetstream::consumer::Info> =
            stream.consumers().try_collect().await?;
        let busy: Vec<String> = infos
            .iter()
            .filter(|c| c.num_pending > 0 || c.num_ack_pending > 0)
            .map(|c| {
                format!("{} ({} pending, {} unacked)", c.name, c.num_pending, c.num_ack_pending)
            })
            .collect();
        ensure!(busy.is_empty(), "{busy:?}");
        Ok(())
    })
    .await
}

/// The server that leads the events stream's RAFT group.
async fn stream_leader(client: &async_nats::Client) -> Option<String> {
    let js = async_nats::jetstream::new(client.clone());
    for _ in 0..20 {
        if let Ok(mut s) = js.get_stream(STREAM).await {
            if let Ok(info) = s.info().await {
                if let Some(l) = info.cluster.as_ref().and_then(|c| c.leader.clone()) {
                    return Some(l);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    None
}
