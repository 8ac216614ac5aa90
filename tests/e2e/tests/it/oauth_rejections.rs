//! Forged, expired, replayed or tampered OAuth callbacks get a 4xx and store nothing.

use std::time::Duration;

use lifeline_e2e::{Options, System};
use lifeline_kit::ids::WorkspaceId;

/// Nothing was stored: no account, no credential, no event beyond the first `events_before`.
async fn nothing_stored(
    system: &System,
    ws: WorkspaceId,
    events_before: usize,
) -> anyhow::Result<()> {
    let (_, accounts) = system.get(&system.gateway, "/v1/accounts", ws).await?;
    assert_eq!(accounts["accounts"].as_array().map(Vec::len), Some(0), "{accounts}");
    let db = system.db().await?;
    let credentials: i64 =
        sqlx::query_scalar("SELECT count(*) FROM vault.credentials").fetch_one(&db).await?;
    assert_eq!(credentials, 0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let names = system.event_names();
    assert_eq!(names.len(), events_before, "{names:?}");
    Ok(())
}

fn with_param(url: &str, key: &str, value: &str) -> anyhow::Result<String> {
    let mut u = url::Url::parse(url)?;
    let pairs: Vec<(String, String)> = u
        .query_pairs()
        .filter(|(k, _)| k != key)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    u.query_pairs_mut().clear().extend_pairs(pairs).append_pair(key, value);
    Ok(u.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn callbacks_with_bad_state_or_verifier_are_refused() -> anyhow::Result<()> {
    let system =
        System::start_with(Options { oauth_session_ttl: "2s", ..Options::default() }).await?;
    let ws = WorkspaceId::new();

    // A forged state: a valid code from the platform, but a state Lifeline never issued.
    let authorize = system.start_authorization(ws, None).await?;
    let callback = system.approve(&authorize, "dave").await?;
    let forged = with_param(&callback, "state", "forged-state-value")?;
    let (status, body) = system.callback(&forged).await?;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "unknown_state");

    // No state at all, and a malformed query.
    let (status, body) =
        system.callback(&format!("{}/oauth/callback/x?code=abc", system.gateway)).await?;
    assert_eq!((status, body["error"].as_str()), (400, Some("missing_state")));
    let (status, _) = system
        .callback(&format!("{}/oauth/callback/myspace?code=a&state=b", system.gateway))
        .await?;
    assert_eq!(status, 404);

    // The genuine callback works once (a new identity is confirmed first); replaying it is
    // refused.
    let (status, body) = system.callback(&callback).await?;
    assert_eq!((status, body["result"].as_str()), (200, Some("confirmation_required")), "{body}");
    let token = body["confirmation"].as_str().unwrap_or_default().to_owned();
    let (status, body) = system.confirm_in(&system.http, &token, "connect").await?;
    assert_eq!((status, body["result"].as_str()), (200, Some("connected")), "{body}");
    let account = body["account_id"].as_str().unwrap_or_default().to_owned();
    let (status, body) = system.callback(&callback).await?;
    assert_eq!((status, body["error"].as_str()), (400, Some("state_already_used")), "{body}");
    // Clean slate for the remaining checks: forget that account.
    let (status, _) =
        system.delete(&system.gateway, &format!("/v1/accounts/{account}"), ws).await?;
    assert_eq!(status, 204);

    let ws = WorkspaceId::new();
    let events_before = lifeline_e2e::eventually(Duration::from_secs(10), || async {
        let names = system.event_names();
        if names.iter().any(|n| n == "account_disconnected") {
            Ok(names.len())
        } else {
            anyhow::bail!("{names:?}")
        }
    })
    .await?;
    // An expired state: the user took longer than the session TTL.
    let authorize = system.start_authorization(ws, None).await?;
    let callback = system.approve(&authorize, "dave").await?;
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let (status, body) = system.callback(&callback).await?;
    assert_eq!((status, body["error"].as_str()), (400, Some("state_expired")), "{body}");

    // A wrong PKCE verifier: the challenge the platform saw is not the one our verifier matches
    // (an attacker swapped it), so the platform refuses the code exchange.
    let authorize = system.start_authorization(ws, None).await?;
    let tampered =
        with_param(&authorize, "code_challenge", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")?;
    let callback = system.approve(&tampered, "dave").await?;
    let (status, body) = system.callback(&callback).await?;
    assert_eq!((status, body["error"].as_str()), (400, Some("authorization_refused")), "{body}");

    nothing_stored(&system, ws, events_before).await?;
    system.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_denied_authorization_changes_nothing() -> anyhow::Result<()> {
    let system = System::start().await?;
    let ws = WorkspaceId::new();
    let authorize = system.start_authorization(ws, None).await?;
    let state = url::Url::parse(&authorize)?
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let callback = format!("{}/oauth/callback/x?error=access_denied&state={state}", system.gateway);
    let (status, body) = system.callback(&callback).await?;
    assert_eq!((status, body["error"].as_str()), (400, Some("authorization_denied")), "{body}");
    nothing_stored(&system, ws, 0).await?;
    system.stop().await
}
