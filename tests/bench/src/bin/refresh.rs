//! `bench-refresh`: how fast the token-refresher works through a backlog, what one idle sweep
//! costs, and how both compare with the machine's raw Postgres update rate.
//!
//! Everything is real: the refresher runs as its own process (release build) against Postgres
//! and NATS, and refreshes through the platform simulator, whose accounts are created through
//! the platforms' OAuth flows by the production connectors. Run it with `make bench-refresh`.
//!
//! 1. **Backlog**: N credentials across the seven platforms, all due at once, with simulated
//!    platform latency. Refreshes per second (all N settled), p50/p99 of one refresh (lease to
//!    commit, from the refresher's histogram), peak RSS of the refresher process.
//! 2. **Idle**: M stored credentials, none due. Time of one sweep (the refresher's histogram,
//!    mean and p99 over the run) and RSS.
//! 3. **Postgres**: pgbench, single-row UPDATE transactions and the TPC-B-like `-N`, with as
//!    many clients as the refresher's pool.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _};
use chrono::Utc;
use clap::Parser;
use lifeline_bench::{
    delete_streams,
    postgres::{fresh_database, pgbench},
    run_tag,
    service::Service,
    sim,
};
use lifeline_kit::{config::Env, ids::AccountId, Platform};
use lifeline_platforms::Connectors;
use lifeline_vault::{Vault, VaultKeys};
use secrecy::SecretString;
use sqlx::postgres::PgPoolOptions;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

#[derive(Parser, Debug)]
#[command(about = "Benchmark the token-refresher: backlog, idle sweep, raw Postgres update rate")]
struct Args {
    /// Credentials due at once in the backlog run.
    #[arg(long, default_value_t = 100_000)]
    due: usize,
    /// Credentials stored (none due) in the idle run.
    #[arg(long, default_value_t = 1_000_000)]
    idle: usize,
    /// Simulated platform latency, milliseconds.
    #[arg(long, default_value_t = 50)]
    latency_ms: u64,
    /// Seconds the idle refresher runs (sweeping every 100 ms) before it is measured.
    #[arg(long, default_value_t = 20)]
    idle_seconds: u64,
    /// Postgres server (no database).
    #[arg(
        long,
        env = "LIFELINE_TEST_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432"
    )]
    postgres: String,
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
    nats: String,
    /// Refresher database pool size; pgbench uses as many clients.
    #[arg(long, default_value_t = 10)]
    pool: u32,
    /// Per-platform concurrency of the refresher (64 was fastest on 2 cores: 32 leaves CPU
    /// idle, 128 thrashes).
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Skip a phase: backlog, idle or pgbench.
    #[arg(long)]
    skip: Vec<String>,
}

const DB: &str = "lifeline_bench";

/// The simulators: Instagram and Threads refresh only tokens at least 24 hours old, so they live
/// on a simulator whose clock runs 3,600× faster (a day in 24 s); the rest run in real time, so
/// no token comes due a second time during the run.
struct Sims {
    realtime: String,
    fast: String,
    shutdown: CancellationToken,
}

/// The environment the refresher (and the bench's own connectors) run with.
fn environment(sims: &Sims, args: &Args, vault_keys: &str, tag: &str) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = vec![
        ("NATS_URL".into(), args.nats.clone()),
        ("DATABASE_URL".into(), format!("{}/{DB}", args.postgres)),
        ("LIFELINE_SUBJECT_ROOT".into(), format!("bench_{tag}")),
        ("LIFELINE_STREAM_PREFIX".into(), format!("BENCH_{tag}")),
        ("LIFELINE_VAULT_KEYS".into(), vault_keys.into()),
        ("LIFELINE_SIM_URL".into(), sims.realtime.clone()),
        ("LIFELINE_INSTAGRAM_API_URL".into(), format!("{}/instagram/api", sims.fast)),
        ("LIFELINE_INSTAGRAM_GRAPH_URL".into(), format!("{}/instagram/graph", sims.fast)),
        ("LIFELINE_THREADS_WWW_URL".into(), format!("{}/threads/www", sims.fast)),
        ("LIFELINE_THREADS_GRAPH_URL".into(), format!("{}/threads/graph", sims.fast)),
        ("LIFELINE_DB_MAX_CONNECTIONS".into(), args.pool.to_string()),
        ("LIFELINE_REFRESH_SWEEP_INTERVAL".into(), "100ms".into()),
        ("LIFELINE_REFRESH_BATCH".into(), "500".into()),
        ("LIFELINE_REFRESH_CONCURRENCY".into(), args.concurrency.to_string()),
        ("LIFELINE_REFRESH_RATE".into(), "0".into()),
        ("LIFELINE_REFRESH_WRITERS".into(), "4".into()),
        ("RUST_LOG".into(), "warn".into()),
    ];
    env.extend(sim::client_env());
    env
}

/// A histogram from Prometheus text: (cumulative buckets, sum, count).
struct Histogram {
    buckets: Vec<(f64, f64)>,
    sum: f64,
    count: f64,
}

impl Histogram {
    fn parse(text: &str, name: &str) -> Option<Histogram> {
        let mut buckets = Vec::new();
        let (mut sum, mut count) = (None, None);
        for line in text.lines() {
            let Some((key, value)) = line.rsplit_once(' ') else { continue };
            let Ok(value) = value.parse::<f64>() else { continue };
            if let Some(rest) = key.strip_prefix(&format!("{name}_bucket{{le=\"")) {
                let le = rest.trim_end_matches("\"}");
                let le = if le == "+Inf" { f64::INFINITY } else { le.parse().ok()? };
                buckets.push((le, value));
            } else if key == format!("{name}_sum") {
                sum = Some(value);
            } else if key == format!("{name}_count") {
                count = Some(value);
            }
        }
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        Some(Histogram { buckets, sum: sum?, count: count? })
    }

    /// The q-quantile, interpolated linearly inside its bucket.
    fn quantile(&self, q: f64) -> f64 {
        let target = q * self.count;
        let mut prev = (0.0, 0.0);
        for &(le, cumulative) in &self.buckets {
            if cumulative >= target {
                if le.is_infinite() {
                    return prev.0;
                }
                let width = cumulative - prev.1;
                let frac = if width > 0.0 { (target - prev.1) / width } else { 1.0 };
                return prev.0 + (le - prev.0) * frac;
            }
            prev = (le, cumulative);
        }
        f64::NAN
    }

    fn mean(&self) -> f64 {
        self.sum / self.count
    }
}

struct Backlog {
    due: usize,
    seconds: f64,
    ok: i64,
    failed: i64,
    renewed: i64,
    probed: i64,
    p50_ms: f64,
    p99_ms: f64,
    peak_rss: f64,
    seed_seconds: f64,
}

async fn backlog(args: &Args, sims: &Sims, http: &reqwest::Client) -> anyhow::Result<Backlog> {
    fresh_database(&args.postgres, DB).await?;
    let (keys, spec) = VaultKeys::generate("bench");
    let tag = run_tag();
    let env = environment(sims, args, &spec, &tag);
    let connectors = Connectors::from_env(&Env::from_pairs(env.iter().cloned()))?;
    let pool =
        PgPoolOptions::new().max_connections(8).connect(&format!("{}/{DB}", args.postgres)).await?;
    Vault::migrate(&pool).await?;
    let vault = Vault::new(pool.clone(), keys);

    // Seed through the OAuth flows; Instagram and Threads first, so that their tokens are a
    // (simulated) day old by the time the backlog starts.
    let started = Instant::now();
    let order = [
        Platform::Instagram,
        Platform::Threads,
        Platform::X,
        Platform::LinkedIn,
        Platform::YouTube,
        Platform::TikTok,
        Platform::Facebook,
    ];
    let workspace = lifeline_kit::ids::WorkspaceId::new();
    let mut meta_done = None;
    for (i, platform) in order.iter().enumerate() {
        let count = args.due / 7 + usize::from(i < args.due % 7);
        let seeded = sim::seed_platform(&connectors, *platform, "b", count).await?;
        sim::store(&pool, &vault, workspace, &seeded).await?;
        eprintln!("  seeded {count} {platform} accounts ({:.0?})", started.elapsed());
        if *platform == Platform::Threads {
            meta_done = Some(Instant::now());
        }
    }
    let seed_seconds = started.elapsed().as_secs_f64();
    if let Some(at) = meta_done {
        // 25 s at 3,600×: the Meta tokens are over 24 hours old.
        let wait = Duration::from_secs(26).saturating_sub(at.elapsed());
        tokio::time::sleep(wait).await;
    }
    for url in [&sims.realtime, &sims.fast] {
        sim::set_latency(http, url, args.latency_ms).await?;
    }

    let mut refresher = Service::start("token-refresher", &env, "bench-backlog")?;
    refresher.ready(http).await?;
    // Everything due at once: one transaction makes the whole backlog visible together.
    let t0 = Utc::now();
    sqlx::query(
        "INSERT INTO refresher.schedule (account_id, workspace_id, platform, state, action, due_at,
             credential_version, access_issued_at, access_expires_at, refresh_expires_at, granted_at)
         SELECT account_id, workspace_id, platform, 'active',
                CASE WHEN access_expires_at IS NULL THEN 'probe' ELSE 'refresh' END,
                $1, version, first_granted_at, access_expires_at, refresh_expires_at, first_granted_at
         FROM vault.credentials",
    )
    .bind(t0)
    .execute(&pool)
    .await?;
    let clock = Instant::now();
    let mut peak = 0.0_f64;
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        peak = peak.max(refresher.rss()?.1);
        let left: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM refresher.schedule WHERE state = 'active' AND due_at <= $1",
        )
        .bind(t0)
        .fetch_one(&pool)
        .await?;
        if left == 0 {
            break;
        }
        if clock.elapsed() > Duration::from_secs(1800) {
            bail!("backlog not done after 30 minutes ({left} left)");
        }
    }
    let seconds = clock.elapsed().as_secs_f64();
    let (ok, failed): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE failures = 0 AND state = 'active'),
                count(*) FILTER (WHERE failures > 0 OR state <> 'active')
         FROM refresher.schedule",
    )
    .fetch_one(&pool)
    .await?;
    let (renewed, probed): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM vault.credentials WHERE version >= 2),
                (SELECT count(*) FROM refresher.schedule WHERE action = 'probe' AND failures = 0 AND due_at > $1)",
    )
    .bind(t0)
    .fetch_one(&pool)
    .await?;
    let metrics = refresher.metrics(http).await?;
    let latency = Histogram::parse(&metrics, "lifeline_refresh_latency_seconds")
        .context("no lifeline_refresh_latency_seconds histogram")?;
    peak = peak.max(refresher.rss()?.1);
    refresher.stop();
    pool.close().await;
    delete_streams(&args.nats, &tag).await;
    Ok(Backlog {
        due: args.due,
        seconds,
        ok,
        failed,
        renewed,
        probed,
        p50_ms: latency.quantile(0.5) * 1000.0,
        p99_ms: latency.quantile(0.99) * 1000.0,
        peak_rss: peak,
        seed_seconds,
    })
}

struct Idle {
    stored: usize,
    sweeps: f64,
    mean_ms: f64,
    p99_ms: f64,
    rss: f64,
    peak_rss: f64,
}

async fn idle(args: &Args, sims: &Sims, http: &reqwest::Client) -> anyhow::Result<Idle> {
    fresh_database(&args.postgres, DB).await?;
    let (keys, spec) = VaultKeys::generate("bench");
    let tag = run_tag();
    let env = environment(sims, args, &spec, &tag);
    let pool =
        PgPoolOptions::new().max_connections(4).connect(&format!("{}/{DB}", args.postgres)).await?;
    Vault::migrate(&pool).await?;
    // The refresher creates its schema; then the credentials go in, none of them due.
    let mut refresher = Service::start("token-refresher", &env, "bench-idle-migrate")?;
    refresher.ready(http).await?;
    refresher.stop();
    let keys = Arc::new(keys);
    let started = Instant::now();
    let workspace = Uuid::now_v7();
    for chunk_start in (0..args.idle).step_by(10_000) {
        let n = (args.idle - chunk_start).min(10_000);
        let keys = keys.clone();
        let rows = tokio::task::spawn_blocking(move || {
            let mut rows = IdleRows::default();
            for i in 0..n {
                let account = Uuid::now_v7();
                let platform = Platform::ALL[(chunk_start + i) % 7];
                let token = SecretString::from(format!("idle-{account}"));
                rows.account.push(account);
                rows.platform.push(platform.as_str().to_owned());
                rows.access.push(keys.seal(AccountId(account), "access", &token));
                let days = 1 + i64::try_from(i % 58).unwrap_or(0);
                rows.due.push(Utc::now() + chrono::Duration::days(days));
                rows.probe.push(platform == Platform::Facebook);
            }
            rows
        })
        .await?;
        sqlx::query(
            "INSERT INTO vault.credentials (account_id, workspace_id, platform, platform_user_id, key_id,
                 access_token, access_expires_at, first_granted_at, version)
             SELECT a, $2, p, 'idle', 'bench', t, CASE WHEN probe THEN NULL ELSE d + interval '1 day' END, now(), 1
             FROM unnest($1::uuid[], $3::text[], $4::bytea[], $5::timestamptz[], $6::bool[]) AS u(a, p, t, d, probe)",
        )
        .bind(&rows.account)
        .bind(workspace)
        .bind(&rows.platform)
        .bind(&rows.access)
        .bind(&rows.due)
        .bind(&rows.probe)
        .execute(&pool)
        .await?;
        sqlx::query(
            "INSERT INTO refresher.schedule (account_id, workspace_id, platform, state, action, due_at, credential_version)
             SELECT a, $2, p, 'active', CASE WHEN probe THEN 'probe' ELSE 'refresh' END, d, 1
             FROM unnest($1::uuid[], $3::text[], $4::timestamptz[], $5::bool[]) AS u(a, p, d, probe)",
        )
        .bind(&rows.account)
        .bind(workspace)
        .bind(&rows.platform)
        .bind(&rows.due)
        .bind(&rows.probe)
        .execute(&pool)
        .await?;
    }
    sqlx::query("VACUUM ANALYZE refresher.schedule").execute(&pool).await?;
    eprintln!("  stored {} credentials ({:.0?})", args.idle, started.elapsed());
    let mut refresher = Service::start("token-refresher", &env, "bench-idle")?;
    refresher.ready(http).await?;
    tokio::time::sleep(Duration::from_secs(args.idle_seconds)).await;
    let metrics = refresher.metrics(http).await?;
    let sweep = Histogram::parse(&metrics, "lifeline_refresh_sweep_seconds")
        .context("no lifeline_refresh_sweep_seconds histogram")?;
    let (rss, peak_rss) = refresher.rss()?;
    refresher.stop();
    pool.close().await;
    delete_streams(&args.nats, &tag).await;
    Ok(Idle {
        stored: args.idle,
        sweeps: sweep.count,
        mean_ms: sweep.mean() * 1000.0,
        p99_ms: sweep.quantile(0.99) * 1000.0,
        rss,
        peak_rss,
    })
}

#[derive(Default)]
struct IdleRows {
    account: Vec<Uuid>,
    platform: Vec<String>,
    access: Vec<Vec<u8>>,
    due: Vec<chrono::DateTime<Utc>>,
    probe: Vec<bool>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let shutdown = CancellationToken::new();
    let sims = Sims {
        realtime: sim::start(1.0, &shutdown).await?,
        fast: sim::start(3600.0, &shutdown).await?,
        shutdown,
    };
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
    let skip = |phase: &str| args.skip.iter().any(|s| s == phase);

    let pg = if skip("pgbench") {
        None
    } else {
        eprintln!("pgbench ({} clients, 10 s each)…", args.pool);
        // pgbench runs for about 25 s: off the async workers.
        let (postgres, pool) = (args.postgres.clone(), args.pool);
        Some(tokio::task::spawn_blocking(move || pgbench(&postgres, pool, true)).await??)
    };
    let backlog = if skip("backlog") {
        None
    } else {
        eprintln!(
            "backlog: {} credentials due, {} ms platform latency…",
            args.due, args.latency_ms
        );
        Some(backlog(&args, &sims, &http).await?)
    };
    let idle = if skip("idle") {
        None
    } else {
        eprintln!("idle: {} stored credentials…", args.idle);
        Some(idle(&args, &sims, &http).await?)
    };
    sims.shutdown.cancel();

    println!();
    println!("token-refresher benchmark ({} cores; refresher: release build, pool {}, {} calls per platform, no rate limit)", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0), args.pool, args.concurrency);
    println!("| measure | value |");
    println!("|---|---|");
    if let Some(lifeline_bench::postgres::Pgbench { single_update: Some(single), tpcb_n: tpcb }) =
        pg
    {
        println!(
            "| Postgres raw single-row UPDATE rate (pgbench, {} clients) | {single:.0} tx/s |",
            args.pool
        );
        println!("| Postgres pgbench -N (TPC-B-like, 3 statements) | {tpcb:.0} tx/s |");
    }
    if let Some(b) = &backlog {
        #[allow(clippy::cast_precision_loss)]
        let rate = b.due as f64 / b.seconds;
        println!(
            "| backlog: credentials due at once (7 platforms, {} ms latency) | {} |",
            args.latency_ms, b.due
        );
        println!("| backlog: time to settle all | {:.1} s |", b.seconds);
        println!("| backlog: refreshes (incl. page-token probes) per second | {rate:.0} /s |");
        println!("| backlog: settled OK / failed | {} / {} |", b.ok, b.failed);
        println!(
            "| backlog: new tokens stored / page tokens probed | {} / {} |",
            b.renewed, b.probed
        );
        println!(
            "| backlog: refresh latency p50 / p99 (lease → commit) | {:.0} ms / {:.0} ms |",
            b.p50_ms, b.p99_ms
        );
        println!("| backlog: refresher peak RSS | {:.1} MiB |", b.peak_rss);
        println!(
            "| backlog: seeding through OAuth flows (not part of the measure) | {:.0} s |",
            b.seed_seconds
        );
        if let Some(single) = pg.and_then(|p| p.single_update) {
            println!(
                "| backlog refreshes/s ÷ raw UPDATE rate (target ≥ 0.5) | {:.2} |",
                rate / single
            );
        }
    }
    if let Some(i) = &idle {
        println!("| idle: stored credentials, none due | {} |", i.stored);
        println!("| idle: one sweep, mean / p99 over {:.0} sweeps (target ≤ 10 ms) | {:.2} ms / {:.2} ms |", i.sweeps, i.mean_ms, i.p99_ms);
        println!(
            "| idle: refresher RSS / peak RSS (target ≤ 64 MiB) | {:.1} MiB / {:.1} MiB |",
            i.rss, i.peak_rss
        );
    }
    Ok(())
}
