//! The reconnect story on every platform: connect through the platform's OAuth flow, the user
//! revokes the app, due posts park, the account shows needs_reconnect (revoked) with one
//! notification, the user reconnects, and each parked post is published exactly once.

use std::time::Duration;

use anyhow::{bail, Context as _};
use lifeline_e2e::{counts, eventually, System};
use lifeline_kit::ids::WorkspaceId;
use serde_json::{json, Value};

use crate::post_reaches;

/// The media a platform needs with every post, if any.
fn media(system: &System, platform: &str) -> Option<Value> {
    match platform {
        "instagram" => {
            Some(json!({"url": format!("{}/_sim/media/sample.jpg", system.sim), "kind": "image"}))
        }
        "youtube" | "tiktok" => {
            Some(json!({"url": format!("{}/_sim/media/sample.mp4", system.sim), "kind": "video"}))
        }
        _ => None,
    }
}

async fn schedule(
    system: &System,
    platform: &str,
    ws: WorkspaceId,
    account: &str,
    text: &str,
) -> anyhow::Result<String> {
    let mut body = json!({"account_id": account, "text": text});
    if let Some(m) = media(system, platform) {
        body["media"] = m;
    }
    let (status, resp) = system.post_json(&system.publisher, "/v1/posts", ws, &body).await?;
    if status != 201 {
        bail!("scheduling on {platform} failed: {status} {resp}");
    }
    Ok(resp["id"].as_str().context("id")?.to_owned())
}

async fn reconnect_story(platform: &str) -> anyhow::Result<()> {
    let system = System::start().await?;
    let user = format!("{platform}_owner");
    let ws = WorkspaceId::new();
    let (status, body) = system.oauth_on(platform, ws, None, &user).await?;
    if status != 200 || body["result"] != "connected" {
        bail!("connecting {platform} failed: {status} {body}");
    }
    let account = body["account_id"].as_str().context("account_id")?.to_owned();

    let first =
        schedule(&system, platform, ws, &account, &format!("{platform}: before the revoke"))
            .await?;
    post_reaches(&system, ws, &first, "published").await?;

    system.sim_post(&format!("/_sim/{platform}/accounts/{user}/revoke"), json!({})).await?;
    let mut parked = Vec::new();
    for i in 0..2 {
        parked.push(
            schedule(&system, platform, ws, &account, &format!("{platform}: parked post {i}"))
                .await?,
        );
    }
    for post in &parked {
        post_reaches(&system, ws, post, "failed_auth").await?;
    }
    eventually(Duration::from_secs(10), || async {
        let (_, a) = system.get(&system.gateway, &format!("/v1/accounts/{account}"), ws).await?;
        if a["status"] == "needs_reconnect" && a["cause"] == "revoked" {
            Ok(())
        } else {
            bail!("{a}")
        }
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, n) = system.get(&system.notifier, "/v1/notifications", ws).await?;
    assert_eq!(n["notifications"].as_array().map(Vec::len), Some(1), "{platform}: {n}");

    let (status, body) = system.oauth_on(platform, ws, Some(&account), &user).await?;
    assert_eq!((status, body["result"].as_str()), (200, Some("reconnected")), "{platform}: {body}");
    for post in &parked {
        post_reaches(&system, ws, post, "published").await?;
    }
    let log = counts(system.sim_post_log_on(platform, &user).await?);
    for text in [
        format!("{platform}: before the revoke"),
        format!("{platform}: parked post 0"),
        format!("{platform}: parked post 1"),
    ] {
        assert_eq!(log.get(&text), Some(&1), "{platform}: {text} in {log:?}");
    }
    assert_eq!(log.len(), 3, "{platform}: {log:?}");
    let names = system.event_names();
    assert_eq!(names.iter().filter(|n| *n == "account_reconnected").count(), 1, "{names:?}");
    assert_eq!(names.iter().filter(|n| *n == "post_retry_requested").count(), 2, "{names:?}");
    system.stop().await
}

macro_rules! platforms {
    ($($name:ident),+) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $name() -> anyhow::Result<()> {
            reconnect_story(stringify!($name)).await
        }
    )+};
}

platforms!(x, linkedin, instagram, facebook, youtube, tiktok, threads);
