//! The post row and its states.

use chrono::{DateTime, Utc};
use lifeline_kit::ids::{AccountId, PostId, WorkspaceId};
use serde::Serialize;
use utoipa::ToSchema;

/// A post's status, as the API names it.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)] // only its schema is used; the status is stored and served as text
pub enum PostStatus {
    /// Waiting for its time (or for its next retry).
    Scheduled,
    /// Being sent to the platform now.
    Publishing,
    Published,
    /// The platform refused the account's credentials: it waits for a reconnect.
    FailedAuth,
    /// A retry is queued (after a reconnect or an operator's replay).
    RetryRequested,
    /// It cannot go out without an operator.
    DeadLettered,
    /// Its workspace cancelled it before it went out.
    Cancelled,
}

/// The kind of a post's media.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)] // only its schema is used
pub enum MediaKindName {
    Image,
    Video,
}

/// A post and where it stands.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct Post {
    pub id: PostId,
    pub workspace_id: WorkspaceId,
    pub account_id: AccountId,
    #[schema(value_type = lifeline_kit::openapi::PlatformName)]
    pub platform: String,
    /// The text as it will be published.
    pub body: String,
    #[schema(required = true)]
    pub media_url: Option<String>,
    #[schema(value_type = Option<MediaKindName>, required = true)]
    pub media_kind: Option<String>,
    #[schema(required = true)]
    pub idempotency_key: Option<String>,
    pub scheduled_at: DateTime<Utc>,
    #[schema(value_type = PostStatus)]
    pub status: String,
    /// When the publisher may next take it (its time, or later after a failure).
    pub next_attempt_at: DateTime<Utc>,
    /// Attempts made so far.
    pub attempts: i32,
    /// Failures that count towards the retry window (transient, ambiguous).
    pub retryable_failures: i32,
    /// Since when the platform has been down for it (its breaker open).
    #[schema(required = true)]
    pub unavailable_since: Option<DateTime<Utc>>,
    /// The last attempt's outcome is unknown: the platform is checked before sending again.
    pub needs_reconcile: bool,
    #[serde(skip)]
    #[schema(ignore)]
    pub reconcile_since: Option<DateTime<Utc>>,
    #[schema(required = true)]
    pub platform_post_id: Option<String>,
    /// `auth`, `rate_limited`, `transient`, `ambiguous` or `rejected`.
    #[schema(required = true)]
    pub last_failure_kind: Option<String>,
    #[schema(required = true)]
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[schema(required = true)]
    pub published_at: Option<DateTime<Utc>>,
    #[schema(required = true)]
    pub cancelled_at: Option<DateTime<Utc>>,
}

pub const POST_COLUMNS: &str = "id, workspace_id, account_id, platform, body, media_url, media_kind, idempotency_key, scheduled_at, status,
    next_attempt_at, attempts, retryable_failures, unavailable_since, needs_reconcile, reconcile_since, platform_post_id,
    last_failure_kind, last_error, created_at, updated_at, published_at, cancelled_at";

/// Same columns qualified with the alias `p`, for `UPDATE … FROM` statements.
pub fn qualified_columns() -> String {
    POST_COLUMNS.split(',').map(|c| format!("p.{}", c.trim())).collect::<Vec<_>>().join(", ")
}

impl Post {
    /// The post as a connector sends it.
    pub fn draft(&self) -> lifeline_platforms::PostDraft {
        use lifeline_platforms::{Media, MediaKind};
        let media = match (&self.media_url, self.media_kind.as_deref()) {
            // The table's CHECK admits only the kinds `parse` knows.
            (Some(url), Some(kind)) => {
                MediaKind::parse(kind).map(|kind| Media { url: url.clone(), kind })
            }
            _ => None,
        };
        lifeline_platforms::PostDraft { text: self.body.clone(), media }
    }
}
