//! `bench-notify`: a platform-wide revocation as the notifier sees it. N `AuthFailed` verdicts
//! (5,000 by default) across W workspaces (50), each workspace with one webhook channel; one
//! workspace's webhook hangs (never answers). Prints the time until every healthy workspace got
//! all its messages, deliveries per second, event-to-delivery latency, and what the hanging
//! endpoint held.
//!
//! Everything is real: the notifier (in this process, as the e2e harness runs it) against
//! Postgres (a fresh database) and NATS JetStream (a unique stream prefix), verdicts published
//! to JetStream as the refresher publishes them, webhooks over HTTP to a receiver in this
//! process. Run it with `make bench-notify` (`BENCH_ARGS="--accounts 1000"` for a shorter run).

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _};
use axum::{extract::Path, http::StatusCode, routing::post, Router};
use clap::Parser;
use lifeline_kit::{
    config::Env,
    events::{AuthFailed, AuthFailureCause, AuthFailureSource, Envelope, Subject},
    ids::WorkspaceId,
    Platform,
};
use prost::Message as _;
use serde_json::json;
use sqlx::postgres::PgPoolOptions;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

#[derive(Parser, Debug)]
#[command(about = "Benchmark the notifier: a mass revocation delivered to webhooks, one hanging")]
struct Args {
    /// AuthFailed verdicts (one account each), spread evenly over the workspaces.
    #[arg(long, default_value_t = 5_000)]
    accounts: usize,
    #[arg(long, default_value_t = 50)]
    workspaces: usize,
    /// Attempts in flight per notifier replica (LIFELINE_NOTIFY_WORKERS).
    #[arg(long, default_value_t = 64)]
    workers: u32,
    /// The notifier's database pool (LIFELINE_DB_MAX_CONNECTIONS).
    #[arg(long, default_value_t = 10)]
    db_connections: u32,
    /// A webhook's timeout (LIFELINE_NOTIFY_DELIVERY_TIMEOUT): how long the hanging endpoint
    /// holds an attempt.
    #[arg(long, default_value = "10s")]
    timeout: String,
    #[arg(
        long,
        env = "LIFELINE_TEST_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432"
    )]
    postgres: String,
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
    nats: String,
}

/// What the receiver saw: per workspace, the arrival times of accepted webhooks (by
/// webhook-id, so a duplicate would show), and how many requests reached the hanging path.
#[derive(Default)]
struct Seen {
    accepted: HashMap<String, HashMap<String, Instant>>,
    hanging: usize,
}

async fn receiver(seen: Arc<Mutex<Seen>>) -> anyhow::Result<String> {
    let ok = {
        let seen = seen.clone();
        move |Path(ws): Path<String>, headers: axum::http::HeaderMap| {
            let seen = seen.clone();
            async move {
                let id = headers
                    .get("webhook-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                if let Ok(mut s) = seen.lock() {
                    s.accepted.entry(ws).or_default().entry(id).or_insert_with(Instant::now);
                }
                StatusCode::NO_CONTENT
            }
        }
    };
    let hang = move || {
        let seen = seen.clone();
        async move {
            if let Ok(mut s) = seen.lock() {
                s.hanging += 1;
            }
            tokio::time::sleep(Duration::from_secs(3600)).await;
            StatusCode::NO_CONTENT
        }
    };
    let app = Router::new().route("/ok/{ws}", post(ok)).route("/hang", post(hang));
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(base)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let id = Uuid::new_v4().simple().to_string();
    let database = format!("lifeline_bench_notify_{}", &id[..12]);
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect(&format!("{}/postgres", args.postgres))
        .await?;
    sqlx::query(&format!("CREATE DATABASE \"{database}\"")).execute(&admin).await?;
    let result = run(&args, &id, &database).await;
    sqlx::query(&format!("DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)"))
        .execute(&admin)
        .await?;
    let nats = async_nats::connect(&args.nats).await?;
    let js = async_nats::jetstream::new(nats);
    for s in ["EVENTS", "DLQ"] {
        let _ = js.delete_stream(format!("BENCHN{}_{s}", &id[..8].to_uppercase())).await;
    }
    result
}

async fn run(args: &Args, id: &str, database: &str) -> anyhow::Result<()> {
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let base = receiver(seen.clone()).await?;
    let (root, prefix) =
        (format!("benchn{}", &id[..8]), format!("BENCHN{}", &id[..8].to_uppercase()));
    let jwt_secret = format!("bench-notify-jwt-secret-{id}");
    let (_, vault_keys) = lifeline_vault::VaultKeys::generate("b1");
    let env = Env::from_pairs([
        ("NATS_URL", args.nats.clone()),
        ("DATABASE_URL", format!("{}/{database}", args.postgres)),
        ("LIFELINE_SUBJECT_ROOT", root.clone()),
        ("LIFELINE_STREAM_PREFIX", prefix),
        ("LIFELINE_JWT_SECRET", jwt_secret.clone()),
        ("LIFELINE_VAULT_KEYS", vault_keys),
        ("LIFELINE_DB_MAX_CONNECTIONS", args.db_connections.to_string()),
        ("LIFELINE_NOTIFY_ALLOW_PRIVATE_TARGETS", "true".to_owned()),
        ("LIFELINE_NOTIFY_WORKERS", args.workers.to_string()),
        ("LIFELINE_NOTIFY_DELIVERY_TIMEOUT", args.timeout.clone()),
        ("LIFELINE_NOTIFY_RETRY_SCHEDULE", "0s,1h".to_owned()),
        ("LIFELINE_NOTIFY_POLL_INTERVAL", "100ms".to_owned()),
        ("LIFELINE_INSTANCE_ID", "bench-notifier".to_owned()),
    ]);
    let config = notifier::Config::from_env(&env)?;
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let api = format!("http://{}", listener.local_addr()?);
    let stop = CancellationToken::new();
    let service = tokio::spawn(notifier::run(listener, config, stop.clone()));
    let http = reqwest::Client::new();
    let ready = Instant::now();
    while !http.get(format!("{api}/readyz")).send().await.is_ok_and(|r| r.status().is_success()) {
        if ready.elapsed() > Duration::from_secs(60) {
            bail!("the notifier did not become ready");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let workspaces = create_channels(args, &http, &api, &base, &jwt_secret).await?;
    let started = Instant::now();
    let publish_time = publish_verdicts(args, &root, &workspaces).await?;
    let per_ws = args.accounts / args.workspaces;
    let healthy_done = wait_for_healthy(&seen, per_ws * (args.workspaces - 1), started).await?;
    report(args, &seen, started, publish_time, healthy_done)?;
    stop.cancel();
    let _ =
        tokio::time::timeout(Duration::from_secs(30), service).await.context("notifier stop")?;
    Ok(())
}

/// One webhook channel per workspace; workspace 0's hangs.
async fn create_channels(
    args: &Args,
    http: &reqwest::Client,
    api: &str,
    base: &str,
    jwt_secret: &str,
) -> anyhow::Result<Vec<WorkspaceId>> {
    let keys = lifeline_kit::auth::JwtKeys::new(&jwt_secret.to_owned().into());
    let workspaces: Vec<WorkspaceId> = (0..args.workspaces).map(|_| WorkspaceId::new()).collect();
    for (i, ws) in workspaces.iter().enumerate() {
        let url = if i == 0 { format!("{base}/hang") } else { format!("{base}/ok/{ws}") };
        let r = http
            .post(format!("{api}/v1/notification-channels"))
            .bearer_auth(keys.mint("bench", *ws, Duration::from_secs(3600)))
            .json(&json!({"kind": "webhook", "url": url}))
            .send()
            .await?;
        if r.status() != 201 {
            bail!("creating a channel: {} {}", r.status(), r.text().await?);
        }
    }
    Ok(workspaces)
}

/// Publishes the verdicts round-robin over the workspaces, as a revocation wave would arrive;
/// returns how long publishing took.
async fn publish_verdicts(
    args: &Args,
    root: &str,
    workspaces: &[WorkspaceId],
) -> anyhow::Result<Duration> {
    let nats = async_nats::connect(&args.nats).await?;
    let js = async_nats::jetstream::new(nats);
    let per_ws = args.accounts / args.workspaces;
    println!(
        "bench-notify: {} AuthFailed across {} workspaces ({per_ws} each), workspace 0's webhook hangs (timeout {}), {} workers",
        per_ws * args.workspaces, args.workspaces, args.timeout, args.workers
    );
    let started = Instant::now();
    let mut published = Vec::new();
    for n in 0..per_ws {
        for ws in workspaces {
            let account = Uuid::now_v7();
            let event = AuthFailed {
                envelope: Some(Envelope::build(
                    Subject { workspace_id: ws.0, account_id: account, platform: Platform::X },
                    None,
                )),
                cause: AuthFailureCause::Revoked as i32,
                source: AuthFailureSource::Probe as i32,
                detail: "bench: revoked platform-wide".into(),
                credential_version: 1,
                post_id: String::new(),
            };
            let subject = format!("{root}.events.v1.auth_failed.x.{account}");
            published.push(js.publish(subject, event.encode_to_vec().into()).await?);
        }
        if n % 20 == 19 {
            for ack in published.drain(..) {
                ack.await?;
            }
        }
    }
    for ack in published.drain(..) {
        ack.await?;
    }
    Ok(started.elapsed())
}

/// Waits until the healthy workspaces got `expected` distinct messages; returns when.
async fn wait_for_healthy(
    seen: &Mutex<Seen>,
    expected: usize,
    started: Instant,
) -> anyhow::Result<Duration> {
    let deadline = Instant::now() + Duration::from_secs(900);
    let healthy_done = loop {
        let delivered: usize = {
            let s = seen.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
            s.accepted.values().map(HashMap::len).sum()
        };
        if delivered >= expected {
            break started.elapsed();
        }
        if Instant::now() > deadline {
            bail!("only {delivered} of {expected} delivered within 15 minutes");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    Ok(healthy_done)
}

fn report(
    args: &Args,
    seen: &Mutex<Seen>,
    started: Instant,
    publish_time: Duration,
    healthy_done: Duration,
) -> anyhow::Result<()> {
    let per_ws = args.accounts / args.workspaces;
    let s = seen.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
    let mut arrivals: Vec<Duration> =
        s.accepted.values().flat_map(|m| m.values().map(|t| t.duration_since(started))).collect();
    arrivals.sort();
    if arrivals.is_empty() {
        bail!("nothing was delivered");
    }
    let pct = |p: f64| arrivals[((arrivals.len() as f64 * p) as usize).min(arrivals.len() - 1)];
    let slowest_ws = s
        .accepted
        .values()
        .map(|m| m.values().max().map(|t| t.duration_since(started)).unwrap_or_default())
        .max()
        .unwrap_or_default();
    let workspaces_complete = s.accepted.values().filter(|m| m.len() == per_ws).count();
    println!(
        "  published {} verdicts to JetStream in {:.2} s",
        per_ws * args.workspaces,
        publish_time.as_secs_f64()
    );
    println!(
        "  delivered {} webhooks to {} of {} healthy workspaces (each all {per_ws}) in {:.2} s: {:.0} deliveries/s",
        arrivals.len(), workspaces_complete, args.workspaces - 1, healthy_done.as_secs_f64(),
        arrivals.len() as f64 / healthy_done.as_secs_f64()
    );
    println!(
        "  arrival after the first publish: p50 {:.2} s, p99 {:.2} s, last workspace complete at {:.2} s",
        pct(0.5).as_secs_f64(), pct(0.99).as_secs_f64(), slowest_ws.as_secs_f64()
    );
    println!(
        "  hanging workspace: {} attempts reached it meanwhile (LIFELINE_NOTIFY_CHANNEL_CONCURRENCY caps those in flight at 4); its other {} deliveries wait",
        s.hanging, per_ws.saturating_sub(s.hanging)
    );
    Ok(())
}
