//! notifier: tells the owner once per incident that an account needs reconnecting (not once per
//! failed post), warns ahead of an unavoidable expiry, and serves the notifications API.

mod api;
mod incidents;

use axum::{Extension, Router};
use lifeline_kit::{
    auth::JwtKeys,
    config::{CommonConfig, ConfigError, Env},
    service::{self, StartError},
};
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
        })
    }
}

#[derive(Clone)]
pub(crate) struct AppState {
    pub pool: PgPool,
    pub grace: std::time::Duration,
}

pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: CancellationToken,
) -> Result<(), StartError> {
    let spec = service::Spec {
        schema: SCHEMA,
        migrator: &MIGRATOR,
        outbox: false,
        extra_migrations: vec![],
    };
    let common = config.common.clone();
    service::run(listener, &common, spec, shutdown, |infra, tasks, shutdown| {
        let app = AppState { pool: infra.pool.clone(), grace: config.grace };
        incidents::spawn(tasks, &infra.bus, &app, shutdown);
        tasks.spawn(incidents::send_when_grace_ends(app.clone(), shutdown.clone()));
        Router::new()
            .merge(api::routes())
            .with_state(app)
            .merge(lifeline_kit::openapi::route(&openapi()))
            .layer(Extension(config.jwt.clone()))
    })
    .await
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(api::list, api::mark_read))]
struct ApiDoc;

/// The notifier's OpenAPI document (served at `/openapi.json`, committed as
/// docs/api/notifier.openapi.json).
pub fn openapi() -> utoipa::openapi::OpenApi {
    use utoipa::OpenApi as _;
    lifeline_kit::openapi::document(ApiDoc::openapi(), SERVICE, env!("CARGO_PKG_VERSION"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn committed_openapi_document_matches_the_code() {
        lifeline_kit::openapi::assert_committed(&super::openapi(), super::SERVICE);
    }
}
