//! The dead-letter digest: every `PostDeadLettered` is kept ([`on_dead_lettered`]) until a
//! periodic pass ([`send_due`]) lists a workspace's waiting posts in one message, at most one per
//! `LIFELINE_NOTIFY_DIGEST_INTERVAL`. The workspace's `digests` row is locked while its digest
//! is written, so two replicas never send it twice.

use chrono::{DateTime, Utc};
use lifeline_kit::{
    bus::{Bus, Delivery, HandlerError},
    events::{from_timestamp, PostDeadLettered, PostFailureKind},
    ids::WorkspaceId,
    service::spawn_consumer,
    Platform,
};
use serde_json::json;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{delivery::enqueue, message, AppState};

/// Workspaces whose digest one pass looks at.
const BATCH: i64 = 100;

pub(crate) fn spawn(
    tasks: &mut JoinSet<()>,
    bus: &Bus,
    app: &AppState,
    shutdown: &CancellationToken,
) {
    spawn_consumer(tasks, bus, 8, app.clone(), on_dead_lettered, shutdown.clone());
    tasks.spawn(send_when_due(app.clone(), shutdown.clone()));
}

/// `rejected` for `POST_FAILURE_KIND_REJECTED`.
fn kind_name(raw: i32) -> String {
    PostFailureKind::try_from(raw)
        .unwrap_or(PostFailureKind::Unspecified)
        .as_str_name()
        .trim_start_matches("POST_FAILURE_KIND_")
        .to_ascii_lowercase()
}

async fn on_dead_lettered(
    app: AppState,
    e: PostDeadLettered,
    d: Delivery,
) -> Result<(), HandlerError> {
    let about = d.about;
    let envelope = e.envelope.unwrap_or_default();
    let at = envelope.occurred_at.as_ref().and_then(from_timestamp).unwrap_or_else(Utc::now);
    let mut tx = app.pool.begin().await?;
    sqlx::query(
        "INSERT INTO notifier.dead_letters
             (event_id, workspace_id, account_id, platform, post_id, kind, reason, attempts, dead_lettered_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(&envelope.event_id)
    .bind(about.workspace_id)
    .bind(about.account_id)
    .bind(about.platform.as_str())
    .bind(&e.post_id)
    .bind(kind_name(e.kind))
    .bind(&e.reason)
    .bind(i32::try_from(e.attempts).unwrap_or(i32::MAX))
    .bind(at)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO notifier.digests (workspace_id) VALUES ($1) ON CONFLICT (workspace_id) DO NOTHING",
    )
    .bind(about.workspace_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    tracing::debug!(post = %e.post_id, account = %about.account_id, "dead letter kept for the digest");
    Ok(())
}

/// Looks for due digests every tenth of the interval (between 200 ms and 30 s).
async fn send_when_due(app: AppState, shutdown: CancellationToken) {
    let tick = (app.digest_interval / 10)
        .clamp(std::time::Duration::from_millis(200), std::time::Duration::from_secs(30));
    loop {
        if let Err(e) = send_due(&app).await {
            tracing::warn!(error = %e, "cannot send dead-letter digests; will try again");
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(tick) => {}
        }
    }
}

/// A workspace whose digest may be due, its `digests` row locked.
#[derive(sqlx::FromRow)]
struct Candidate {
    workspace_id: Uuid,
    last_sent_at: Option<DateTime<Utc>>,
    oldest_waiting: Option<DateTime<Utc>>,
}

/// A dead letter waiting for its digest.
#[derive(sqlx::FromRow)]
struct Waiting {
    event_id: String,
    account_id: Uuid,
    platform: String,
    post_id: String,
    kind: String,
    reason: String,
    attempts: i32,
    dead_lettered_at: DateTime<Utc>,
}

/// One pass: each workspace with posts waiting whose digest is due gets it, in one transaction
/// that holds the workspace's `digests` row (another replica skips it).
async fn send_due(app: &AppState) -> Result<(), sqlx::Error> {
    let mut tx = app.pool.begin().await?;
    let candidates: Vec<Candidate> = sqlx::query_as(
        "SELECT d.workspace_id, d.last_sent_at,
                (SELECT min(l.received_at) FROM notifier.dead_letters l
                 WHERE l.workspace_id = d.workspace_id AND l.digest_id IS NULL) AS oldest_waiting
         FROM notifier.digests d
         WHERE EXISTS (SELECT 1 FROM notifier.dead_letters l
                       WHERE l.workspace_id = d.workspace_id AND l.digest_id IS NULL)
         ORDER BY d.workspace_id LIMIT $1 FOR UPDATE OF d SKIP LOCKED",
    )
    .bind(BATCH)
    .fetch_all(&mut *tx)
    .await?;
    let now: DateTime<Utc> = sqlx::query_scalar("SELECT now()").fetch_one(&mut *tx).await?;
    let mut sent = 0;
    for c in candidates {
        if message::digest_due(c.oldest_waiting, c.last_sent_at, now, app.digest_interval) {
            send(&mut tx, WorkspaceId(c.workspace_id)).await?;
            sent += 1;
        }
    }
    tx.commit().await?;
    if sent > 0 {
        app.wake.notify_one();
    }
    Ok(())
}

/// Writes one workspace's digest (a notification and its deliveries) of every post waiting.
async fn send(tx: &mut sqlx::PgConnection, workspace: WorkspaceId) -> Result<(), sqlx::Error> {
    let waiting: Vec<Waiting> = sqlx::query_as(
        "SELECT event_id, account_id, platform, post_id, kind, reason, attempts, dead_lettered_at
         FROM notifier.dead_letters WHERE workspace_id = $1 AND digest_id IS NULL
         ORDER BY dead_lettered_at, post_id",
    )
    .bind(workspace)
    .fetch_all(&mut *tx)
    .await?;
    let listed: Vec<message::DeadLetter> = waiting
        .iter()
        .map(|w| message::DeadLetter {
            post_id: w.post_id.clone(),
            platform: w
                .platform
                .parse::<Platform>()
                .map_or_else(|_| w.platform.clone(), |p| p.display_name().to_owned()),
            kind: w.kind.clone(),
            reason: w.reason.clone(),
        })
        .collect();
    let words = message::dead_letter_digest(&listed);
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO notifier.notifications (id, workspace_id, kind, title, body, dedupe_key)
         VALUES ($1, $2, 'posts_dead_lettered', $3, $4, $5)",
    )
    .bind(id)
    .bind(workspace)
    .bind(&words.title)
    .bind(format!("{} {}", words.body, words.advice))
    .bind(format!("digest:{id}"))
    .execute(&mut *tx)
    .await?;
    let events: Vec<&str> = waiting.iter().map(|w| w.event_id.as_str()).collect();
    sqlx::query("UPDATE notifier.dead_letters SET digest_id = $1 WHERE event_id = ANY($2)")
        .bind(id)
        .bind(&events)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE notifier.digests SET last_sent_at = now() WHERE workspace_id = $1")
        .bind(workspace)
        .execute(&mut *tx)
        .await?;
    let posts: Vec<_> = waiting
        .iter()
        .map(|w| {
            let post = &w.post_id;
            json!({
                "post_id": post, "account_id": w.account_id, "platform": w.platform,
                "kind": w.kind, "reason": w.reason, "attempts": w.attempts,
                "dead_lettered_at": w.dead_lettered_at,
                "replay": {
                    "api": format!("POST /v1/dead-letters/{post}/replay"),
                    "cli": format!("lifelinectl dead-letters replay --post {post}"),
                },
            })
        })
        .collect();
    let data = json!({
        "notification_id": id,
        "workspace_id": workspace,
        "count": posts.len(),
        "posts": posts,
        "title": words.title,
        "body": words.body,
        "advice": words.advice,
    });
    enqueue::to_workspace(tx, workspace, Some(id), "posts.dead_lettered", &data).await?;
    metrics::counter!("lifeline_notifications_total", "kind" => "posts_dead_lettered").increment(1);
    tracing::info!(workspace = %workspace, posts = listed.len(), "dead-letter digest sent");
    Ok(())
}
