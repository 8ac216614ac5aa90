//! `AccountFlapping`: an account's third incident within the window publishes one event, with
//! the notification that carries the "frequent disconnections" advice; the fourth publishes none.

use std::time::Duration;

use anyhow::ensure;
use lifeline_e2e::{eventually, Options, System};
use lifeline_events::{AccountFlapping, AuthFailed, AuthFailureCause, Platform};
use lifeline_kit::ids::WorkspaceId;
use serde_json::Value;

use crate::notify::{
    inject_auth_failed_of, inject_reconnected, notify_env, webhook_channel, Behaviour, Receiver,
};

fn of_type(receiver: &Receiver, kind: &str) -> Vec<Value> {
    receiver.accepted().iter().map(|r| r.json()).filter(|m| m["type"] == kind).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_third_incident_in_the_window_publishes_one_account_flapping() -> anyhow::Result<()> {
    let system =
        System::start_with(Options { env: notify_env("0s,200ms"), ..Options::default() }).await?;
    let hook = Receiver::start(Behaviour::FailFirst(0)).await?;
    let ws = WorkspaceId::new();
    webhook_channel(&system, ws, &hook.url).await?;
    let account = uuid::Uuid::now_v7();

    for version in 1..=4u64 {
        inject_auth_failed_of(&system, ws, account, version).await?;
        eventually(Duration::from_secs(15), || async {
            let n = of_type(&hook, "account.needs_reconnect").len();
            ensure!(n == version as usize, "{n} needs_reconnect messages");
            Ok(())
        })
        .await?;
        if version == 2 {
            assert!(system.events_of::<AccountFlapping>().is_empty(), "not after two incidents");
        }
        inject_reconnected(&system, ws, account, version + 1).await?;
        eventually(Duration::from_secs(15), || async {
            let n = of_type(&hook, "account.reconnected").len();
            ensure!(n == version as usize, "{n} reconnected messages");
            Ok(())
        })
        .await?;
    }
    let flapping = eventually(Duration::from_secs(10), || async {
        let seen = system.events_of::<AccountFlapping>();
        ensure!(!seen.is_empty(), "no AccountFlapping yet");
        Ok(seen)
    })
    .await?;
    // The fourth incident's notification committed with whatever it would publish; the relay is
    // woken at once, so a second event would be on the bus well within this pause.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let flapping_now = system.events_of::<AccountFlapping>();
    assert_eq!(flapping_now.len(), 1, "one per window: {flapping_now:?}");
    let e = &flapping[0];
    assert_eq!(e.incidents_in_window, 3);
    assert_eq!(e.threshold, 3);
    assert_eq!(e.window_seconds, 30 * 86_400);
    assert_eq!(e.cause, AuthFailureCause::Revoked as i32);
    let about = e.envelope.as_ref().expect("envelope").subject()?;
    assert_eq!(
        (about.workspace_id, about.account_id, about.platform),
        (ws.0, account, Platform::X)
    );

    // It follows from the third verdict, and names the incident its notification was about.
    let third = system
        .events_of::<AuthFailed>()
        .into_iter()
        .find(|f| f.credential_version == 3)
        .and_then(|f| f.envelope)
        .expect("the third AuthFailed");
    assert_eq!(e.envelope.as_ref().map(|v| v.causation_id.as_str()), Some(third.event_id.as_str()));
    let messages = of_type(&hook, "account.needs_reconnect");
    let frequent: Vec<bool> =
        messages.iter().map(|m| m["data"]["frequent_disconnections"] == true).collect();
    assert_eq!(frequent, [false, false, true, false]);
    assert_eq!(messages[2]["data"]["incident_id"], e.incident_id.as_str());
    let first_opened = lifeline_events::from_timestamp(e.first_incident_at.as_ref().expect("set"))
        .expect("a time");
    let first_message: chrono::DateTime<chrono::Utc> =
        messages[0]["timestamp"].as_str().unwrap_or_default().parse()?;
    assert!(
        first_opened <= first_message,
        "the first incident opened ({first_opened}) before its message ({first_message})"
    );
    // Webhooks also get it as a type of its own, once (people only get the advice above).
    let flapping = eventually(Duration::from_secs(15), || async {
        match of_type(&hook, "account.flapping").as_slice() {
            [one] => Ok(one.clone()),
            other => anyhow::bail!("account.flapping webhooks: {other:?}"),
        }
    })
    .await?;
    assert_eq!(flapping["data"]["incident_id"], e.incident_id.as_str());
    assert_eq!(flapping["data"]["account_id"], account.to_string());
    assert_eq!(flapping["data"]["incidents_in_window"], 3);
    assert_eq!(flapping["data"]["cause"], "revoked");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(of_type(&hook, "account.flapping").len(), 1, "still one");
    system.stop().await
}
