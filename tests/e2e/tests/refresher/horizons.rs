//! TokenExpiring: a refresh token nearing its own end is announced at each horizon, once, even
//! though the account keeps refreshing its access token all along.

use std::time::Duration;

use anyhow::{bail, Context as _};
use lifeline_e2e::{eventually, Options, System};
use lifeline_events::{AuthFailed, ExpiringCredential, TokenExpiring, TokenRefreshed};
use lifeline_kit::ids::WorkspaceId;
use serde_json::json;

/// 20,160× platform time: Google's 7-day testing-mode refresh tokens last 30 s.
const SCALE: f64 = 20_160.0;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_horizon_fires_once_before_a_refresh_token_ends() -> anyhow::Result<()> {
    let options = Options {
        time_scale: SCALE,
        env: vec![("LIFELINE_EXPIRING_HORIZONS", "20s,10s".into())],
        ..Options::default()
    };
    let system = System::start_with(options).await?;
    system.sim_post("/_sim/youtube/settings", json!({"testing_mode": true})).await?;
    let ws = WorkspaceId::new();
    let (status, body) = system.oauth_on("youtube", ws, None, "tester").await?;
    if status != 200 {
        bail!("{status} {body}");
    }
    let account = body["account_id"].as_str().context("account_id")?.to_owned();

    // Both horizons fire (at about 10 s and 20 s), then the refresh token ends at 30 s and the
    // next refresh is refused.
    eventually(Duration::from_secs(45), || async {
        if system.events_of::<AuthFailed>().is_empty() {
            bail!("refresh token not ended yet")
        }
        Ok(())
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let warnings: Vec<TokenExpiring> = system.events_of();
    let horizons: Vec<u64> = warnings.iter().map(|w| w.horizon_seconds).collect();
    assert_eq!(horizons, vec![20, 10], "{warnings:?}");
    assert!(warnings.iter().all(|w| w.credential == ExpiringCredential::RefreshToken as i32));
    assert!(warnings[0].reason.contains("testing"), "{}", warnings[0].reason);
    // Meanwhile the access token (an hour of platform time, 0.2 s here) was refreshed many times.
    let refreshes = system.events_of::<TokenRefreshed>().len();
    assert!(refreshes >= 10, "{refreshes} refreshes");

    // The owner got one notification per horizon.
    let (_, n) = system.get(&system.notifier, "/v1/notifications", ws).await?;
    let expiring = n["notifications"]
        .as_array()
        .map(|a| a.iter().filter(|n| n["kind"] == "connection_expiring").count());
    assert_eq!(expiring, Some(2), "{n}");
    let (_, a) = system.get(&system.gateway, &format!("/v1/accounts/{account}"), ws).await?;
    assert_eq!(a["status"], "needs_reconnect", "{a}");
    system.stop().await
}
