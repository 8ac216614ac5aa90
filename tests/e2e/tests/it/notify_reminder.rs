//! The one reminder: an account still broken `LIFELINE_NOTIFY_REMINDER_AFTER` after its
//! notification, with posts waiting at the publisher, gets one reminder and never a second; an
//! account without posts waiting gets none.

use std::time::Duration;

use anyhow::ensure;
use chrono::Utc;
use lifeline_e2e::{eventually, Options, System};
use serde_json::{json, Value};

use crate::{
    connected_account,
    notify::{inject_auth_failed, notify_env, webhook_channel, Behaviour, Receiver},
};

fn broken(hook: &Receiver) -> Vec<Value> {
    let all = hook.accepted();
    all.iter().map(|r| r.json()).filter(|m| m["type"] == "account.needs_reconnect").collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broken_account_with_posts_waiting_gets_one_reminder() -> anyhow::Result<()> {
    let after = Duration::from_secs(3);
    let mut env = notify_env("0s,200ms");
    env.push(("LIFELINE_NOTIFY_REMINDER_AFTER", "3s".to_owned()));
    let mut system = System::start_with(Options { env, ..Options::default() }).await?;
    system.spawn_notifier("notifier-2").await?;
    let (ws, account) = connected_account(&system, "remind_me").await?;
    let hook = Receiver::start(Behaviour::FailFirst(0)).await?;
    webhook_channel(&system, ws, &hook.url).await?;
    let tomorrow = Utc::now() + chrono::Duration::days(1);
    for text in ["first waiting post", "second waiting post"] {
        let body = json!({"account_id": account, "text": text, "scheduled_at": tomorrow});
        let (status, post) = system.post_json(&system.publisher, "/v1/posts", ws, &body).await?;
        ensure!(status == 201, "scheduling: {status} {post}");
    }
    let account_id: uuid::Uuid = account.parse()?;
    inject_auth_failed(&system, ws, account_id).await?;
    // Another broken account of the workspace, with nothing scheduled: no reminder for it.
    let idle = uuid::Uuid::now_v7();
    inject_auth_failed(&system, ws, idle).await?;

    let (first, reminder) = eventually(Duration::from_secs(20), || async {
        let mine: Vec<Value> =
            broken(&hook).into_iter().filter(|m| m["data"]["account_id"] == account).collect();
        ensure!(mine.len() >= 2, "{} messages for the account", mine.len());
        Ok((mine[0].clone(), mine[1].clone()))
    })
    .await?;
    assert_eq!(first["data"]["posts_waiting"], 2, "{first}");
    assert!(
        first["data"]["body"].as_str().is_some_and(|b| b.contains("2 scheduled posts wait")),
        "{first}"
    );
    assert_eq!(reminder["data"]["reminder"], true, "{reminder}");
    assert_eq!(reminder["data"]["posts_waiting"], 2);
    assert_eq!(reminder["data"]["incident_id"], first["data"]["incident_id"]);
    assert_eq!(reminder["data"]["title"], "Reminder: @remind_me on X still needs reconnecting");
    assert!(
        reminder["data"]["reconnect_url"].as_str().is_some_and(|u| u.ends_with(&account)),
        "{reminder}"
    );
    let at = |m: &Value| -> anyhow::Result<chrono::DateTime<Utc>> {
        Ok(m["timestamp"].as_str().unwrap_or_default().parse()?)
    };
    let gap = (at(&reminder)? - at(&first)?).to_std()?;
    assert!(gap >= after, "the reminder came {gap:?} after the first message");

    // Never a second one, from either replica; and none for the account without posts.
    tokio::time::sleep(after * 2).await;
    let all = broken(&hook);
    let mine = all.iter().filter(|m| m["data"]["account_id"] == account).count();
    assert_eq!(mine, 2, "{all:?}");
    let idle_messages: Vec<&Value> =
        all.iter().filter(|m| m["data"]["account_id"] == idle.to_string()).collect();
    assert_eq!(idle_messages.len(), 1, "the first message only: {idle_messages:?}");
    assert_eq!(idle_messages[0]["data"]["posts_waiting"], 0);
    system.stop().await
}
