//! The reactive path: a publish refused for auth reasons gets one immediate refresh. A token
//! that only lapsed early recovers without the owner hearing about it; a revoked one stays
//! broken with its cause confirmed by the token endpoint.

use std::time::Duration;

use anyhow::{bail, Context as _};
use lifeline_e2e::{counts, eventually, System};
use lifeline_events::{
    AccountReconnected, AuthFailed, AuthFailureSource, ReconnectReason, TokenRefreshed,
};
use lifeline_kit::ids::WorkspaceId;
use serde_json::{json, Value};

async fn connect(system: &System, user: &str) -> anyhow::Result<(WorkspaceId, String)> {
    let ws = WorkspaceId::new();
    let (status, body) = system.oauth(ws, None, user).await?;
    if status != 200 {
        bail!("{status} {body}");
    }
    Ok((ws, body["account_id"].as_str().context("account_id")?.to_owned()))
}

async fn post_reaches(
    system: &System,
    ws: WorkspaceId,
    post: &str,
    status: &str,
) -> anyhow::Result<()> {
    eventually(Duration::from_secs(30), || async {
        let (_, body) = system.get(&system.publisher, &format!("/v1/posts/{post}"), ws).await?;
        if body["status"] == status {
            Ok(())
        } else {
            bail!("post {post} is {}", body["status"])
        }
    })
    .await
}

async fn notifications(system: &System, ws: WorkspaceId) -> anyhow::Result<Vec<Value>> {
    let (_, n) = system.get(&system.notifier, "/v1/notifications", ws).await?;
    Ok(n["notifications"].as_array().cloned().unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lapsed_token_recovers_by_refreshing_without_notifying_the_owner() -> anyhow::Result<()> {
    let system = System::start().await?;
    let (ws, account) = connect(&system, "lapsed").await?;
    let first = system.schedule_post(ws, &account, "before the lapse").await?;
    post_reaches(&system, ws, &first, "published").await?;

    // X ends the access token early; the refresh token still works.
    system.sim_post("/_sim/x/accounts/lapsed/expire", json!({})).await?;
    let post = system.schedule_post(ws, &account, "after the lapse").await?;
    post_reaches(&system, ws, &post, "published").await?;

    let reconnected: Vec<AccountReconnected> = system.events_of();
    assert_eq!(reconnected.len(), 1, "{reconnected:?}");
    assert_eq!(reconnected[0].reason, ReconnectReason::RecoveredByRefresh as i32);
    let refreshed: Vec<TokenRefreshed> = system.events_of();
    assert_eq!(refreshed.len(), 1, "one immediate refresh");
    assert_eq!(reconnected[0].credential_version, refreshed[0].credential_version);
    let failures: Vec<AuthFailed> = system.events_of();
    assert!(failures.iter().all(|f| f.source == AuthFailureSource::Publish as i32), "{failures:?}");
    // The recovery is told as the consequence of the failure: same correlation, and a causation
    // chain AuthFailed → TokenRefreshed → AccountReconnected.
    let failed = failures[0].envelope.clone().expect("envelope");
    let refresh = refreshed[0].envelope.clone().expect("envelope");
    let recovered = reconnected[0].envelope.clone().expect("envelope");
    assert_eq!(refresh.causation_id, failed.event_id);
    assert_eq!(recovered.causation_id, refresh.event_id);
    assert_eq!(recovered.correlation_id, failed.correlation_id);

    // The owner is not bothered: past the notifier's grace period there is still nothing.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(notifications(&system, ws).await?.is_empty());
    let (_, a) = system.get(&system.gateway, &format!("/v1/accounts/{account}"), ws).await?;
    assert_eq!(a["status"], "healthy", "{a}");
    let log = system.sim_post_log("lapsed").await?;
    assert_eq!(counts(log).get("after the lapse"), Some(&1), "published exactly once");
    system.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revoked_token_is_confirmed_by_the_refresh_and_notified_once() -> anyhow::Result<()> {
    let system = System::start().await?;
    let (ws, account) = connect(&system, "revoked").await?;
    system.sim_post("/_sim/x/accounts/revoked/revoke", json!({})).await?;
    for i in 0..2 {
        let post = system.schedule_post(ws, &account, &format!("parked {i}")).await?;
        post_reaches(&system, ws, &post, "failed_auth").await?;
    }
    let confirmed = eventually(Duration::from_secs(10), || async {
        let failures: Vec<AuthFailed> = system.events_of();
        let by_refresh: Vec<AuthFailed> = failures
            .into_iter()
            .filter(|f| f.source == AuthFailureSource::Refresh as i32)
            .collect();
        if by_refresh.is_empty() {
            bail!("no refresh verdict yet")
        }
        Ok(by_refresh)
    })
    .await?;
    assert_eq!(confirmed.len(), 1, "one immediate refresh per credential: {confirmed:?}");
    assert_eq!(confirmed[0].cause, lifeline_events::AuthFailureCause::Revoked as i32);
    let n = eventually(Duration::from_secs(10), || async {
        let n = notifications(&system, ws).await?;
        if n.is_empty() {
            bail!("not notified yet")
        }
        Ok(n)
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(notifications(&system, ws).await?.len(), 1, "{n:?}");
    let (_, a) = system.get(&system.gateway, &format!("/v1/accounts/{account}"), ws).await?;
    assert_eq!(
        (a["status"].as_str(), a["cause"].as_str()),
        (Some("needs_reconnect"), Some("revoked"))
    );
    assert!(system.events_of::<AccountReconnected>().is_empty());
    system.stop().await
}

/// Publish failures that arrive after the user reconnected (a consumer working through a
/// backlog, or redeliveries) carry the old credential version. The reconnect was announced by
/// the gateway; the refresher must not announce a "recovery by refresh" for each of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stale_publish_failures_after_a_reconnect_announce_no_recovery() -> anyhow::Result<()> {
    use prost::Message as _;
    let system = System::start().await?;
    let (ws, account) = connect(&system, "stale").await?;
    system.sim_post("/_sim/x/accounts/stale/revoke", json!({})).await?;
    let mut posts = Vec::new();
    for i in 0..3 {
        let post = system.schedule_post(ws, &account, &format!("parked {i}")).await?;
        post_reaches(&system, ws, &post, "failed_auth").await?;
        posts.push(post);
    }
    eventually(Duration::from_secs(10), || async {
        let failures: Vec<AuthFailed> = system.events_of();
        if failures.iter().any(|f| f.source == AuthFailureSource::Refresh as i32) {
            Ok(())
        } else {
            bail!("no refresh verdict yet")
        }
    })
    .await?;
    let (status, body) = system.oauth(ws, Some(&account), "stale").await?;
    assert_eq!(status, 200, "{body}");
    for post in &posts {
        post_reaches(&system, ws, post, "published").await?;
    }

    // The publish failures again, as new messages, after the reconnect.
    let stale: Vec<(String, AuthFailed)> = system
        .seen()
        .into_iter()
        .filter(|(name, _)| name == "auth_failed")
        .filter_map(|(_, seen)| {
            Some((seen.subject, AuthFailed::decode(seen.payload.as_slice()).ok()?))
        })
        .filter(|(_, f)| f.source == AuthFailureSource::Publish as i32)
        .collect();
    assert_eq!(stale.len(), 3, "one publish failure per parked post");
    for (subject, mut failure) in stale {
        if let Some(envelope) = failure.envelope.as_mut() {
            envelope.event_id = uuid::Uuid::now_v7().to_string();
        }
        system.nats.publish(subject, failure.encode_to_vec().into()).await?;
    }
    system.nats.flush().await?;
    tokio::time::sleep(Duration::from_secs(3)).await;

    let reasons: Vec<i32> =
        system.events_of::<AccountReconnected>().into_iter().map(|r| r.reason).collect();
    assert_eq!(reasons, [ReconnectReason::UserReauthorized as i32], "only the user's reconnect");
    let log = system.sim_post_log("stale").await?;
    for i in 0..3 {
        assert_eq!(counts(log.clone()).get(&format!("parked {i}")), Some(&1), "published once");
    }
    system.stop().await
}
