//! The post row and its states.

use chrono::{DateTime, Utc};
use lifeline_kit::{
    ids::{AccountId, PostId, WorkspaceId},
    Platform,
};
use lifeline_platforms::MediaKind;
use serde::Serialize;
use utoipa::ToSchema;

// The database's `status` column holds the same names (see `as_str`).
/// A post's status, as the API names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(rename_all = "snake_case")]
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

impl PostStatus {
    pub const ALL: [PostStatus; 7] = [
        PostStatus::Scheduled,
        PostStatus::Publishing,
        PostStatus::Published,
        PostStatus::FailedAuth,
        PostStatus::RetryRequested,
        PostStatus::DeadLettered,
        PostStatus::Cancelled,
    ];

    /// Its name in the API and in the `status` column.
    pub fn as_str(self) -> &'static str {
        match self {
            PostStatus::Scheduled => "scheduled",
            PostStatus::Publishing => "publishing",
            PostStatus::Published => "published",
            PostStatus::FailedAuth => "failed_auth",
            PostStatus::RetryRequested => "retry_requested",
            PostStatus::DeadLettered => "dead_lettered",
            PostStatus::Cancelled => "cancelled",
        }
    }

    /// The status of that name; `None` for anything else.
    pub fn parse(name: &str) -> Option<PostStatus> {
        PostStatus::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl std::fmt::Display for PostStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

lifeline_kit::events::text_column!(PostStatus, "post status", PostStatus::parse);

/// The kind of a post's media.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)] // only its schema is used: the type is `lifeline_platforms::MediaKind`
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
    pub platform: Platform,
    /// The text as it will be published.
    pub body: String,
    #[schema(required = true)]
    pub media_url: Option<String>,
    #[schema(value_type = Option<MediaKindName>, required = true)]
    pub media_kind: Option<MediaKind>,
    #[schema(required = true)]
    pub idempotency_key: Option<String>,
    pub scheduled_at: DateTime<Utc>,
    pub status: PostStatus,
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

impl Post {
    /// The post as a connector sends it.
    pub fn draft(&self) -> lifeline_platforms::PostDraft {
        let media = match (&self.media_url, self.media_kind) {
            (Some(url), Some(kind)) => Some(lifeline_platforms::Media { url: url.clone(), kind }),
            _ => None,
        };
        lifeline_platforms::PostDraft { text: self.body.clone(), media }
    }
}
