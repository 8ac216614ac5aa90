//! X API v2 endpoints used by Lifeline: `users/me`, posting a tweet and a
//! user's recent tweets (for reconciling ambiguous publishes).

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

use super::store::{Caller, TweetError};
use super::wire::{self, ApiError};
use super::{Ctx, PLATFORM};
use crate::support::parse_form;

/// X counts weighted characters; plain chars are a close enough model here.
const MAX_TWEET_CHARS: usize = 280;

/// Per-user 15-minute limits X documents for these endpoints (reported in
/// headers only; see `XStore::count_call`).
const USERS_ME_LIMIT: u32 = 75;
const CREATE_TWEET_LIMIT: u32 = 100;
const USER_TWEETS_LIMIT: u32 = 900;

/// X's timestamp format: `2024-05-01T12:00:00.000Z`.
pub(crate) fn x_timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The caller behind `Authorization: Bearer`, or X's 401.
fn authenticate(ctx: &Ctx, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .ok_or(ApiError::Unauthorized)?;
    ctx.store().authenticate(token, ctx.common.clock.now()).ok_or(ApiError::Unauthorized)
}

/// Authenticates, checks scopes and counts the call; on success returns the
/// caller and a function that adds the rate-limit headers.
fn admit<'a>(
    ctx: &'a Ctx,
    headers: &HeaderMap,
    scopes: &[&str],
    endpoint: &'static str,
    limit: u32,
) -> Result<(Caller, impl FnOnce(Response) -> Response + 'a), ApiError> {
    let caller = authenticate(ctx, headers)?;
    if !caller.has_scopes(scopes) {
        return Err(ApiError::Forbidden);
    }
    let info = ctx.store().count_call(endpoint, &caller.user_key, limit, &ctx.common.clock);
    Ok((caller, move |resp| wire::with_rate_headers(resp, info, &ctx.common.clock)))
}

/// `GET /x/2/users/me`.
pub(crate) async fn users_me(State(ctx): State<Ctx>, headers: HeaderMap) -> Response {
    let (caller, finish) =
        match admit(&ctx, &headers, &["tweet.read", "users.read"], "users_me", USERS_ME_LIMIT) {
            Ok(v) => v,
            Err(e) => return e.into_response(),
        };
    let u = caller.user;
    finish(
        axum::Json(json!({ "data": { "id": u.id, "name": u.name, "username": u.username } }))
            .into_response(),
    )
}

/// `POST /x/2/tweets` with `{"text": "..."}`.
pub(crate) async fn create_tweet(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (caller, finish) = match admit(
        &ctx,
        &headers,
        &["tweet.read", "tweet.write", "users.read"],
        "create_tweet",
        CREATE_TWEET_LIMIT,
    ) {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    let text = match parse_tweet_text(&body) {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    if ctx.common.content_rejected(PLATFORM) {
        return finish(wire::duplicate_tweet());
    }
    let result = ctx.store().post_tweet(&caller.user_key, &text, &ctx.common.clock);
    match result {
        Ok(tweet) => {
            tracing::info!(platform = PLATFORM, tweet_id = %tweet.id, user_id = %caller.user.id, "tweet created");
            finish(
                (
                    StatusCode::CREATED,
                    axum::Json(json!({ "data": {
                        "id": tweet.id,
                        "text": tweet.text,
                        "edit_history_tweet_ids": [tweet.id],
                    }})),
                )
                    .into_response(),
            )
        }
        Err(TweetError::Duplicate) => finish(wire::duplicate_tweet()),
    }
}

/// The tweet text from a JSON body, or X's 400 for what is wrong with it.
fn parse_tweet_text(body: &[u8]) -> Result<String, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|_| ApiError::InvalidRequest("Request body is not valid JSON."))?;
    let Some(obj) = value.as_object() else {
        return Err(ApiError::InvalidRequest("Request body must be a JSON object."));
    };
    let text = match obj.get("text") {
        None | Some(Value::Null) => {
            return Err(ApiError::InvalidRequest("$.text: is missing but it is required"))
        }
        Some(Value::String(s)) => s.clone(),
        Some(_) => {
            return Err(ApiError::InvalidRequest(
                "$.text: string found, but a different type was given",
            ))
        }
    };
    if text.trim().is_empty() {
        return Err(ApiError::InvalidRequest("Post text must not be empty."));
    }
    if text.chars().count() > MAX_TWEET_CHARS {
        return Err(ApiError::InvalidRequest(
            "Post text is too long: the maximum is 280 characters.",
        ));
    }
    Ok(text)
}

/// `GET /x/2/users/{id}/tweets?max_results=N` (5..=100, default 10).
pub(crate) async fn user_tweets(
    State(ctx): State<Ctx>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let (_caller, finish) = match admit(
        &ctx,
        &headers,
        &["tweet.read", "users.read"],
        "user_tweets",
        USER_TWEETS_LIMIT,
    ) {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return finish(wire::invalid_request(vec![json!({
            "parameters": { "id": [id] },
            "message": format!("The `id` query parameter value [{id}] does not match ^[0-9]{{1,19}}$"),
        })]));
    }
    let params = parse_form(query.unwrap_or_default().as_bytes());
    let max = match params.get("max_results") {
        None => 10,
        Some(raw) => match raw.parse::<usize>() {
            Ok(n) if (5..=100).contains(&n) => n,
            _ => {
                return finish(wire::invalid_request(vec![json!({
                    "parameters": { "max_results": [raw] },
                    "message": format!("The `max_results` query parameter value [{raw}] is not between 5 and 100"),
                })]))
            }
        },
    };
    let store = ctx.store();
    let Some((user_key, _)) = store.user_by_id(&id) else {
        drop(store);
        // X answers an unknown user with 200 and an `errors` array.
        return finish(
            axum::Json(json!({ "errors": [{
                "value": id,
                "detail": format!("Could not find user with id: [{id}]."),
                "title": "Not Found Error",
                "resource_type": "user",
                "parameter": "id",
                "resource_id": id,
                "type": "https://api.twitter.com/2/problems/resource-not-found",
            }]}))
            .into_response(),
        );
    };
    let tweets = store.tweets_of(&user_key.clone(), max);
    drop(store);
    let data: Vec<Value> = tweets
        .iter()
        .map(|t| {
            json!({
                "id": t.id,
                "text": t.text,
                "created_at": x_timestamp(t.created_at),
                "edit_history_tweet_ids": [t.id],
            })
        })
        .collect();
    // Like X, an empty timeline has no `data` key at all.
    let mut meta = json!({ "result_count": data.len() });
    if let (Some(first), Some(last)) = (tweets.first(), tweets.last()) {
        meta["newest_id"] = json!(first.id);
        meta["oldest_id"] = json!(last.id);
    }
    let body = if data.is_empty() {
        json!({ "meta": meta })
    } else {
        json!({ "data": data, "meta": meta })
    };
    finish(axum::Json(body).into_response())
}
