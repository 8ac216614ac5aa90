//! Rotating the vault key while refreshes run: every service learns the new key, then makes it
//! active, then `lifelinectl vault rewrap` moves every row to it while hundreds of X accounts
//! rotate their refresh tokens; the old key is removed, and nothing was lost on the way.

use std::{collections::HashMap, time::Duration};

use anyhow::{bail, Context as _};
use lifeline_e2e::{eventually, Options, System};
use lifeline_events::{AuthFailed, TokenRefreshed};
use lifeline_kit::ids::WorkspaceId;
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::post_reaches;

/// Platform time runs 720× faster: X's 2-hour tokens last 10 s and are refreshed about every
/// 7.5 s, so 300 accounts make about 40 rotating refreshes a second.
const SCALE: f64 = 720.0;
const X_ACCOUNTS: usize = 300;
/// Page tokens never expire: these rows are never rewritten by a refresh.
const FACEBOOK_PAGES: usize = 5;

fn key(id: &str) -> String {
    use base64::Engine as _;
    use rand::RngCore as _;
    let mut key = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut key);
    format!("{id}:{}", base64::engine::general_purpose::STANDARD.encode(key))
}

async fn rows_per_key(db: &PgPool) -> anyhow::Result<HashMap<String, i64>> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT key_id, count(*) FROM vault.credentials GROUP BY key_id")
            .fetch_all(db)
            .await?;
    Ok(rows.into_iter().collect())
}

async fn versions(db: &PgPool) -> anyhow::Result<HashMap<uuid::Uuid, i64>> {
    let rows: Vec<(uuid::Uuid, i64)> =
        sqlx::query_as("SELECT account_id, version FROM vault.credentials").fetch_all(db).await?;
    Ok(rows.into_iter().collect())
}

/// What an operator's `kubectl exec … lifelinectl <args>` prints.
struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs the CLI as a process against the system's database with `vault_keys`.
async fn lifelinectl(
    bin: &std::path::Path,
    system: &System,
    vault_keys: &str,
    args: &[&str],
) -> anyhow::Result<Run> {
    let mut cmd = std::process::Command::new(bin);
    cmd.env_clear()
        .env("DATABASE_URL", &system.database_url)
        .env("LIFELINE_VAULT_KEYS", vault_keys)
        .args(args);
    let out = tokio::task::spawn_blocking(move || cmd.output()).await??;
    Ok(Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rewrap_while_rotating_refreshes_run_loses_nothing() -> anyhow::Result<()> {
    let bin = lifeline_e2e::workspace_binary("lifelinectl").await?;
    let (k1, k2) = (key("k1"), key("k2"));
    let options = Options {
        time_scale: SCALE,
        env: vec![("LIFELINE_VAULT_KEYS", k1.clone()), ("LIFELINE_REFRESH_RATE", "0".into())],
        ..Options::default()
    };
    let mut system = System::start_with(options).await?;
    let ws = WorkspaceId::new();
    let x = system.connect_many("x", "rw", X_ACCOUNTS, ws).await?;
    let pages = system.connect_many("facebook", "rwpage", FACEBOOK_PAGES, ws).await?;
    // One account the user revoked: its row is `broken` and is never refreshed again.
    let broken = system.connect_many("x", "rwrevoked", 1, ws).await?.remove(0);
    system.sim_post("/_sim/x/accounts/rwrevoked0/revoke", json!({})).await?;
    let db = system.db().await?;
    let total = (X_ACCOUNTS + FACEBOOK_PAGES + 1) as i64;

    // Refreshes are running: every X account has been refreshed at least once, and the revoked
    // one is broken.
    eventually(Duration::from_secs(60), || async {
        let refreshed: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM vault.credentials WHERE platform = 'x' AND version > 1",
        )
        .fetch_one(&db)
        .await?;
        let broken: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM gateway.accounts WHERE status = 'needs_reconnect'",
        )
        .fetch_one(&db)
        .await?;
        if refreshed >= X_ACCOUNTS as i64 && broken == 1 {
            Ok(())
        } else {
            bail!("{refreshed} of {X_ACCOUNTS} refreshed, {broken} broken")
        }
    })
    .await?;
    assert_eq!(rows_per_key(&db).await?, HashMap::from([("k1".to_owned(), total)]));

    // Step 1: every service learns k2 while k1 stays active, so no replica ever meets a row
    // under a key it does not have. Step 2: k2 becomes active.
    let both = format!("{k1},{k2}");
    system
        .roll_out(&[
            ("LIFELINE_VAULT_KEYS", both.clone()),
            ("LIFELINE_VAULT_ACTIVE_KEY", "k1".to_owned()),
        ])
        .await?;
    system.roll_out(&[("LIFELINE_VAULT_ACTIVE_KEY", "k2".to_owned())]).await?;

    // Step 3: the re-wrap, paced to last longer than one refresh cycle (31 batches of 10 rows,
    // 250 ms apart), so that every X account is refreshed while it runs.
    let before = rows_per_key(&db).await?;
    let refreshes_before = system.events_of::<TokenRefreshed>().len();
    let started = std::time::Instant::now();
    let run = lifelinectl(
        &bin,
        &system,
        &both,
        &["vault", "rewrap", "--batch", "10", "--pause", "250ms"],
    )
    .await?;
    let took = started.elapsed();
    let refreshes_during = system.events_of::<TokenRefreshed>().len() - refreshes_before;
    eprintln!("rows per key before the re-wrap: {before:?}\n{}{}", run.stdout, run.stderr);
    assert!(run.ok, "rewrap failed: {}{}", run.stdout, run.stderr);
    assert!(!run.stdout.contains(k1.split(':').nth(1).unwrap_or("-")), "no key material");
    assert_eq!(rows_per_key(&db).await?, HashMap::from([("k2".to_owned(), total)]));
    let never_refreshed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM vault.credentials
         WHERE key_id = 'k2' AND (platform = 'facebook' OR account_id = $1::uuid)",
    )
    .bind(&broken)
    .fetch_one(&db)
    .await?;
    assert_eq!(never_refreshed, FACEBOOK_PAGES as i64 + 1, "page tokens and broken rows too");
    eprintln!(
        "re-wrap of {total} rows took {took:.2?} while {refreshes_during} refreshes were written"
    );
    assert!(refreshes_during > 0, "refreshes ran during the re-wrap");

    // Running it again does nothing; the status shows k1 unused.
    let again = lifelinectl(&bin, &system, &both, &["vault", "rewrap"]).await?;
    assert!(again.ok, "{}{}", again.stdout, again.stderr);
    assert!(again.stdout.contains(&format!("0 of {total} rows to re-wrap")), "{}", again.stdout);
    assert!(again.stdout.contains("done: 0 rows re-wrapped"), "{}", again.stdout);
    let status = lifelinectl(&bin, &system, &both, &["vault", "status", "--json"]).await?;
    assert!(status.ok, "{}{}", status.stdout, status.stderr);
    let status: Value = serde_json::from_str(&status.stdout)?;
    assert_eq!(status["active_key"], "k2");
    assert_eq!(
        status["keys"],
        json!([
            {"key_id": "k1", "rows": 0, "oauth_sessions": 0, "configured": true, "active": false},
            {"key_id": "k2", "rows": total, "oauth_sessions": 0, "configured": true, "active": true},
        ])
    );
    // A job given only the old key refuses rather than guessing.
    let refused = lifelinectl(&bin, &system, &k1, &["vault", "rewrap"]).await?;
    assert!(!refused.ok && refused.stderr.contains("k2 (") && refused.stderr.contains("refusing"));

    // Step 4: k1 is removed. Every account refreshes again with k2 alone, and posts go out.
    let after_rewrap = versions(&db).await?;
    system
        .roll_out(&[
            ("LIFELINE_VAULT_KEYS", k2.clone()),
            ("LIFELINE_VAULT_ACTIVE_KEY", String::new()),
        ])
        .await?;
    eventually(Duration::from_secs(60), || async {
        let now = versions(&db).await?;
        let x_ids: Vec<uuid::Uuid> = x.iter().map(|a| a.parse()).collect::<Result<_, _>>()?;
        let behind = x_ids.iter().filter(|a| now.get(a) <= after_rewrap.get(a)).count();
        if behind == 0 {
            Ok(())
        } else {
            bail!("{behind} X accounts not refreshed since the re-wrap")
        }
    })
    .await?;
    let mut posts = Vec::new();
    for account in x.iter().take(3).chain(&pages) {
        posts.push(
            system.schedule_post(ws, account, &format!("after the rotation {account}")).await?,
        );
    }
    for post in &posts {
        post_reaches(&system, ws, post, "published").await?;
    }
    let status = lifelinectl(&bin, &system, &k2, &["vault", "status"]).await?;
    eprintln!("{}", status.stdout);
    assert!(status.ok, "{}{}", status.stdout, status.stderr);

    // Nothing broke on the way: the only failure is the revoked account's, no refresh token was
    // presented twice, and every other account is healthy.
    let stats = system.sim_get("/_sim/stats").await?;
    eprintln!("simulator X stats: {}", stats["x"]);
    assert_eq!(stats["x"]["refresh_token_reuse"], 0, "{stats}");
    // Every refresh the platform answered was stored and announced: none lost its write.
    let answered = eventually(Duration::from_secs(30), || async {
        let stats = system.sim_get("/_sim/stats").await?;
        let answered = stats["x"]["refreshes"].as_u64().context("refreshes")?;
        let stored = system.events_of::<TokenRefreshed>().len() as u64;
        if answered == stored {
            Ok(answered)
        } else {
            bail!("the simulator answered {answered} refreshes, {stored} TokenRefreshed")
        }
    })
    .await?;
    let failed: Vec<String> = system
        .events_of::<AuthFailed>()
        .into_iter()
        .filter_map(|f| f.envelope.map(|e| e.account_id))
        .collect();
    assert!(failed.iter().all(|a| *a == broken), "auth failures: {failed:?}");
    let unhealthy: Vec<(uuid::Uuid, String)> =
        sqlx::query_as("SELECT id, status FROM gateway.accounts WHERE status <> 'healthy'")
            .fetch_all(&db)
            .await?;
    assert_eq!(unhealthy.len(), 1, "{unhealthy:?}");
    assert_eq!(unhealthy[0].0.to_string(), broken);
    let states: Vec<(String, i64)> =
        sqlx::query_as("SELECT state, count(*) FROM refresher.schedule GROUP BY state ORDER BY 1")
            .fetch_all(&db)
            .await?;
    eprintln!("{answered} refreshes answered and stored in all; schedule {states:?}");
    assert!(!states.iter().any(|(s, _)| s == "in_doubt"), "{states:?}");
    db.close().await;
    system.stop().await
}
