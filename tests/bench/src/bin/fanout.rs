//! `bench-fanout`: how fast the publisher releases the posts parked by an auth failure once
//! their accounts are reconnected, compared with the machine's pgbench `-N` rate.
//!
//! Everything is real: the publisher runs as its own process (release build) against Postgres
//! and NATS and publishes through the platform simulator, on accounts connected through the
//! platforms' OAuth flows. Run it with `make bench-fanout`.
//!
//! Each run: N posts parked `failed_auth` (their failed attempt recorded with the account's
//! credential) across 100 X accounts: 100 posts per account at N = 10,000, which is what X (and
//! the simulator, in its `x-rate-limit-*` headers) allows a user per 15 minutes. Then every
//! account is reconnected at once (its credential version bumped, one `AccountReconnected`
//! each). Measured: from the first `AccountReconnected`
//! stored in JetStream to the last `PostPublished`, heard on the bus.

use std::{
    collections::HashSet,
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _};
use clap::Parser;
use lifeline_bench::{
    delete_streams,
    postgres::{fresh_database, pgbench},
    run_tag,
    service::Service,
    sim,
};
use lifeline_kit::{
    bus::Bus,
    config::{CommonConfig, Env},
    events::{
        self, AccountReconnected, Envelope, Event as _, PostPublished, ReconnectReason, Subjects,
    },
    ids::WorkspaceId,
    Platform,
};
use lifeline_platforms::Connectors;
use lifeline_vault::{Vault, VaultKeys};
use prost::Message as _;
use sqlx::{postgres::PgPoolOptions, PgPool};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

#[derive(Parser, Debug)]
#[command(about = "Benchmark the publisher's reconnect fan-out against pgbench -N")]
struct Args {
    /// Parked posts per run (each is run at every latency).
    #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
    posts: Vec<usize>,
    /// Simulated platform latencies, milliseconds.
    #[arg(long, value_delimiter = ',', default_value = "0,50")]
    latency_ms: Vec<u64>,
    /// X accounts the posts are spread over.
    #[arg(long, default_value_t = 100)]
    accounts: usize,
    /// Publisher database pool size; pgbench uses as many clients.
    #[arg(long, default_value_t = 10)]
    pool: u32,
    /// Platform calls in flight at once in the publisher (`LIFELINE_PUBLISH_CONCURRENCY`).
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
    /// Postgres server (no database).
    #[arg(
        long,
        env = "LIFELINE_TEST_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432"
    )]
    postgres: String,
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
    nats: String,
}

const DB: &str = "lifeline_bench_fanout";

fn environment(args: &Args, sim_url: &str, vault_keys: &str, tag: &str) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = vec![
        ("NATS_URL".into(), args.nats.clone()),
        ("DATABASE_URL".into(), format!("{}/{DB}", args.postgres)),
        ("LIFELINE_SUBJECT_ROOT".into(), format!("bench_{tag}")),
        ("LIFELINE_STREAM_PREFIX".into(), format!("BENCH_{tag}")),
        ("LIFELINE_VAULT_KEYS".into(), vault_keys.into()),
        ("LIFELINE_JWT_SECRET".into(), format!("bench-{}", Uuid::new_v4().simple())),
        ("LIFELINE_SIM_URL".into(), sim_url.into()),
        ("LIFELINE_DB_MAX_CONNECTIONS".into(), args.pool.to_string()),
        ("LIFELINE_PUBLISH_CONCURRENCY".into(), args.concurrency.to_string()),
        ("LIFELINE_PUBLISH_SWEEP_INTERVAL".into(), "100ms".into()),
        // The reconnect path is measured, not the reconciler's second look.
        ("LIFELINE_PUBLISH_RECONCILE_INTERVAL".into(), "1h".into()),
        ("RUST_LOG".into(), "warn".into()),
    ];
    env.extend(sim::client_env());
    env
}

struct Run {
    posts: usize,
    latency_ms: u64,
    seconds: f64,
}

/// One measured fan-out on a fresh database and a fresh publisher.
async fn run(
    args: &Args,
    sim_url: &str,
    http: &reqwest::Client,
    posts: usize,
    latency_ms: u64,
) -> anyhow::Result<Run> {
    fresh_database(&args.postgres, DB).await?;
    let (keys, spec) = VaultKeys::generate("bench");
    let tag = run_tag();
    let env = environment(args, sim_url, &spec, &tag);
    let mut publisher = Service::start("publisher", &env, "bench-fanout")?;
    publisher.ready(http).await?;
    let pool =
        PgPoolOptions::new().max_connections(4).connect(&format!("{}/{DB}", args.postgres)).await?;
    let vault = Vault::new(pool.clone(), keys);
    let connectors = Connectors::from_env(&Env::from_pairs(env.iter().cloned()))?;
    let workspace = WorkspaceId::new();
    let seeded =
        sim::seed_platform(&connectors, Platform::X, &format!("f{tag}"), args.accounts).await?;
    sim::store(&pool, &vault, workspace, &seeded).await?;
    let accounts: Vec<_> = seeded.into_iter().map(|s| (s.account, s.platform)).collect();
    park_posts(&pool, workspace, &accounts, posts, &tag).await?;
    sim::set_latency(http, sim_url, latency_ms).await?;

    let common = CommonConfig::from_env(&Env::from_pairs(env.iter().cloned()), "bench", 0)?;
    let bus = Bus::connect(&common).await?;
    let subjects = Subjects::new(common.subject_root.clone());
    let mut published = bus
        .client()
        .subscribe(subjects.event_filter(PostPublished::NAME))
        .await
        .context("subscribing to post_published")?;
    bus.client().flush().await?;

    // The gateway's reconnect: a new credential version, then the event.
    sqlx::query("UPDATE vault.credentials SET version = version + 1").execute(&pool).await?;
    let started = Instant::now();
    for (account, platform) in &accounts {
        let about = events::Subject {
            workspace_id: workspace.0,
            account_id: account.0,
            platform: *platform,
        };
        let event = AccountReconnected {
            envelope: Some(Envelope::build(about, None)),
            platform_user_id: String::new(),
            scopes: Vec::new(),
            credential_version: 2,
            reason: ReconnectReason::UserReauthorized as i32,
        };
        bus.publish(&event).await?;
    }
    let mut seen = HashSet::with_capacity(posts);
    let deadline = Duration::from_secs(600 + posts as u64 / 10);
    while seen.len() < posts {
        let next =
            tokio::time::timeout(Duration::from_secs(60), futures::StreamExt::next(&mut published))
                .await;
        let Ok(Some(msg)) = next else {
            bail!("no post_published for 60 s: {} of {posts} heard", seen.len());
        };
        let event = PostPublished::decode(msg.payload.as_ref())?;
        seen.insert(event.post_id);
        if started.elapsed() > deadline {
            bail!("{} of {posts} published after {deadline:?}", seen.len());
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    check_every_post_once(&pool, posts).await?;
    publisher.stop();
    pool.close().await;
    delete_streams(&args.nats, &tag).await;
    Ok(Run { posts, latency_ms, seconds })
}

/// Inserts `count` posts parked on an auth failure, spread round-robin over `accounts`, each
/// with the failed attempt that parked it (made with credential version 1).
async fn park_posts(
    pool: &PgPool,
    workspace: WorkspaceId,
    accounts: &[(lifeline_kit::ids::AccountId, Platform)],
    count: usize,
    tag: &str,
) -> anyhow::Result<()> {
    for chunk_start in (0..count).step_by(5_000) {
        let n = (count - chunk_start).min(5_000);
        let (mut ids, mut account_ids, mut platforms, mut bodies) =
            (vec![], vec![], vec![], vec![]);
        for i in chunk_start..chunk_start + n {
            let (account, platform) = accounts[i % accounts.len()];
            ids.push(Uuid::now_v7());
            account_ids.push(account.0);
            platforms.push(platform.as_str().to_owned());
            bodies.push(format!("bench {tag} post {i}"));
        }
        let mut tx = pool.begin().await?;
        sqlx::query(
            "INSERT INTO publisher.posts (id, workspace_id, account_id, platform, body, scheduled_at,
                 status, next_attempt_at, attempts, last_failure_kind, last_error)
             SELECT id, $2, a, p, b, now() - interval '1 hour', 'failed_auth', now() - interval '1 hour',
                    1, 'auth', 'token revoked'
             FROM unnest($1::uuid[], $3::uuid[], $4::text[], $5::text[]) AS u(id, a, p, b)",
        )
        .bind(&ids)
        .bind(workspace.0)
        .bind(&account_ids)
        .bind(&platforms)
        .bind(&bodies)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO publisher.attempts (post_id, attempt, started_at, finished_at, outcome, credential_version)
             SELECT id, 1, now() - interval '1 hour', now() - interval '1 hour', 'auth', 1
             FROM unnest($1::uuid[]) AS u(id)",
        )
        .bind(&ids)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
    }
    Ok(())
}

/// Every post published, none dead-lettered or tried twice.
async fn check_every_post_once(pool: &PgPool, posts: usize) -> anyhow::Result<()> {
    let (published, dead, extra): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE status = 'published'),
                count(*) FILTER (WHERE status = 'dead_lettered'),
                count(*) FILTER (WHERE attempts > 2)
         FROM publisher.posts",
    )
    .fetch_one(pool)
    .await?;
    if usize::try_from(published)? != posts || dead > 0 || extra > 0 {
        bail!(
            "{published} of {posts} published, {dead} dead-lettered, {extra} tried more than once"
        );
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let shutdown = CancellationToken::new();
    let sim_url = sim::start(1.0, &shutdown).await?;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
    eprintln!("pgbench -N ({} clients, 10 s)…", args.pool);
    let (postgres, clients) = (args.postgres.clone(), args.pool);
    let pg = tokio::task::spawn_blocking(move || pgbench(&postgres, clients, false)).await??;
    eprintln!("pgbench -N: {:.0} tx/s", pg.tpcb_n);
    for &latency in &args.latency_ms {
        for &posts in &args.posts {
            let r = run(&args, &sim_url, &http, posts, latency)
                .await
                .with_context(|| format!("fan-out of {posts} posts at {latency} ms"))?;
            #[allow(clippy::cast_precision_loss)]
            let rate = r.posts as f64 / r.seconds;
            println!(
                "fanout N={} latency={}ms: {:.2} s, {rate:.0} posts/s, {:.2} of pgbench -N",
                r.posts,
                r.latency_ms,
                r.seconds,
                rate / pg.tpcb_n
            );
        }
    }
    shutdown.cancel();
    Ok(())
}
