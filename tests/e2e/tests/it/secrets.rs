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
