//! End-to-end tests of the whole system against real NATS, Postgres and HTTP (see `lifeline_e2e`).

mod account_state;
mod ambiguous;
mod api_schema;
mod browser;
mod config;
mod event_dlq;
mod examples;
mod isolation;
mod media;
mod notify;
mod notify_content;
mod notify_digest;
mod notify_email;
mod notify_flapping;
mod notify_reference;
mod notify_reminder;
mod notify_webhook;
mod oauth_binding;
mod oauth_rejections;
mod outage;
mod pacing;
mod page_links;
mod platforms;
mod poison;
mod posts;
mod reconcile;
mod reconnect;
mod refresh;
mod replay;
mod rewrap;
mod roles;
mod secrets;

use std::time::Duration;

use anyhow::{bail, Context as _};
use lifeline_e2e::{eventually, System};
use lifeline_kit::ids::WorkspaceId;

/// Connects a new X account for `username` in a new workspace; returns (workspace, account id).
pub async fn connected_account(
    system: &System,
    username: &str,
) -> anyhow::Result<(WorkspaceId, String)> {
    let ws = WorkspaceId::new();
    let (status, body) = system.oauth(ws, None, username).await?;
    if status != 200 || body["result"] != "connected" {
        bail!("connect failed: {status} {body}");
    }
    Ok((ws, body["account_id"].as_str().context("account_id")?.to_owned()))
}

/// Waits until a post reaches `status`.
pub async fn post_reaches(
    system: &System,
    ws: WorkspaceId,
    post: &str,
    status: &str,
) -> anyhow::Result<serde_json::Value> {
    eventually(Duration::from_secs(30), || async {
        let (code, body) = system.get(&system.publisher, &format!("/v1/posts/{post}"), ws).await?;
        if code == 200 && body["status"] == status {
            Ok(body)
        } else {
            bail!("post {post} is {code} {}", body["status"])
        }
    })
    .await
}
