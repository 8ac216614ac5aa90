//! A platform outage makes posts late, never lost: the publisher's circuit breaker holds the
//! posts of a platform that answers 503 (a trial call now and then), transient failures are
//! retried on a growing schedule, and only a post kept back for the whole retry window is
//! dead-lettered, with the reason.

use std::time::{Duration, Instant};

use anyhow::bail;
use lifeline_e2e::{eventually, Options, System};
use lifeline_events::{AuthFailed, PostDeadLettered};
use lifeline_kit::ids::WorkspaceId;
use serde_json::json;

use crate::post_reaches;

/// The publisher's retry schedule and breaker, scaled down from hours to seconds.
fn scaled(window: &str) -> Vec<(&'static str, String)> {
    vec![
        ("LIFELINE_PUBLISH_RETRY_SCHEDULE", "500ms,1s,2s,4s".into()),
        ("LIFELINE_PUBLISH_RETRY_WINDOW", window.into()),
        ("LIFELINE_PUBLISH_BREAKER_MIN_CALLS", "3".into()),
        ("LIFELINE_PUBLISH_BREAKER_COOLDOWN", "1s".into()),
    ]
}

/// Publish calls that reached the platform and failed (held posts leave no attempt row).
async fn failed_calls(db: &sqlx::PgPool, platform: &str) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM publisher.attempts a JOIN publisher.posts p ON p.id = a.post_id
         WHERE p.platform = $1 AND a.outcome IN ('transient', 'ambiguous')",
    )
    .bind(platform)
    .fetch_one(db)
    .await?)
}

/// A value from the publisher's `/metrics`. The tests of this binary share one recorder, so a
/// counter may include other tests' counts.
async fn metric(system: &System, line_start: &str) -> anyhow::Result<Option<f64>> {
    let text =
        system.http.get(format!("{}/metrics", system.publisher)).send().await?.text().await?;
    Ok(text
        .lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_outage_longer_than_the_old_budget_holds_posts_and_publishes_each_once_after(
) -> anyhow::Result<()> {
    const OUTAGE: Duration = Duration::from_secs(30);
    let system = System::start_with(Options { env: scaled("5m"), ..Options::default() }).await?;
    let ws = WorkspaceId::new();
    let x = system.connect("x", "ivan", ws).await?;
    let linkedin = system.connect("linkedin", "judy", ws).await?;
    let db = system.db().await?;

    for platform in ["x", "linkedin"] {
        let body = json!({"for_seconds": OUTAGE.as_secs_f64(), "status": 503});
        system.sim_post(&format!("/_sim/{platform}/outage"), body).await?;
    }
    let outage_started = Instant::now();
    let mut posts = Vec::new();
    for (account, user, n) in [(&x, "ivan", 4), (&linkedin, "judy", 2)] {
        for i in 0..n {
            let text = format!("{user} post {i}, due during the outage");
            posts.push((system.schedule_post(ws, account, &text).await?, user, text));
        }
    }

    // The breakers open and hold the posts instead of calling the platform over and over.
    eventually(Duration::from_secs(10), || async {
        match metric(&system, "lifeline_publish_breaker_state{platform=\"x\"}").await? {
            Some(g) if g >= 2.0 => Ok(()),
            g => bail!("x breaker at {g:?}"),
        }
    })
    .await?;
    tokio::time::sleep(OUTAGE.saturating_sub(outage_started.elapsed())).await;
    let calls_x = failed_calls(&db, "x").await?;
    let calls_linkedin = failed_calls(&db, "linkedin").await?;
    let skipped = metric(&system, "lifeline_publish_breaker_skipped_total{platform=\"x\"}").await?;
    // Nothing was dead-lettered or published during the outage (a post may be out on a trial).
    for (post, _, _) in &posts {
        let (_, body) = system.get(&system.publisher, &format!("/v1/posts/{post}"), ws).await?;
        assert!(matches!(body["status"].as_str(), Some("scheduled" | "publishing")), "{body}");
    }
    let outage_ended = Instant::now();

    for (post, _, _) in &posts {
        post_reaches(&system, ws, post, "published").await?;
    }
    let published_after = outage_ended.elapsed();
    println!(
        "outage {:?} on x and linkedin, {} posts: failed publish calls during it x={calls_x} \
         linkedin={calls_linkedin} (the old rule: {} calls and {} dead letters), x calls held \
         back {skipped:?}; all published {:.1}s after it ended",
        OUTAGE,
        posts.len(),
        posts.len() * 6,
        posts.len(),
        published_after.as_secs_f64()
    );
    // Each post's first call, plus a handful of trial calls per platform.
    assert!(calls_x <= 4 + 6, "x got {calls_x} calls during the outage");
    assert!(calls_linkedin <= 2 + 3 + 6, "linkedin got {calls_linkedin} calls during the outage");
    assert!(skipped.unwrap_or_default() >= 1.0, "no x call was held back: {skipped:?}");

    // Every post went out exactly once, and nothing was dead-lettered or broken.
    for (_, user, text) in &posts {
        let platform = if *user == "ivan" { "x" } else { "linkedin" };
        let log = system.sim_post_log_on(platform, user).await?;
        assert_eq!(log.iter().filter(|t| *t == text).count(), 1, "{text}: {log:?}");
    }
    assert!(system.events_of::<PostDeadLettered>().is_empty());
    assert!(system.events_of::<AuthFailed>().is_empty());
    for account in [&x, &linkedin] {
        let (_, a) = system.get(&system.gateway, &format!("/v1/accounts/{account}"), ws).await?;
        assert_eq!(a["status"], "healthy", "{a}");
    }
    let stats = system.sim_get("/_sim/stats").await?;
    assert_eq!(stats["linkedin"]["duplicate_posts"], 0, "{stats}");
    system.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_post_kept_back_for_the_whole_window_is_dead_lettered_with_the_reason(
) -> anyhow::Result<()> {
    let system = System::start_with(Options { env: scaled("4s"), ..Options::default() }).await?;
    let ws = WorkspaceId::new();
    let x = system.connect("x", "mallory", ws).await?;
    system.sim_post("/_sim/x/outage", json!({"for_seconds": 60.0, "status": 503})).await?;
    let post = system.schedule_post(ws, &x, "never out in time").await?;

    let body = post_reaches(&system, ws, &post, "dead_lettered").await?;
    let reason = body["last_error"].as_str().unwrap_or_default().to_owned();
    assert!(
        reason.starts_with("platform unavailable for ") && reason.contains("; gave up after "),
        "{body}"
    );
    let dead: Vec<PostDeadLettered> = eventually(Duration::from_secs(10), || async {
        let d: Vec<PostDeadLettered> = system.events_of();
        if d.is_empty() {
            bail!("no PostDeadLettered yet")
        }
        Ok(d)
    })
    .await?;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].reason, reason);
    let (_, a) = system.get(&system.gateway, &format!("/v1/accounts/{x}"), ws).await?;
    assert_eq!(a["status"], "healthy", "{a}");
    println!("dead-lettered after the 4s window: {reason}");
    system.sim_post("/_sim/x/clear-faults", json!({})).await?;
    system.stop().await
}
