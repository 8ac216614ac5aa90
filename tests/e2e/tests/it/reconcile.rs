//! No post is stranded when the `AccountReconnected` that should release it has no effect: here
//! the publisher's reconnect consumer handles the message while every parked post is held by
//! another transaction, so it skips them (`SKIP LOCKED`), acks, and the message is gone — as
//! good as dead-lettered. The reconciler must release the posts within one period.

use std::time::Duration;

use anyhow::{bail, Context as _};
use lifeline_e2e::{eventually, Options, System};
use serde_json::json;

use crate::{connected_account, post_reaches};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parked_posts_of_a_reconnect_the_publisher_missed_are_released_by_the_reconciler(
) -> anyhow::Result<()> {
    let period = Duration::from_secs(2);
    let system = System::start_with(Options {
        env: vec![("LIFELINE_PUBLISH_RECONCILE_INTERVAL", "2s".to_owned())],
        ..Options::default()
    })
    .await?;
    let (ws, account) = connected_account(&system, "stranded").await?;
    system.sim_post("/_sim/x/accounts/stranded/revoke", json!({})).await?;
    let mut parked = Vec::new();
    for i in 0..3 {
        parked.push(system.schedule_post(ws, &account, &format!("stranded post {i}")).await?);
    }
    for post in &parked {
        post_reaches(&system, ws, post, "failed_auth").await?;
    }

    // Hold every parked post while the reconnect is handled.
    let db = system.db().await?;
    let account_id: uuid::Uuid = account.parse()?;
    let mut holder = db.begin().await?;
    let held: Vec<uuid::Uuid> = sqlx::query_scalar(
        "SELECT id FROM publisher.posts WHERE account_id = $1 AND status = 'failed_auth' FOR UPDATE",
    )
    .bind(account_id)
    .fetch_all(&mut *holder)
    .await?;
    assert_eq!(held.len(), 3);

    let (status, body) = system.oauth(ws, Some(&account), "stranded").await?;
    assert_eq!((status, body["result"].as_str()), (200, Some("reconnected")), "{body}");

    // Wait until the publisher's reconnect consumer has acknowledged the message.
    let js = async_nats::jetstream::new(system.nats.clone());
    let stream = format!("{}_EVENTS", system.stream_prefix);
    eventually(Duration::from_secs(20), || async {
        let mut consumer: async_nats::jetstream::consumer::PullConsumer = js
            .get_consumer_from_stream("publisher-account_reconnected", &stream)
            .await
            .context("the publisher's reconnect consumer")?;
        let info = consumer.info().await?;
        if info.delivered.consumer_sequence >= 1
            && info.num_ack_pending == 0
            && info.num_pending == 0
        {
            Ok(())
        } else {
            bail!("reconnect not acknowledged yet: {info:?}")
        }
    })
    .await?;
    holder.commit().await?;
    let released_at = std::time::Instant::now();

    // Nothing else would look at these posts again; the reconciler does.
    for post in &parked {
        post_reaches(&system, ws, post, "published").await?;
    }
    println!(
        "stranded posts published {:?} after the lock was released (reconciler period {period:?})",
        released_at.elapsed()
    );

    let log = system.sim_post_log("stranded").await?;
    for i in 0..3 {
        let text = format!("stranded post {i}");
        assert_eq!(log.iter().filter(|t| **t == text).count(), 1, "{text} once in {log:?}");
    }
    system.stop().await
}

/// A disconnected account's posting budget does not stay behind: the reconciler deletes it within
/// a period or two, and keeps the budget of an account still connected.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_posting_budget_of_a_disconnected_account_is_forgotten() -> anyhow::Result<()> {
    let system = System::start_with(Options {
        env: vec![("LIFELINE_PUBLISH_RECONCILE_INTERVAL", "1s".to_owned())],
        ..Options::default()
    })
    .await?;
    let (ws_gone, gone) = connected_account(&system, "budget_gone").await?;
    let (ws_kept, kept) = connected_account(&system, "budget_kept").await?;
    for (ws, account) in [(ws_gone, &gone), (ws_kept, &kept)] {
        let post = system.schedule_post(ws, account, "a post X counts").await?;
        post_reaches(&system, ws, &post, "published").await?;
    }
    let db = system.db().await?;
    let budgets = || async {
        let rows: Vec<uuid::Uuid> =
            sqlx::query_scalar("SELECT account_id FROM publisher.rate_budgets")
                .fetch_all(&db)
                .await?;
        Ok::<_, anyhow::Error>(rows)
    };
    let (gone_id, kept_id): (uuid::Uuid, uuid::Uuid) = (gone.parse()?, kept.parse()?);
    let before = budgets().await?;
    assert!(
        before.contains(&gone_id) && before.contains(&kept_id),
        "X told both budgets: {before:?}"
    );

    let path = format!("/v1/accounts/{gone}");
    let (status, body) = system.delete(&system.gateway, &path, ws_gone).await?;
    assert_eq!(status, 204, "disconnect: {body}");
    eventually(Duration::from_secs(15), || async {
        let now = budgets().await?;
        if now.contains(&gone_id) {
            bail!("the disconnected account's budget is still there: {now:?}");
        }
        Ok(())
    })
    .await?;
    assert!(budgets().await?.contains(&kept_id), "the connected account's budget is kept");
    system.stop().await
}
