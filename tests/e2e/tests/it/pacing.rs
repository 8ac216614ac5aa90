//! One X account comes back from a revoke with 300 waiting posts, three times what X allows a
//! user in 15 minutes (100). The publisher paces them by X's rate-limit headers: each post goes
//! out once, window by window, none is dead-lettered, X answers (almost) no 429, and the account
//! shows the queue and roughly when it will be out while it drains.

use std::{sync::atomic::Ordering, time::Duration};

use anyhow::{bail, Context as _};
use chrono::{DateTime, Utc};
use futures::{StreamExt as _, TryStreamExt as _};
use lifeline_e2e::{counts, eventually, Options, System};
use lifeline_events::{PostFailed, PostFailureKind};
use serde_json::json;

use crate::connected_account;

const POSTS: usize = 300;
/// X's posts per user per window.
const LIMIT: usize = 100;
/// Platform time runs this much faster: X's 15-minute window is 10 s.
const TIME_SCALE: f64 = 90.0;

fn window() -> Duration {
    Duration::from_secs_f64(15.0 * 60.0 / TIME_SCALE)
}

async fn count_status(db: &sqlx::PgPool, account: &str, status: &str) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM publisher.posts WHERE account_id = $1::uuid AND status = $2",
    )
    .bind(account)
    .bind(status)
    .fetch_one(db)
    .await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_windows_of_waiting_posts_are_paced_by_the_rate_limit_headers() -> anyhow::Result<()>
{
    let options = Options {
        time_scale: TIME_SCALE,
        env: vec![("LIFELINE_PUBLISH_BATCH", "200".into())],
        ..Options::default()
    };
    let system = System::start_with(options).await?;
    let (ws, account) = connected_account(&system, "pacer").await?;
    let db = system.db().await?;

    // The user revokes the app; 300 posts fall due and park on the auth failure.
    system.sim_post("/_sim/x/accounts/pacer/revoke", json!({})).await?;
    let texts: Vec<String> = (0..POSTS).map(|i| format!("paced post {i:03}")).collect();
    futures::stream::iter(texts.iter())
        .map(|t| system.schedule_post(ws, &account, t))
        .buffer_unordered(16)
        .try_collect::<Vec<_>>()
        .await?;
    eventually(Duration::from_secs(60), || async {
        match count_status(&db, &account, "failed_auth").await? {
            n if n == POSTS as i64 => Ok(()),
            n => bail!("{n} of {POSTS} parked"),
        }
    })
    .await?;

    // Reconnect: the backlog is released at once, and paced.
    let reconnected = Utc::now();
    let (status, body) = system.oauth(ws, Some(&account), "pacer").await?;
    assert_eq!((status, &body["result"]), (200, &json!("reconnected")), "{body}");

    // While it drains, the account shows what is queued and roughly when it will be out: 300
    // posts need three windows (a fourth if the first was not used whole), so the last goes out
    // at the start of the third or fourth. The estimate is noted all along the drain.
    let w = chrono::Duration::from_std(window())?;
    let slack = chrono::Duration::seconds(2);
    let estimate = std::sync::Mutex::new(None::<DateTime<Utc>>);
    let most_queued = std::sync::atomic::AtomicI64::new(0);
    let drained = eventually(Duration::from_secs(50), || async {
        let (_, a) = system.get(&system.gateway, &format!("/v1/accounts/{account}"), ws).await?;
        most_queued.fetch_max(a["queued_posts"].as_i64().unwrap_or(0), Ordering::Relaxed);
        if let Some(until) = a["queued_until"].as_str().and_then(|s| s.parse().ok()) {
            let mut e = estimate.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
            *e = Some(e.map_or(until, |e: DateTime<Utc>| e.max(until)));
        }
        let published = count_status(&db, &account, "published").await?;
        if published == POSTS as i64 {
            Ok(Utc::now())
        } else {
            bail!("{published} of {POSTS} published; the account shows {a}")
        }
    })
    .await?;
    println!(
        "pacing: {POSTS} posts out {:.1} s after the reconnect (window {:?})",
        (drained - reconnected).num_milliseconds() as f64 / 1000.0,
        window()
    );
    let most_queued = most_queued.load(Ordering::Relaxed);
    assert!(most_queued >= LIMIT as i64, "the account showed at most {most_queued} queued");
    let queued_until =
        estimate.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.context("queued_until shown")?;
    assert!(
        queued_until > reconnected + w * 2 - slack && queued_until < reconnected + w * 3 + slack,
        "the queue is out two or three windows after the reconnect: {queued_until}"
    );

    // Each post is on X exactly once, and none was dead-lettered.
    let log = system.sim_get("/_sim/posts?platform=x&username=pacer").await?;
    let posts = log["posts"].as_array().cloned().unwrap_or_default();
    let seen = counts(posts.iter().filter_map(|p| p["text"].as_str().map(str::to_owned)));
    assert_eq!(seen.len(), POSTS, "every post is on X");
    assert!(seen.values().all(|n| *n == 1), "none twice: {seen:?}");
    assert!(texts.iter().all(|t| seen.contains_key(t)));
    assert_eq!(count_status(&db, &account, "dead_lettered").await?, 0);
    let stats = system.sim_get("/_sim/stats").await?;
    assert_eq!(stats["x"]["duplicate_posts"], 0, "{stats}");

    // X refused at most one post per window for the limit (none, when our count is right).
    let refused = stats["x"]["rate_limited_posts"].as_u64().context("rate_limited_posts")?;
    println!("pacing: X answered {refused} posts with 429");
    assert!(refused <= 3, "{refused} posts ran into X's limit: {stats}");

    // They went out in windows of at most 100: no 100 of them within less than a window, and the
    // 300 took (nearly) three windows.
    let mut times: Vec<DateTime<Utc>> =
        posts.iter().filter_map(|p| p["created_at"].as_str()?.parse().ok()).collect();
    times.sort();
    assert_eq!(times.len(), POSTS);
    let window_ms = i64::try_from(window().as_millis())?;
    for (i, start) in times.iter().enumerate() {
        let within = times[i..]
            .iter()
            .take_while(|t| (**t - *start).num_milliseconds() < window_ms - 500)
            .count();
        assert!(within <= LIMIT, "{within} posts within one window from {start}");
    }
    let span = (times[POSTS - 1] - times[0]).num_milliseconds();
    assert!(span >= 2 * window_ms - 1_000, "300 posts in {span} ms: three windows were needed");
    // The account's estimate was right: the last post went out when it said.
    let late = (times[POSTS - 1] - queued_until).num_milliseconds();
    assert!((-2_000..3_000).contains(&late), "the last post went out {late} ms after the estimate");

    // The posts held for the limit were told as queued (rate limited, will retry), each for the
    // window it was held for: two windows after the first, one per 100 posts.
    let queued: Vec<PostFailed> = system
        .events_of::<PostFailed>()
        .into_iter()
        .filter(|e| e.kind == PostFailureKind::RateLimited as i32)
        .collect();
    assert!(queued.iter().all(|e| e.will_retry && e.next_attempt_at.is_some()));
    let windows: std::collections::BTreeSet<i64> =
        queued.iter().filter_map(|e| e.next_attempt_at.as_ref().map(|t| t.seconds)).collect();
    assert!(windows.len() >= 2, "held for the windows they need: {windows:?}");

    // Once drained, nothing is shown queued.
    eventually(Duration::from_secs(10), || async {
        let (_, a) = system.get(&system.gateway, &format!("/v1/accounts/{account}"), ws).await?;
        if a["queued_posts"] == 0 && a["queued_until"].is_null() {
            Ok(())
        } else {
            bail!("still shown queued: {a}")
        }
    })
    .await?;
    system.stop().await
}
