//! Operator replay of dead-lettered posts: `POST /v1/replays` takes a filter (see `filter.rs`),
//! answers a dry run with how many match, a sample and counts per platform and kind, or records
//! the replay (who, when, filter, note, how many) and queues its posts, which the pacer
//! (`pacer.rs`) releases at each platform's replay rate as `PostRetryRequested`s, the same
//! exactly-once path as a reconnect retry. An idempotency key makes repeating a replay do
//! nothing twice. `GET /v1/replays` is the history and `GET /v1/replays/{id}` a replay's
//! progress, read from its posts' status.

pub(crate) mod filter;
pub(crate) mod pacer;
mod plan;

use axum::{
    extract::{
        rejection::{JsonRejection, QueryRejection},
        Path, Query, State,
    },
    http::StatusCode,
    routing::{get, post},
    Json, Router,
};
use chrono::Utc;
use lifeline_kit::{
    auth::{Caller, Role},
    http::{rejection, ApiError},
    ids::WorkspaceId,
    openapi::{ErrorBody, Unauthorized},
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

pub use plan::ReplayRates;

use crate::{
    store::replays::{self as store, DeadLetter, Replay},
    AppState,
};
use filter::{Filter, FilterInput};
use plan::{Progress, Summary};

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/replays", post(create).get(history))
        .route("/v1/replays/{id}", get(show))
}

/// Dead letters shown in a dry run's sample.
const SAMPLE: i64 = 10;
/// Longest note and idempotency key accepted.
const MAX_NOTE: usize = 1000;
const MAX_KEY: usize = 200;

/// A replay: which dead letters, and whether only to count them.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReplayRequest {
    /// Which dead letters; every one the caller may reach when empty.
    #[serde(default)]
    filter: FilterInput,
    /// Only answer how many match, a sample and counts per platform and kind; change nothing.
    #[serde(default)]
    dry_run: bool,
    /// Why, in words; kept with the replay. It needs a character other than a space, a tab or a
    /// line break, and has no NUL.
    #[schema(min_length = 1, max_length = 1000, pattern = r"^[^\x00]*[^\x00 \t\n\r][^\x00]*$")]
    note: Option<String>,
    /// Makes the replay safe to repeat: the same key again answers the first replay and queues
    /// nothing (409 `idempotency_key_reused` if the filter or note differ). Not blank, no NUL.
    #[schema(min_length = 1, max_length = 200, pattern = r"^[^\x00]*[^\x00 \t\n\r][^\x00]*$")]
    idempotency_key: Option<String>,
}

/// A dry run's or a replay's answer.
#[derive(Serialize, ToSchema)]
pub(crate) struct ReplayAnswer {
    dry_run: bool,
    /// The answer of an earlier request with the same idempotency key: nothing was queued now.
    repeated: bool,
    #[serde(flatten)]
    summary: Summary,
    /// Up to 10 matching dead letters, oldest first (dry runs only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    sample: Vec<DeadLetter>,
    /// The recorded replay (absent for a dry run).
    #[serde(skip_serializing_if = "Option::is_none")]
    replay: Option<Replay>,
}

/// Counts or replays the dead letters a filter matches.
#[utoipa::path(
    post,
    path = "/v1/replays",
    operation_id = "replay",
    tags = ["dead letters", "operator"],
    security(("bearer" = [])),
    request_body = ReplayRequest,
    responses(
        (status = 200, description = "A dry run's counts and sample, or the earlier replay made with this idempotency key (`repeated`).", body = ReplayAnswer),
        (status = 202, description = "Recorded; its posts go out at each platform's replay rate. Follow it at `/v1/replays/{id}`.", body = ReplayAnswer),
        (status = 400, description = "`bad_request`: malformed JSON, an unknown field, platform or kind, a bad id or time, `since` not before `until`, a bad note or key.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, description = "`forbidden`: a member named another workspace.", body = ErrorBody),
        (status = 409, description = "`idempotency_key_reused`: the key was used for another filter or note.", body = ErrorBody),
        (status = 415, description = "`bad_request`: the body is not `application/json`.", body = ErrorBody),
    ),
)]
pub(crate) async fn create(
    State(app): State<AppState>,
    caller: Caller,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<(StatusCode, Json<ReplayAnswer>), ApiError> {
    let req: ReplayRequest = lifeline_kit::http::json_object(body)?;
    let f = filter::scope(&req.filter, caller.role, caller.ws)?;
    let note = checked(req.note, "note", MAX_NOTE)?;
    let key = checked(req.idempotency_key, "idempotency_key", MAX_KEY)?;
    if req.dry_run {
        let counts = store::counts(&app.pool, &f).await?;
        let summary = plan::summarize(counts.iter().map(|(p, k, n)| (p.as_str(), k.as_str(), *n)));
        let sample = store::dead_letters(&app.pool, &f, None, SAMPLE).await?;
        let answer = ReplayAnswer { dry_run: true, repeated: false, summary, sample, replay: None };
        return Ok((StatusCode::OK, Json(answer)));
    }
    let (replay, summary, repeated) = record(&app, &caller, &f, note, key).await?;
    let status = if repeated { StatusCode::OK } else { StatusCode::ACCEPTED };
    let answer =
        ReplayAnswer { dry_run: false, repeated, summary, sample: vec![], replay: Some(replay) };
    Ok((status, Json(answer)))
}

/// An optional text that, when given, is 1 to `max` characters, not blank and without NUL, as
/// the document's `minLength`, `maxLength` and `pattern` say.
fn checked(v: Option<String>, name: &str, max: usize) -> Result<Option<String>, ApiError> {
    if let Some(s) = &v {
        crate::api::input::check_words(name, s, max).map_err(ApiError::bad_request)?;
    }
    Ok(v)
}

/// Records a replay and takes its posts in one transaction; with a key used before, answers
/// that replay instead (`true`) and takes nothing.
pub(crate) async fn record(
    app: &AppState,
    caller: &Caller,
    f: &Filter,
    note: Option<String>,
    key: Option<String>,
) -> Result<(Replay, Summary, bool), ApiError> {
    let scope = match caller.role {
        Role::Operator => "operator".to_owned(),
        Role::Member => format!("workspace:{}", caller.ws),
    };
    let replay = Replay {
        id: Uuid::now_v7(),
        requested_by: caller.sub.clone(),
        requested_at: Utc::now(),
        workspace_id: f.workspace,
        filter: f.record(),
        note,
        idempotency_key: key,
        post_count: 0,
    };
    let mut tx = app.pool.begin().await?;
    if !store::insert(&mut tx, &replay, &scope).await? {
        let key = replay.idempotency_key.as_deref().unwrap_or_default();
        let earlier = store::by_key(&mut tx, &scope, key)
            .await?
            .ok_or_else(|| ApiError::internal("a replay key conflicted but its replay is gone"))?;
        let same = (&earlier.filter, earlier.note.as_deref());
        return match plan::repeat(same, (&replay.filter, replay.note.as_deref())) {
            plan::Repeat::Same => {
                let summary = Summary { matched: earlier.post_count.into(), ..Default::default() };
                Ok((earlier, summary, true))
            }
            plan::Repeat::Conflict => Err(ApiError::new(
                StatusCode::CONFLICT,
                "idempotency_key_reused",
                "this idempotency_key was used for a replay with another filter or note",
            )),
        };
    }
    let taken = store::take_posts(&mut tx, replay.id, f).await?;
    tx.commit().await?;
    app.replay_wake.notify_one();
    let summary = plan::summarize(taken.iter().map(|(p, k)| (p.as_str(), k.as_str(), 1)));
    let replay = Replay { post_count: taken.len() as i32, ..replay };
    tracing::info!(replay = %replay.id, by = %replay.requested_by, posts = taken.len(), "dead letters replayed");
    Ok((replay, summary, false))
}

/// Which replays to list, and the cursor.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct HistoryQuery {
    /// Only this workspace's (operators; members always see only their own).
    workspace: Option<WorkspaceId>,
    /// The `next` of the previous page.
    #[param(
        pattern = r"^-?[0-9]{1,16}_[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    )]
    after: Option<String>,
    /// Replays per page (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
}

/// A page of replays, newest first.
#[derive(Serialize, ToSchema)]
pub(crate) struct ReplayPage {
    replays: Vec<Replay>,
    /// Pass as `after` for the next page; absent on the last one.
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
}

/// The replays made: who, when, which filter, the note and how many posts.
#[utoipa::path(
    get,
    path = "/v1/replays",
    operation_id = "list_replays",
    tags = ["dead letters", "operator"],
    security(("bearer" = [])),
    params(HistoryQuery),
    responses(
        (status = 200, description = "Newest first; pass `next` as `after` for the next page.", body = ReplayPage),
        (status = 400, description = "`bad_request`: an unknown parameter, a bad workspace id or cursor, `limit` out of range.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, description = "`forbidden`: a member named another workspace.", body = ErrorBody),
    ),
)]
pub(crate) async fn history(
    State(app): State<AppState>,
    caller: Caller,
    query: Result<Query<HistoryQuery>, QueryRejection>,
) -> Result<Json<ReplayPage>, ApiError> {
    let Query(q) = query.map_err(rejection)?;
    let scoped = FilterInput { workspace: q.workspace, ..Default::default() };
    let workspace = filter::scope(&scoped, caller.role, caller.ws)?.workspace;
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad_request("limit must be between 1 and 500"));
    }
    let after = q.after.as_deref().map(crate::cursor::decode).transpose()?;
    let mut replays = store::replays(&app.pool, workspace, after, limit + 1).await?;
    let more = replays.len() as i64 > limit;
    replays.truncate(limit as usize);
    let next = if more {
        replays.last().map(|r| crate::cursor::encode(r.requested_at, r.id))
    } else {
        None
    };
    Ok(Json(ReplayPage { replays, next }))
}

/// A replay and how its posts stand now.
#[derive(Serialize, ToSchema)]
pub(crate) struct ReplayProgress {
    #[serde(flatten)]
    replay: Replay,
    #[serde(flatten)]
    progress: Progress,
    /// Of the pending ones, how many still wait for their platform's replay rate.
    waiting: i64,
    /// Every post is published, failed again or cancelled.
    done: bool,
}

/// A replay's progress: of its posts, how many are published, failed again, cancelled or pending.
#[utoipa::path(
    get,
    path = "/v1/replays/{id}",
    operation_id = "get_replay",
    tags = ["dead letters", "operator"],
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The replay.")),
    responses(
        (status = 200, description = "The replay and its posts' standing, read from their status now.", body = ReplayProgress),
        (status = 401, response = Unauthorized),
        (status = 404, description = "`not_found`: no such replay that the caller may see (or not an id).", body = ErrorBody),
    ),
)]
pub(crate) async fn show(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ReplayProgress>, ApiError> {
    let id: Uuid = id.parse().map_err(|_| ApiError::not_found("replay"))?;
    let replay = store::replay(&app.pool, id)
        .await?
        .filter(|r| caller.role == Role::Operator || r.workspace_id == Some(caller.ws))
        .ok_or_else(|| ApiError::not_found("replay"))?;
    let (by_status, waiting) = store::standing(&app.pool, id).await?;
    let progress = Progress::of(&by_status);
    Ok(Json(ReplayProgress { replay, done: progress.done(), progress, waiting }))
}
