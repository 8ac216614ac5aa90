//! notifier: tells the owner once per incident that an account needs reconnecting (not once per
//! failed post), warns ahead of an unavoidable expiry, and serves the notifications API.

mod accounts;
mod api;
mod channels;
pub mod delivery;
mod digest;
mod flapping;
mod incidents;
pub mod message;
mod reminders;

use std::sync::Arc;

use axum::{Extension, Router};
use lifeline_kit::{
    auth::JwtKeys,
    config::{CommonConfig, ConfigError, Env},
    outbox::Outbox,
    service::{self, StartError},
};
use lifeline_vault::VaultKeys;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub const SERVICE: &str = "notifier";
pub const SCHEMA: &str = "notifier";
pub const DEFAULT_PORT: u16 = 8082;
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Clone)]
pub struct Config {
    pub common: CommonConfig,
    pub jwt: JwtKeys,
    /// How long a publish failure that a refresh might heal waits before the owner is told,
    /// `LIFELINE_NOTIFY_GRACE` (60s). A refresh that confirms the failure ends the wait.
    pub grace: std::time::Duration,
    /// `LIFELINE_VAULT_KEYS`: seals channel secrets (webhook signing secrets, Slack URLs).
    pub vault_keys: VaultKeys,
    pub delivery: delivery::Settings,
    /// `LIFELINE_GATEWAY_URL`: where the notifier asks for account handles (unset: messages
    /// name the platform only).
    pub gateway_url: Option<url::Url>,
    /// `LIFELINE_PUBLISHER_URL`: where the notifier asks how many of an account's posts wait
    /// (unset: messages do not count them, and no reminder is sent).
    pub publisher_url: Option<url::Url>,
    /// `LIFELINE_PUBLIC_URL` (`http://127.0.0.1:8080`): where browsers reach the Accounts page;
    /// messages link to it.
    pub public_url: String,
    pub flapping: Flapping,
    /// `LIFELINE_NOTIFY_DIGEST_INTERVAL` (1h): at most one dead-letter digest per workspace this
    /// often; the first dead letter waits this long so those that follow share its message.
    pub digest_interval: std::time::Duration,
    /// `LIFELINE_NOTIFY_REMINDER_AFTER` (24h): an account still broken this long after its
    /// notification, with posts waiting, gets one reminder.
    pub reminder_after: std::time::Duration,
}

/// When an account counts as frequently disconnecting.
#[derive(Clone, Copy, Debug)]
pub struct Flapping {
    /// `LIFELINE_NOTIFY_FLAPPING_THRESHOLD` (3): the incident that makes it frequent.
    pub threshold: u32,
    /// `LIFELINE_NOTIFY_FLAPPING_WINDOW` (30d): the window incidents are counted in.
    pub window: std::time::Duration,
}

impl Config {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Config {
            common: CommonConfig::from_env(env, SERVICE, DEFAULT_PORT)?,
            jwt: JwtKeys::from_env(env)?,
            grace: env.duration_in(
                "LIFELINE_NOTIFY_GRACE",
                std::time::Duration::from_secs(60),
                std::time::Duration::ZERO..=std::time::Duration::from_secs(3600),
            )?,
            vault_keys: VaultKeys::from_env(env)?,
            delivery: delivery::Settings::from_env(env)?,
            gateway_url: env
                .raw("LIFELINE_GATEWAY_URL")
                .map(|u| {
                    url::Url::parse(&format!("{}/", u.trim_end_matches('/')))
                        .map_err(|e| env.invalid("LIFELINE_GATEWAY_URL", e.to_string()))
                })
                .transpose()?,
            publisher_url: env
                .raw("LIFELINE_PUBLISHER_URL")
                .map(|u| {
                    url::Url::parse(&format!("{}/", u.trim_end_matches('/')))
                        .map_err(|e| env.invalid("LIFELINE_PUBLISHER_URL", e.to_string()))
                })
                .transpose()?,
            flapping: Flapping {
                threshold: env.parse_in("LIFELINE_NOTIFY_FLAPPING_THRESHOLD", 3, 2..=100)?,
                window: env.duration_in(
                    "LIFELINE_NOTIFY_FLAPPING_WINDOW",
                    std::time::Duration::from_secs(30 * 86_400),
                    std::time::Duration::from_secs(60)
                        ..=std::time::Duration::from_secs(365 * 86_400),
                )?,
            },
            digest_interval: env.duration_in(
                "LIFELINE_NOTIFY_DIGEST_INTERVAL",
                std::time::Duration::from_secs(3600),
                std::time::Duration::from_secs(1)..=std::time::Duration::from_secs(7 * 86_400),
            )?,
            reminder_after: env.duration_in(
                "LIFELINE_NOTIFY_REMINDER_AFTER",
                std::time::Duration::from_secs(86_400),
                std::time::Duration::from_secs(1)..=std::time::Duration::from_secs(30 * 86_400),
            )?,
            public_url: {
                let public = env.string_or("LIFELINE_PUBLIC_URL", "http://127.0.0.1:8080");
                url::Url::parse(&public)
                    .map_err(|e| env.invalid("LIFELINE_PUBLIC_URL", e.to_string()))?;
                public
            },
        })
    }
}

#[derive(Clone)]
pub(crate) struct AppState {
    pub pool: PgPool,
    pub grace: std::time::Duration,
    pub keys: Arc<VaultKeys>,
    pub delivery: delivery::Settings,
    /// Wakes this replica's delivery worker after deliveries were written.
    pub wake: Arc<tokio::sync::Notify>,
    pub names: accounts::AccountNames,
    pub public_url: String,
    pub flapping: Flapping,
    pub digest_interval: std::time::Duration,
    pub reminder_after: std::time::Duration,
    /// Events the notifier publishes (`AccountFlapping`), written with the state they follow from.
    pub outbox: Outbox,
}

pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: CancellationToken,
) -> Result<(), StartError> {
    let spec = service::Spec {
        schema: SCHEMA,
        migrator: &MIGRATOR,
        outbox: true,
        extra_migrations: vec![],
    };
    let common = config.common.clone();
    service::run(listener, &common, spec, shutdown, |infra, tasks, shutdown| {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent("Lifeline-Notifier/1")
            .build()
            .unwrap_or_default();
        let app = AppState {
            pool: infra.pool.clone(),
            grace: config.grace,
            keys: Arc::new(config.vault_keys.clone()),
            delivery: config.delivery.clone(),
            wake: Arc::new(tokio::sync::Notify::new()),
            names: accounts::AccountNames {
                http: http.clone(),
                gateway: config.gateway_url.clone(),
                publisher: config.publisher_url.clone(),
                jwt: config.jwt.clone(),
            },
            public_url: config.public_url.clone(),
            flapping: config.flapping,
            digest_interval: config.digest_interval,
            reminder_after: config.reminder_after,
            outbox: Outbox::new(SCHEMA, &infra.bus),
        };
        tasks.spawn(app.outbox.clone().relay(
            infra.pool.clone(),
            infra.bus.clone(),
            shutdown.clone(),
        ));
        incidents::spawn(tasks, &infra.bus, &app, shutdown);
        tasks.spawn(incidents::send_when_grace_ends(app.clone(), shutdown.clone()));
        digest::spawn(tasks, &infra.bus, &app, shutdown);
        tasks.spawn(reminders::send_when_due(app.clone(), shutdown.clone()));
        let deliverer = delivery::worker::Deliverer {
            pool: app.pool.clone(),
            keys: app.keys.clone(),
            http: delivery::resolve::client(app.delivery.allow_private_targets),
            settings: app.delivery.clone(),
            instance: common.instance_id.clone(),
            wake: app.wake.clone(),
            names: app.names.clone(),
        };
        tasks.spawn(delivery::worker::run(Arc::new(deliverer), shutdown.clone()));
        Router::new()
            .merge(api::routes())
            .merge(channels::api::routes())
            .with_state(app)
            .merge(lifeline_kit::openapi::route(&openapi()))
            .layer(Extension(config.jwt.clone()))
    })
    .await
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(
    api::list,
    api::mark_read,
    channels::api::create,
    channels::api::list,
    channels::api::remove,
    channels::api::test,
    channels::api::deliveries,
    channels::api::redeliver,
    channels::api::rotate_secret,
    channels::api::enable,
))]
struct ApiDoc;

/// The notifier's OpenAPI document (served at `/openapi.json`, committed as
/// docs/api/notifier.openapi.json).
pub fn openapi() -> utoipa::openapi::OpenApi {
    use utoipa::OpenApi as _;
    let mut doc = ApiDoc::openapi();
    channels::api::complete_schema(&mut doc);
    lifeline_kit::openapi::document(doc, SERVICE, env!("CARGO_PKG_VERSION"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn committed_openapi_document_matches_the_code() {
        lifeline_kit::openapi::assert_committed(&super::openapi(), super::SERVICE);
    }

    /// Each kind of a new channel refuses other properties, and the document says so.
    #[test]
    fn new_channels_refuse_unknown_properties_as_documented() {
        let doc = serde_json::to_value(super::openapi()).unwrap();
        let kinds = doc["components"]["schemas"]["NewChannel"]["oneOf"].as_array().unwrap();
        assert_eq!(kinds.len(), 3);
        for kind in kinds {
            assert_eq!(kind["additionalProperties"], false, "{kind}");
        }
        let email = kinds.iter().find(|k| k["properties"]["address"].is_object()).unwrap();
        assert_eq!(
            email["properties"]["address"]["pattern"],
            crate::channels::target::EMAIL_PATTERN
        );
        assert_eq!(email["properties"]["address"]["maxLength"], 254);
        for body in [
            serde_json::json!({"kind": "webhook", "url": "https://hooks.example/x", "secret": "x"}),
            serde_json::json!({"kind": "slack", "url": "https://hooks.example/x", "channel": "#ops"}),
            serde_json::json!({"kind": "email", "address": "ops@acme.example", "name": "Ops"}),
        ] {
            let read = lifeline_kit::http::json_object::<crate::channels::api::NewChannel>(Ok(
                axum::Json(body.clone()),
            ));
            let e = read.map(|_| ()).unwrap_err();
            assert!(e.message.contains("unknown field"), "{body}: {}", e.message);
        }
    }
}
