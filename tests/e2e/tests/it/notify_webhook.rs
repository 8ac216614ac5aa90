//! Webhook channels against real receivers on this machine: retries until a 2xx with one
//! stable `webhook-id`, nothing sent twice for a repeated AuthFailed, the delivery log, manual
//! redelivery, test messages, secret rotation, validation, a hanging endpoint that delays no
//! other workspace, disabling a channel that keeps failing and enabling it again, and two
//! notifier replicas.

use std::{collections::HashMap, time::Duration};

use anyhow::{bail, ensure};
use lifeline_e2e::{eventually, Options, System};
use lifeline_kit::ids::WorkspaceId;
use serde_json::json;

use crate::notify::{
    delivery_log, inject_auth_failed, notify_env, webhook_channel, Behaviour, Receiver,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_receiver_gets_each_message_once_with_a_stable_id() -> anyhow::Result<()> {
    let env = notify_env("0s,200ms,200ms,200ms,200ms");
    let system = System::start_with(Options { env, ..Options::default() }).await?;
    let receiver = Receiver::start(Behaviour::FailFirst(2)).await?;
    let ws = WorkspaceId::new();
    let (channel, secret) = webhook_channel(&system, ws, &receiver.url).await?;
    ensure!(secret.starts_with("whsec_"), "{secret}");
    let (_, listed) = system.get(&system.notifier, "/v1/notification-channels", ws).await?;
    ensure!(listed["channels"][0]["id"] == channel.as_str(), "{listed}");
    ensure!(listed["channels"][0].get("secret").is_none(), "a listed channel shows no secret");
    ensure!(!listed.to_string().contains(&secret), "the secret is never listed");

    let account = uuid::Uuid::now_v7();
    inject_auth_failed(&system, ws, account).await?;
    eventually(Duration::from_secs(15), || async {
        ensure!(
            !receiver.accepted().is_empty(),
            "{} requests, none accepted",
            receiver.received().len()
        );
        Ok(())
    })
    .await?;
    // The same verdict again (a redelivery or a second probe) sends nothing more.
    inject_auth_failed(&system, ws, account).await?;
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let all = receiver.received();
    assert_eq!(all.iter().map(|r| r.answered).collect::<Vec<_>>(), [500, 500, 204]);
    let id = all[0].header("webhook-id");
    assert!(!id.is_empty());
    assert!(all.iter().all(|r| r.header("webhook-id") == id), "one webhook-id across retries");
    assert!(all.iter().all(|r| r.body == all[0].body), "the same body on every attempt");
    assert!(all.iter().all(|r| r.header("webhook-signature").starts_with("v1,")));
    let body = all[0].json();
    assert_eq!(body["type"], "account.needs_reconnect");
    assert_eq!(body["data"]["account_id"], account.to_string());
    assert_eq!(body["data"]["cause"], "revoked");

    // The delivery log shows the three attempts.
    let log = delivery_log(&system, ws, &channel).await?;
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0]["id"], id);
    assert_eq!(log[0]["status"], "delivered");
    let codes: Vec<i64> = log[0]["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["status_code"].as_i64())
        .collect();
    assert_eq!(codes, [500, 500, 204]);
    assert!(log[0]["attempts"][0]["error"].as_str().is_some_and(|e| e.contains("500")));

    // A manual redelivery sends the same message, with the same id, once more.
    let path = format!("/v1/notification-channels/{channel}/deliveries/{id}/redeliver");
    let (status, queued) = system.post_json(&system.notifier, &path, ws, &json!({})).await?;
    assert_eq!(status, 202, "{queued}");
    eventually(Duration::from_secs(10), || async {
        ensure!(receiver.accepted().len() == 2);
        Ok(())
    })
    .await?;
    let again = receiver.accepted().pop().unwrap();
    assert_eq!(again.header("webhook-id"), id);
    assert_eq!(again.body, all[0].body);

    // A test message goes out at once; after a rotation every message carries two signatures.
    let test = format!("/v1/notification-channels/{channel}/test");
    let (status, _) = system.post_json(&system.notifier, &test, ws, &json!({})).await?;
    assert_eq!(status, 202);
    let rotate = format!("/v1/notification-channels/{channel}/rotate-secret");
    eventually(Duration::from_secs(10), || async {
        ensure!(receiver.accepted().len() == 3);
        Ok(())
    })
    .await?;
    assert_eq!(receiver.accepted()[2].json()["type"], "channel.test");
    let (status, rotated) = system.post_json(&system.notifier, &rotate, ws, &json!({})).await?;
    assert_eq!(status, 200, "{rotated}");
    assert!(rotated["secret"].as_str().is_some_and(|s| s.starts_with("whsec_") && s != secret));
    system.post_json(&system.notifier, &test, ws, &json!({})).await?;
    eventually(Duration::from_secs(10), || async {
        ensure!(receiver.accepted().len() == 4);
        Ok(())
    })
    .await?;
    let signed = receiver.accepted()[3].header("webhook-signature").to_owned();
    assert_eq!(signed.split(' ').count(), 2, "{signed}");

    // Another workspace cannot see or touch the channel.
    let other = WorkspaceId::new();
    let (status, _) = system
        .get(&system.notifier, &format!("/v1/notification-channels/{channel}/deliveries"), other)
        .await?;
    assert_eq!(status, 404);
    let (status, _) = system.post_json(&system.notifier, &path, other, &json!({})).await?;
    assert_eq!(status, 404);
    let path = format!("/v1/notification-channels/{channel}");
    let (status, _) = system.delete(&system.notifier, &path, ws).await?;
    assert_eq!(status, 204);
    let (_, listed) = system.get(&system.notifier, "/v1/notification-channels", ws).await?;
    assert_eq!(listed["channels"], json!([]));
    system.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn channel_targets_are_validated_and_internal_addresses_refused() -> anyhow::Result<()> {
    // The default configuration: receivers on private addresses are refused.
    let system = System::start().await?;
    let ws = WorkspaceId::new();
    let post = |body: serde_json::Value| {
        let system = &system;
        async move { system.post_json(&system.notifier, "/v1/notification-channels", ws, &body).await }
    };
    for (body, status, code) in [
        (json!({"kind": "webhook", "url": "http://127.0.0.1:9/hook"}), 422, "invalid_target"),
        (json!({"kind": "webhook", "url": "http://localhost:9/hook"}), 422, "invalid_target"),
        (json!({"kind": "slack", "url": "http://169.254.169.254/latest"}), 422, "invalid_target"),
        (json!({"kind": "webhook", "url": "http://10.0.0.1/hook"}), 422, "invalid_target"),
        (json!({"kind": "webhook", "url": "not a url"}), 422, "invalid_target"),
        (json!({"kind": "webhook", "url": "ftp://example.com/x"}), 422, "invalid_target"),
        (json!({"kind": "email", "address": "not-an-address"}), 422, "invalid_target"),
        (json!({"kind": "webhook"}), 400, "bad_request"),
        (json!({"kind": "pager", "url": "https://example.com"}), 400, "bad_request"),
        (json!({"url": "https://example.com"}), 400, "bad_request"),
    ] {
        let (got, answer) = post(body.clone()).await?;
        assert_eq!((got, answer["error"].as_str()), (status, Some(code)), "{body} → {answer}");
    }
    let (_, listed) = system.get(&system.notifier, "/v1/notification-channels", ws).await?;
    assert_eq!(listed["channels"], json!([]), "nothing refused was stored");
    let missing = uuid::Uuid::now_v7();
    for path in [
        format!("/v1/notification-channels/{missing}/test"),
        "/v1/notification-channels/nope/test".to_owned(),
    ] {
        let (status, _) = system.post_json(&system.notifier, &path, ws, &json!({})).await?;
        assert_eq!(status, 404, "{path}");
    }
    let (status, _) = system
        .get(&system.notifier, "/v1/notification-channels", ws)
        .await
        .map(|(s, _)| (s, ()))?;
    assert_eq!(status, 200);
    let r = system.http.get(format!("{}/v1/notification-channels", system.notifier)).send().await?;
    assert_eq!(r.status(), 401);
    system.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hanging_webhook_does_not_delay_other_workspaces() -> anyhow::Result<()> {
    let mut env = notify_env("0s,1h");
    env.push(("LIFELINE_NOTIFY_DELIVERY_TIMEOUT", "20s".to_owned()));
    env.push(("LIFELINE_NOTIFY_CHANNEL_CONCURRENCY", "2".to_owned()));
    env.push(("LIFELINE_NOTIFY_WORKERS", "8".to_owned()));
    let system = System::start_with(Options { env, ..Options::default() }).await?;
    let hanging = Receiver::start(Behaviour::Hang).await?;
    let healthy = Receiver::start(Behaviour::FailFirst(0)).await?;
    let (slow_ws, fast_ws) = (WorkspaceId::new(), WorkspaceId::new());
    webhook_channel(&system, slow_ws, &hanging.url).await?;
    webhook_channel(&system, fast_ws, &healthy.url).await?;
    // Twenty broken accounts in the hanging workspace first: more than all the workers.
    for _ in 0..20 {
        inject_auth_failed(&system, slow_ws, uuid::Uuid::now_v7()).await?;
    }
    eventually(Duration::from_secs(10), || async {
        ensure!(
            hanging.received().len() >= 2,
            "the hanging endpoint got {}",
            hanging.received().len()
        );
        Ok(())
    })
    .await?;
    let started = tokio::time::Instant::now();
    for _ in 0..5 {
        inject_auth_failed(&system, fast_ws, uuid::Uuid::now_v7()).await?;
    }
    eventually(Duration::from_secs(10), || async {
        ensure!(healthy.accepted().len() == 5, "{} of 5", healthy.accepted().len());
        Ok(())
    })
    .await?;
    // All five arrived long before the hanging attempts time out (20 s), and the hanging
    // endpoint never had more than its cap in flight.
    assert!(started.elapsed() < Duration::from_secs(15), "{:?}", started.elapsed());
    assert_eq!(
        hanging.received().len(),
        2,
        "at most LIFELINE_NOTIFY_CHANNEL_CONCURRENCY in flight"
    );
    system.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_channel_that_keeps_failing_is_disabled_with_a_notice() -> anyhow::Result<()> {
    let mut env = notify_env("0s,300ms,300ms,300ms,300ms,300ms,300ms,300ms");
    env.push(("LIFELINE_NOTIFY_DISABLE_AFTER", "1s".to_owned()));
    let system = System::start_with(Options { env, ..Options::default() }).await?;
    let receiver = Receiver::start(Behaviour::FailFirst(usize::MAX)).await?;
    let ws = WorkspaceId::new();
    let (channel, _) = webhook_channel(&system, ws, &receiver.url).await?;
    inject_auth_failed(&system, ws, uuid::Uuid::now_v7()).await?;
    let disabled = eventually(Duration::from_secs(15), || async {
        let (_, listed) = system.get(&system.notifier, "/v1/notification-channels", ws).await?;
        let c = listed["channels"][0].clone();
        if c["disabled_at"].is_string() {
            Ok(c)
        } else {
            bail!("{c}")
        }
    })
    .await?;
    assert_eq!(disabled["id"], channel.as_str());
    assert!(disabled["disabled_reason"].as_str().is_some_and(|r| r.contains("failed")));
    let (_, n) = system.get(&system.notifier, "/v1/notifications", ws).await?;
    let kinds: Vec<&str> =
        n["notifications"].as_array().unwrap().iter().filter_map(|n| n["kind"].as_str()).collect();
    assert!(kinds.contains(&"channel_disabled"), "{kinds:?}");
    // Nothing more is attempted on a disabled channel.
    let tried = receiver.received().len();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(receiver.received().len(), tried);
    let test = format!("/v1/notification-channels/{channel}/test");
    let (status, _) = system.post_json(&system.notifier, &test, ws, &json!({})).await?;
    assert_eq!(status, 409);
    system.stop().await
}

/// Waits until the workspace's only channel is disabled; answers it.
async fn disabled_channel(system: &System, ws: WorkspaceId) -> anyhow::Result<serde_json::Value> {
    eventually(Duration::from_secs(15), || async {
        let (_, listed) = system.get(&system.notifier, "/v1/notification-channels", ws).await?;
        let c = listed["channels"][0].clone();
        ensure!(c["disabled_at"].is_string(), "{c}");
        Ok(c)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_disabled_channel_enabled_again_gets_new_messages_only() -> anyhow::Result<()> {
    let mut env = notify_env("0s,300ms,300ms,300ms,300ms,300ms,300ms,300ms");
    env.push(("LIFELINE_NOTIFY_DISABLE_AFTER", "1s".to_owned()));
    let system = System::start_with(Options { env, ..Options::default() }).await?;
    let receiver = Receiver::start(Behaviour::FailUntilFixed).await?;
    let ws = WorkspaceId::new();
    let (channel, _) = webhook_channel(&system, ws, &receiver.url).await?;
    let abandoned = uuid::Uuid::now_v7();
    inject_auth_failed(&system, ws, abandoned).await?;
    disabled_channel(&system, ws).await?;
    // Broken while the channel is disabled: notified in the app, no delivery written for it.
    let meanwhile = uuid::Uuid::now_v7();
    inject_auth_failed(&system, ws, meanwhile).await?;
    eventually(Duration::from_secs(10), || async {
        let path = format!("/v1/notifications?account_id={meanwhile}");
        let (_, n) = system.get(&system.notifier, &path, ws).await?;
        ensure!(n["notifications"].as_array().is_some_and(|a| !a.is_empty()), "{n}");
        Ok(())
    })
    .await?;
    let test = format!("/v1/notification-channels/{channel}/test");
    let (status, refused) = system.post_json(&system.notifier, &test, ws, &json!({})).await?;
    assert_eq!((status, refused["error"].as_str()), (409, Some("channel_disabled")), "{refused}");
    assert!(refused["message"].as_str().is_some_and(|m| m.contains("/enable")), "{refused}");

    // The owner fixes the endpoint and enables the channel.
    receiver.set_fixed(true);
    let before = receiver.received().len();
    let enable = format!("/v1/notification-channels/{channel}/enable");
    let (status, enabled) = system.post_json(&system.notifier, &enable, ws, &json!({})).await?;
    assert_eq!(status, 200, "{enabled}");
    assert_eq!(enabled["id"], channel.as_str());
    for field in ["disabled_at", "disabled_reason", "failing_since"] {
        assert!(enabled[field].is_null(), "{field}: {enabled}");
    }
    // Nothing abandoned goes out: the old delivery is `failed`, and no request arrives.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let late: Vec<String> = receiver.received()[before..]
        .iter()
        .map(|r| format!("{} {} {}", r.header("webhook-id"), r.json()["type"], r.answered))
        .collect();
    assert!(late.is_empty(), "nothing is sent retroactively: {late:?}");
    let log = delivery_log(&system, ws, &channel).await?;
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0]["status"], "failed");

    // New messages are delivered, once each.
    let after = uuid::Uuid::now_v7();
    inject_auth_failed(&system, ws, after).await?;
    eventually(Duration::from_secs(10), || async {
        ensure!(receiver.accepted().len() == 1, "{} accepted", receiver.accepted().len());
        Ok(())
    })
    .await?;
    assert_eq!(receiver.accepted()[0].json()["data"]["account_id"], after.to_string());
    let (status, again) = system.post_json(&system.notifier, &enable, ws, &json!({})).await?;
    assert_eq!((status, again["disabled_at"].is_null()), (200, true), "enabling twice: {again}");
    // Only the owner's workspace can enable it; an unknown id is not found.
    let (status, _) =
        system.post_json(&system.notifier, &enable, WorkspaceId::new(), &json!({})).await?;
    assert_eq!(status, 404);
    let missing = format!("/v1/notification-channels/{}/enable", uuid::Uuid::now_v7());
    let (status, _) = system.post_json(&system.notifier, &missing, ws, &json!({})).await?;
    assert_eq!(status, 404);

    // An abandoned delivery can still be sent by hand.
    let id = log[0]["id"].as_str().unwrap_or_default();
    let redeliver = format!("/v1/notification-channels/{channel}/deliveries/{id}/redeliver");
    let (status, _) = system.post_json(&system.notifier, &redeliver, ws, &json!({})).await?;
    assert_eq!(status, 202);
    eventually(Duration::from_secs(10), || async {
        ensure!(receiver.accepted().len() == 2, "{} accepted", receiver.accepted().len());
        Ok(())
    })
    .await?;
    assert_eq!(receiver.accepted()[1].json()["data"]["account_id"], abandoned.to_string());

    // Failing again for the whole period disables it again, with a second notice.
    receiver.set_fixed(false);
    inject_auth_failed(&system, ws, uuid::Uuid::now_v7()).await?;
    disabled_channel(&system, ws).await?;
    let (_, n) = system.get(&system.notifier, "/v1/notifications", ws).await?;
    let notices = n["notifications"]
        .as_array()
        .map_or(0, |a| a.iter().filter(|n| n["kind"] == "channel_disabled").count());
    assert_eq!(notices, 2, "one notice per disabling: {n}");
    system.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_notifier_replicas_send_each_message_once() -> anyhow::Result<()> {
    let env = notify_env("0s,200ms,200ms");
    let mut system = System::start_with(Options { env, ..Options::default() }).await?;
    let second = system.spawn_notifier("notifier-2").await?;
    eventually(Duration::from_secs(60), || async {
        ensure!(system.http.get(format!("{second}/readyz")).send().await?.status().is_success());
        Ok(())
    })
    .await?;
    let receiver = Receiver::start(Behaviour::FailFirst(0)).await?;
    let ws = WorkspaceId::new();
    webhook_channel(&system, ws, &receiver.url).await?;
    let accounts: Vec<uuid::Uuid> = (0..40).map(|_| uuid::Uuid::now_v7()).collect();
    for a in &accounts {
        inject_auth_failed(&system, ws, *a).await?;
        inject_auth_failed(&system, ws, *a).await?;
    }
    eventually(Duration::from_secs(20), || async {
        ensure!(receiver.accepted().len() >= 40, "{} of 40", receiver.accepted().len());
        Ok(())
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let mut per_id: HashMap<String, usize> = HashMap::new();
    for r in receiver.received() {
        *per_id.entry(r.header("webhook-id").to_owned()).or_default() += 1;
    }
    assert_eq!(per_id.len(), 40);
    assert!(per_id.values().all(|n| *n == 1), "{per_id:?}");
    let mut per_account: HashMap<String, usize> = HashMap::new();
    for r in receiver.received() {
        *per_account.entry(r.json()["data"]["account_id"].to_string()).or_default() += 1;
    }
    assert_eq!(per_account.len(), 40);
    system.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn where_a_target_leads_is_checked_again_at_every_send() -> anyhow::Result<()> {
    // Created while receivers on this machine are allowed; then the operator turns that off. A
    // name that now leads to a loopback address (as after DNS rebinding) is refused at send.
    let env = notify_env("0s,1h");
    let mut system = System::start_with(Options { env, ..Options::default() }).await?;
    let receiver = Receiver::start(Behaviour::FailFirst(0)).await?;
    let by_name = receiver.url.replace("127.0.0.1", "localhost");
    let (named_ws, literal_ws) = (WorkspaceId::new(), WorkspaceId::new());
    let (named, _) = webhook_channel(&system, named_ws, &by_name).await?;
    let (literal, _) = webhook_channel(&system, literal_ws, &receiver.url).await?;
    system.roll_out(&[("LIFELINE_NOTIFY_ALLOW_PRIVATE_TARGETS", "false".to_owned())]).await?;
    inject_auth_failed(&system, named_ws, uuid::Uuid::now_v7()).await?;
    inject_auth_failed(&system, literal_ws, uuid::Uuid::now_v7()).await?;
    for (ws, channel, host) in
        [(named_ws, &named, "localhost"), (literal_ws, &literal, "127.0.0.1")]
    {
        let attempt = eventually(Duration::from_secs(15), || async {
            let log = delivery_log(&system, ws, channel).await?;
            let a = log.first().map(|d| d["attempts"][0].clone()).unwrap_or_default();
            ensure!(a.is_object(), "no attempt yet: {log:?}");
            Ok(a)
        })
        .await?;
        assert!(attempt["status_code"].is_null(), "{attempt}");
        let error = attempt["error"].as_str().unwrap_or_default();
        let expected =
            format!("refused: {host} leads to a loopback, private or link-local address");
        assert!(error.contains(&expected), "{error}");
    }
    assert!(receiver.received().is_empty(), "nothing reached the receiver");
    system.stop().await
}
