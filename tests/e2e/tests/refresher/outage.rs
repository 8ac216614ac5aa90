//! Failure of the refresher's surroundings: a platform down for several refresh cycles, and a
//! replica killed with SIGKILL in the middle of a batch.

use std::time::Duration;

use anyhow::bail;
use lifeline_e2e::{eventually, Options, System};
use lifeline_events::{AuthFailed, ExpiringCredential, TokenExpiring};
use lifeline_kit::ids::WorkspaceId;
use serde_json::json;

use crate::{all_refreshed, needing_reconnect, states, HEAVY};

async fn versions(db: &sqlx::PgPool, platform: &str) -> anyhow::Result<Vec<(uuid::Uuid, i64)>> {
    Ok(sqlx::query_as(
        "SELECT account_id, version FROM vault.credentials WHERE platform = $1 ORDER BY account_id",
    )
    .bind(platform)
    .fetch_all(db)
    .await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_outage_over_several_cycles_breaks_nothing_and_everything_refreshes_after(
) -> anyhow::Result<()> {
    let _turn = HEAVY.lock().await;
    // X tokens last 10 s and are refreshed every 7.5 s; the outage lasts 25 s.
    let options = Options {
        time_scale: 720.0,
        env: vec![
            ("LIFELINE_BREAKER_COOLDOWN", "1s".into()),
            ("LIFELINE_BREAKER_MIN_CALLS", "5".into()),
        ],
        ..Options::default()
    };
    let system = System::start_with(options).await?;
    let ws = WorkspaceId::new();
    let accounts = system.connect_many("x", "out", 40, ws).await?;
    let db = system.db().await?;
    all_refreshed(&system, &db, accounts.len(), 1, Duration::from_secs(30)).await?;

    system.sim_post("/_sim/x/outage", json!({"for_seconds": 25.0, "status": 503})).await?;
    let before = versions(&db, "x").await?;
    // The breaker opens instead of hammering the platform.
    eventually(Duration::from_secs(15), || async {
        let metrics =
            system.http.get(format!("{}/metrics", system.refresher)).send().await?.text().await?;
        if metrics
            .lines()
            .any(|l| l.starts_with("lifeline_refresh_breaker_state{platform=\"x\"} 2"))
        {
            Ok(())
        } else {
            bail!("breaker not open")
        }
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(12)).await;
    // Mid-outage: the tokens have lapsed, nobody is told to reconnect.
    assert_eq!(needing_reconnect(&db).await?, 0);

    // After the outage every account refreshes again.
    eventually(Duration::from_secs(40), || async {
        let after = versions(&db, "x").await?;
        let stale = before.iter().zip(&after).filter(|(b, a)| a.1 <= b.1).count();
        if stale == 0 {
            Ok(())
        } else {
            bail!("{stale} accounts not refreshed since the outage; {:?}", states(&db).await?)
        }
    })
    .await?;
    assert!(system.events_of::<AuthFailed>().is_empty());
    assert_eq!(needing_reconnect(&db).await?, 0);
    // The owners heard, before their tokens lapsed, that refreshing kept failing.
    let warned: Vec<TokenExpiring> = system.events_of();
    assert!(!warned.is_empty());
    assert!(warned.iter().all(|w| w.credential == ExpiringCredential::AccessToken as i32
        && w.reason.contains("keeps failing")));
    let stats = system.sim_get("/_sim/stats").await?;
    assert_eq!(stats["x"]["refresh_token_reuse"], 0, "{stats}");
    system.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_killed_mid_batch_drops_no_account_and_reuses_no_token() -> anyhow::Result<()> {
    let _turn = HEAVY.lock().await;
    // Google tokens (non-rotating) last 5 s here, X tokens 10 s. Leases last 4 s.
    let options = Options {
        time_scale: 720.0,
        refreshers: 0,
        env: vec![
            ("LIFELINE_PLATFORM_TIMEOUT", "2s".into()),
            ("LIFELINE_REFRESH_LEASE", "4s".into()),
            ("LIFELINE_REFRESH_CONCURRENCY", "4".into()),
        ],
        ..Options::default()
    };
    let mut system = System::start_with(options).await?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let mut victim = system.refresher_process("victim", port).await?.spawn()?;
    let ws = WorkspaceId::new();
    let youtube = system.connect_many("youtube", "yk", 60, ws).await?;
    let x = system.connect_many("x", "xk", 60, ws).await?;
    let db = system.db().await?;
    // Slow platforms: the victim holds leases with calls on the wire when it dies.
    for p in ["youtube", "x"] {
        system
            .sim_post(&format!("/_sim/{p}/latency"), json!({"ms": 1500, "for_seconds": 60.0}))
            .await?;
    }
    let held = eventually(Duration::from_secs(30), || async {
        let held: Vec<(uuid::Uuid, String)> = sqlx::query_as(
            "SELECT account_id, platform FROM refresher.schedule
             WHERE lease_owner = 'victim' AND lease_until > now()",
        )
        .fetch_all(&db)
        .await?;
        let platforms = held.iter().map(|h| h.1.as_str()).collect::<std::collections::HashSet<_>>();
        if held.len() >= 10 && platforms.len() == 2 {
            Ok(held)
        } else {
            bail!("victim holds {} leases", held.len())
        }
    })
    .await?;
    victim.kill()?; // SIGKILL
    victim.wait()?;
    for p in ["youtube", "x"] {
        system.sim_post(&format!("/_sim/{p}/clear-faults"), json!({})).await?;
    }
    system.spawn_refresher("survivor").await?;

    // Every YouTube account is refreshed by the survivor, including the ones the victim held.
    eventually(Duration::from_secs(40), || async {
        let v = versions(&db, "youtube").await?;
        let pending = v.iter().filter(|(_, version)| *version < 2).count();
        if pending == 0 && v.len() == youtube.len() {
            Ok(())
        } else {
            bail!("{pending} YouTube accounts not refreshed")
        }
    })
    .await?;
    // X refresh tokens rotate: one whose refresh was on the wire when the victim died is never
    // sent again. Each X account is refreshed; or, if the victim was refreshing it, in doubt
    // with its owner warned, or (its token lapsed meanwhile) reported as needing a reconnect.
    let x_held: Vec<uuid::Uuid> = held.iter().filter(|h| h.1 == "x").map(|h| h.0).collect();
    let settled = eventually(Duration::from_secs(40), || async {
        let rows: Vec<(uuid::Uuid, String, i64)> = sqlx::query_as(
            "SELECT s.account_id, s.state, c.version FROM refresher.schedule s
             JOIN vault.credentials c USING (account_id) WHERE s.platform = 'x'",
        )
        .fetch_all(&db)
        .await?;
        let open = rows
            .iter()
            .filter(|(_, state, v)| *v < 2 && state != "in_doubt" && state != "broken")
            .count();
        if open == 0 && rows.len() == x.len() {
            Ok(rows)
        } else {
            bail!("{open} X accounts not settled")
        }
    })
    .await?;
    let unrefreshed: Vec<(uuid::Uuid, String)> =
        settled.iter().filter(|r| r.2 < 2).map(|r| (r.0, r.1.clone())).collect();
    assert!(
        unrefreshed.iter().all(|(a, _)| x_held.contains(a)),
        "only accounts the victim was refreshing can be left unrefreshed: {unrefreshed:?}"
    );
    let taken_over = x_held.iter().filter(|a| !unrefreshed.iter().any(|u| u.0 == **a)).count()
        + held.iter().filter(|h| h.1 == "youtube").count();
    assert!(taken_over > 0, "the survivor took over leases of the victim");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let warned: Vec<TokenExpiring> = system.events_of();
    let failed: Vec<AuthFailed> = system.events_of();
    for (a, state) in &unrefreshed {
        let id = a.to_string();
        let about = |e: Option<&lifeline_events::Envelope>| e.is_some_and(|e| e.account_id == id);
        match state.as_str() {
            "in_doubt" => assert!(warned.iter().any(|w| about(w.envelope.as_ref())), "{a} warned"),
            _ => assert!(
                failed
                    .iter()
                    .any(|f| about(f.envelope.as_ref()) && f.detail.contains("interrupted")),
                "{a} reported"
            ),
        }
    }
    // Nothing else broke.
    assert_eq!(
        usize::try_from(needing_reconnect(&db).await?).unwrap_or(0),
        unrefreshed.iter().filter(|u| u.1 == "broken").count()
    );
    let stats = system.sim_get("/_sim/stats").await?;
    assert_eq!(stats["x"]["refresh_token_reuse"], 0, "{stats}");
    eprintln!("victim held {} leases; X accounts left unrefreshed: {unrefreshed:?}", held.len());
    system.stop().await
}
