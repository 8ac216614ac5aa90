//! Publishing media safely: a media URL that would make the publisher reach its own network is
//! refused when the post is scheduled, and a multi-step publish that outlasts the lease keeps
//! it (no other sweep takes the post over mid-call and sends it again or hands it over).

use std::time::Duration;

use anyhow::Context as _;
use lifeline_e2e::{Options, System};
use lifeline_kit::ids::WorkspaceId;
use serde_json::json;

use crate::post_reaches;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn media_urls_into_the_private_network_are_refused_at_scheduling() -> anyhow::Result<()> {
    // Production's policy: https to public hosts only. The simulator is then unreachable for
    // media, which is the point; the account itself connects through the simulator as usual.
    let system = System::start_with(Options {
        env: vec![
            ("LIFELINE_MEDIA_ALLOW_HTTP", "false".to_owned()),
            ("LIFELINE_MEDIA_ALLOW_HOSTS", String::new()),
        ],
        ..Options::default()
    })
    .await?;
    let ws = WorkspaceId::new();
    let account = system.connect("youtube", "yara", ws).await?;
    for (url, why) in [
        ("http://cdn.example.com/v.mp4", "media URLs must be https"),
        ("https://169.254.169.254/latest/meta-data/", "169.254.169.254"),
        ("https://127.0.0.1:5432/", "private, loopback or link-local"),
        ("https://[::1]/v.mp4", "private, loopback or link-local"),
        ("https://localhost/v.mp4", "this machine"),
        ("https://user:secret@cdn.example.com/v.mp4", "credentials"),
    ] {
        let body = json!({"account_id": account, "text": "a video", "media": {"url": url, "kind": "video"}});
        let (status, resp) = system.post_json(&system.publisher, "/v1/posts", ws, &body).await?;
        assert_eq!(status, 400, "{url}: {resp}");
        assert_eq!(resp["error"], "bad_request", "{url}: {resp}");
        let message = resp["message"].as_str().unwrap_or_default();
        assert!(message.starts_with("media.url: ") && message.contains(why), "{url}: {message}");
    }
    let (_, posts) = system.get(&system.publisher, "/v1/posts", ws).await?;
    assert_eq!(posts["posts"].as_array().map(Vec::len), Some(0), "nothing stored: {posts}");
    system.stop().await
}

/// TikTok publishes in steps: an init call, then status polls until the video is processed.
/// With a 2 s lease and 4 s before the first poll the publish takes two leases; renewed, it is
/// one attempt and the post goes out once. Without renewal the sweep takes the expired lease
/// over, cannot check TikTok, and dead-letters a post that was in fact being published.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_publish_longer_than_the_lease_keeps_it() -> anyhow::Result<()> {
    let system = System::start_with(Options {
        env: vec![
            ("LIFELINE_PUBLISH_LEASE", "2s".to_owned()),
            ("LIFELINE_PLATFORM_TIMEOUT", "1s".to_owned()),
            ("LIFELINE_TIKTOK_POLL_INTERVAL", "4s".to_owned()),
        ],
        ..Options::default()
    })
    .await?;
    let ws = WorkspaceId::new();
    let account = system.connect("tiktok", "tara", ws).await?;
    let body = json!({
        "account_id": account,
        "text": "longer than the lease",
        "media": {"url": format!("{}/_sim/media/sample.mp4", system.sim), "kind": "video"},
    });
    let (status, resp) = system.post_json(&system.publisher, "/v1/posts", ws, &body).await?;
    assert_eq!(status, 201, "{resp}");
    let post = resp["id"].as_str().context("id")?.to_owned();
    let started = std::time::Instant::now();
    post_reaches(&system, ws, &post, "published").await?;
    let took = started.elapsed();
    assert!(took > Duration::from_secs(3), "the publish outlasted the 2 s lease ({took:?})");

    let db = system.db().await?;
    let attempts: Vec<(String,)> = sqlx::query_as(
        "SELECT coalesce(outcome, '') FROM publisher.attempts WHERE post_id = $1 ORDER BY attempt",
    )
    .bind(post.parse::<uuid::Uuid>()?)
    .fetch_all(&db)
    .await?;
    assert_eq!(attempts, [("published".to_owned(),)], "one attempt, not taken over");
    let log = system.sim_get("/_sim/posts?platform=tiktok&username=tara").await?;
    let mine: Vec<_> = log["posts"]
        .as_array()
        .map(|a| a.iter().filter(|p| p["text"] == "longer than the lease").collect())
        .unwrap_or_default();
    assert_eq!(mine.len(), 1, "on TikTok once: {log}");
    system.stop().await
}
