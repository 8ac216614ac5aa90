//! Exactly once when the platform's answer is lost: the simulator takes the post and drops the
//! connection (`/_sim/{platform}/ambiguous`). On X, which lists the account's recent posts, the
//! next attempt finds the post instead of sending it again. LinkedIn offers no way to check, so
//! the post is not sent again but dead-lettered with a reason that says so; an operator who
//! looked and found nothing replays it, and it goes out once.

use std::time::Duration;

use anyhow::Context as _;
use lifeline_e2e::{eventually, System};
use lifeline_events::{PostDeadLettered, PostFailureKind};
use lifeline_kit::ids::WorkspaceId;
use serde_json::{json, Value};

use crate::post_reaches;

/// The post's attempts as (outcome, detail), in order.
async fn attempts(system: &System, post: &str) -> anyhow::Result<Vec<(String, String)>> {
    let db = system.db().await?;
    Ok(sqlx::query_as(
        "SELECT coalesce(outcome, ''), coalesce(detail, '') FROM publisher.attempts
         WHERE post_id = $1 ORDER BY attempt",
    )
    .bind(post.parse::<uuid::Uuid>()?)
    .fetch_all(&db)
    .await?)
}

/// The simulator's post log entries with `text` for one user of one platform.
async fn logged(
    system: &System,
    platform: &str,
    user: &str,
    text: &str,
) -> anyhow::Result<Vec<Value>> {
    let log = system.sim_get(&format!("/_sim/posts?platform={platform}&username={user}")).await?;
    Ok(log["posts"]
        .as_array()
        .map(|a| a.iter().filter(|p| p["text"] == text).cloned().collect())
        .unwrap_or_default())
}

/// The workspace's open dead letter of `post`.
async fn dead_letter(system: &System, ws: WorkspaceId, post: &str) -> anyhow::Result<Value> {
    let (status, body) = system.get(&system.publisher, "/v1/dead-letters", ws).await?;
    anyhow::ensure!(status == 200, "dead letters: {status} {body}");
    body["dead_letters"]
        .as_array()
        .and_then(|all| all.iter().find(|d| d["post_id"] == post).cloned())
        .with_context(|| format!("no dead letter for {post}: {body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_x_post_whose_answer_was_lost_is_found_on_the_platform_not_sent_again(
) -> anyhow::Result<()> {
    let system = System::start().await?;
    let ws = WorkspaceId::new();
    let account = system.connect("x", "amber", ws).await?;
    system.sim_post("/_sim/x/ambiguous", json!({"count": 1})).await?;
    let text = "taken by X, answer lost";
    let post = system.schedule_post(ws, &account, text).await?;

    let published = post_reaches(&system, ws, &post, "published").await?;
    let stored = logged(&system, "x", "amber", text).await?;
    assert_eq!(stored.len(), 1, "on X exactly once: {stored:?}");
    assert_eq!(published["platform_post_id"], stored[0]["id"], "the post X stored: {published}");
    let tries = attempts(&system, &post).await?;
    assert_eq!(tries.len(), 2, "{tries:?}");
    assert_eq!(tries[0].0, "ambiguous", "{tries:?}");
    assert_eq!(
        tries[1],
        ("published".to_owned(), "found on the platform after an unknown outcome".to_owned())
    );
    let stats = system.sim_get("/_sim/stats").await?;
    assert_eq!(stats["x"]["lost_answers"], 1, "{stats}");
    system.stop().await
}

/// A lost answer, then the window's last call: X allows 100 posts per user per 15 minutes; 98
/// are out, the 99th is taken but its answer lost, and the 100th goes out (X answers that
/// nothing is left) before the 99th is tried again. Looking for a post sends nothing, so the
/// 99th is looked for at once and found; reserving a call first would hold a post that is
/// already out for the rest of the window (what a kill -9 fan-out in `make test-cluster` once
/// ran into).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_x_post_whose_answer_was_lost_is_found_even_when_the_window_is_spent(
) -> anyhow::Result<()> {
    use futures::{StreamExt as _, TryStreamExt as _};
    // Time for the 100th post to go out before the lost one is tried again.
    let options = lifeline_e2e::Options { publish_retry_base: "3s", ..Default::default() };
    let system = System::start_with(options).await?;
    let ws = WorkspaceId::new();
    let account = system.connect("x", "brimful", ws).await?;
    let texts: Vec<String> = (0..98).map(|i| format!("call {i:02} of the window")).collect();
    let first: Vec<String> = futures::stream::iter(&texts)
        .map(|t| system.schedule_post(ws, &account, t))
        .buffer_unordered(16)
        .try_collect()
        .await?;
    for post in &first {
        post_reaches(&system, ws, post, "published").await?;
    }
    system.sim_post("/_sim/x/ambiguous", json!({"count": 1})).await?;
    let text = "the answer to this one is lost";
    let lost = system.schedule_post(ws, &account, text).await?;
    eventually(Duration::from_secs(10), || async {
        let tries = attempts(&system, &lost).await?;
        anyhow::ensure!(tries.first().is_some_and(|t| t.0 == "ambiguous"), "{tries:?}");
        Ok(())
    })
    .await?;
    let last = system.schedule_post(ws, &account, "the window's last call").await?;
    post_reaches(&system, ws, &last, "published").await?;

    let published = post_reaches(&system, ws, &lost, "published").await?;
    let stored = logged(&system, "x", "brimful", text).await?;
    assert_eq!(stored.len(), 1, "on X exactly once: {stored:?}");
    assert_eq!(published["platform_post_id"], stored[0]["id"], "{published}");
    let tries = attempts(&system, &lost).await?;
    assert_eq!(tries.len(), 2, "{tries:?}");
    assert_eq!(tries[1].1, "found on the platform after an unknown outcome", "{tries:?}");
    let queued = system
        .events_of::<lifeline_events::PostFailed>()
        .into_iter()
        .filter(|e| e.post_id == lost && e.kind == PostFailureKind::RateLimited as i32)
        .count();
    assert_eq!(queued, 0, "never queued for the window");
    let stats = system.sim_get("/_sim/stats").await?;
    assert_eq!(stats["x"]["rate_limited_posts"], 0, "{stats}");
    assert_eq!(stats["x"]["duplicate_posts"], 0, "{stats}");
    system.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_linkedin_post_whose_answer_was_lost_is_dead_lettered_not_sent_twice(
) -> anyhow::Result<()> {
    let system = System::start().await?;
    let ws = WorkspaceId::new();
    let account = system.connect("linkedin", "lena", ws).await?;
    system.sim_post("/_sim/linkedin/ambiguous", json!({"count": 1})).await?;
    let text = "taken by LinkedIn, answer lost";
    let post = system.schedule_post(ws, &account, text).await?;

    let dead = post_reaches(&system, ws, &post, "dead_lettered").await?;
    assert_eq!(dead["needs_reconcile"], false, "the operator settles it now: {dead}");
    let letter = dead_letter(&system, ws, &post).await?;
    let reason = letter["reason"].as_str().context("reason")?;
    assert!(
        reason.starts_with("outcome unknown and LinkedIn offers no way to check")
            && reason.contains("check the account and replay or discard"),
        "{reason}"
    );
    assert_eq!(letter["kind"], "ambiguous", "{letter}");
    let event = eventually(Duration::from_secs(10), || async {
        system
            .events_of::<PostDeadLettered>()
            .into_iter()
            .find(|e| e.post_id == post)
            .context("PostDeadLettered not seen yet")
    })
    .await?;
    assert_eq!(event.kind, PostFailureKind::Ambiguous as i32);
    assert_eq!(event.reason, reason);

    // Longer than any retry delay: nothing sends it again.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(logged(&system, "linkedin", "lena", text).await?.len(), 1, "never sent twice");
    let tries = attempts(&system, &post).await?;
    assert_eq!(tries.len(), 1, "one call, then the operator: {tries:?}");
    assert_eq!(tries[0].0, "ambiguous");
    let stats = system.sim_get("/_sim/stats").await?;
    assert_eq!(stats["linkedin"]["duplicate_posts"], 0, "{stats}");
    system.stop().await
}

/// The other half of the operator's choice: LinkedIn hangs until the connectors give up, so
/// nothing was posted, yet the outcome is unknown. The operator looks, finds nothing, replays:
/// the post goes out once, without a check that would only hand it back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_operator_replays_a_linkedin_post_that_did_not_go_out_and_it_goes_out_once(
) -> anyhow::Result<()> {
    let system = System::start_with(lifeline_e2e::Options {
        env: vec![("LIFELINE_PLATFORM_TIMEOUT", "1s".to_owned())],
        ..lifeline_e2e::Options::default()
    })
    .await?;
    let ws = WorkspaceId::new();
    let account = system.connect("linkedin", "lars", ws).await?;
    let body = json!({"for_seconds": 2.5, "status": 503, "hang": true});
    system.sim_post("/_sim/linkedin/outage", body).await?;
    let text = "LinkedIn never answered";
    let post = system.schedule_post(ws, &account, text).await?;

    post_reaches(&system, ws, &post, "dead_lettered").await?;
    let letter = dead_letter(&system, ws, &post).await?;
    assert!(letter["reason"].as_str().is_some_and(|r| r.contains("LinkedIn offers no way")));
    assert!(logged(&system, "linkedin", "lars", text).await?.is_empty(), "not posted");

    // The outage is over and the operator has looked.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let path = format!("/v1/dead-letters/{post}/replay");
    let (status, body) = system.post_json(&system.publisher, &path, ws, &json!({})).await?;
    assert_eq!(status, 202, "{body}");
    let published = post_reaches(&system, ws, &post, "published").await?;
    let stored = logged(&system, "linkedin", "lars", text).await?;
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(published["platform_post_id"], stored[0]["id"]);
    system.stop().await
}
