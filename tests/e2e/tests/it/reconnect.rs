//! The central story: a revoked X account breaks, the owner is told once, reconnects, and every
//! post that failed for auth reasons is published exactly once.

use std::time::Duration;

use anyhow::bail;
use lifeline_e2e::{counts, eventually, System};
use lifeline_events::{
    AccountReconnected, AuthFailed, AuthFailureCause, AuthFailureSource, PostPublished,
    PostRetryRequested, ReconnectReason,
};
use prost::Message as _;
use serde_json::json;

use crate::{connected_account, post_reaches};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn revoked_account_is_reconnected_and_failed_posts_go_out_exactly_once() -> anyhow::Result<()>
{
    let system = System::start().await?;
    let (ws, account) = connected_account(&system, "alice").await?;

    // A post goes out while the account is healthy.
    let first = system.schedule_post(ws, &account, "hello from lifeline").await?;
    post_reaches(&system, ws, &first, "published").await?;

    // The user revokes the app on X; the next due posts fail for auth reasons.
    system.sim_post("/_sim/x/accounts/alice/revoke", json!({})).await?;
    let mut parked = Vec::new();
    for i in 0..3 {
        parked.push(system.schedule_post(ws, &account, &format!("post {i} after revoke")).await?);
    }
    for post in &parked {
        post_reaches(&system, ws, post, "failed_auth").await?;
    }

    // The account shows needs_reconnect with the cause, and exactly one notification exists.
    let (_, acct) = system.get(&system.gateway, &format!("/v1/accounts/{account}"), ws).await?;
    eventually(Duration::from_secs(10), || async {
        let (_, a) = system.get(&system.gateway, &format!("/v1/accounts/{account}"), ws).await?;
        if a["status"] == "needs_reconnect" && a["cause"] == "revoked" {
            Ok(())
        } else {
            bail!("account is {a}")
        }
    })
    .await?;
    let notifications = eventually(Duration::from_secs(10), || async {
        let (_, n) = system.get(&system.notifier, "/v1/notifications", ws).await?;
        let list = n["notifications"].as_array().cloned().unwrap_or_default();
        if list.is_empty() {
            bail!("no notification yet")
        } else {
            Ok(list)
        }
    })
    .await?;
    // Give stragglers (three AuthFailed events) time to be processed before counting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, n) = system.get(&system.notifier, "/v1/notifications", ws).await?;
    assert_eq!(
        n["notifications"].as_array().map(Vec::len),
        Some(1),
        "one notification per incident: {n}"
    );
    assert_eq!(notifications[0]["kind"], "connection_broken");
    assert!(acct["id"].is_string());

    // Reconnect through OAuth as the same user.
    let (status, body) = system.oauth(ws, Some(&account), "alice").await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"], "reconnected");
    assert_eq!(body["account_id"], account.as_str());

    for post in &parked {
        post_reaches(&system, ws, post, "published").await?;
    }
    let (_, a) = system.get(&system.gateway, &format!("/v1/accounts/{account}"), ws).await?;
    assert_eq!(a["status"], "healthy", "{a}");

    // Every post is on X exactly once.
    let log = system.sim_post_log("alice").await?;
    let seen = counts(log);
    for text in
        ["hello from lifeline", "post 0 after revoke", "post 1 after revoke", "post 2 after revoke"]
    {
        assert_eq!(seen.get(text), Some(&1), "{text} in {seen:?}");
    }
    assert_eq!(seen.len(), 4, "{seen:?}");

    // The events tell the same story, in order.
    let names = eventually(Duration::from_secs(10), || async {
        let names = system.event_names();
        let published = names.iter().filter(|n| *n == "post_published").count();
        if published >= 4 {
            Ok(names)
        } else {
            bail!("{names:?}")
        }
    })
    .await?;
    let story: Vec<&str> = names
        .iter()
        .map(String::as_str)
        .filter(|n| {
            matches!(
                *n,
                "auth_failed" | "account_reconnected" | "post_retry_requested" | "post_published"
            )
        })
        .collect();
    let first_failure =
        story.iter().position(|n| *n == "auth_failed").expect("auth_failed emitted");
    let after: Vec<&str> = story[first_failure..].to_vec();
    let reconnect_at = after.iter().position(|n| *n == "account_reconnected").expect("reconnected");
    assert!(after[..reconnect_at].iter().all(|n| *n == "auth_failed"), "{after:?}");
    assert_eq!(after[reconnect_at + 1..reconnect_at + 4], ["post_retry_requested"; 3], "{after:?}");
    let tail: Vec<&str> = after[reconnect_at + 4..].to_vec();
    assert_eq!(tail, ["post_published"; 3], "{after:?}");
    assert_eq!(story[..first_failure], ["post_published"], "{story:?}");

    // Each parked post reported the failure; the refresher's one immediate refresh was refused
    // too and confirmed the cause.
    let failures: Vec<AuthFailed> = system.events_of();
    assert!(failures.iter().all(|f| f.cause == AuthFailureCause::Revoked as i32), "{failures:?}");
    let by_refresh =
        failures.iter().filter(|f| f.source == AuthFailureSource::Refresh as i32).count();
    let by_publish =
        failures.iter().filter(|f| f.source == AuthFailureSource::Publish as i32).count();
    assert_eq!((by_publish, by_refresh), (3, 1), "{failures:?}");
    let reconnected: Vec<AccountReconnected> = system.events_of();
    assert_eq!(reconnected.len(), 1);
    assert_eq!(reconnected[0].reason, ReconnectReason::UserReauthorized as i32);
    let retries: Vec<PostRetryRequested> = system.events_of();
    let mut retried: Vec<String> = retries.iter().map(|r| r.post_id.clone()).collect();
    retried.sort();
    let mut expected = parked.clone();
    expected.sort();
    assert_eq!(retried, expected);
    // The retries carry the reconnect's correlation id, so one trace links them.
    let correlation = &reconnected[0].envelope.as_ref().expect("envelope").correlation_id;
    assert!(retries
        .iter()
        .all(|r| &r.envelope.as_ref().expect("envelope").correlation_id == correlation));
    let published: Vec<PostPublished> = system.events_of();
    assert!(published.iter().filter(|p| parked.contains(&p.post_id)).all(|p| &p
        .envelope
        .as_ref()
        .expect("envelope")
        .correlation_id
        == correlation));

    // And one trace runs from the reconnect's callback to each retried publish.
    let seen = system.seen();
    let trace_of = |name: &str| -> Vec<Option<String>> {
        seen.iter().filter(|(n, _)| n == name).map(|(_, s)| s.trace_id.clone()).collect()
    };
    let reconnect_trace = trace_of("account_reconnected")
        .pop()
        .flatten()
        .expect("the reconnect carries a traceparent");
    assert!(trace_of("post_retry_requested")
        .iter()
        .all(|t| t.as_deref() == Some(reconnect_trace.as_str())));
    let retried_publishes: Vec<Option<String>> = seen
        .iter()
        .filter(|(n, s)| {
            n == "post_published"
                && PostPublished::decode(s.payload.as_slice())
                    .is_ok_and(|p| parked.contains(&p.post_id))
        })
        .map(|(_, s)| s.trace_id.clone())
        .collect();
    assert_eq!(retried_publishes.len(), 3);
    assert!(
        retried_publishes.iter().all(|t| t.as_deref() == Some(reconnect_trace.as_str())),
        "{retried_publishes:?}"
    );

    system.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redelivered_retry_request_publishes_nothing_twice() -> anyhow::Result<()> {
    let system = System::start().await?;
    let (ws, account) = connected_account(&system, "bob").await?;
    system.sim_post("/_sim/x/accounts/bob/revoke", json!({})).await?;
    let post = system.schedule_post(ws, &account, "only once please").await?;
    post_reaches(&system, ws, &post, "failed_auth").await?;
    let (status, _) = system.oauth(ws, Some(&account), "bob").await?;
    assert_eq!(status, 200);
    post_reaches(&system, ws, &post, "published").await?;

    // Replay every retry request as if JetStream redelivered it with a new message id.
    let retries: Vec<(String, Vec<u8>)> =
        system.events().into_iter().filter(|(n, _)| n == "post_retry_requested").collect();
    assert_eq!(retries.len(), 1);
    let js = async_nats::jetstream::new(system.nats.clone());
    let retry: PostRetryRequested = prost::Message::decode(retries[0].1.as_slice())?;
    let subject = format!("{}.events.v1.post_retry_requested.x.{account}", system.subject_root);
    js.publish(subject, retries[0].1.clone().into()).await?.await?;
    tokio::time::sleep(Duration::from_secs(2)).await;

    assert_eq!(system.sim_post_log("bob").await?, vec!["only once please".to_owned()]);
    let (_, p) = system.get(&system.publisher, &format!("/v1/posts/{}", retry.post_id), ws).await?;
    assert_eq!(p["status"], "published");
    system.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reconnecting_as_another_user_is_refused_and_changes_nothing() -> anyhow::Result<()> {
    let system = System::start().await?;
    let (ws, account) = connected_account(&system, "carol").await?;
    system.sim_post("/_sim/x/accounts/carol/revoke", json!({})).await?;
    let post = system.schedule_post(ws, &account, "carol's post").await?;
    post_reaches(&system, ws, &post, "failed_auth").await?;

    let (status, body) = system.oauth(ws, Some(&account), "mallory").await?;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"], "different_user");
    assert!(body["message"].as_str().unwrap_or_default().contains("@carol"), "{body}");

    let (_, a) = system.get(&system.gateway, &format!("/v1/accounts/{account}"), ws).await?;
    assert_eq!(a["status"], "needs_reconnect");
    assert_eq!(a["username"], "carol");
    let (_, accounts) = system.get(&system.gateway, "/v1/accounts", ws).await?;
    assert_eq!(accounts["accounts"].as_array().map(Vec::len), Some(1));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!system.event_names().contains(&"account_reconnected".to_owned()));
    assert!(system.sim_post_log("mallory").await?.is_empty());
    let (_, p) = system.get(&system.publisher, &format!("/v1/posts/{post}"), ws).await?;
    assert_eq!(p["status"], "failed_auth");
    system.stop().await
}
