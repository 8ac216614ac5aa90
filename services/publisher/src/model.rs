//! The post row and its states.

use chrono::{DateTime, Utc};
use lifeline_kit::ids::{AccountId, PostId, WorkspaceId};
use serde::Serialize;

/// Every column a post has; `RETURNING` clauses and API views use [`POST_COLUMNS`].
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Post {
    pub id: PostId,
    pub workspace_id: WorkspaceId,
    pub account_id: AccountId,
    pub platform: String,
    pub body: String,
    pub media_url: Option<String>,
    pub media_kind: Option<String>,
    pub idempotency_key: Option<String>,
    pub scheduled_at: DateTime<Utc>,
    pub status: String,
    pub next_attempt_at: DateTime<Utc>,
    pub attempts: i32,
    pub retryable_failures: i32,
    pub unavailable_since: Option<DateTime<Utc>>,
    pub needs_reconcile: bool,
    #[serde(skip)]
    pub reconcile_since: Option<DateTime<Utc>>,
    pub platform_post_id: Option<String>,
    pub last_failure_kind: Option<String>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub published_at: Option<DateTime<Utc>>,
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
