//! The delivery worker: claims due deliveries (`FOR UPDATE SKIP LOCKED` and a lease, at most
//! `channel_concurrency` in flight per channel so a hanging endpoint never holds the others),
//! makes one attempt each under a timeout, logs the attempt, and applies the policy's verdict.
//! A replica that dies mid-attempt leaves a lease that runs out; the retry carries the same
//! `webhook-id`, so a receiver that saw the first attempt can tell.

use std::{sync::Arc, time::Instant};

use chrono::{DateTime, Utc};
use lifeline_vault::VaultKeys;
use secrecy::{ExposeSecret, SecretString};
use sqlx::PgPool;
use tokio::{
    sync::{Notify, Semaphore},
    task::JoinSet,
};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{
    policy::{self, Answer, Next},
    resolve, signing, slack, Settings,
};
use crate::{
    accounts::AccountNames,
    channels::store::{previous_context, secret_context},
};

/// What the worker needs; shared by its attempts.
pub(crate) struct Deliverer {
    pub pool: PgPool,
    pub keys: Arc<VaultKeys>,
    pub http: reqwest::Client,
    pub settings: Settings,
    pub instance: String,
    /// Woken when this replica wrote deliveries, so they go out without waiting for the poll.
    pub wake: Arc<Notify>,
    /// The gateway, for the sign-in links of the messages people read.
    pub names: AccountNames,
}

/// A claimed delivery with what its channel needs to send it.
#[derive(sqlx::FromRow)]
struct Claimed {
    id: Uuid,
    channel_id: Uuid,
    workspace_id: Uuid,
    event_type: String,
    body: String,
    attempts: i32,
    kind: String,
    target: String,
    secret_key_id: Option<String>,
    secret_sealed: Option<Vec<u8>>,
    previous_key_id: Option<String>,
    previous_sealed: Option<Vec<u8>>,
    previous_until: Option<DateTime<Utc>>,
}

pub(crate) async fn run(d: Arc<Deliverer>, shutdown: CancellationToken) {
    let permits = Arc::new(Semaphore::new(d.settings.workers as usize));
    let mut in_flight = JoinSet::new();
    loop {
        while in_flight.try_join_next().is_some() {}
        let free = permits.available_permits();
        if free > 0 {
            match claim(&d, free).await {
                Ok(batch) => {
                    for c in batch {
                        let Ok(permit) = permits.clone().acquire_owned().await else { break };
                        let d = d.clone();
                        in_flight.spawn(async move {
                            attempt(&d, c).await;
                            drop(permit);
                        });
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot claim deliveries; will try again"),
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = d.wake.notified() => {}
            () = tokio::time::sleep(d.settings.poll) => {}
        }
    }
    // Attempts in flight end within their timeout; let them write their outcome.
    while in_flight.join_next().await.is_some() {}
}

/// Leases up to `limit` due deliveries, no more per channel than the cap minus those already
/// in flight, and counts the attempt now (one that dies with its replica was still made).
async fn claim(d: &Deliverer, limit: usize) -> Result<Vec<Claimed>, sqlx::Error> {
    sqlx::query_as(
        "WITH busy AS (
             SELECT c.id, $3::bigint - (SELECT count(*) FROM notifier.deliveries x
                 WHERE x.channel_id = c.id AND x.status = 'pending' AND x.lease_until >= now()) AS room
             FROM notifier.channels c
             WHERE c.disabled_at IS NULL AND c.id IN (SELECT channel_id FROM notifier.deliveries
                 WHERE status = 'pending' AND next_attempt_at <= now())
         ), picked AS (
             SELECT p.id FROM busy b CROSS JOIN LATERAL (
                 SELECT d.id FROM notifier.deliveries d
                 WHERE d.channel_id = b.id AND d.status = 'pending' AND d.next_attempt_at <= now()
                   AND (d.lease_until IS NULL OR d.lease_until < now())
                 ORDER BY d.next_attempt_at LIMIT GREATEST(b.room, 0)
                 FOR UPDATE SKIP LOCKED) p
             LIMIT $4
         )
         UPDATE notifier.deliveries d
         SET leased_by = $1, lease_until = now() + make_interval(secs => $2), attempts = d.attempts + 1
         FROM picked, notifier.channels c
         WHERE d.id = picked.id AND c.id = d.channel_id
         RETURNING d.id, d.channel_id, d.workspace_id, d.event_type, d.body, d.attempts, c.kind, c.target,
             c.secret_key_id, c.secret_sealed, c.previous_key_id, c.previous_sealed, c.previous_until",
    )
    .bind(&d.instance)
    .bind(d.settings.lease().as_secs_f64())
    .bind(i64::from(d.settings.channel_concurrency))
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(&d.pool)
    .await
}

/// One attempt's result for the log.
struct Tried {
    answer: Answer,
    latency_ms: i32,
    /// Why there was no 2xx, in words without secrets (never a Slack URL).
    error: Option<String>,
}

async fn attempt(d: &Deliverer, c: Claimed) {
    let started = Instant::now();
    let (answer, error) = match send(d, &c).await {
        Ok(status) => {
            let answer = Answer::Status(status);
            let error = (!answer.delivered()).then(|| format!("HTTP {status}"));
            (answer, error)
        }
        Err(e) => (Answer::NoAnswer, Some(e)),
    };
    let latency_ms = i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX);
    let tried = Tried { answer, latency_ms, error };
    match record(d, &c, &tried).await {
        Ok(next) => tracing::info!(delivery = %c.id, channel = %c.channel_id, kind = %c.kind,
            event = %c.event_type, attempt = c.attempts, outcome = ?next, latency_ms, "delivery attempt"),
        Err(e) => tracing::warn!(delivery = %c.id, error = %e,
            "cannot record a delivery attempt; its lease will run out and it is retried"),
    }
}

/// The body of a message a person reads (Slack, email): its `reconnect_url` becomes a
/// single-use sign-in link to the Accounts page at the account, minted now so that its
/// lifetime (`LIFELINE_NOTIFY_LINK_TTL`) starts when the message goes out. Webhooks keep the
/// plain page URL: they go to the integrating company's systems, not to a person. Without an
/// answer from the gateway the plain URL stays (a signed-in browser still opens it).
async fn for_people(d: &Deliverer, c: &Claimed) -> Result<serde_json::Value, String> {
    let mut body: serde_json::Value =
        serde_json::from_str(&c.body).map_err(|e| format!("unreadable body: {e}"))?;
    let data = &body["data"];
    let account = data["account_id"].as_str().and_then(|a| a.parse::<Uuid>().ok());
    if let (Some(account), true) = (account, data["reconnect_url"].is_string()) {
        let workspace = lifeline_kit::ids::WorkspaceId(c.workspace_id);
        match d.names.sign_in_link(workspace, account, d.settings.link_ttl).await {
            Some(link) => body["data"]["reconnect_url"] = link.into(),
            None => tracing::warn!(delivery = %c.id, account = %account,
                "no sign-in link from the gateway; the message links the page without one"),
        }
    }
    Ok(body)
}

/// Sends one attempt; the endpoint's status, or why there is none.
async fn send(d: &Deliverer, c: &Claimed) -> Result<u16, String> {
    let open = |key: &Option<String>, sealed: &Option<Vec<u8>>, context: String| match (key, sealed)
    {
        (Some(k), Some(s)) => d.keys.open_bound(k, &context, s).map(Some),
        _ => Ok(None),
    };
    let secret = open(&c.secret_key_id, &c.secret_sealed, secret_context(c.channel_id))
        .map_err(|_| "the channel's secret cannot be opened with this replica's vault keys")?;
    let request = match c.kind.as_str() {
        "webhook" => {
            let mut secrets: Vec<SecretString> = secret.into_iter().collect();
            if c.previous_until.is_some_and(|u| u > Utc::now()) {
                if let Ok(Some(old)) =
                    open(&c.previous_key_id, &c.previous_sealed, previous_context(c.channel_id))
                {
                    secrets.push(old);
                }
            }
            let timestamp = Utc::now().timestamp();
            let id = c.id.to_string();
            let refs: Vec<&SecretString> = secrets.iter().collect();
            let url = resolve::check_url(&c.target, d.settings.allow_private_targets)?;
            d.http
                .post(url)
                .header("content-type", "application/json")
                .header("webhook-id", &id)
                .header("webhook-timestamp", timestamp.to_string())
                .header(
                    "webhook-signature",
                    signing::signature_header(&refs, &id, timestamp, &c.body),
                )
                .body(c.body.clone())
        }
        "slack" => {
            let url = secret.ok_or("the Slack channel has no URL")?;
            let body = for_people(d, c).await?;
            let url = resolve::check_url(url.expose_secret(), d.settings.allow_private_targets)?;
            d.http.post(url).json(&slack::message(&body))
        }
        "email" => {
            let smtp = d
                .settings
                .smtp
                .as_ref()
                .ok_or("no SMTP server is configured (LIFELINE_SMTP_HOST)")?;
            let body = for_people(d, c).await?;
            return super::email::send(smtp, d.settings.timeout, c.id, &c.target, &body).await;
        }
        other => return Err(format!("{other} channels are not delivered by this version")),
    };
    let response = request.timeout(d.settings.timeout).send().await.map_err(|e| describe(&e))?;
    Ok(response.status().as_u16())
}

/// A reqwest error in words, without its URL (a Slack URL is a credential).
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    let mut source = std::error::Error::source(e);
    let mut detail = String::new();
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    if detail.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}: {detail}")
    }
}

/// Logs the attempt and applies the verdict, if this replica still holds the lease.
async fn record(d: &Deliverer, c: &Claimed, tried: &Tried) -> Result<Next, sqlx::Error> {
    let attempt = u32::try_from(c.attempts).unwrap_or(1);
    let now = Utc::now();
    let next = policy::after_attempt(&d.settings.schedule, attempt, &tried.answer, now);
    let mut tx = d.pool.begin().await?;
    let status_code = match tried.answer {
        Answer::Status(s) => Some(i32::from(s)),
        Answer::NoAnswer => None,
    };
    sqlx::query(
        "INSERT INTO notifier.delivery_attempts (delivery_id, status_code, latency_ms, error, attempted_by)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(c.id)
    .bind(status_code)
    .bind(tried.latency_ms)
    .bind(&tried.error)
    .bind(&d.instance)
    .execute(&mut *tx)
    .await?;
    let (status, next_at) = match &next {
        Next::Delivered => ("delivered", None),
        Next::RetryAt(at) => ("pending", Some(*at)),
        Next::GaveUp => ("failed", None),
    };
    sqlx::query(
        "UPDATE notifier.deliveries SET status = $3, next_attempt_at = COALESCE($4, next_attempt_at),
             delivered_at = CASE WHEN $3 = 'delivered' THEN now() END, leased_by = NULL, lease_until = NULL
         WHERE id = $1 AND leased_by = $2",
    )
    .bind(c.id)
    .bind(&d.instance)
    .bind(status)
    .bind(next_at)
    .execute(&mut *tx)
    .await?;
    track_channel_health(d, &mut tx, c.channel_id, tried.answer.delivered(), now).await?;
    tx.commit().await?;
    Ok(next)
}

/// A success clears the channel's failing streak; a failure starts or extends it, and a streak
/// longer than the setting disables the channel and tells the workspace in the app.
async fn track_channel_health(
    d: &Deliverer,
    tx: &mut sqlx::PgConnection,
    channel: Uuid,
    delivered: bool,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    if delivered {
        sqlx::query("UPDATE notifier.channels SET failing_since = NULL WHERE id = $1")
            .bind(channel)
            .execute(&mut *tx)
            .await?;
        return Ok(());
    }
    let row: Option<(Option<DateTime<Utc>>, Uuid, String, String)> = sqlx::query_as(
        "UPDATE notifier.channels SET failing_since = COALESCE(failing_since, now())
         WHERE id = $1 AND disabled_at IS NULL RETURNING failing_since, workspace_id, kind, target",
    )
    .bind(channel)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((since, workspace, kind, target)) = row else { return Ok(()) };
    if !policy::should_disable(since, now, d.settings.disable_after) {
        return Ok(());
    }
    let days = lifeline_kit::config::format_duration(d.settings.disable_after);
    let reason = format!("every delivery failed for {days}");
    sqlx::query(
        "UPDATE notifier.channels SET disabled_at = now(), disabled_reason = $2 WHERE id = $1",
    )
    .bind(channel)
    .bind(&reason)
    .execute(&mut *tx)
    .await?;
    // Abandoned, not parked: enabling the channel again sends nothing retroactively.
    sqlx::query(
        "UPDATE notifier.deliveries SET status = 'failed', leased_by = NULL, lease_until = NULL
         WHERE channel_id = $1 AND status = 'pending'",
    )
    .bind(channel)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO notifier.notifications (id, workspace_id, kind, title, body, dedupe_key)
         VALUES ($1, $2, 'channel_disabled', $3, $4, $5) ON CONFLICT (dedupe_key) DO NOTHING",
    )
    .bind(Uuid::now_v7())
    .bind(workspace)
    .bind(format!("A {kind} notification channel was disabled"))
    .bind(format!(
        "Lifeline stopped sending to {target} because {reason}. Check the endpoint, then enable \
         the channel again (POST /v1/notification-channels/{channel}/enable) to receive \
         notifications there; what was not delivered meanwhile is in its delivery log."
    ))
    // One notice per disabling: a channel enabled again and disabled later is told again.
    .bind(format!(
        "channel-disabled:{channel}:{}",
        since.map(|s| s.timestamp_micros()).unwrap_or(0)
    ))
    .execute(&mut *tx)
    .await?;
    metrics::counter!("lifeline_notify_channels_disabled_total").increment(1);
    tracing::warn!(channel = %channel, kind = %kind, "notification channel disabled after failing too long");
    Ok(())
}
