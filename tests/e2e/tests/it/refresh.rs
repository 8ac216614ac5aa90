//! The refresher keeps X tokens alive ahead of expiry, rotating the single-use refresh token
//! without ever reusing one, and reports a refused refresh as an auth failure.

use std::time::Duration;

use anyhow::bail;
use lifeline_e2e::{eventually, Options, System};
use lifeline_events::{AuthFailed, AuthFailureSource, TokenRefreshed};
use serde_json::json;

use crate::{connected_account, post_reaches};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tokens_are_refreshed_before_expiry_and_a_refused_refresh_breaks_the_account(
) -> anyhow::Result<()> {
    // 720× platform time: X's 2-hour tokens last 10 seconds.
    let system = System::start_with(Options { time_scale: 720.0, ..Options::default() }).await?;
    let (ws, account) = connected_account(&system, "grace").await?;

    // Two refreshes happen before the first token would have lapsed twice over.
    let refreshed = eventually(Duration::from_secs(40), || async {
        let r: Vec<TokenRefreshed> = system.events_of();
        if r.len() >= 2 {
            Ok(r)
        } else {
            bail!("{} refreshes so far", r.len())
        }
    })
    .await?;
    assert!(refreshed[1].credential_version > refreshed[0].credential_version);
    // The original access token has expired by now; posting still works with the refreshed one.
    let post = system.schedule_post(ws, &account, "posted with a refreshed token").await?;
    post_reaches(&system, ws, &post, "published").await?;
    let stats = system.sim_get("/_sim/stats").await?;
    assert_eq!(stats["x"]["refresh_token_reuse"], 0, "{stats}");
    let (_, a) = system.get(&system.gateway, &format!("/v1/accounts/{account}"), ws).await?;
    assert_eq!(a["status"], "healthy");

    // The user revokes the app: the next refresh is refused and the account breaks.
    system.sim_post("/_sim/x/accounts/grace/revoke", json!({})).await?;
    eventually(Duration::from_secs(30), || async {
        let (_, a) = system.get(&system.gateway, &format!("/v1/accounts/{account}"), ws).await?;
        if a["status"] == "needs_reconnect" && a["cause"] == "revoked" {
            Ok(())
        } else {
            bail!("{a}")
        }
    })
    .await?;
    let failures: Vec<AuthFailed> = system.events_of();
    assert!(failures.iter().any(|f| f.source == AuthFailureSource::Refresh as i32), "{failures:?}");

    // Once the last access token has lapsed too, a publish fails with what looks like an expiry;
    // the account keeps the cause the token endpoint reported.
    tokio::time::sleep(Duration::from_secs(11)).await;
    let late = system.schedule_post(ws, &account, "after the token lapsed").await?;
    post_reaches(&system, ws, &late, "failed_auth").await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, a) = system.get(&system.gateway, &format!("/v1/accounts/{account}"), ws).await?;
    assert_eq!(
        (a["status"].as_str(), a["cause"].as_str()),
        (Some("needs_reconnect"), Some("revoked")),
        "{a}"
    );
    let stats = system.sim_get("/_sim/stats").await?;
    assert_eq!(stats["x"]["refresh_token_reuse"], 0, "{stats}");
    system.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_outage_never_marks_an_account_as_needing_reconnect() -> anyhow::Result<()> {
    // Retry delays of up to 1s, 2s, 4s…: the outage ends before the retry budget does.
    let options = Options { time_scale: 720.0, publish_retry_base: "1s", ..Options::default() };
    let system = System::start_with(options).await?;
    let (ws, account) = connected_account(&system, "heidi").await?;
    system.sim_post("/_sim/x/outage", json!({"for_seconds": 3.0, "status": 503})).await?;
    let post = system.schedule_post(ws, &account, "during the outage").await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, a) = system.get(&system.gateway, &format!("/v1/accounts/{account}"), ws).await?;
    assert_eq!(a["status"], "healthy", "{a}");
    assert!(system.events_of::<AuthFailed>().is_empty());
    // Once X is back, the post goes out (after its backoff) and refreshing resumes.
    post_reaches(&system, ws, &post, "published").await?;
    eventually(Duration::from_secs(30), || async {
        if system.events_of::<TokenRefreshed>().is_empty() {
            bail!("no refresh after the outage")
        } else {
            Ok(())
        }
    })
    .await?;
    system.stop().await
}
