//! X API v2 endpoints used by Lifeline: `users/me`, posting a tweet and a
//! user's recent tweets (for reconciling ambiguous publishes). Every answer
//! to an admitted caller carries X's `x-rate-limit-*` headers, and posting
//! past X's per-user limit (100 tweets per 15 minutes) is refused with X's
//! 429.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

use super::wire::{self, Answer, RateInfo, XError};
use super::{Ctx, Store, PLATFORM};
use crate::accounts::{Post, User};
use crate::clock::Clock;
use crate::support::{bearer, parse_form};

/// X counts weighted characters; plain chars are a close enough model here.
const MAX_TWEET_CHARS: usize = 280;

/// Per-user 15-minute limits X documents for these endpoints. Posting past
/// `CREATE_TWEET_LIMIT` is refused; the read limits are reported in headers
/// only (see `count_call`).
const USERS_ME_LIMIT: u32 = 75;
const CREATE_TWEET_LIMIT: u32 = 100;
const USER_TWEETS_LIMIT: u32 = 900;

/// Same text from the same user within this platform window is a duplicate.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);
/// X rate-limit windows are 15 minutes (platform time).
const RATE_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Twitter's snowflake epoch (2010-11-04), so tweet ids look and sort like X's.
const SNOWFLAKE_EPOCH_MS: i64 = 1_288_834_974_657;

/// X's timestamp format: `2024-05-01T12:00:00.000Z`.
pub(crate) fn x_timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// One caller's 15-minute window on one endpoint.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Window {
    started: Instant,
    used: u32,
}

/// Counts one call against the caller's 15-minute window for `endpoint`.
/// A window starts with the first call after the last one ended, as X's
/// per-user windows do. A call past the limit is counted too (X counts
/// refused calls); whether it is refused is the endpoint's choice.
fn count_call(
    store: &mut Store,
    endpoint: &'static str,
    user_key: &str,
    limit: u32,
    clock: &Clock,
) -> RateInfo {
    let now = clock.now();
    let len = clock.real(RATE_WINDOW);
    let w = store
        .windows
        .entry((endpoint, user_key.to_owned()))
        .or_insert(Window { started: now, used: 0 });
    if now.duration_since(w.started) >= len {
        *w = Window { started: now, used: 0 };
    }
    w.used = w.used.saturating_add(1);
    RateInfo {
        limit,
        remaining: limit.saturating_sub(w.used),
        reset_at: w.started + len,
        exceeded: w.used > limit,
    }
}

/// A caller let through to an endpoint, and the rate-limit headers owed.
struct Admitted {
    user: User,
    rate: RateInfo,
}

impl Admitted {
    /// The answer with the `x-rate-limit-*` headers, error or not.
    fn finish(&self, ctx: &Ctx, result: Result<Response, XError>) -> Response {
        let resp = result.unwrap_or_else(IntoResponse::into_response);
        wire::with_rate_headers(resp, self.rate, &ctx.common.clock)
    }
}

/// Authenticates the bearer token (X's 401), checks scopes (403) and counts
/// the call.
fn admit(
    ctx: &Ctx,
    headers: &HeaderMap,
    scopes: &[&str],
    endpoint: &'static str,
    limit: u32,
) -> Result<Admitted, XError> {
    let token = bearer(headers).ok_or(XError::Unauthorized)?;
    let clock = &ctx.common.clock;
    let mut store = ctx.store();
    let t = store.accounts.check(&token, &[crate::accounts::Kind::Access], clock.now());
    let t = t.map_err(|_| XError::Unauthorized)?;
    let user = store.accounts.user(&t.user_key).cloned().ok_or(XError::Unauthorized)?;
    if !scopes.iter().all(|s| t.has_scope(s)) {
        return Err(XError::Forbidden);
    }
    let rate = count_call(&mut store, endpoint, &user.key, limit, clock);
    Ok(Admitted { user, rate })
}

/// `GET /x/2/users/me`.
pub(crate) async fn users_me(State(ctx): State<Ctx>, headers: HeaderMap) -> Answer {
    let a = admit(&ctx, &headers, &["tweet.read", "users.read"], "users_me", USERS_ME_LIMIT)?;
    let u = &a.user;
    let body = json!({ "data": { "id": u.id, "name": u.name, "username": u.username } });
    Ok(a.finish(&ctx, Ok(axum::Json(body).into_response())))
}

/// `POST /x/2/tweets` with `{"text": "..."}`.
pub(crate) async fn create_tweet(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let scopes = ["tweet.read", "tweet.write", "users.read"];
    let a = admit(&ctx, &headers, &scopes, "create_tweet", CREATE_TWEET_LIMIT)?;
    if a.rate.exceeded {
        // X's per-user posting limit: refused until the window resets.
        ctx.store().rate_limited += 1;
        tracing::info!(platform = PLATFORM, user_id = %a.user.id, "tweet refused: per-user rate limit");
        return Ok(wire::with_rate_headers(wire::rate_limit_exceeded(), a.rate, &ctx.common.clock));
    }
    // A malformed body is refused before the call counts for the headers.
    let text = parse_tweet_text(&body)?;
    if ctx.common.content_rejected(PLATFORM) {
        return Ok(a.finish(&ctx, Err(XError::DuplicateTweet)));
    }
    let Some(tweet) = post_tweet(&mut ctx.store(), &a.user.key, &text, &ctx.common.clock) else {
        return Ok(a.finish(&ctx, Err(XError::DuplicateTweet)));
    };
    tracing::info!(platform = PLATFORM, tweet_id = %tweet.id, user_id = %a.user.id, "tweet created");
    if ctx.common.answer_lost(PLATFORM) {
        return Ok(crate::faults::lost_answer());
    }
    let body = json!({ "data": {
        "id": tweet.id,
        "text": tweet.text,
        "edit_history_tweet_ids": [tweet.id],
    }});
    Ok(a.finish(&ctx, Ok((StatusCode::CREATED, axum::Json(body)).into_response())))
}

/// Accepts a tweet unless the user posted the same text within the
/// duplicate window. Ids are snowflake-like: they encode the time and only
/// ever increase.
fn post_tweet(store: &mut Store, user_key: &str, text: &str, clock: &Clock) -> Option<Post> {
    let now = clock.now();
    let window = clock.real(DUPLICATE_WINDOW);
    let duplicate = store
        .accounts
        .posts_of(user_key)
        .any(|p| p.text == text && now.duration_since(p.accepted_at) < window);
    if duplicate {
        return None;
    }
    let created_at = Utc::now();
    let snowflake = u64::try_from((created_at.timestamp_millis() - SNOWFLAKE_EPOCH_MS).max(0))
        .unwrap_or(0)
        << 22;
    store.last_tweet_id = snowflake.max(store.last_tweet_id + 1);
    let id = store.last_tweet_id.to_string();
    Some(store.accounts.record_post_at(user_key, text, created_at, |_| id))
}

/// The tweet text from a JSON body, or X's 400 for what is wrong with it.
fn parse_tweet_text(body: &[u8]) -> Result<String, XError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|_| XError::invalid_request("Request body is not valid JSON."))?;
    let Some(obj) = value.as_object() else {
        return Err(XError::invalid_request("Request body must be a JSON object."));
    };
    let text = match obj.get("text") {
        None | Some(Value::Null) => {
            return Err(XError::invalid_request("$.text: is missing but it is required"))
        }
        Some(Value::String(s)) => s.clone(),
        Some(_) => {
            return Err(XError::invalid_request(
                "$.text: string found, but a different type was given",
            ))
        }
    };
    if text.trim().is_empty() {
        return Err(XError::invalid_request("Post text must not be empty."));
    }
    if text.chars().count() > MAX_TWEET_CHARS {
        return Err(XError::invalid_request(
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
) -> Answer {
    let scopes = ["tweet.read", "users.read"];
    let a = admit(&ctx, &headers, &scopes, "user_tweets", USER_TWEETS_LIMIT)?;
    let params = parse_form(query.unwrap_or_default().as_bytes());
    Ok(a.finish(&ctx, timeline(&ctx, &id, &params)))
}

fn timeline(ctx: &Ctx, id: &str, params: &HashMap<String, String>) -> Answer {
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(XError::InvalidRequest(vec![json!({
            "parameters": { "id": [id] },
            "message": format!("The `id` query parameter value [{id}] does not match ^[0-9]{{1,19}}$"),
        })]));
    }
    let max = match params.get("max_results") {
        None => 10,
        Some(raw) => match raw.parse::<usize>() {
            Ok(n) if (5..=100).contains(&n) => n,
            _ => {
                return Err(XError::InvalidRequest(vec![json!({
                    "parameters": { "max_results": [raw] },
                    "message": format!("The `max_results` query parameter value [{raw}] is not between 5 and 100"),
                })]))
            }
        },
    };
    let store = ctx.store();
    let Some(user) = store.accounts.user_by_id(id) else {
        // X answers an unknown user with 200 and an `errors` array.
        return Ok(axum::Json(json!({ "errors": [{
            "value": id,
            "detail": format!("Could not find user with id: [{id}]."),
            "title": "Not Found Error",
            "resource_type": "user",
            "parameter": "id",
            "resource_id": id,
            "type": "https://api.twitter.com/2/problems/resource-not-found",
        }]}))
        .into_response());
    };
    let tweets: Vec<Post> = store.accounts.posts_of(&user.key).rev().take(max).cloned().collect();
    drop(store);
    Ok(axum::Json(timeline_body(&tweets)).into_response())
}

/// Tweets newest first with X's `meta`; like X, an empty timeline has no
/// `data` key at all.
fn timeline_body(tweets: &[Post]) -> Value {
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
    let mut meta = json!({ "result_count": data.len() });
    if let (Some(first), Some(last)) = (tweets.first(), tweets.last()) {
        meta["newest_id"] = json!(first.id);
        meta["oldest_id"] = json!(last.id);
    }
    if data.is_empty() {
        json!({ "meta": meta })
    } else {
        json!({ "data": data, "meta": meta })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tweet_ids_increase() {
        let clock = Clock::new(1.0);
        let mut s = Store::default();
        let a = post_tweet(&mut s, "u", "a", &clock).expect("ok");
        let b = post_tweet(&mut s, "u", "b", &clock).expect("ok");
        assert!(b.id.parse::<u64>().expect("numeric") > a.id.parse::<u64>().expect("numeric"));
    }

    #[test]
    fn the_hundred_and_first_tweet_in_a_window_is_past_the_limit() {
        let clock = Clock::new(1.0);
        let mut s = Store::default();
        for n in 1..=CREATE_TWEET_LIMIT {
            let r = count_call(&mut s, "create_tweet", "u", CREATE_TWEET_LIMIT, &clock);
            assert!(!r.exceeded, "call {n}");
            assert_eq!(r.remaining, CREATE_TWEET_LIMIT - n);
        }
        let r = count_call(&mut s, "create_tweet", "u", CREATE_TWEET_LIMIT, &clock);
        assert!(r.exceeded && r.remaining == 0);
        // Another user has a window of its own.
        assert!(!count_call(&mut s, "create_tweet", "v", CREATE_TWEET_LIMIT, &clock).exceeded);
    }

    #[test]
    fn a_window_reopens_after_fifteen_platform_minutes() {
        // 15 platform minutes are 9 ms at this scale.
        let clock = Clock::new(100_000.0);
        let mut s = Store::default();
        for _ in 0..=CREATE_TWEET_LIMIT {
            count_call(&mut s, "create_tweet", "u", CREATE_TWEET_LIMIT, &clock);
        }
        std::thread::sleep(Duration::from_millis(20));
        let r = count_call(&mut s, "create_tweet", "u", CREATE_TWEET_LIMIT, &clock);
        assert!(!r.exceeded);
        assert_eq!(r.remaining, CREATE_TWEET_LIMIT - 1);
    }

    #[test]
    fn the_same_text_twice_is_refused() {
        let clock = Clock::new(1.0);
        let mut s = Store::default();
        assert!(post_tweet(&mut s, "u", "a", &clock).is_some());
        assert!(post_tweet(&mut s, "u", "a", &clock).is_none());
        assert!(post_tweet(&mut s, "v", "a", &clock).is_some());
    }
}
