//! Facebook's Graph API for Pages: `me` / `{id}` (the user, or the Page with
//! its token), `me/accounts`, posting to `{page-id}/feed` or `/photos`, and
//! listing the Page's posts (for reconciling).

use std::collections::HashMap;

use axum::response::IntoResponse;
use serde_json::{json, Value};

use super::token::page_token;
use super::wire::{page_node, permissions_error, user_node};
use super::{Call, Ctx, ALL_KINDS, PLATFORM};
use crate::accounts::{Kind, Token, User};
use crate::authorize::required;
use crate::graph::{self, Answer, GraphError};

/// The caller's live token of any kind (user or Page).
fn caller(call: &Call<'_>) -> Result<Token, GraphError> {
    let token = call.token()?;
    let now = call.ctx.common.clock.now();
    let a = call.ctx.accounts();
    a.check(&token, ALL_KINDS, now).map_err(|r| {
        let app = a.token(&token).map(|t| t.client_id.clone()).unwrap_or_default();
        graph::refusal(&r, &app, now)
    })
}

/// The user behind `t`, or Graph's "no such object" for `method` on `id`.
fn user_of(ctx: &Ctx, t: &Token, method: &str, id: &str) -> Result<User, GraphError> {
    ctx.accounts().user(&t.user_key).cloned().ok_or_else(|| graph::no_such_object(method, id))
}

/// `GET /me` (user, or the Page for a Page token) and `GET /{id}`.
pub(crate) fn node(call: &Call<'_>, id: Option<&str>) -> Answer {
    let (ctx, params) = (call.ctx, call.params);
    let t = caller(call)?;
    let user = user_of(ctx, &t, "get", "me")?;
    let fields = graph::fields(params, &["id", "name"]);
    let is_page = match id {
        None => t.kind == Kind::Page,
        Some(id) if id == user.secondary_id => true,
        Some(id) if id == user.id && t.kind != Kind::Page => false,
        Some(id) => return Err(graph::no_such_object("get", id)),
    };
    if !is_page {
        return Ok(
            axum::Json(graph::select(&user_node(&user, &t), &fields, "User")?).into_response()
        );
    }
    let mut node = page_node(&user);
    if fields.iter().any(|f| f == "access_token") {
        if t.kind == Kind::Page {
            return Err(permissions_error("Requires a user access token"));
        }
        if !t.has_scope("pages_show_list") {
            return Err(permissions_error("Permissions error"));
        }
        node["access_token"] = json!(page_token(ctx, &t));
    }
    Ok(axum::Json(graph::select(&node, &fields, "Page")?).into_response())
}

/// `GET /me/accounts`: the user's Pages with their Page tokens.
pub(crate) fn me_accounts(call: &Call<'_>) -> Answer {
    let ctx = call.ctx;
    let t = caller(call)?;
    if t.kind == Kind::Page {
        return Err(graph::invalid_param(
            "Tried accessing nonexisting field (accounts) on node type (Page)",
        ));
    }
    if !t.has_scope("pages_show_list") {
        return Err(permissions_error("Permissions error"));
    }
    let user = user_of(ctx, &t, "get", "me")?;
    let mut page = page_node(&user);
    page["access_token"] = json!(page_token(ctx, &t));
    Ok(axum::Json(json!({
        "data": [page],
        "paging": { "cursors": { "before": "QVFIUmsim", "after": "QVFIUmsim" } },
    }))
    .into_response())
}

/// What a Page post may carry: `message` (or `caption`), and for a photo an
/// http(s) `url`, for a feed post a message or a `link`.
fn post_message(params: &HashMap<String, String>, photo: bool) -> Result<String, GraphError> {
    let message = params.get("message").or(params.get("caption")).cloned().unwrap_or_default();
    if photo {
        let url = required(params, "url").ok_or_else(|| graph::missing_param("url"))?;
        if !url::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https")) {
            return Err(graph::invalid_param("The parameter url is not a valid URL"));
        }
    } else if message.trim().is_empty() && required(params, "link").is_none() {
        return Err(graph::invalid_param("Missing message or attachment"));
    }
    if message.chars().count() > 63_206 {
        return Err(graph::invalid_param("Message is too long"));
    }
    Ok(message)
}

/// `POST /{page-id}/feed` with `message` (and/or `link`), or `POST /{page-id}/photos` with an
/// image `url` and an optional `message` (or `caption`); Page token only.
pub(crate) fn create_post(call: &Call<'_>, id: &str, photo: bool) -> Answer {
    let (ctx, params) = (call.ctx, call.params);
    let t = caller(call)?;
    let user = user_of(ctx, &t, "post", id)?;
    if id != user.secondary_id && id != "me" {
        return Err(graph::no_such_object("post", id));
    }
    if t.kind != Kind::Page
        || !t.has_scope("pages_manage_posts")
        || !t.has_scope("pages_read_engagement")
    {
        return Err(permissions_error(
            "If posting to a page, requires both pages_read_engagement and pages_manage_posts as an admin with sufficient administrative permission",
        ));
    }
    let message = post_message(params, photo)?;
    if ctx.common.content_rejected(PLATFORM) {
        return Err(graph::content_refused());
    }
    let page_id = user.secondary_id.clone();
    let post = ctx.accounts().record_post(&t.user_key, &message, |n| {
        format!("{page_id}_{}", 122_000_000_000_000_000u64 + n)
    });
    tracing::info!(platform = PLATFORM, post_id = %post.id, photo, "page post created");
    if ctx.common.answer_lost(PLATFORM) {
        return Ok(crate::faults::lost_answer());
    }
    if photo {
        // The photo object's own id, and the Page post that shows it.
        let photo_id = post.id.rsplit('_').next().unwrap_or_default().to_owned();
        return Ok(axum::Json(json!({ "id": photo_id, "post_id": post.id })).into_response());
    }
    Ok(axum::Json(json!({ "id": post.id })).into_response())
}

/// `GET /{page-id}/feed`: the Page's posts, newest first.
pub(crate) fn list_posts(call: &Call<'_>, id: &str) -> Answer {
    let ctx = call.ctx;
    let t = caller(call)?;
    let a = ctx.accounts();
    let user = a.user(&t.user_key).ok_or_else(|| graph::no_such_object("get", id))?;
    if id != user.secondary_id {
        return Err(graph::no_such_object("get", id));
    }
    let data: Vec<Value> = a
        .posts_of(&t.user_key)
        .rev()
        .map(|p| json!({ "id": p.id, "message": p.text, "created_time": graph::timestamp(p.created_at) }))
        .collect();
    Ok(axum::Json(json!({ "data": data })).into_response())
}
