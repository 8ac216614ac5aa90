//! The dead-letter digest: the posts dead-lettered within the interval share one message (webhook
//! and Slack) listing each with its reason and how to replay it; posts dead-lettered after it wait
//! for the next digest, an interval later; two notifier replicas send each digest once.

use std::time::Duration;

use anyhow::ensure;
use chrono::{DateTime, Utc};
use lifeline_e2e::{eventually, Options, System};
use lifeline_kit::ids::WorkspaceId;
use serde_json::{json, Value};

use crate::notify::{
    create_channel, inject_dead_lettered, notify_env, webhook_channel, Behaviour, Receiver,
};

fn digests(hook: &Receiver) -> Vec<Value> {
    hook.accepted()
        .iter()
        .map(|r| r.json())
        .filter(|m| m["type"] == "posts.dead_lettered")
        .collect()
}

fn posts_of(digest: &Value) -> Vec<String> {
    let posts = digest["data"]["posts"].as_array().cloned().unwrap_or_default();
    posts.iter().map(|p| p["post_id"].as_str().unwrap_or_default().to_owned()).collect()
}

fn at(digest: &Value) -> anyhow::Result<DateTime<Utc>> {
    Ok(digest["timestamp"].as_str().unwrap_or_default().parse()?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dead_letters_within_the_interval_share_one_digest_and_later_ones_wait_for_the_next(
) -> anyhow::Result<()> {
    let interval = Duration::from_secs(3);
    let mut env = notify_env("0s,200ms");
    env.push(("LIFELINE_NOTIFY_DIGEST_INTERVAL", "3s".to_owned()));
    let mut system = System::start_with(Options { env, ..Options::default() }).await?;
    system.spawn_notifier("notifier-2").await?;
    let hook = Receiver::start(Behaviour::FailFirst(0)).await?;
    let slack = Receiver::start(Behaviour::FailFirst(0)).await?;
    let ws = WorkspaceId::new();
    webhook_channel(&system, ws, &hook.url).await?;
    let url = format!("{}/services/T0/B0/secret", slack.base);
    create_channel(&system, ws, json!({"kind": "slack", "url": url})).await?;
    let (a, b) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());

    let first = [
        (a, "p-1", "the platform rejected the media"),
        (a, "p-2", "text too long"),
        (b, "p-3", "duplicate post"),
    ];
    for (account, post, reason) in first {
        inject_dead_lettered(&system, ws, account, post, reason).await?;
    }
    let one = eventually(Duration::from_secs(15), || async {
        let d = digests(&hook);
        ensure!(!d.is_empty(), "no digest yet");
        Ok(d[0].clone())
    })
    .await?;
    assert_eq!(one["data"]["count"], 3, "{one}");
    let mut listed = posts_of(&one);
    listed.sort();
    assert_eq!(listed, ["p-1", "p-2", "p-3"]);
    for (_, post, reason) in first {
        assert!(
            one["data"]["body"]
                .as_str()
                .is_some_and(|b| b.contains(&format!("post {post} on X (rejected): {reason}"))),
            "{one}"
        );
        let entry = one["data"]["posts"]
            .as_array()
            .and_then(|p| p.iter().find(|e| e["post_id"] == post))
            .cloned()
            .unwrap_or_default();
        assert_eq!(entry["reason"], reason);
        assert_eq!(
            entry["replay"]["cli"],
            format!("lifelinectl dead-letters replay --post {post}")
        );
        assert_eq!(entry["replay"]["api"], format!("POST /v1/dead-letters/{post}/replay"));
    }
    assert_eq!(one["data"]["title"], "3 posts could not be published");

    // Two more right after the first digest: they wait for the next one, an interval later.
    inject_dead_lettered(&system, ws, b, "p-4", "account suspended").await?;
    inject_dead_lettered(&system, ws, a, "p-5", "text too long").await?;
    let two = eventually(Duration::from_secs(15), || async {
        let d = digests(&hook);
        ensure!(d.len() >= 2, "{} digests", d.len());
        Ok(d[1].clone())
    })
    .await?;
    let mut listed = posts_of(&two);
    listed.sort();
    assert_eq!(listed, ["p-4", "p-5"], "{two}");
    let gap = (at(&two)? - at(&one)?).to_std()?;
    assert!(gap >= interval, "the second digest came {gap:?} after the first");

    // Nothing more: no third digest, no copy from the second replica, one Slack message each.
    tokio::time::sleep(interval + Duration::from_secs(1)).await;
    assert_eq!(digests(&hook).len(), 2, "{:?}", digests(&hook));
    let slack_digests: Vec<Value> = slack
        .accepted()
        .iter()
        .map(|r| r.json())
        .filter(|m| m["text"].as_str().is_some_and(|t| t.ends_with("could not be published")))
        .collect();
    assert_eq!(slack_digests.len(), 2);
    assert_eq!(slack_digests[0]["text"], "3 posts could not be published");
    let blocks = slack_digests[0]["blocks"].to_string();
    assert!(
        blocks.contains("p-3") && blocks.contains("lifelinectl dead-letters replay"),
        "{blocks}"
    );
    system.stop().await
}
