//! The posts API: schedule a post for an account of the caller's workspace, list and inspect
//! posts (`list`), and edit, reschedule or cancel a post that has not gone out (`change`).

pub(crate) mod change;
pub(crate) mod input;
pub(crate) mod list;

use axum::{
    extract::{rejection::JsonRejection, Path, State},
    http::StatusCode,
    routing::{get, post},
    Json, Router,
};
use chrono::{DateTime, Utc};
use lifeline_kit::{
    auth::Workspace,
    http::ApiError,
    ids::{AccountId, PostId, WorkspaceId},
    openapi::{ErrorBody, Unauthorized},
    Platform,
};
use lifeline_platforms::{MediaKind, MediaPolicy};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{model::Post, store::posts, AppState};

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/posts", post(schedule).get(list::list))
        .route("/v1/posts/{id}", get(show).patch(change::edit))
        .route("/v1/posts/{id}/cancel", post(change::cancel))
}

/// Longest post body accepted; each platform's own, lower limit is checked by [`check_rules`].
const MAX_BODY_CHARS: usize = 10_000;

/// A post to publish.
#[derive(Deserialize, ToSchema)]
pub(crate) struct ScheduleRequest {
    /// One of the workspace's accounts.
    #[schema(value_type = AccountId)]
    account_id: String,
    /// The text; the account's platform's rules apply (422 `post_invalid` names the rule). It
    /// needs a character other than a space, a tab or a line break, and has no NUL.
    #[schema(min_length = 1, max_length = 10000, pattern = r"^[^\x00]*[^\x00 \t\n\r][^\x00]*$")]
    text: String,
    /// When to publish (RFC 3339); now when absent or null.
    #[schema(value_type = Option<lifeline_kit::openapi::Timestamp>)]
    scheduled_at: Option<DateTime<Utc>>,
    /// An image or video for platforms that need one: `{"url": "https://…", "kind": "image"|"video"}`.
    media: Option<MediaRequest>,
    /// Makes scheduling safe to retry: the same key in a workspace returns the first post.
    #[schema(min_length = 1, max_length = 200, pattern = r"^[^\x00]*$")]
    idempotency_key: Option<String>,
}

/// An image or video at an absolute https URL on a public host (the publisher or the platform
/// fetches it; private, loopback and link-local addresses are refused, on every redirect too).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct MediaRequest {
    #[schema(value_type = input::MediaUrl)]
    url: String,
    #[schema(value_type = crate::model::MediaKindName)]
    kind: String,
}

/// A post body the service stores: not blank, no NUL, not absurdly long.
fn check_text(text: &str) -> Result<(), ApiError> {
    input::check_words("text", text, MAX_BODY_CHARS).map_err(ApiError::bad_request)
}

/// An absolute URL the media policy allows (https to a public host unless `LIFELINE_MEDIA_*`
/// says otherwise; host names are checked again when fetched) and a known kind.
fn check_media(m: &MediaRequest, policy: &MediaPolicy) -> Result<MediaKind, ApiError> {
    let url = Some(&m.url)
        .filter(|u| input::uri_characters(u))
        .and_then(|u| url::Url::parse(u).ok())
        .ok_or_else(|| ApiError::bad_request("media.url must be an absolute URL"))?;
    policy.check(&url).map_err(|why| ApiError::bad_request(format!("media.url: {why}")))?;
    MediaKind::parse(&m.kind)
        .ok_or_else(|| ApiError::bad_request("media.kind must be image or video"))
}

/// The platform's own rules, now rather than as a dead letter later: 422 `post_invalid` naming
/// the rule.
fn check_rules(platform: Platform, text: &str, media: Option<MediaKind>) -> Result<(), ApiError> {
    lifeline_platforms::check_post(platform, text, media).map_err(|v| {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "post_invalid", v.message)
            .with_details(serde_json::json!({ "rule": v.rule, "platform": platform }))
    })
}

/// Schedules a post for one of the workspace's accounts.
#[utoipa::path(
    post,
    path = "/v1/posts",
    operation_id = "schedule_post",
    tag = "posts",
    security(("bearer" = [])),
    request_body = ScheduleRequest,
    responses(
        (status = 201, description = "Scheduled.", body = Post),
        (status = 200, description = "A post with this `idempotency_key` exists already: that post.", body = Post),
        (status = 400, description = "`bad_request`: malformed JSON, empty or too long text, a bad media URL (not https, a private or loopback host, credentials in it) or kind, a bad idempotency key.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 404, description = "`not_found`: no such account in the workspace.", body = ErrorBody),
        (status = 415, description = "`bad_request`: the body is not `application/json`.", body = ErrorBody),
        (status = 422, description = "`post_invalid`: the platform would never accept it; `details.rule` is `text_too_long`, `media_required` or `video_required`.", body = ErrorBody),
    ),
)]
pub(crate) async fn schedule(
    State(app): State<AppState>,
    Workspace(ws): Workspace,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<(StatusCode, Json<Post>), ApiError> {
    let req: ScheduleRequest = lifeline_kit::http::json_object(body)?;
    let account: AccountId = req.account_id.parse().map_err(|_| ApiError::not_found("account"))?;
    check_text(&req.text)?;
    if let Some(key) = &req.idempotency_key {
        if key.is_empty() || key.chars().count() > 200 || key.contains('\0') {
            return Err(ApiError::bad_request(
                "idempotency_key must be 1 to 200 characters, without NUL",
            ));
        }
    }
    let media_kind =
        req.media.as_ref().map(|m| check_media(m, app.connectors.media_policy())).transpose()?;
    let info = app.vault.info(account).await.map_err(ApiError::internal)?;
    let info =
        info.filter(|i| i.workspace_id == ws).ok_or_else(|| ApiError::not_found("account"))?;
    check_rules(info.platform, &req.text, media_kind)?;
    let at = req.scheduled_at.unwrap_or_else(Utc::now);
    let new = posts::NewPost {
        workspace: ws,
        account,
        platform: info.platform,
        body: &req.text,
        idempotency_key: req.idempotency_key.as_deref(),
        scheduled_at: at,
        media_url: req.media.as_ref().map(|m| m.url.as_str()),
        media_kind,
    };
    let inserted = posts::insert(&app.pool, &new).await?;
    match inserted {
        Some(p) => {
            tracing::info!(post = %p.id, account = %account, platform = %info.platform, "post scheduled");
            Ok((StatusCode::CREATED, Json(p)))
        }
        None => {
            let existing =
                posts::by_idempotency_key(&app.pool, ws, req.idempotency_key.as_deref()).await?;
            Ok((StatusCode::OK, Json(existing)))
        }
    }
}

/// One attempt to publish.
#[derive(Serialize, sqlx::FromRow, ToSchema)]
pub(crate) struct AttemptView {
    attempt: i32,
    started_at: DateTime<Utc>,
    /// Null while it runs (or when it was cut off).
    #[schema(required = true)]
    finished_at: Option<DateTime<Utc>>,
    #[schema(required = true)]
    outcome: Option<String>,
    #[schema(required = true)]
    detail: Option<String>,
}

/// A post with its attempts.
#[derive(Serialize, ToSchema)]
pub(crate) struct PostDetail {
    #[serde(flatten)]
    post: Post,
    attempt_log: Vec<AttemptView>,
}

/// A post id from a path: anything that is not one of the workspace's posts is 404.
fn post_id(id: &str) -> Result<PostId, ApiError> {
    id.parse().map_err(|_| ApiError::not_found("post"))
}

pub(crate) async fn find(app: &AppState, ws: WorkspaceId, id: &str) -> Result<Post, ApiError> {
    posts::find(&app.pool, ws, post_id(id)?).await?.ok_or_else(|| ApiError::not_found("post"))
}

/// One of the workspace's posts, with every attempt.
#[utoipa::path(
    get,
    path = "/v1/posts/{id}",
    operation_id = "get_post",
    tag = "posts",
    security(("bearer" = [])),
    params(("id" = PostId, Path, description = "The post.")),
    responses(
        (status = 200, description = "The post and its attempts, oldest first.", body = PostDetail),
        (status = 401, response = Unauthorized),
        (status = 404, description = "`not_found`: no such post in the workspace (or not an id).", body = ErrorBody),
    ),
)]
pub(crate) async fn show(
    State(app): State<AppState>,
    Workspace(ws): Workspace,
    Path(id): Path<String>,
) -> Result<Json<PostDetail>, ApiError> {
    let post = find(&app, ws, &id).await?;
    let attempt_log: Vec<AttemptView> = sqlx::query_as(
        "SELECT attempt, started_at, finished_at, outcome, detail FROM publisher.attempts WHERE post_id = $1 ORDER BY attempt",
    )
    .bind(post.id)
    .fetch_all(&app.pool)
    .await?;
    Ok(Json(PostDetail { post, attempt_log }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn media(url: &str) -> Result<MediaKind, String> {
        let m = MediaRequest { url: url.into(), kind: "image".into() };
        check_media(&m, &MediaPolicy::default()).map_err(|e| e.message)
    }

    #[test]
    fn a_media_url_is_an_rfc_3986_uri_the_policy_allows() {
        for ok in ["https://cdn.example/launch.jpg", "https://cdn.example/a%20b.jpg?x=1&y=(2)#top"]
        {
            assert_eq!(media(ok), Ok(MediaKind::Image), "{ok}");
        }
        for bad in [
            "",
            "cdn.example/a.jpg",
            "https://cdn.example/a b.jpg",
            "https://cdn.example/é.jpg",
            "https://cdn.example/a%2",
        ] {
            assert_eq!(media(bad), Err("media.url must be an absolute URL".into()), "{bad:?}");
        }
        assert!(media("http://cdn.example/a.jpg").unwrap_err().contains("https"));
        assert!(media("https://127.0.0.1/a.jpg").unwrap_err().contains("loopback"));
    }
}
