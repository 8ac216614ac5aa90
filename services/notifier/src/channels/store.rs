//! Channels in Postgres: created with their secret sealed by the vault (bound to the channel
//! id, so a sealed secret copied to another row does not open), listed without secrets,
//! deleted, and rotated with the previous signing secret kept for a while.

use chrono::{DateTime, Utc};
use lifeline_kit::ids::WorkspaceId;
use lifeline_vault::VaultKeys;
use secrecy::SecretString;
use serde::Serialize;
use sqlx::PgPool;
use utoipa::ToSchema;
use uuid::Uuid;

/// What a channel sends to, parsed at the edge.
#[derive(Clone, Debug)]
pub enum Target {
    Webhook {
        url: url::Url,
    },
    /// The incoming-webhook URL is itself the credential: it is sealed, and only its host shown.
    Slack {
        url: url::Url,
    },
    Email {
        address: String,
    },
}

impl Target {
    pub fn kind(&self) -> &'static str {
        match self {
            Target::Webhook { .. } => "webhook",
            Target::Slack { .. } => "slack",
            Target::Email { .. } => "email",
        }
    }

    /// What may be shown and stored in clear.
    fn shown(&self) -> String {
        match self {
            Target::Webhook { url } => url.to_string(),
            Target::Slack { url } => {
                format!("{}://{}/…", url.scheme(), url.host_str().unwrap_or(""))
            }
            Target::Email { address } => address.clone(),
        }
    }
}

/// The vault context of a channel's current secret (signing secret or Slack URL).
pub fn secret_context(channel: Uuid) -> String {
    format!("notifier:channel:{channel}:secret")
}

/// The vault context of the signing secret a rotation replaced.
pub fn previous_context(channel: Uuid) -> String {
    format!("notifier:channel:{channel}:previous-secret")
}

/// A channel as the API shows it: never a secret.
#[derive(Serialize, sqlx::FromRow, ToSchema)]
pub struct Channel {
    pub id: Uuid,
    /// `webhook`, `slack` or `email`.
    #[schema(example = "webhook")]
    pub kind: String,
    /// The webhook URL, the email address, or for Slack only the host (the URL is a secret).
    pub target: String,
    pub created_at: DateTime<Utc>,
    /// Since when every attempt failed (null after a success).
    #[schema(required = true)]
    pub failing_since: Option<DateTime<Utc>>,
    /// When it was disabled for failing too long (null while enabled).
    #[schema(required = true)]
    pub disabled_at: Option<DateTime<Utc>>,
    #[schema(required = true)]
    pub disabled_reason: Option<String>,
    /// Until when the signing secret replaced by the last rotation still signs (webhooks).
    #[schema(required = true)]
    pub previous_secret_valid_until: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, kind, target, created_at, failing_since, disabled_at, disabled_reason, \
                       previous_until AS previous_secret_valid_until";

/// Creates a channel; answers the webhook signing secret, the only time it is shown.
pub async fn create(
    pool: &PgPool,
    keys: &VaultKeys,
    workspace: WorkspaceId,
    target: &Target,
) -> Result<(Channel, Option<SecretString>), sqlx::Error> {
    let id = Uuid::now_v7();
    let (secret, shown_secret) = match target {
        Target::Webhook { .. } => {
            let s = crate::delivery::signing::new_secret();
            (Some(s.clone()), Some(s))
        }
        Target::Slack { url } => (Some(SecretString::from(url.to_string())), None),
        Target::Email { .. } => (None, None),
    };
    let sealed = secret.as_ref().map(|s| keys.seal_bound(&secret_context(id), s));
    let key_id = secret.as_ref().map(|_| keys.active_key_id().to_owned());
    let channel: Channel = sqlx::query_as(&format!(
        "INSERT INTO notifier.channels (id, workspace_id, kind, target, secret_key_id, secret_sealed)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(workspace)
    .bind(target.kind())
    .bind(target.shown())
    .bind(key_id)
    .bind(sealed)
    .fetch_one(pool)
    .await?;
    Ok((channel, shown_secret))
}

pub async fn list(pool: &PgPool, workspace: WorkspaceId) -> Result<Vec<Channel>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM notifier.channels WHERE workspace_id = $1 ORDER BY created_at"
    ))
    .bind(workspace)
    .fetch_all(pool)
    .await
}

/// The channel if it is the workspace's.
pub async fn get(
    pool: &PgPool,
    workspace: WorkspaceId,
    id: Uuid,
) -> Result<Option<Channel>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM notifier.channels WHERE workspace_id = $1 AND id = $2"
    ))
    .bind(workspace)
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// Deletes a channel and its deliveries; false if the workspace has no such channel.
pub async fn delete(pool: &PgPool, workspace: WorkspaceId, id: Uuid) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM notifier.channels WHERE workspace_id = $1 AND id = $2")
        .bind(workspace)
        .bind(id)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Enables a channel that was disabled for failing too long: clears `disabled_at` and the
/// failing streak. Deliveries abandoned while it was disabled are marked `failed` (a manual
/// redelivery can still send one), so nothing goes out retroactively. A channel that is not
/// disabled is left as it is. `None` if the workspace has no such channel.
pub async fn enable(
    pool: &PgPool,
    workspace: WorkspaceId,
    id: Uuid,
) -> Result<Option<Channel>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let was: Option<(Option<DateTime<Utc>>,)> = sqlx::query_as(
        "SELECT disabled_at FROM notifier.channels WHERE workspace_id = $1 AND id = $2 FOR UPDATE",
    )
    .bind(workspace)
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((disabled_at,)) = was else { return Ok(None) };
    if disabled_at.is_some() {
        sqlx::query(
            "UPDATE notifier.deliveries SET status = 'failed', leased_by = NULL, lease_until = NULL
             WHERE channel_id = $1 AND status = 'pending'",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE notifier.channels SET disabled_at = NULL, disabled_reason = NULL, failing_since = NULL
             WHERE id = $1",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
    }
    let channel: Channel =
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM notifier.channels WHERE id = $1"))
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
    tx.commit().await?;
    Ok(Some(channel))
}

/// Why a rotation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    #[error("no such channel")]
    NotFound,
    #[error("only webhook channels have a signing secret")]
    NotWebhook,
    #[error("the current secret cannot be opened: {0}")]
    Vault(#[from] lifeline_vault::VaultError),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Replaces a webhook's signing secret; the replaced one keeps signing for `overlap`. Answers
/// the new secret and until when the old one signs.
pub async fn rotate(
    pool: &PgPool,
    keys: &VaultKeys,
    workspace: WorkspaceId,
    id: Uuid,
    overlap: std::time::Duration,
) -> Result<(SecretString, DateTime<Utc>), RotateError> {
    let mut tx = pool.begin().await?;
    let row: Option<(String, Option<String>, Option<Vec<u8>>)> = sqlx::query_as(
        "SELECT kind, secret_key_id, secret_sealed FROM notifier.channels
         WHERE workspace_id = $1 AND id = $2 FOR UPDATE",
    )
    .bind(workspace)
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let (kind, key_id, sealed) = row.ok_or(RotateError::NotFound)?;
    let (Some(key_id), Some(sealed)) = (key_id, sealed) else {
        return Err(RotateError::NotWebhook);
    };
    if kind != "webhook" {
        return Err(RotateError::NotWebhook);
    }
    let current = keys.open_bound(&key_id, &secret_context(id), &sealed)?;
    let next = crate::delivery::signing::new_secret();
    let until = Utc::now() + chrono::Duration::from_std(overlap).unwrap_or_default();
    sqlx::query(
        "UPDATE notifier.channels SET secret_key_id = $2, secret_sealed = $3,
             previous_key_id = $2, previous_sealed = $4, previous_until = $5
         WHERE id = $1",
    )
    .bind(id)
    .bind(keys.active_key_id())
    .bind(keys.seal_bound(&secret_context(id), &next))
    .bind(keys.seal_bound(&previous_context(id), &current))
    .bind(until)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((next, until))
}
