//! The Meta-login Graph API: `me` / `{id}` (the user, a container or a
//! published media item), creating and publishing containers, listing the
//! user's media (for reconciling) and the publishing quota.

use axum::response::IntoResponse;
use chrono::Utc;
use serde_json::{json, Value};

use super::wire::media_node;
use super::{Call, Ctx, Store};
use crate::accounts::{Kind, Token, DAY};
use crate::authorize::required;
use crate::graph::{self, Answer, GraphError};

/// A media container: created by the first step, published by the second.
#[derive(Debug, Clone)]
pub(crate) struct Container {
    id: String,
    user_key: String,
    media_type: String,
    text: String,
    published: Option<String>,
}

/// The caller's live access token (short- or long-lived).
pub(crate) fn caller(call: &Call<'_>) -> Result<Token, GraphError> {
    let token = call.token()?;
    let now = call.ctx.common.clock.now();
    let store = call.ctx.store();
    store.accounts.check(&token, &[Kind::ShortLived, Kind::LongLived], now).map_err(|r| {
        let app = store.accounts.token(&token).map(|t| t.client_id.clone()).unwrap_or_default();
        graph::refusal(&r, &app, now)
    })
}

fn need_scope(t: &Token, scope: &str) -> Result<(), GraphError> {
    if t.has_scope(scope) {
        Ok(())
    } else {
        Err(GraphError::new(10, "(#10) Application does not have permission for this action"))
    }
}

/// `GET /me` or `GET /{id}`: the user, one of their containers or media.
pub(crate) fn node(call: &Call<'_>, id: Option<&str>) -> Answer {
    let (ctx, params) = (call.ctx, call.params);
    let cfg = ctx.cfg();
    let t = caller(call)?;
    need_scope(&t, cfg.basic_scope)?;
    let store = ctx.store();
    let user = store
        .accounts
        .user(&t.user_key)
        .cloned()
        .ok_or_else(|| graph::no_such_object("get", "me"))?;
    let fields = graph::fields(params, &["id"]);
    let posts = store.accounts.posts_of(&t.user_key).count();
    if id.is_none() || id == Some(user.id.as_str()) {
        let node = (cfg.user_node)(&user, posts);
        return Ok(axum::Json(graph::select(&node, &fields, cfg.user_node_type)?).into_response());
    }
    let id = id.unwrap_or_default();
    if let Some(c) = store.containers.get(id).filter(|c| c.user_key == t.user_key) {
        let (code, status) = match &c.published {
            Some(_) => ("PUBLISHED", "Published"),
            None => ("FINISHED", "Finished: Media container is ready to be published."),
        };
        let node =
            json!({ "id": c.id, "status_code": code, "status": code, "status_message": status });
        let fields = graph::fields(params, &["id"]);
        return Ok(
            axum::Json(graph::select(&node, &fields, "ShadowIGMediaBuilder")?).into_response()
        );
    }
    let published = store
        .containers
        .values()
        .find(|c| c.published.as_deref() == Some(id) && c.user_key == t.user_key);
    if let Some(c) = published {
        let ts = store
            .accounts
            .posts_of(&t.user_key)
            .find(|p| p.id == id)
            .map(|p| graph::timestamp(p.created_at))
            .unwrap_or_default();
        let node = media_node(cfg, &c.text, &c.media_type, id, &user.username, &ts);
        return Ok(axum::Json(graph::select(&node, &fields, "Media")?).into_response());
    }
    Err(graph::no_such_object("get", id))
}

/// The caller, when `id` is their own user (or `me`) and the token holds
/// `scope` (if one is named).
fn owner(
    call: &Call<'_>,
    id: &str,
    method: &str,
    scope: Option<&str>,
) -> Result<Token, GraphError> {
    let t = caller(call)?;
    match call.ctx.store().accounts.user(&t.user_key) {
        Some(u) if u.id == id || id == "me" => {}
        _ => return Err(graph::no_such_object(method, id)),
    }
    if let Some(scope) = scope {
        need_scope(&t, scope)?;
    }
    Ok(t)
}

/// `POST /{user-id}/{media|threads}`: creates a container.
pub(crate) fn create_container(call: &Call<'_>, id: &str) -> Answer {
    let (ctx, params) = (call.ctx, call.params);
    let cfg = ctx.cfg();
    let t = owner(call, id, "post", Some(cfg.publish_scope))?;
    let (media_type, text, _url) = (cfg.container)(params)?;
    let mut store = ctx.store();
    store.next_id += 1;
    let cid = (cfg.first_media_id + 2 * store.next_id).to_string();
    store.containers.insert(
        cid.clone(),
        Container {
            id: cid.clone(),
            user_key: t.user_key.clone(),
            media_type,
            text,
            published: None,
        },
    );
    Ok(axum::Json(json!({ "id": cid })).into_response())
}

fn quota_usage(ctx: &Ctx, store: &Store, user_key: &str) -> usize {
    let window = chrono::Duration::from_std(ctx.common.clock.real(DAY)).unwrap_or_default();
    let since = Utc::now() - window;
    store.accounts.posts_of(user_key).filter(|p| p.created_at > since).count()
}

/// `POST /{user-id}/{media_publish|threads_publish}` with `creation_id`.
pub(crate) fn publish(call: &Call<'_>, id: &str) -> Answer {
    let (ctx, params) = (call.ctx, call.params);
    let cfg = ctx.cfg();
    let t = owner(call, id, "post", Some(cfg.publish_scope))?;
    let creation_id =
        required(params, "creation_id").ok_or_else(|| graph::missing_param("creation_id"))?;
    if ctx.common.content_rejected(cfg.platform) {
        return Err(graph::content_refused());
    }
    let mut store = ctx.store();
    let container = store
        .containers
        .get(creation_id)
        .filter(|c| c.user_key == t.user_key)
        .cloned()
        .ok_or_else(|| {
            graph::invalid_param(format!(
                "Param creation_id must be a valid container id: {creation_id}"
            ))
        })?;
    if container.published.is_some() {
        return Err(graph::invalid_param("The media container has already been published"));
    }
    if quota_usage(ctx, &store, &t.user_key) >= cfg.quota_total {
        return Err(GraphError::new(9, "Application request limit reached")
            .subcode(2_207_042)
            .transient());
    }
    let first = cfg.first_media_id;
    let post = store
        .accounts
        .record_post(&t.user_key, &container.text, |n| (first + 2 * n + 1).to_string());
    if let Some(c) = store.containers.get_mut(creation_id) {
        c.published = Some(post.id.clone());
    }
    drop(store);
    tracing::info!(platform = cfg.platform, media_id = %post.id, "media published");
    if ctx.common.answer_lost(cfg.platform) {
        return Ok(crate::faults::lost_answer());
    }
    Ok(axum::Json(json!({ "id": post.id })).into_response())
}

/// `GET /{user-id}/{media|threads}`: the user's published media, newest first.
pub(crate) fn list_media(call: &Call<'_>, id: &str) -> Answer {
    let ctx = call.ctx;
    let cfg = ctx.cfg();
    let t = owner(call, id, "get", Some(cfg.basic_scope))?;
    let store = ctx.store();
    let username = store.accounts.user(&t.user_key).map(|u| u.username.clone()).unwrap_or_default();
    let data: Vec<Value> = store
        .accounts
        .posts_of(&t.user_key)
        .rev()
        .filter_map(|p| {
            let c = store
                .containers
                .values()
                .find(|c| c.published.as_deref() == Some(p.id.as_str()))?;
            Some(media_node(
                cfg,
                &c.text,
                &c.media_type,
                &p.id,
                &username,
                &graph::timestamp(p.created_at),
            ))
        })
        .collect();
    Ok(axum::Json(json!({ "data": data, "paging": {} })).into_response())
}

/// `GET /{user-id}/{content_publishing_limit|threads_publishing_limit}`.
pub(crate) fn publishing_limit(call: &Call<'_>, id: &str) -> Answer {
    let ctx = call.ctx;
    let cfg = ctx.cfg();
    let t = owner(call, id, "get", None)?;
    let store = ctx.store();
    let usage = quota_usage(ctx, &store, &t.user_key);
    Ok(axum::Json(json!({ "data": [{
        "quota_usage": usage,
        "config": { "quota_total": cfg.quota_total, "quota_duration": 86400 },
    }]}))
    .into_response())
}
