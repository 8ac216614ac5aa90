//! LinkedIn's API: OpenID `userinfo`, and versioned `rest/posts` to create a
//! member's post and list them (for reconciling).

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use serde_json::{json, Map, Value};

use super::wire::{Answer, LinkedInError};
use super::{Ctx, PLATFORM};
use crate::accounts::{Kind, Refusal, Token};
use crate::support::{bearer, parse_form};

const MAX_COMMENTARY: usize = 3000;
/// Oldest `LinkedIn-Version` still served (LinkedIn sunsets versions after a year or so).
const OLDEST_VERSION: u32 = 202_401;
const CREATE_RESOURCE: &str = "partnerApiPostsExternal.CREATE.20240101";
const FIND_BY_AUTHOR_RESOURCE: &str = "partnerApiPostsExternal.FINDER-author.20240101";

/// The caller's live access token, or LinkedIn's 401 naming why not.
fn caller(ctx: &Ctx, headers: &HeaderMap) -> Result<Token, LinkedInError> {
    let invalid = || {
        LinkedInError::api(
            StatusCode::UNAUTHORIZED,
            65600,
            "INVALID_ACCESS_TOKEN",
            "Invalid access token",
        )
    };
    let token = bearer(headers).ok_or_else(invalid)?;
    ctx.accounts().check(&token, &[Kind::Access], ctx.common.clock.now()).map_err(|r| match r {
        Refusal::Dead(_) => LinkedInError::api(
            StatusCode::UNAUTHORIZED,
            65601,
            "REVOKED_ACCESS_TOKEN",
            "The token used in the request has been revoked by the user",
        ),
        Refusal::Expired { .. } => LinkedInError::api(
            StatusCode::UNAUTHORIZED,
            65602,
            "EXPIRED_ACCESS_TOKEN",
            "The token used in the request has expired",
        ),
        _ => invalid(),
    })
}

/// `GET /v2/userinfo` (OpenID Connect).
pub(crate) async fn userinfo(State(ctx): State<Ctx>, headers: HeaderMap) -> Answer {
    let t = caller(&ctx, &headers)?;
    let denied = || LinkedInError::access_denied("userinfo.GET.NO_VERSION");
    if !t.has_scope("openid") {
        return Err(denied());
    }
    let u = ctx.accounts().user(&t.user_key).cloned().ok_or_else(denied)?;
    let mut body = json!({ "sub": u.id, "locale": { "country": "US", "language": "en" } });
    if t.has_scope("profile") {
        let mut parts = u.name.splitn(2, ' ');
        body["name"] = json!(u.name);
        body["given_name"] = json!(parts.next().unwrap_or_default());
        body["family_name"] = json!(parts.next().unwrap_or_default());
        body["picture"] = json!("https://media.licdn.com/dms/image/sim/profile.jpg");
    }
    if t.has_scope("email") {
        body["email"] = json!(format!("{}@example.com", u.key));
        body["email_verified"] = json!(true);
    }
    Ok(axum::Json(body).into_response())
}

/// Checks `LinkedIn-Version: YYYYMM`, required by every `/rest` call.
fn check_version(headers: &HeaderMap) -> Result<(), LinkedInError> {
    let Some(raw) = headers.get("linkedin-version").and_then(|v| v.to_str().ok()) else {
        return Err(LinkedInError::bad_request(
            "VERSION_MISSING",
            "A version must be present. Please specify a version by adding the LinkedIn-Version header.",
        ));
    };
    let raw = raw.trim();
    let month: Option<u32> = raw.get(..6).and_then(|m| m.parse().ok()).filter(|_| {
        (raw.len() == 6 || (raw.len() == 9 && raw.as_bytes()[6] == b'.'))
            && raw.bytes().all(|b| b.is_ascii_digit() || b == b'.')
    });
    match month {
        None => Err(LinkedInError::bad_request(
            "INVALID_VERSION",
            format!("Invalid version format: {raw}. Expected YYYYMM."),
        )),
        Some(m) if m < OLDEST_VERSION => Err(LinkedInError::api(
            StatusCode::UPGRADE_REQUIRED,
            0,
            "NONEXISTENT_VERSION",
            format!("Requested version {raw} is not active"),
        )),
        Some(_) => Ok(()),
    }
}

/// `POST /rest/posts`: a member's text post. 201, empty body, `x-restli-id`.
pub(crate) async fn create_post(State(ctx): State<Ctx>, headers: HeaderMap, body: Bytes) -> Answer {
    let t = caller(&ctx, &headers)?;
    check_version(&headers)?;
    if !t.has_scope("w_member_social") {
        return Err(LinkedInError::access_denied(CREATE_RESOURCE));
    }
    let Ok(Value::Object(post)) = serde_json::from_slice::<Value>(&body) else {
        return Err(LinkedInError::bad_request(
            "ILLEGAL_ARGUMENT",
            "Unable to parse the request body as JSON",
        ));
    };
    let user = ctx
        .accounts()
        .user(&t.user_key)
        .cloned()
        .ok_or_else(|| LinkedInError::access_denied(CREATE_RESOURCE))?;
    let text = commentary(&post, &format!("urn:li:person:{}", user.id))?;
    if ctx.common.content_rejected(PLATFORM) {
        return Err(LinkedInError::unprocessable(
            "commentary",
            "CONTENT_POLICY_VIOLATION",
            "Content violates the LinkedIn Professional Community Policies",
        ));
    }
    let urn = ctx
        .accounts()
        .record_post(&t.user_key, &text, |n| {
            format!("urn:li:share:{}", 7_200_000_000_000_000_000u64 + n)
        })
        .id;
    tracing::info!(platform = PLATFORM, post = %urn, "post created");
    if ctx.common.answer_lost(PLATFORM) {
        return Ok(crate::faults::lost_answer());
    }
    let mut resp = StatusCode::CREATED.into_response();
    if let Ok(v) = HeaderValue::from_str(&urn) {
        resp.headers_mut().insert(HeaderName::from_static("x-restli-id"), v.clone());
        resp.headers_mut().insert(HeaderName::from_static("x-linkedin-id"), v);
    }
    Ok(resp)
}

/// Validates a post body the way Rest.li does (422 naming the field) and
/// returns its text. `author` must be the caller's own URN.
fn commentary(post: &Map<String, Value>, author_urn: &str) -> Result<String, LinkedInError> {
    for field in ["author", "lifecycleState", "visibility", "distribution"] {
        if post.get(field).is_none_or(Value::is_null) {
            return Err(LinkedInError::unprocessable(
                field,
                "FIELD_REQUIRED",
                "field is required but not found and has no default value",
            ));
        }
    }
    let author = post.get("author").and_then(Value::as_str).unwrap_or_default();
    if author != author_urn {
        return Err(LinkedInError::access_denied(&format!(
            "{CREATE_RESOURCE} for author {author}"
        )));
    }
    let text = match post.get("commentary") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => {
            return Err(LinkedInError::unprocessable(
                "commentary",
                "INVALID_TYPE",
                "expected a string",
            ))
        }
    };
    if text.chars().count() > MAX_COMMENTARY {
        return Err(LinkedInError::unprocessable(
            "commentary",
            "FIELD_VALUE_TOO_LONG",
            "length exceeds the maximum of 3000",
        ));
    }
    if post.get("lifecycleState").and_then(Value::as_str) != Some("PUBLISHED") {
        return Err(LinkedInError::unprocessable(
            "lifecycleState",
            "INVALID_VALUE",
            "only PUBLISHED is supported",
        ));
    }
    let visibility = post.get("visibility").and_then(Value::as_str).unwrap_or_default();
    if !["PUBLIC", "CONNECTIONS", "LOGGED_IN", "CONTAINER"].contains(&visibility) {
        return Err(LinkedInError::unprocessable(
            "visibility",
            "INVALID_VALUE",
            "is not a valid MemberNetworkVisibility",
        ));
    }
    Ok(text)
}

/// `GET /rest/posts?q=author&author={urn}&count=N`: the member's posts, newest first. Reading
/// a member's posts needs `r_member_social`, a restricted permission LinkedIn grants only to
/// approved partners; `w_member_social` (posting) does not include it.
pub(crate) async fn list_posts(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Answer {
    let t = caller(&ctx, &headers)?;
    check_version(&headers)?;
    if !t.has_scope("r_member_social") {
        return Err(LinkedInError::access_denied(FIND_BY_AUTHOR_RESOURCE));
    }
    let params: HashMap<String, String> = parse_form(q.unwrap_or_default().as_bytes());
    if params.get("q").map(String::as_str) != Some("author") {
        return Err(LinkedInError::bad_request(
            "ILLEGAL_ARGUMENT",
            "Query parameter q must be author",
        ));
    }
    let a = ctx.accounts();
    let user =
        a.user(&t.user_key).ok_or_else(|| LinkedInError::access_denied("posts.FINDER-author"))?;
    let urn = format!("urn:li:person:{}", user.id);
    if params.get("author") != Some(&urn) {
        return Err(LinkedInError::access_denied(FIND_BY_AUTHOR_RESOURCE));
    }
    let count: usize = params.get("count").and_then(|c| c.parse().ok()).unwrap_or(10).min(100);
    let total = a.posts_of(&t.user_key).count();
    let elements: Vec<Value> = a
        .posts_of(&t.user_key)
        .rev()
        .take(count)
        .map(|p| {
            json!({
                "id": p.id,
                "author": urn,
                "commentary": p.text,
                "createdAt": p.created_at.timestamp_millis(),
                "lifecycleState": "PUBLISHED",
                "visibility": "PUBLIC",
            })
        })
        .collect();
    Ok(axum::Json(json!({
        "elements": elements,
        "paging": { "start": 0, "count": count, "total": total },
    }))
    .into_response())
}
