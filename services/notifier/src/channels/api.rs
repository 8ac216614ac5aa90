//! The channels API: create (a webhook's signing secret is answered once), list, delete, send a
//! test message, read the delivery log, redeliver, rotate a webhook's signing secret, and enable
//! a channel that was disabled for failing too long.

use axum::{
    extract::{rejection::JsonRejection, Path, State},
    http::StatusCode,
    routing::{delete, get, post},
    Json, Router,
};
use chrono::{DateTime, Utc};
use lifeline_kit::{
    auth::Workspace,
    http::ApiError,
    openapi::{ErrorBody, Unauthorized},
};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{
    store::{self, Channel, RotateError, Target},
    target::{self, TargetError},
};
use crate::{delivery::enqueue, AppState};

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/notification-channels", post(create).get(list))
        .route("/v1/notification-channels/{id}", delete(remove))
        .route("/v1/notification-channels/{id}/test", post(test))
        .route("/v1/notification-channels/{id}/deliveries", get(deliveries))
        .route("/v1/notification-channels/{id}/deliveries/{delivery_id}/redeliver", post(redeliver))
        .route("/v1/notification-channels/{id}/rotate-secret", post(rotate_secret))
        .route("/v1/notification-channels/{id}/enable", post(enable))
}

/// A new channel, by `kind`: `webhook` or `slack` with `url`, `email` with `address`. A tagged
/// union, so the document says which field each kind needs.
#[derive(Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub(crate) enum NewChannel {
    /// Signed Standard Webhooks to `url`.
    Webhook {
        /// The endpoint's URL (https, or http where the operator allows it).
        url: String,
    },
    /// Messages to a Slack incoming webhook.
    Slack {
        /// The incoming webhook's URL.
        url: String,
    },
    /// Email to `address` through the configured SMTP server.
    Email {
        /// The email address, as given (not trimmed): one `@`, a local part of 1 to 64
        /// characters, a domain with a dot inside it, no whitespace, control characters, angle
        /// brackets or `,;"()[]\` (`target::parse_email`).
        address: String,
    },
}

/// What the derived schema of [`NewChannel`] cannot say: each variant refuses other properties
/// (`deny_unknown_fields`), and an email address is [`target::EMAIL_PATTERN`], at most 254
/// characters. Called by `crate::openapi()`.
pub(crate) fn complete_schema(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{
        schema::{AdditionalProperties, Schema},
        RefOr,
    };
    let Some(RefOr::T(Schema::OneOf(kinds))) =
        doc.components.as_mut().and_then(|c| c.schemas.get_mut("NewChannel"))
    else {
        panic!("NewChannel is a oneOf of its kinds");
    };
    for kind in &mut kinds.items {
        let RefOr::T(Schema::Object(kind)) = kind else { panic!("a kind is an object") };
        kind.additional_properties = Some(Box::new(AdditionalProperties::FreeForm(false)));
        if let Some(RefOr::T(Schema::Object(address))) = kind.properties.get_mut("address") {
            address.pattern = Some(target::EMAIL_PATTERN.to_owned());
            address.max_length = Some(254);
        }
    }
}

/// The channel created; `secret` only for a webhook, and only now.
#[derive(Serialize, ToSchema)]
pub(crate) struct Created {
    #[serde(flatten)]
    channel: Channel,
    /// The webhook's signing secret (`whsec_…`); keep it, it is not shown again.
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
}

fn bad_target(e: TargetError) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_target", e.to_string())
}

async fn parse_target(app: &AppState, new: NewChannel) -> Result<Target, ApiError> {
    let webhook = matches!(new, NewChannel::Webhook { .. });
    match new {
        NewChannel::Webhook { url: raw } | NewChannel::Slack { url: raw } => {
            let url = target::parse_url(&raw).map_err(bad_target)?;
            target::check_resolved(&url, app.delivery.allow_private_targets)
                .await
                .map_err(bad_target)?;
            Ok(if webhook { Target::Webhook { url } } else { Target::Slack { url } })
        }
        NewChannel::Email { address: raw } => {
            let address = target::parse_email(&raw).map_err(bad_target)?;
            if app.delivery.smtp.is_none() {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "email_not_configured",
                    "this Lifeline has no SMTP server (LIFELINE_SMTP_HOST); use a webhook or Slack",
                ));
            }
            Ok(Target::Email { address })
        }
    }
}

/// Creates a channel; every notification of the workspace is sent to it from now on.
#[utoipa::path(
    post,
    path = "/v1/notification-channels",
    operation_id = "create_notification_channel",
    tag = "notification-channels",
    security(("bearer" = [])),
    request_body = NewChannel,
    responses(
        (status = 201, description = "Created; a webhook's `secret` is shown only here.", body = Created),
        (status = 400, description = "`bad_request`: not JSON, unknown `kind`, or `url`/`address` missing.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 409, description = "`email_not_configured`: an email channel on a Lifeline without an SMTP server.", body = ErrorBody),
        (status = 422, description = "`invalid_target`: a malformed URL or address, or a URL that resolves to a loopback, private or link-local address.", body = ErrorBody),
    ),
)]
pub(crate) async fn create(
    State(app): State<AppState>,
    Workspace(ws): Workspace,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<(StatusCode, Json<Created>), ApiError> {
    let new: NewChannel = lifeline_kit::http::json_object(body)?;
    let target = parse_target(&app, new).await?;
    let (channel, secret) = store::create(&app.pool, &app.keys, ws, &target).await?;
    tracing::info!(channel = %channel.id, kind = %channel.kind, "notification channel created");
    let secret = secret.map(|s| s.expose_secret().to_owned());
    Ok((StatusCode::CREATED, Json(Created { channel, secret })))
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ChannelList {
    channels: Vec<Channel>,
}

/// The workspace's channels, oldest first.
#[utoipa::path(
    get,
    path = "/v1/notification-channels",
    operation_id = "list_notification_channels",
    tag = "notification-channels",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Every channel, without secrets.", body = ChannelList),
        (status = 401, response = Unauthorized),
    ),
)]
pub(crate) async fn list(
    State(app): State<AppState>,
    Workspace(ws): Workspace,
) -> Result<Json<ChannelList>, ApiError> {
    Ok(Json(ChannelList { channels: store::list(&app.pool, ws).await? }))
}

fn channel_id(raw: &str) -> Result<Uuid, ApiError> {
    raw.parse().map_err(|_| ApiError::not_found("channel"))
}

/// Deletes a channel and its delivery log; nothing more is sent to it.
#[utoipa::path(
    delete,
    path = "/v1/notification-channels/{id}",
    operation_id = "delete_notification_channel",
    tag = "notification-channels",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The channel.")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 401, response = Unauthorized),
        (status = 404, description = "`not_found`: no such channel in the workspace.", body = ErrorBody),
    ),
)]
pub(crate) async fn remove(
    State(app): State<AppState>,
    Workspace(ws): Workspace,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if store::delete(&app.pool, ws, channel_id(&id)?).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("channel"))
    }
}

/// A delivery queued by the API.
#[derive(Serialize, ToSchema)]
pub(crate) struct Queued {
    /// The delivery (its `webhook-id`); follow it in the delivery log.
    delivery_id: Uuid,
}

/// Sends a `channel.test` message to the channel now (through the delivery log, with retries).
#[utoipa::path(
    post,
    path = "/v1/notification-channels/{id}/test",
    operation_id = "test_notification_channel",
    tag = "notification-channels",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The channel.")),
    responses(
        (status = 202, description = "Queued; it goes out at once.", body = Queued),
        (status = 401, response = Unauthorized),
        (status = 404, description = "`not_found`: no such channel in the workspace.", body = ErrorBody),
        (status = 409, description = "`channel_disabled`: the channel was disabled; enable it again (`POST …/enable`).", body = ErrorBody),
    ),
)]
pub(crate) async fn test(
    State(app): State<AppState>,
    Workspace(ws): Workspace,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Queued>), ApiError> {
    let channel = store::get(&app.pool, ws, channel_id(&id)?)
        .await?
        .ok_or_else(|| ApiError::not_found("channel"))?;
    if channel.disabled_at.is_some() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "channel_disabled",
            format!(
                "the channel was disabled for failing too long; enable it again once the endpoint \
                 works (POST /v1/notification-channels/{}/enable)",
                channel.id
            ),
        ));
    }
    let data = json!({
        "title": "Lifeline test message",
        "body": "This channel receives Lifeline's notifications about your connected accounts.",
        "channel_id": channel.id,
    });
    let delivery_id = enqueue::to_channel(&app.pool, channel.id, ws, "channel.test", &data).await?;
    app.wake.notify_one();
    Ok((StatusCode::ACCEPTED, Json(Queued { delivery_id })))
}

/// One attempt of a delivery.
#[derive(Serialize, sqlx::FromRow, ToSchema)]
pub(crate) struct Attempt {
    #[serde(skip)]
    delivery_id: Uuid,
    attempted_at: DateTime<Utc>,
    /// The endpoint's HTTP status; null when it did not answer.
    #[schema(required = true)]
    status_code: Option<i32>,
    latency_ms: i32,
    /// Why it failed (null for a 2xx).
    #[schema(required = true)]
    error: Option<String>,
}

/// A message to the channel and its attempts.
#[derive(Serialize, ToSchema)]
pub(crate) struct DeliveryView {
    /// Also its `webhook-id`, the same on every attempt.
    id: Uuid,
    /// `account.needs_reconnect`, `account.expiring`, `account.reconnected`, `channel.test`, …
    event_type: String,
    /// `pending`, `delivered` or `failed` (every scheduled attempt failed).
    status: String,
    created_at: DateTime<Utc>,
    /// When the next attempt is due (while pending).
    #[schema(required = true)]
    next_attempt_at: Option<DateTime<Utc>>,
    #[schema(required = true)]
    delivered_at: Option<DateTime<Utc>>,
    attempts: Vec<Attempt>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct DeliveryLog {
    deliveries: Vec<DeliveryView>,
}

/// The channel's newest 100 deliveries with every attempt.
#[utoipa::path(
    get,
    path = "/v1/notification-channels/{id}/deliveries",
    operation_id = "list_channel_deliveries",
    tag = "notification-channels",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The channel.")),
    responses(
        (status = 200, description = "Newest first, at most 100.", body = DeliveryLog),
        (status = 401, response = Unauthorized),
        (status = 404, description = "`not_found`: no such channel in the workspace.", body = ErrorBody),
    ),
)]
pub(crate) async fn deliveries(
    State(app): State<AppState>,
    Workspace(ws): Workspace,
    Path(id): Path<String>,
) -> Result<Json<DeliveryLog>, ApiError> {
    let channel = store::get(&app.pool, ws, channel_id(&id)?)
        .await?
        .ok_or_else(|| ApiError::not_found("channel"))?;
    type Row = (Uuid, String, String, DateTime<Utc>, DateTime<Utc>, Option<DateTime<Utc>>);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, event_type, status, created_at, next_attempt_at, delivered_at FROM notifier.deliveries
         WHERE channel_id = $1 ORDER BY created_at DESC LIMIT 100",
    )
    .bind(channel.id)
    .fetch_all(&app.pool)
    .await?;
    let ids: Vec<Uuid> = rows.iter().map(|r| r.0).collect();
    let mut attempts: Vec<Attempt> = sqlx::query_as(
        "SELECT delivery_id, attempted_at, status_code, latency_ms, error FROM notifier.delivery_attempts
         WHERE delivery_id = ANY($1) ORDER BY id",
    )
    .bind(&ids)
    .fetch_all(&app.pool)
    .await?;
    let deliveries = rows
        .into_iter()
        .map(|(id, event_type, status, created_at, next, delivered_at)| {
            let (mine, rest): (Vec<Attempt>, Vec<Attempt>) =
                std::mem::take(&mut attempts).into_iter().partition(|a| a.delivery_id == id);
            attempts = rest;
            DeliveryView {
                attempts: mine,
                next_attempt_at: (status == "pending").then_some(next),
                id,
                event_type,
                status,
                created_at,
                delivered_at,
            }
        })
        .collect();
    Ok(Json(DeliveryLog { deliveries }))
}

/// Sends a delivery again now, with the same `webhook-id` and body, and a fresh retry schedule.
#[utoipa::path(
    post,
    path = "/v1/notification-channels/{id}/deliveries/{delivery_id}/redeliver",
    operation_id = "redeliver",
    tag = "notification-channels",
    security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "The channel."),
        ("delivery_id" = Uuid, Path, description = "The delivery."),
    ),
    responses(
        (status = 202, description = "Queued; it goes out at once.", body = Queued),
        (status = 401, response = Unauthorized),
        (status = 404, description = "`not_found`: no such delivery of this channel in the workspace.", body = ErrorBody),
        (status = 409, description = "`in_flight`: an attempt is being made right now.", body = ErrorBody),
    ),
)]
pub(crate) async fn redeliver(
    State(app): State<AppState>,
    Workspace(ws): Workspace,
    Path((id, delivery)): Path<(String, String)>,
) -> Result<(StatusCode, Json<Queued>), ApiError> {
    let channel = channel_id(&id)?;
    let delivery: Uuid = delivery.parse().map_err(|_| ApiError::not_found("delivery"))?;
    let found: Option<(Uuid,)> = sqlx::query_as(
        "SELECT id FROM notifier.deliveries WHERE id = $1 AND channel_id = $2 AND workspace_id = $3",
    )
    .bind(delivery)
    .bind(channel)
    .bind(ws)
    .fetch_optional(&app.pool)
    .await?;
    let Some(_) = found else { return Err(ApiError::not_found("delivery")) };
    let done = sqlx::query(
        "UPDATE notifier.deliveries SET status = 'pending', attempts = 0, next_attempt_at = now(), delivered_at = NULL
         WHERE id = $1 AND (lease_until IS NULL OR lease_until < now())",
    )
    .bind(delivery)
    .execute(&app.pool)
    .await?;
    if done.rows_affected() == 0 {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "in_flight",
            "an attempt is being made right now; try again shortly",
        ));
    }
    app.wake.notify_one();
    Ok((StatusCode::ACCEPTED, Json(Queued { delivery_id: delivery })))
}

/// The new signing secret.
#[derive(Serialize, ToSchema)]
pub(crate) struct Rotated {
    /// The new `whsec_…` secret; shown only now.
    secret: String,
    /// Until when messages also carry a signature under the previous secret.
    previous_secret_valid_until: DateTime<Utc>,
}

/// Replaces a webhook's signing secret; for 24 h every message carries two signatures, under
/// the new and the previous secret, so the receiver can switch without losing a message.
#[utoipa::path(
    post,
    path = "/v1/notification-channels/{id}/rotate-secret",
    operation_id = "rotate_channel_secret",
    tag = "notification-channels",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The channel.")),
    responses(
        (status = 200, description = "Rotated.", body = Rotated),
        (status = 401, response = Unauthorized),
        (status = 404, description = "`not_found`: no such channel in the workspace.", body = ErrorBody),
        (status = 409, description = "`not_a_webhook`: only webhook channels have a signing secret.", body = ErrorBody),
    ),
)]
pub(crate) async fn rotate_secret(
    State(app): State<AppState>,
    Workspace(ws): Workspace,
    Path(id): Path<String>,
) -> Result<Json<Rotated>, ApiError> {
    let id = channel_id(&id)?;
    match store::rotate(&app.pool, &app.keys, ws, id, crate::delivery::SECRET_OVERLAP).await {
        Ok((secret, until)) => {
            tracing::info!(channel = %id, "webhook signing secret rotated");
            Ok(Json(Rotated {
                secret: secret.expose_secret().to_owned(),
                previous_secret_valid_until: until,
            }))
        }
        Err(RotateError::NotFound) => Err(ApiError::not_found("channel")),
        Err(RotateError::NotWebhook) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_a_webhook",
            "only webhook channels have a signing secret",
        )),
        Err(e) => Err(ApiError::internal(e)),
    }
}

/// Enables a channel that was disabled for failing too long, once its endpoint works again:
/// clears `disabled_at` and the failing streak, and new notifications are sent to it from now
/// on. Nothing is sent retroactively: deliveries left pending when it was disabled are marked
/// `failed` (each can still be sent with `…/redeliver`). A channel that is not disabled is
/// answered unchanged.
#[utoipa::path(
    post,
    path = "/v1/notification-channels/{id}/enable",
    operation_id = "enable_notification_channel",
    tag = "notification-channels",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The channel.")),
    responses(
        (status = 200, description = "Enabled (or already enabled).", body = Channel),
        (status = 401, response = Unauthorized),
        (status = 404, description = "`not_found`: no such channel in the workspace.", body = ErrorBody),
    ),
)]
pub(crate) async fn enable(
    State(app): State<AppState>,
    Workspace(ws): Workspace,
    Path(id): Path<String>,
) -> Result<Json<Channel>, ApiError> {
    let id = channel_id(&id)?;
    let channel =
        store::enable(&app.pool, ws, id).await?.ok_or_else(|| ApiError::not_found("channel"))?;
    tracing::info!(channel = %id, "notification channel enabled");
    Ok(Json(channel))
}
