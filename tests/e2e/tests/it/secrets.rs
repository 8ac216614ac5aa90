//! No token ever appears in a log line, an event, or the database in plaintext.

use std::time::Duration;

use anyhow::bail;
use lifeline_e2e::{captured_logs, eventually, Options, System};
use serde_json::json;

use crate::{connected_account, post_reaches};

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_token_leaks_into_logs_events_or_the_database() -> anyhow::Result<()> {
    // Fast platform time, so refreshes (and rotated refresh tokens) happen during the test too.
    let system = System::start_with(Options { time_scale: 720.0, ..Options::default() }).await?;
    let (ws, account) = connected_account(&system, "frank").await?;
    let post = system.schedule_post(ws, &account, "secret-free post").await?;
    post_reaches(&system, ws, &post, "published").await?;
    eventually(Duration::from_secs(30), || async {
        if system.event_names().iter().any(|n| n == "token_refreshed") {
            Ok(())
        } else {
            bail!("no refresh yet")
        }
    })
    .await?;
    system.sim_post("/_sim/x/accounts/frank/revoke", json!({})).await?;
    let failed = system.schedule_post(ws, &account, "after revoke").await?;
    post_reaches(&system, ws, &failed, "failed_auth").await?;
    let (status, _) = system.oauth(ws, Some(&account), "frank").await?;
    assert_eq!(status, 200);
    post_reaches(&system, ws, &failed, "published").await?;

    let issued = system.sim_get("/_sim/tokens").await?;
    let tokens: Vec<String> = issued["tokens"]
        .as_array()
        .map(|a| a.iter().filter_map(|t| t.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    assert!(tokens.len() >= 5, "codes, access and refresh tokens were issued: {}", tokens.len());

    let logs = captured_logs();
    assert!(logs.len() > 1_000, "logs were captured ({} bytes)", logs.len());
    let events = system.events();
    let db = system.db().await?;
    let tables: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_schema::text, table_name::text FROM information_schema.tables
         WHERE table_schema IN ('gateway', 'publisher', 'notifier', 'refresher', 'vault') AND table_type = 'BASE TABLE'",
    )
    .fetch_all(&db)
    .await?;
    assert!(tables.len() >= 8, "{tables:?}");
    let mut dump = String::new();
    for (schema, table) in &tables {
        let rows: Vec<String> =
            sqlx::query_scalar(&format!("SELECT row_to_json(t)::text FROM {schema}.{table} t"))
                .fetch_all(&db)
                .await?;
        dump.push_str(&rows.join("\n"));
    }
    let credentials: i64 =
        sqlx::query_scalar("SELECT count(*) FROM vault.credentials").fetch_one(&db).await?;
    assert_eq!(credentials, 1);

    for token in &tokens {
        assert!(!logs.contains(token.as_str()), "a token leaked into the logs");
        assert!(
            !dump.contains(token.as_str()) && !dump.contains(&hex(token)),
            "a token is stored in plaintext"
        );
        for (name, payload) in &events {
            assert!(
                !payload.windows(token.len()).any(|w| w == token.as_bytes()),
                "a token leaked into a {name} event"
            );
        }
    }
    system.stop().await
}

/// Channel secrets (webhook signing secrets, before and after a rotation, and Slack
/// incoming-webhook URLs) never appear in a log line, an event, or the database in plaintext.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_channel_secret_leaks_into_logs_events_or_the_database() -> anyhow::Result<()> {
    use crate::notify::{create_channel, inject_auth_failed, notify_env, Behaviour, Receiver};
    use lifeline_kit::ids::WorkspaceId;

    let env = notify_env("0s,200ms,200ms");
    let system = System::start_with(Options { env, ..Options::default() }).await?;
    let (webhook, slack) = (
        Receiver::start(Behaviour::FailFirst(1)).await?,
        Receiver::start(Behaviour::FailFirst(1)).await?,
    );
    let ws = WorkspaceId::new();
    let created =
        create_channel(&system, ws, json!({"kind": "webhook", "url": webhook.url})).await?;
    let slack_token = format!("slk{}", uuid::Uuid::new_v4().simple());
    let slack_url = format!("{}/services/T0000/B0000/{slack_token}", slack.base);
    create_channel(&system, ws, json!({"kind": "slack", "url": slack_url})).await?;
    let channel = created["id"].as_str().unwrap_or_default();
    let rotate = format!("/v1/notification-channels/{channel}/rotate-secret");
    let (_, rotated) = system.post_json(&system.notifier, &rotate, ws, &json!({})).await?;
    inject_auth_failed(&system, ws, uuid::Uuid::now_v7()).await?;
    eventually(Duration::from_secs(20), || async {
        if webhook.accepted().len() == 1 && slack.accepted().len() == 1 {
            Ok(())
        } else {
            bail!("webhook {:?}, slack {:?}", webhook.received().len(), slack.received().len())
        }
    })
    .await?;
    assert!(slack.accepted()[0].json()["blocks"].is_array(), "Slack got blocks");

    let mut secrets = vec![slack_token.clone()];
    for s in [&created["secret"], &rotated["secret"]] {
        let s = s.as_str().unwrap_or_default().to_owned();
        assert!(s.starts_with("whsec_"), "{s}");
        secrets.push(s.trim_start_matches("whsec_").to_owned());
        secrets.push(s);
    }
    let logs = captured_logs();
    let db = system.db().await?;
    let mut dump = String::new();
    for table in ["channels", "deliveries", "delivery_attempts", "notifications"] {
        let rows: Vec<String> =
            sqlx::query_scalar(&format!("SELECT row_to_json(t)::text FROM notifier.{table} t"))
                .fetch_all(&db)
                .await?;
        assert!(!rows.is_empty(), "notifier.{table} has rows");
        dump.push_str(&rows.join("\n"));
    }
    let events = system.events();
    for secret in &secrets {
        assert!(!logs.contains(secret.as_str()), "a channel secret leaked into the logs");
        assert!(
            !dump.contains(secret.as_str()) && !dump.contains(&hex(secret)),
            "a channel secret is stored in plaintext"
        );
        for (name, payload) in &events {
            assert!(
                !payload.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "a channel secret leaked into a {name} event"
            );
        }
    }
    system.stop().await
}
