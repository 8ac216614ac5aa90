//! What the messages say, seen at a real Slack-style receiver: the title with the platform, the
//! cause, the advice and a Reconnect button to the Accounts page; the "frequent disconnections"
//! advice on an account's third incident within the window, once.

use std::time::Duration;

use anyhow::ensure;
use lifeline_e2e::{eventually, Options, System};
use lifeline_kit::ids::WorkspaceId;
use serde_json::{json, Value};

use crate::notify::{
    create_channel, inject_auth_failed_of, inject_reconnected, notify_env, Behaviour, Receiver,
};

fn broken(receiver: &Receiver) -> Vec<Value> {
    receiver
        .accepted()
        .iter()
        .map(|r| r.json())
        .filter(|m| m["text"].as_str().is_some_and(|t| t.ends_with("needs reconnecting")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slack_gets_cause_advice_and_a_reconnect_button_and_frequent_disconnections_once(
) -> anyhow::Result<()> {
    let system =
        System::start_with(Options { env: notify_env("0s,200ms"), ..Options::default() }).await?;
    let slack = Receiver::start(Behaviour::FailFirst(0)).await?;
    let ws = WorkspaceId::new();
    let url = format!("{}/services/T0/B0/secretpart", slack.base);
    let created = create_channel(&system, ws, json!({"kind": "slack", "url": url})).await?;
    assert!(!created.to_string().contains("secretpart"), "the Slack URL is not shown: {created}");
    let account = uuid::Uuid::now_v7();

    // Four incidents: broken, reconnected, broken again…
    for version in 1..=4u64 {
        inject_auth_failed_of(&system, ws, account, version).await?;
        eventually(Duration::from_secs(15), || async {
            ensure!(broken(&slack).len() == version as usize, "{} messages", broken(&slack).len());
            Ok(())
        })
        .await?;
        inject_reconnected(&system, ws, account, version + 1).await?;
        eventually(Duration::from_secs(15), || async {
            let back = slack
                .accepted()
                .iter()
                .filter(|r| r.json()["text"].as_str().is_some_and(|t| t.contains("reconnected")))
                .count();
            ensure!(back == version as usize, "{back} reconnected messages");
            Ok(())
        })
        .await?;
    }
    let messages = broken(&slack);
    let first = &messages[0];
    assert_eq!(first["text"], "Your X account needs reconnecting");
    let blocks = first["blocks"].as_array().cloned().unwrap_or_default();
    assert_eq!(blocks[0]["type"], "header");
    assert!(
        blocks[1]["text"]["text"].as_str().is_some_and(|t| t.contains("access was revoked")),
        "{first}"
    );
    assert!(
        blocks[2]["text"]["text"]
            .as_str()
            .is_some_and(|t| t
                .contains("make sure you're not revoking app permissions on X's settings page")),
        "{first}"
    );
    let button = &blocks[3]["elements"][0];
    assert_eq!(button["text"]["text"], "Reconnect");
    // The gateway does not know this made-up account, so it mints no sign-in link for it: the
    // button opens the page at the account, for a browser that is signed in (notify_email
    // shows the sign-in link of a real account).
    assert_eq!(button["url"], format!("{}/?account={account}", system.gateway));
    let frequent: Vec<bool> = messages
        .iter()
        .map(|m| {
            m["blocks"][2]["text"]["text"]
                .as_str()
                .is_some_and(|t| t.contains("disconnected several times"))
        })
        .collect();
    assert_eq!(
        frequent,
        [false, false, true, false],
        "the advice comes with the third incident, once"
    );
    system.stop().await
}
