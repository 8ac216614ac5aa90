//! Page links' lifetimes: the gateway's default, a lifetime asked for (as the notifier asks a
//! day for the links in its emails and Slack messages), and the refusals around it.

use chrono::{DateTime, Utc};
use lifeline_e2e::System;
use serde_json::{json, Value};

use crate::connected_account;

fn expires_in_seconds(body: &Value) -> i64 {
    let at: DateTime<Utc> =
        body["expires_at"].as_str().and_then(|s| s.parse().ok()).expect("expires_at");
    (at - Utc::now()).num_seconds()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_page_link_lasts_its_default_or_the_lifetime_asked_for_up_to_a_day() -> anyhow::Result<()>
{
    let system = System::start().await?;
    let (ws, account) = connected_account(&system, "links").await?;
    let mint = |body: Value| {
        let system = &system;
        async move { system.post_json(&system.gateway, "/v1/page-links", ws, &body).await }
    };

    let (status, default) = mint(json!({})).await?;
    assert_eq!(status, 201, "{default}");
    assert!((890..=900).contains(&expires_in_seconds(&default)), "15 minutes: {default}");

    let (status, day) = mint(json!({"account_id": account, "ttl_seconds": 86_400})).await?;
    assert_eq!(status, 201, "{day}");
    assert!((86_390..=86_400).contains(&expires_in_seconds(&day)), "a day: {day}");
    assert_eq!(day["account_id"], account.as_str());

    // JSON Schema's integer 300 may be written 300.0.
    let (status, whole) = mint(json!({"ttl_seconds": 300.0})).await?;
    assert_eq!(status, 201, "{whole}");
    assert!((290..=300).contains(&expires_in_seconds(&whole)), "five minutes: {whole}");

    for ttl in [json!(9), json!(86_401), json!(-1), json!(300.5), json!("3600")] {
        let (status, refused) = mint(json!({"ttl_seconds": ttl})).await?;
        assert_eq!(status, 400, "ttl_seconds {ttl}: {refused}");
        assert_eq!(refused["error"], "bad_request");
        assert!(
            refused["message"].as_str().is_some_and(|m| m.contains("ttl_seconds")),
            "{refused}"
        );
    }
    // serde would read a struct from an array; the body must be an object.
    let (status, refused) = mint(json!([null, null])).await?;
    assert_eq!(status, 400, "{refused}");
    // Another workspace's account is not found, whatever the lifetime.
    let other = lifeline_kit::ids::WorkspaceId::new();
    let (status, _) = system
        .post_json(
            &system.gateway,
            "/v1/page-links",
            other,
            &json!({"account_id": account, "ttl_seconds": 60}),
        )
        .await?;
    assert_eq!(status, 404);
    system.stop().await
}
