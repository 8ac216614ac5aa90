//! The posts API beyond scheduling: pages and filters, editing and rescheduling, and cancelling
//! a post — scheduled, or waiting for a reconnect, which then does not retry it.

use std::{collections::HashSet, time::Duration};

use anyhow::bail;
use chrono::{SecondsFormat, Utc};
use lifeline_e2e::{counts, eventually, System};
use lifeline_events::{PostCancelled, PostRetryRequested};
use lifeline_kit::ids::WorkspaceId;
use serde_json::{json, Value};

use crate::{connected_account, post_reaches};

async fn patch(
    system: &System,
    ws: WorkspaceId,
    post: &str,
    body: Value,
) -> anyhow::Result<(u16, Value)> {
    let r = system
        .http
        .patch(format!("{}/v1/posts/{post}", system.publisher))
        .bearer_auth(system.token(ws))
        .json(&body)
        .send()
        .await?;
    let status = r.status().as_u16();
    Ok((status, r.json().await.unwrap_or(Value::Null)))
}

async fn cancel(system: &System, ws: WorkspaceId, post: &str) -> anyhow::Result<(u16, Value)> {
    system.post_json(&system.publisher, &format!("/v1/posts/{post}/cancel"), ws, &json!({})).await
}

async fn schedule_at(
    system: &System,
    ws: WorkspaceId,
    account: &str,
    text: &str,
    at: chrono::DateTime<Utc>,
) -> anyhow::Result<String> {
    let (status, body) = system
        .post_json(
            &system.publisher,
            "/v1/posts",
            ws,
            &json!({"account_id": account, "text": text,
                    "scheduled_at": at.to_rfc3339_opts(SecondsFormat::Millis, true)}),
        )
        .await?;
    if status != 201 {
        bail!("scheduling failed: {status} {body}");
    }
    Ok(body["id"].as_str().unwrap_or_default().to_owned())
}

fn ids(page: &Value) -> Vec<String> {
    page["posts"]
        .as_array()
        .map(|l| l.iter().filter_map(|p| p["id"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn posts_page_filter_edit_reschedule_and_cancel() -> anyhow::Result<()> {
    let system = System::start().await?;
    let (ws, account) = connected_account(&system, "paula").await?;
    let later = Utc::now() + chrono::Duration::days(2);

    // Five posts, two days and more ahead; pages of two walk all of them once, newest first.
    let mut scheduled = Vec::new();
    for i in 0..5 {
        let at = later + chrono::Duration::hours(i);
        scheduled.push(schedule_at(&system, ws, &account, &format!("page post {i}"), at).await?);
    }
    let mut walked = Vec::new();
    let mut path = "/v1/posts?limit=2".to_owned();
    let mut pages = 0;
    loop {
        let (status, page) = system.get(&system.publisher, &path, ws).await?;
        assert_eq!(status, 200, "{page}");
        pages += 1;
        walked.extend(ids(&page));
        match page["next"].as_str() {
            Some(next) => path = format!("/v1/posts?limit=2&after={next}"),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let expected: Vec<String> = scheduled.iter().rev().cloned().collect();
    assert_eq!(walked, expected, "newest first, each once");

    // Filters: a time range, a platform, several statuses; mistakes are 400s naming the problem.
    let from = (later + chrono::Duration::minutes(90)).to_rfc3339_opts(SecondsFormat::Secs, true);
    let to = (later + chrono::Duration::minutes(210)).to_rfc3339_opts(SecondsFormat::Secs, true);
    let (_, range) = system
        .get(&system.publisher, &format!("/v1/posts?scheduled_from={from}&scheduled_to={to}"), ws)
        .await?;
    assert_eq!(ids(&range), vec![scheduled[3].clone(), scheduled[2].clone()], "{range}");
    let (_, none) = system.get(&system.publisher, "/v1/posts?platform=linkedin", ws).await?;
    assert_eq!(ids(&none), Vec::<String>::new());
    let inverted = format!("/v1/posts?scheduled_from={to}&scheduled_to={from}");
    let (status, none) = system.get(&system.publisher, &inverted, ws).await?;
    assert_eq!(
        (status, ids(&none)),
        (200, Vec::<String>::new()),
        "a window ending before it starts"
    );
    let (_, both) = system
        .get(&system.publisher, "/v1/posts?status=scheduled,cancelled&platform=x", ws)
        .await?;
    assert_eq!(ids(&both).len(), 5);
    for (query, says) in [
        ("status=sheduled", "unknown status"),
        ("limit=0", "limit must be between"),
        ("after=nonsense", "after must be the `next`"),
        ("platform=myspace", "myspace"),
        ("acount_id=x", "acount_id"),
    ] {
        let (status, body) =
            system.get(&system.publisher, &format!("/v1/posts?{query}"), ws).await?;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body["message"].as_str().unwrap_or_default().contains(says), "{query}: {body}");
    }

    // Edit and reschedule; the platform's rules apply to the edited post too.
    let post = &scheduled[0];
    let new_at = later + chrono::Duration::days(1);
    let (status, edited) = patch(
        &system,
        ws,
        post,
        json!({"text": "edited text", "scheduled_at": new_at.to_rfc3339_opts(SecondsFormat::Secs, true)}),
    )
    .await?;
    assert_eq!(status, 200, "{edited}");
    assert_eq!(edited["body"], "edited text");
    assert_eq!(edited["status"], "scheduled");
    let at = |v: &Value, field: &str| {
        chrono::DateTime::parse_from_rfc3339(v[field].as_str().unwrap_or_default())
            .map(|t| t.timestamp())
    };
    assert_eq!(at(&edited, "scheduled_at")?, new_at.timestamp());
    assert_eq!(at(&edited, "next_attempt_at")?, new_at.timestamp(), "{edited}");
    let (status, body) = patch(&system, ws, post, json!({"text": "x".repeat(281)})).await?;
    assert_eq!((status, body["error"].as_str()), (422, Some("post_invalid")), "{body}");
    assert_eq!(body["details"]["rule"], "text_too_long", "{body}");
    for (bad, says) in [
        (json!({}), "at least one of"),
        (json!({"txt": "typo"}), "txt"),
        (json!({"text": "  "}), "must not be empty"),
        (json!({"media": {"url": "ftp://x/y.jpg", "kind": "image"}}), "must be https, not ftp"),
    ] {
        let (status, body) = patch(&system, ws, post, bad.clone()).await?;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body["message"].as_str().unwrap_or_default().contains(says), "{bad}: {body}");
    }
    // Another workspace sees no such post.
    let other = WorkspaceId::new();
    assert_eq!(patch(&system, other, post, json!({"text": "mine"})).await?.0, 404);
    assert_eq!(cancel(&system, other, post).await?.0, 404);
    assert_eq!(patch(&system, ws, "not-a-post", json!({"text": "t"})).await?.0, 404);

    // Cancel: once, twice (the same answer), then nothing changes it and it never goes out.
    let soon = schedule_at(
        &system,
        ws,
        &account,
        "never goes out",
        Utc::now() + chrono::Duration::seconds(3),
    )
    .await?;
    let (status, c) = cancel(&system, ws, &soon).await?;
    assert_eq!((status, c["status"].as_str()), (200, Some("cancelled")), "{c}");
    assert!(c["cancelled_at"].is_string(), "{c}");
    let (status, again) = cancel(&system, ws, &soon).await?;
    assert_eq!((status, again["status"].as_str()), (200, Some("cancelled")), "{again}");
    let (status, body) = patch(&system, ws, &soon, json!({"text": "revive"})).await?;
    assert_eq!((status, body["error"].as_str()), (409, Some("post_not_editable")), "{body}");
    assert_eq!(body["details"]["status"], "cancelled");
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (_, p) = system.get(&system.publisher, &format!("/v1/posts/{soon}"), ws).await?;
    assert_eq!(p["status"], "cancelled", "{p}");
    assert_eq!(p["attempts"], 0, "{p}");
    assert!(!system.sim_post_log("paula").await?.contains(&"never goes out".to_owned()));
    let cancelled = eventually(Duration::from_secs(10), || async {
        let events = system.events_of::<PostCancelled>();
        if events.is_empty() {
            bail!("no PostCancelled yet")
        }
        Ok(events)
    })
    .await?;
    assert_eq!(cancelled.len(), 1, "one event for two cancels: {cancelled:?}");
    assert_eq!(cancelled[0].post_id, soon);
    assert!(!cancelled[0].was_waiting_for_reconnect);

    // A published post cannot be cancelled.
    let out = system.schedule_post(ws, &account, "goes out").await?;
    post_reaches(&system, ws, &out, "published").await?;
    let (status, body) = cancel(&system, ws, &out).await?;
    assert_eq!((status, body["error"].as_str()), (409, Some("post_already_published")), "{body}");
    system.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_post_cancelled_while_waiting_is_not_retried_after_the_reconnect() -> anyhow::Result<()> {
    let system = System::start().await?;
    let (ws, account) = connected_account(&system, "quinn").await?;
    system.sim_post("/_sim/x/accounts/quinn/revoke", json!({})).await?;
    let keep = system.schedule_post(ws, &account, "kept while waiting").await?;
    let drop = system.schedule_post(ws, &account, "dropped while waiting").await?;
    post_reaches(&system, ws, &keep, "failed_auth").await?;
    post_reaches(&system, ws, &drop, "failed_auth").await?;
    let waiting = |n: i64| {
        let system = &system;
        let account = account.clone();
        async move {
            eventually(Duration::from_secs(10), || async {
                let (_, a) =
                    system.get(&system.gateway, &format!("/v1/accounts/{account}"), ws).await?;
                if a["waiting_posts"] == n {
                    Ok(())
                } else {
                    bail!("waiting_posts is {} not {n}", a["waiting_posts"])
                }
            })
            .await
        }
    };
    waiting(2).await?;

    // Waiting posts can be edited but not moved: they go out when the account is reconnected.
    let (status, body) = patch(&system, ws, &keep, json!({"text": "kept, edited"})).await?;
    assert_eq!(status, 200, "{body}");
    let (status, body) =
        patch(&system, ws, &keep, json!({"scheduled_at": "2030-01-01T00:00:00Z"})).await?;
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some("post_waiting_for_reconnect")),
        "{body}"
    );

    let (status, c) = cancel(&system, ws, &drop).await?;
    assert_eq!((status, c["status"].as_str()), (200, Some("cancelled")), "{c}");
    waiting(1).await?;

    let (status, body) = system.oauth(ws, Some(&account), "quinn").await?;
    assert_eq!((status, body["result"].as_str()), (200, Some("reconnected")), "{body}");
    post_reaches(&system, ws, &keep, "published").await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, p) = system.get(&system.publisher, &format!("/v1/posts/{drop}"), ws).await?;
    assert_eq!(p["status"], "cancelled", "{p}");
    let retried: HashSet<String> =
        system.events_of::<PostRetryRequested>().into_iter().map(|e| e.post_id).collect();
    assert_eq!(retried, HashSet::from([keep.clone()]), "only the kept post is retried");
    let seen = counts(system.sim_post_log("quinn").await?);
    assert_eq!(seen.get("kept, edited"), Some(&1), "{seen:?}");
    assert!(!seen.contains_key("dropped while waiting"), "{seen:?}");
    let cancelled = system.events_of::<PostCancelled>();
    assert_eq!(cancelled.len(), 1);
    assert!(cancelled[0].was_waiting_for_reconnect);
    waiting(0).await?;
    system.stop().await
}
