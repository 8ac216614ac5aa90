//! Dead letters: posts that could not go out. Members list their workspace's, operators any
//! workspace's, with filters and by pages; a replay of one post or of an account's (or since a
//! time) is recorded like any replay (`replays/`), and queues PostRetryRequested so it takes the
//! same exactly-once path as a reconnect retry.

use axum::{
    extract::{
        rejection::{JsonRejection, QueryRejection},
        Path, Query, State,
    },
    http::StatusCode,
    routing::{get, post},
    Json, Router,
};
use chrono::{DateTime, Utc};
use lifeline_kit::{
    auth::{Caller, Operator},
    http::{rejection, ApiError},
    ids::{AccountId, PostId, WorkspaceId},
    openapi::{ErrorBody, Forbidden, Unauthorized},
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::{
    model::PostStatus,
    replays::{
        self,
        filter::{self, FilterInput},
    },
    store::replays::{self as store, DeadLetter},
    AppState,
};

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/dead-letters", get(list))
        .route("/v1/dead-letters/replay", post(replay_bulk))
        .route("/v1/dead-letters/{post_id}/replay", post(replay_one))
        .route("/v1/operator/dead-letters", get(list_all))
}

/// The filter of the dead-letter lists, and the cursor.
#[derive(Deserialize, Default, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    /// Only this workspace's: operators only (a member may name only their own; 403 otherwise).
    workspace: Option<WorkspaceId>,
    /// Only this account's.
    account_id: Option<AccountId>,
    /// Only this platform's.
    #[param(value_type = Option<lifeline_kit::openapi::PlatformName>)]
    platform: Option<String>,
    /// Only this failure kind.
    #[param(value_type = Option<filter::DeadLetterKind>)]
    kind: Option<String>,
    /// Only those whose reason contains this text (case-insensitive; spaces, tabs and line
    /// breaks around it are ignored, and it needs another character; no NUL).
    #[param(min_length = 1, max_length = 200, pattern = r"^[^\x00]*[^\x00 \t\n\r][^\x00]*$")]
    reason: Option<String>,
    /// Only dead letters from this moment on (RFC 3339).
    since: Option<DateTime<Utc>>,
    /// Only dead letters before this moment (RFC 3339).
    until: Option<DateTime<Utc>>,
    /// The `next` of the previous page.
    #[param(
        pattern = r"^-?[0-9]{1,16}_[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    )]
    after: Option<String>,
    /// Dead letters per page (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
}

impl ListQuery {
    fn filter(&self) -> FilterInput {
        FilterInput {
            workspace: self.workspace,
            account_id: self.account_id,
            platform: self.platform.clone(),
            kind: self.kind.clone(),
            reason: self.reason.clone(),
            since: self.since,
            until: self.until,
            post_id: None,
        }
    }
}

/// A page of open dead letters, oldest first.
#[derive(Serialize, ToSchema)]
pub(crate) struct DeadLetterPage {
    dead_letters: Vec<DeadLetter>,
    /// Pass as `after` for the next page; absent on the last one.
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
}

/// One page of the dead letters `q` matches within the caller's reach.
async fn page(app: &AppState, caller: &Caller, q: ListQuery) -> Result<DeadLetterPage, ApiError> {
    let f = filter::scope(&q.filter(), caller.role, caller.ws)?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("limit must be between 1 and 1000"));
    }
    let after = q.after.as_deref().map(crate::cursor::decode).transpose()?;
    let mut dead_letters = store::dead_letters(&app.pool, &f, after, limit + 1).await?;
    let more = dead_letters.len() as i64 > limit;
    dead_letters.truncate(limit as usize);
    let next = if more {
        dead_letters.last().map(|d| crate::cursor::encode(d.dead_lettered_at, d.post_id.0))
    } else {
        None
    };
    Ok(DeadLetterPage { dead_letters, next })
}

/// Open dead letters, oldest first, by pages: a member's own workspace's; an operator's across
/// workspaces unless `workspace` narrows them.
#[utoipa::path(
    get,
    path = "/v1/dead-letters",
    operation_id = "list_dead_letters",
    tag = "dead letters",
    security(("bearer" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "A page; pass its `next` as `after` for the next one.", body = DeadLetterPage),
        (status = 400, description = "`bad_request`: an unknown parameter, platform or kind, a bad id, time or cursor, `since` not before `until`, `limit` out of range.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, description = "`forbidden`: a member named another workspace.", body = ErrorBody),
    ),
)]
pub(crate) async fn list(
    State(app): State<AppState>,
    caller: Caller,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<DeadLetterPage>, ApiError> {
    let Query(q) = query.map_err(rejection)?;
    Ok(Json(page(&app, &caller, q).await?))
}

/// `GET /v1/operator/dead-letters` (role operator): the same list, refused to members.
#[utoipa::path(
    get,
    path = "/v1/operator/dead-letters",
    operation_id = "list_all_dead_letters",
    tags = ["dead letters", "operator"],
    security(("operator" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "A page; pass its `next` as `after` for the next one.", body = DeadLetterPage),
        (status = 400, description = "`bad_request`: an unknown parameter, platform or kind, a bad id, time or cursor, `since` not before `until`, `limit` out of range.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
    ),
)]
pub(crate) async fn list_all(
    State(app): State<AppState>,
    operator: Operator,
    caller: Caller,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<DeadLetterPage>, ApiError> {
    let Query(q) = query.map_err(rejection)?;
    let page = page(&app, &caller, q).await?;
    tracing::info!(operator = %operator.sub, count = page.dead_letters.len(), "operator listed dead letters");
    Ok(Json(page))
}

/// How many dead letters were queued for another attempt.
#[derive(Serialize, ToSchema)]
pub(crate) struct Replayed {
    replayed: usize,
}

/// Queues one dead-lettered post for another attempt (a `PostRetryRequested`), recorded as a
/// replay.
#[utoipa::path(
    post,
    path = "/v1/dead-letters/{post_id}/replay",
    operation_id = "replay_dead_letter",
    tag = "dead letters",
    security(("bearer" = [])),
    params(("post_id" = PostId, Path, description = "The dead-lettered post.")),
    responses(
        (status = 202, description = "Queued; it goes out (or fails again) shortly.", body = Replayed),
        (status = 401, response = Unauthorized),
        (status = 404, description = "`not_found`: no such post in the workspace (or not an id).", body = ErrorBody),
        (status = 409, description = "`not_dead_lettered`: the post is in another status.", body = ErrorBody),
    ),
)]
pub(crate) async fn replay_one(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Replayed>), ApiError> {
    let post = crate::api::find(&app, caller.ws, &id).await?;
    if post.status != PostStatus::DeadLettered {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_dead_lettered",
            format!("post is {}, not dead_lettered", post.status),
        ));
    }
    let f = FilterInput { post_id: Some(post.id), ..Default::default() };
    let n = replay(&app, &caller, f).await?;
    Ok((StatusCode::ACCEPTED, Json(Replayed { replayed: n })))
}

/// Which dead letters to replay; every one of the workspace's when empty.
#[derive(Deserialize, Default, ToSchema)]
pub(crate) struct BulkReplay {
    /// Only this account's.
    account_id: Option<AccountId>,
    /// Only dead letters from this moment on.
    #[schema(value_type = Option<lifeline_kit::openapi::Timestamp>)]
    since: Option<DateTime<Utc>>,
}

/// Queues the workspace's matching dead letters for another attempt, recorded as a replay
/// (`POST /v1/replays` has every filter, a dry run, a note and an idempotency key).
#[utoipa::path(
    post,
    path = "/v1/dead-letters/replay",
    operation_id = "replay_dead_letters",
    tag = "dead letters",
    security(("bearer" = [])),
    request_body = BulkReplay,
    responses(
        (status = 202, description = "Queued.", body = Replayed),
        (status = 400, description = "`bad_request`: malformed JSON or a bad id or time.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 415, description = "`bad_request`: the body is not `application/json`.", body = ErrorBody),
    ),
)]
pub(crate) async fn replay_bulk(
    State(app): State<AppState>,
    caller: Caller,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<(StatusCode, Json<Replayed>), ApiError> {
    let req: BulkReplay = lifeline_kit::http::json_object(body)?;
    let f = FilterInput { account_id: req.account_id, since: req.since, ..Default::default() };
    let n = replay(&app, &caller, f).await?;
    Ok((StatusCode::ACCEPTED, Json(Replayed { replayed: n })))
}

/// Records the replay of the caller's dead letters that `f` matches (a replay like any other,
/// in the history and paced per platform).
async fn replay(app: &AppState, caller: &Caller, f: FilterInput) -> Result<usize, ApiError> {
    let f = filter::scope(&f, caller.role, caller.ws)?;
    let f = filter::Filter { workspace: Some(caller.ws), ..f };
    let (replay, _, _) = replays::record(app, caller, &f, None, None).await?;
    Ok(replay.post_count as usize)
}
