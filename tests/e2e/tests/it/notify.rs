//! Helpers for the notification-channel tests (`notify_*` modules): a real HTTP receiver that
//! records every request and answers as told, AuthFailed events injected on NATS, and channel
//! creation through the notifier's API.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use anyhow::{bail, Context as _};
use axum::{body::Bytes, http::HeaderMap, http::StatusCode, Router};
use lifeline_e2e::System;
use lifeline_events::{
    AccountReconnected, AuthFailed, AuthFailureCause, AuthFailureSource, Envelope,
    PostDeadLettered, PostFailureKind, Subject,
};
use lifeline_kit::{ids::WorkspaceId, Platform};
use prost::Message as _;
use serde_json::{json, Value};
use tokio::net::TcpListener;

/// One request the receiver got, and what it answered.
#[derive(Clone, Debug)]
pub struct Received {
    pub headers: HashMap<String, String>,
    pub body: String,
    pub answered: u16,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or_default()
    }
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// How a receiver answers.
#[derive(Clone, Copy, Debug)]
pub enum Behaviour {
    /// 500 to the first `n` requests, then 204.
    FailFirst(usize),
    /// Never answers (until the test ends).
    Hang,
    /// 500 until [`Receiver::set_fixed`], then 204 (an endpoint its owner repairs).
    FailUntilFixed,
}

/// A real HTTP server on 127.0.0.1 that records what it receives.
pub struct Receiver {
    /// `<base>/hook`.
    pub url: String,
    /// `http://127.0.0.1:<port>`: the receiver answers on any path.
    pub base: String,
    seen: Arc<Mutex<Vec<Received>>>,
    fixed: Arc<AtomicBool>,
}

impl Receiver {
    pub async fn start(behaviour: Behaviour) -> anyhow::Result<Receiver> {
        let seen: Arc<Mutex<Vec<Received>>> = Arc::default();
        let count = Arc::new(AtomicUsize::new(0));
        let fixed = Arc::new(AtomicBool::new(false));
        let log = seen.clone();
        let repaired = fixed.clone();
        let handler = move |headers: HeaderMap, body: Bytes| {
            let (log, count, repaired) = (log.clone(), count.clone(), repaired.clone());
            async move {
                let n = count.fetch_add(1, Ordering::SeqCst);
                let status = match behaviour {
                    Behaviour::FailUntilFixed if repaired.load(Ordering::SeqCst) => {
                        StatusCode::NO_CONTENT
                    }
                    Behaviour::FailUntilFixed => StatusCode::INTERNAL_SERVER_ERROR,
                    Behaviour::FailFirst(f) if n < f => StatusCode::INTERNAL_SERVER_ERROR,
                    Behaviour::FailFirst(_) => StatusCode::NO_CONTENT,
                    Behaviour::Hang => StatusCode::GATEWAY_TIMEOUT,
                };
                let headers = headers
                    .iter()
                    .map(|(k, v)| {
                        (k.as_str().to_owned(), v.to_str().unwrap_or_default().to_owned())
                    })
                    .collect();
                let body = String::from_utf8_lossy(&body).into_owned();
                // A hanging request is recorded (answered 0) before it hangs.
                let hang = matches!(behaviour, Behaviour::Hang);
                if let Ok(mut l) = log.lock() {
                    l.push(Received {
                        headers,
                        body,
                        answered: if hang { 0 } else { status.as_u16() },
                    });
                }
                if hang {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                }
                status
            }
        };
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let base = format!("http://{}", listener.local_addr()?);
        // Any path: a Slack incoming-webhook URL carries its secret in the path.
        let app = Router::new().fallback(handler);
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Receiver { url: format!("{base}/hook"), base, seen, fixed })
    }

    /// A [`Behaviour::FailUntilFixed`] receiver answers 204 from now on (500 again with false).
    pub fn set_fixed(&self, fixed: bool) {
        self.fixed.store(fixed, Ordering::SeqCst);
    }

    pub fn received(&self) -> Vec<Received> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// The requests answered with a 2xx.
    pub fn accepted(&self) -> Vec<Received> {
        self.received().into_iter().filter(|r| (200..300).contains(&r.answered)).collect()
    }
}

/// The configuration the notification tests run with: receivers on this machine are allowed,
/// retries come fast.
pub fn notify_env(schedule: &str) -> Vec<(&'static str, String)> {
    vec![
        ("LIFELINE_NOTIFY_ALLOW_PRIVATE_TARGETS", "true".to_owned()),
        ("LIFELINE_NOTIFY_RETRY_SCHEDULE", schedule.to_owned()),
        ("LIFELINE_NOTIFY_POLL_INTERVAL", "50ms".to_owned()),
    ]
}

/// Creates a channel; answers its JSON (with `secret` for a webhook).
pub async fn create_channel(
    system: &System,
    ws: WorkspaceId,
    body: Value,
) -> anyhow::Result<Value> {
    let (status, created) =
        system.post_json(&system.notifier, "/v1/notification-channels", ws, &body).await?;
    if status != 201 {
        bail!("creating a channel {body} answered {status} {created}");
    }
    Ok(created)
}

/// Creates a webhook channel to `url`; answers (channel id, signing secret).
pub async fn webhook_channel(
    system: &System,
    ws: WorkspaceId,
    url: &str,
) -> anyhow::Result<(String, String)> {
    let created = create_channel(system, ws, json!({"kind": "webhook", "url": url})).await?;
    Ok((
        created["id"].as_str().context("id")?.to_owned(),
        created["secret"].as_str().context("secret")?.to_owned(),
    ))
}

/// The refresher's verdict that `account` of `ws` is revoked, as it would publish it (a new
/// NATS message each call, as a redelivery or a repeated verdict would be).
pub async fn inject_auth_failed(
    system: &System,
    ws: WorkspaceId,
    account: uuid::Uuid,
) -> anyhow::Result<()> {
    inject_auth_failed_of(system, ws, account, 1).await
}

/// [`inject_auth_failed`] of the credential `version`.
pub async fn inject_auth_failed_of(
    system: &System,
    ws: WorkspaceId,
    account: uuid::Uuid,
    version: u64,
) -> anyhow::Result<()> {
    let js = async_nats::jetstream::new(system.nats.clone());
    let subject = format!("{}.events.v1.auth_failed.x.{account}", system.subject_root);
    let event = AuthFailed {
        envelope: Some(Envelope::build(
            Subject { workspace_id: ws.0, account_id: account, platform: Platform::X },
            None,
        )),
        cause: AuthFailureCause::Revoked as i32,
        source: AuthFailureSource::Probe as i32,
        detail: "probe refused".into(),
        credential_version: version,
        post_id: String::new(),
    };
    js.publish(subject, event.encode_to_vec().into()).await?.await?;
    Ok(())
}

/// The gateway's word that `account` is reconnected with credential `version`.
pub async fn inject_reconnected(
    system: &System,
    ws: WorkspaceId,
    account: uuid::Uuid,
    version: u64,
) -> anyhow::Result<()> {
    let js = async_nats::jetstream::new(system.nats.clone());
    let subject = format!("{}.events.v1.account_reconnected.x.{account}", system.subject_root);
    let event = AccountReconnected {
        envelope: Some(Envelope::build(
            Subject { workspace_id: ws.0, account_id: account, platform: Platform::X },
            None,
        )),
        credential_version: version,
        ..AccountReconnected::default()
    };
    js.publish(subject, event.encode_to_vec().into()).await?.await?;
    Ok(())
}

/// The publisher's word that `post` of `account` is dead-lettered for `reason`.
pub async fn inject_dead_lettered(
    system: &System,
    ws: WorkspaceId,
    account: uuid::Uuid,
    post: &str,
    reason: &str,
) -> anyhow::Result<()> {
    let js = async_nats::jetstream::new(system.nats.clone());
    let subject = format!("{}.events.v1.post_dead_lettered.x.{account}", system.subject_root);
    let event = PostDeadLettered {
        envelope: Some(Envelope::build(
            Subject { workspace_id: ws.0, account_id: account, platform: Platform::X },
            None,
        )),
        post_id: post.to_owned(),
        kind: PostFailureKind::Rejected as i32,
        reason: reason.to_owned(),
        attempts: 1,
    };
    js.publish(subject, event.encode_to_vec().into()).await?.await?;
    Ok(())
}

/// The channel's delivery log.
pub async fn delivery_log(
    system: &System,
    ws: WorkspaceId,
    channel: &str,
) -> anyhow::Result<Vec<Value>> {
    let path = format!("/v1/notification-channels/{channel}/deliveries");
    let (status, log) = system.get(&system.notifier, &path, ws).await?;
    if status != 200 {
        bail!("{path}: {status} {log}");
    }
    Ok(log["deliveries"].as_array().cloned().unwrap_or_default())
}
