//! Changing a post that has not gone out: `PATCH /v1/posts/{id}` edits its text or media or
//! reschedules it, `POST /v1/posts/{id}/cancel` cancels it. Both lock the row first, so a post
//! the sweep is taking at that moment is either changed before it is sent or refused as in
//! flight, never changed while it is being sent.

use axum::{
    extract::{rejection::JsonRejection, Path, State},
    http::StatusCode,
    Json,
};
use chrono::{DateTime, Utc};
use lifeline_kit::{
    auth::Workspace,
    events::{self, Envelope, PostCancelled},
    http::ApiError,
    ids::{PostId, WorkspaceId},
    openapi::{ErrorBody, Unauthorized},
};
use serde::{Deserialize, Deserializer};
use sqlx::PgConnection;
use utoipa::ToSchema;

use super::{check_media, check_rules, check_text, post_id, MediaRequest};
use crate::{
    model::{Post, PostStatus},
    store::posts,
    AppState,
};

/// `Some(value)` when the field is there, `None` (its default) when it is absent. `T` says what
/// `null` is: `media: Option<MediaRequest>` reads it as `Some(None)` (remove the media), `text:
/// String` refuses it as the wrong type.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// What to change: at least one field; leave out what stays. Only `media` takes `null` (to
/// remove it): a post always has a text and a time.
// `minProperties: 1` is set in `crate::openapi()` (utoipa-gen 5.5.0 misspells it).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EditRequest {
    /// The new text; the platform's rules apply. Not blank (see `ScheduleRequest.text`).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = String, min_length = 1, max_length = 10000, pattern = r"^[^\x00]*[^\x00 \t\n\r][^\x00]*$")]
    text: Option<String>,
    /// The new publishing time (RFC 3339); only for a post that is still `scheduled`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = lifeline_kit::openapi::Timestamp)]
    scheduled_at: Option<DateTime<Utc>>,
    /// New media, or `null` to remove it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<MediaRequest>, nullable = true)]
    media: Option<Option<MediaRequest>>,
}

/// Why a post cannot be changed now: 409 with the post's status in `details`.
fn refused(code: &'static str, message: String, post: &Post) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, code, message)
        .with_details(serde_json::json!({ "status": post.status }))
}

/// A post whose last attempt has an unknown outcome may be on the platform already: changing or
/// cancelling it now could leave the workspace believing something that is not true.
fn check_settled(post: &Post, what: &str) -> Result<(), ApiError> {
    if post.needs_reconcile {
        return Err(refused(
            "post_outcome_unknown",
            format!(
                "the last attempt's outcome is not known yet (the platform is being checked); {what} it once that is settled"
            ),
            post,
        ));
    }
    Ok(())
}

/// The post, locked until the transaction ends; 404 for another workspace's.
async fn lock(conn: &mut PgConnection, ws: WorkspaceId, id: &str) -> Result<Post, ApiError> {
    posts::lock(conn, ws, post_id(id)?).await?.ok_or_else(|| ApiError::not_found("post"))
}

/// Edits or reschedules a post that has not gone out.
#[utoipa::path(
    patch,
    path = "/v1/posts/{id}",
    operation_id = "edit_post",
    tag = "posts",
    security(("bearer" = [])),
    params(("id" = PostId, Path, description = "The post.")),
    request_body = EditRequest,
    responses(
        (status = 200, description = "The post as changed.", body = Post),
        (status = 400, description = "`bad_request`: nothing to change, an unknown field, a `null` text or time, blank or too long text, bad media.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 404, description = "`not_found`: no such post in the workspace (or not an id).", body = ErrorBody),
        (status = 409, description = "`post_not_editable` (it went out, is going out, is dead-lettered or cancelled), `post_waiting_for_reconnect` (its time cannot move) or `post_outcome_unknown`; `details.status` is its status.", body = ErrorBody),
        (status = 415, description = "`bad_request`: the body is not `application/json`.", body = ErrorBody),
        (status = 422, description = "`post_invalid`: the edited post breaks the platform's rules (`details.rule`).", body = ErrorBody),
    ),
)]
pub(crate) async fn edit(
    State(app): State<AppState>,
    Workspace(ws): Workspace,
    Path(id): Path<String>,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Json<Post>, ApiError> {
    let req: EditRequest = lifeline_kit::http::json_object(body)?;
    if req.text.is_none() && req.scheduled_at.is_none() && req.media.is_none() {
        return Err(ApiError::bad_request("give at least one of text, scheduled_at, media"));
    }
    if let Some(text) = &req.text {
        check_text(text)?;
    }
    let new_media = match &req.media {
        None => None,
        Some(None) => Some(None),
        Some(Some(m)) => {
            Some(Some((m.url.clone(), check_media(m, app.connectors.media_policy())?)))
        }
    };
    let mut tx = app.pool.begin().await?;
    let post = lock(&mut tx, ws, &id).await?;
    match post.status {
        PostStatus::Scheduled => {}
        PostStatus::FailedAuth if req.scheduled_at.is_some() => {
            return Err(refused(
                "post_waiting_for_reconnect",
                "the post waits for its account to be reconnected and goes out then; its text and media can be edited, not its time".into(),
                &post,
            ))
        }
        PostStatus::FailedAuth => {}
        other => {
            return Err(refused(
                "post_not_editable",
                format!("a {other} post cannot be edited; only scheduled posts and posts waiting for a reconnect can"),
                &post,
            ))
        }
    }
    check_settled(&post, "edit")?;
    let text = req.text.as_deref().unwrap_or(&post.body);
    let (media_url, media_kind) = match new_media {
        Some(Some((url, kind))) => (Some(url), Some(kind)),
        Some(None) => (None, None),
        None => (post.media_url.clone(), post.media_kind),
    };
    check_rules(post.platform, text, media_kind)?;
    let edit = posts::Edit {
        body: text,
        media_url: media_url.as_deref(),
        media_kind,
        scheduled_at: req.scheduled_at,
    };
    let updated = posts::edit(&mut tx, post.id, &edit).await?;
    tx.commit().await?;
    tracing::info!(post = %post.id, rescheduled = req.scheduled_at.is_some(), "post edited");
    Ok(Json(updated))
}

/// Cancels a post that has not gone out; cancelling again answers the cancelled post.
#[utoipa::path(
    post,
    path = "/v1/posts/{id}/cancel",
    operation_id = "cancel_post",
    tag = "posts",
    security(("bearer" = [])),
    params(("id" = PostId, Path, description = "The post.")),
    responses(
        (status = 200, description = "The cancelled post.", body = Post),
        (status = 401, response = Unauthorized),
        (status = 404, description = "`not_found`: no such post in the workspace (or not an id).", body = ErrorBody),
        (status = 409, description = "`post_in_flight`, `post_already_published`, `post_not_cancellable` (dead-lettered) or `post_outcome_unknown`; `details.status` is its status.", body = ErrorBody),
    ),
)]
pub(crate) async fn cancel(
    State(app): State<AppState>,
    Workspace(ws): Workspace,
    Path(id): Path<String>,
) -> Result<Json<Post>, ApiError> {
    let mut tx = app.pool.begin().await?;
    let post = lock(&mut tx, ws, &id).await?;
    match post.status {
        // Cancelling twice is not an error: the post is cancelled either way.
        PostStatus::Cancelled => return Ok(Json(post)),
        PostStatus::Scheduled | PostStatus::FailedAuth | PostStatus::RetryRequested => {}
        PostStatus::Publishing => {
            return Err(refused(
                "post_in_flight",
                "the post is being sent to the platform right now; it can no longer be cancelled"
                    .into(),
                &post,
            ))
        }
        PostStatus::Published => {
            return Err(refused(
                "post_already_published",
                "the post is already published; delete it on the platform".into(),
                &post,
            ))
        }
        other => {
            return Err(refused(
                "post_not_cancellable",
                format!("a {other} post cannot be cancelled; dead letters are replayed or left by an operator"),
                &post,
            ))
        }
    }
    check_settled(&post, "cancel")?;
    let cancelled = posts::cancel(&mut tx, post.id).await?;
    let platform = post.platform;
    let about = events::Subject { workspace_id: ws.0, account_id: post.account_id.0, platform };
    let event = PostCancelled {
        envelope: Some(Envelope::build(about, None)),
        post_id: post.id.to_string(),
        attempts: u32::try_from(post.attempts).unwrap_or(0),
        was_waiting_for_reconnect: post.status == PostStatus::FailedAuth,
    };
    app.outbox.enqueue(&mut tx, &event).await?;
    tx.commit().await?;
    app.outbox.wake();
    tracing::info!(post = %post.id, was = %post.status, "post cancelled");
    Ok(Json(cancelled))
}

#[cfg(test)]
mod tests {
    use axum::Json;
    use serde_json::json;

    use super::EditRequest;

    fn read(body: serde_json::Value) -> Result<EditRequest, String> {
        lifeline_kit::http::json_object(Ok(Json(body))).map_err(|e| e.message)
    }

    #[test]
    fn null_removes_the_media_and_is_refused_for_the_text_and_the_time() {
        let edit = read(json!({"media": null})).unwrap();
        assert!(matches!(edit.media, Some(None)));
        assert!(edit.text.is_none() && edit.scheduled_at.is_none());
        let edit = read(json!({"text": "new", "scheduled_at": "2026-06-01T09:00:00Z"})).unwrap();
        assert_eq!(edit.text.as_deref(), Some("new"));
        assert!(edit.scheduled_at.is_some() && edit.media.is_none());
        for body in [json!({"text": null}), json!({"scheduled_at": null, "text": "x"})] {
            let e = read(body.clone()).map(|_| ()).unwrap_err();
            assert!(e.contains("invalid type: null"), "{body}: {e}");
        }
    }

    #[test]
    fn media_given_as_an_array_is_refused() {
        let e =
            read(json!({"media": ["https://cdn.example/a.jpg", "image"]})).map(|_| ()).unwrap_err();
        assert!(e.contains("invalid type: sequence, expected struct MediaRequest"), "{e}");
    }
}
