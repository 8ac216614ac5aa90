//! What the notification tests need around the cluster: a real webhook receiver on loopback
//! that answers slowly and records every request, webhook channels and their delivery logs
//! through the notifier's API, and the refresher's `AuthFailed` verdict published on the bus.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _};
use axum::{body::Bytes, http::HeaderMap, http::StatusCode, Router};
use lifeline_events::{AuthFailed, AuthFailureCause, AuthFailureSource, Envelope, Subject};
use lifeline_kit::{ids::WorkspaceId, Platform};
use prost::Message as _;
use rand::Rng as _;
use serde_json::{json, Value};
use tokio::{net::TcpListener, task::JoinHandle};

use crate::cluster::Cluster;

/// One request the receiver got (recorded when it arrived, before the answer).
#[derive(Clone, Debug)]
pub struct Hit {
    pub webhook_id: String,
    pub body: String,
    pub at: Instant,
}

impl Hit {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// A webhook endpoint: answers 200 after a random delay in `delay` (a slow receiver keeps
/// deliveries in flight), on any path.
pub struct SlowReceiver {
    pub url: String,
    hits: Arc<Mutex<Vec<Hit>>>,
    task: JoinHandle<()>,
}

impl Drop for SlowReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SlowReceiver {
    pub async fn start(delay: std::ops::Range<u64>) -> anyhow::Result<SlowReceiver> {
        let hits: Arc<Mutex<Vec<Hit>>> = Arc::default();
        let log = hits.clone();
        let handler = move |headers: HeaderMap, body: Bytes| {
            let log = log.clone();
            let delay = delay.clone();
            async move {
                let hit = Hit {
                    webhook_id: headers
                        .get("webhook-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned(),
                    body: String::from_utf8_lossy(&body).into_owned(),
                    at: Instant::now(),
                };
                if let Ok(mut l) = log.lock() {
                    l.push(hit);
                }
                let ms = rand::thread_rng().gen_range(delay);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                StatusCode::OK
            }
        };
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let url = format!("http://{}/hook", listener.local_addr()?);
        let app = Router::new().fallback(handler);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(SlowReceiver { url, hits, task })
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.hits.lock().map(|h| h.clone()).unwrap_or_default()
    }
}

impl Cluster {
    /// Creates a webhook channel of `ws` to `url` on notifier replica `replica`; its id.
    pub async fn webhook_channel(
        &self,
        ws: WorkspaceId,
        url: &str,
        replica: usize,
    ) -> anyhow::Result<String> {
        let notifiers = self.urls_of("notifier");
        let base = &notifiers[replica % notifiers.len()];
        let (status, body) = self
            .post_as(
                &format!("{base}/v1/notification-channels"),
                ws,
                &json!({"kind": "webhook", "url": url}),
            )
            .await?;
        if status != 201 {
            bail!("creating a webhook channel to {url}: {status} {body}");
        }
        Ok(body["id"].as_str().context("channel id")?.to_owned())
    }

    /// A channel's delivery log (newest 100), from any notifier replica that answers.
    pub async fn delivery_log(&self, ws: WorkspaceId, channel: &str) -> anyhow::Result<Vec<Value>> {
        let mut last = None;
        for base in self.urls_of("notifier") {
            let url = format!("{base}/v1/notification-channels/{channel}/deliveries");
            match self.get_as(&url, ws).await {
                Ok((200, body)) => {
                    return Ok(body["deliveries"].as_array().cloned().unwrap_or_default())
                }
                Ok((code, body)) => last = Some(anyhow::anyhow!("{base}: {code} {body}")),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("no notifier")))
    }
}

/// Publishes the refresher's verdict that X account `account` of `ws` is revoked (credential
/// version 1), as a new message each call, as a redelivery would be.
pub async fn publish_auth_failed(
    js: &async_nats::jetstream::Context,
    root: &str,
    ws: WorkspaceId,
    account: uuid::Uuid,
) -> anyhow::Result<()> {
    let subject = format!("{root}.events.v1.auth_failed.x.{account}");
    let event = AuthFailed {
        envelope: Some(Envelope::build(
            Subject { workspace_id: ws.0, account_id: account, platform: Platform::X },
            None,
        )),
        cause: AuthFailureCause::Revoked as i32,
        source: AuthFailureSource::Refresh as i32,
        detail: "refresh refused: invalid_grant".into(),
        credential_version: 1,
        post_id: String::new(),
    };
    js.publish(subject, event.encode_to_vec().into()).await?.await?;
    Ok(())
}
