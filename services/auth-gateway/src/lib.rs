//! auth-gateway: connects and reconnects accounts through OAuth (authorization code + PKCE +
//! server-side single-use state), stores their tokens in the vault, and serves the accounts API
//! and the Accounts page from a health read model kept current by the connection events.

mod account_state;
mod accounts;
mod consumers;
mod oauth;
mod page;
mod secret;
mod session;

use std::{sync::Arc, time::Duration};

use axum::{Extension, Router};
use lifeline_kit::{
    auth::JwtKeys,
    config::{CommonConfig, ConfigError, Env},
    outbox::Outbox,
    service::{self, StartError},
};
use lifeline_platforms::Connectors;
use lifeline_vault::{Vault, VaultKeys};
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub const SERVICE: &str = "auth-gateway";
pub const SCHEMA: &str = "gateway";
pub const DEFAULT_PORT: u16 = 8080;
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Clone)]
pub struct Config {
    pub common: CommonConfig,
    pub jwt: JwtKeys,
    pub vault_keys: VaultKeys,
    pub connectors: Connectors,
    /// How long a user has to finish an authorization (`LIFELINE_OAUTH_SESSION_TTL`, default 10m).
    pub oauth_session_ttl: Duration,
    /// Page links and sessions of the Accounts page.
    pub page: session::PageConfig,
}

impl Config {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let common = CommonConfig::from_env(env, SERVICE, DEFAULT_PORT)?;
        let jwt = JwtKeys::from_env(env)?;
        let oauth_session_ttl = env.duration_in(
            "LIFELINE_OAUTH_SESSION_TTL",
            Duration::from_secs(600),
            Duration::from_secs(1)..=Duration::from_secs(3600),
        )?;
        Ok(Config {
            common,
            jwt,
            vault_keys: VaultKeys::from_env(env)?,
            connectors: Connectors::from_env(env)?,
            oauth_session_ttl,
            page: session::PageConfig::from_env(env)?,
        })
    }
}

/// What the handlers share.
#[derive(Clone)]
pub(crate) struct AppState {
    pub pool: PgPool,
    pub vault: Vault,
    pub outbox: Outbox,
    pub connectors: Connectors,
    pub config: Arc<Config>,
}

/// Runs the gateway on `listener` until `shutdown` is cancelled.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: CancellationToken,
) -> Result<(), StartError> {
    let spec = service::Spec {
        schema: SCHEMA,
        migrator: &MIGRATOR,
        outbox: true,
        extra_migrations: vec![Vault::migration],
    };
    let common = config.common.clone();
    service::run(listener, &common, spec, shutdown, |infra, tasks, shutdown| {
        let state = AppState {
            pool: infra.pool.clone(),
            vault: Vault::new(infra.pool.clone(), config.vault_keys.clone()),
            outbox: Outbox::new(SCHEMA, &infra.bus),
            connectors: config.connectors.clone(),
            config: Arc::new(config.clone()),
        };
        tasks.spawn(state.outbox.clone().relay(
            infra.pool.clone(),
            infra.bus.clone(),
            shutdown.clone(),
        ));
        consumers::spawn(tasks, &infra.bus, &state, shutdown);
        tasks.spawn(oauth::purge_expired_sessions(infra.pool.clone(), shutdown.clone()));
        router(state, config.jwt.clone())
    })
    .await
}

fn router(state: AppState, jwt: JwtKeys) -> Router {
    Router::new()
        .merge(accounts::routes())
        .merge(oauth::routes())
        .merge(page::routes())
        .merge(session::routes())
        .with_state(state)
        .merge(lifeline_kit::openapi::route(&openapi()))
        .layer(Extension(jwt))
}

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        accounts::platforms,
        accounts::list,
        accounts::show,
        accounts::disconnect,
        oauth::start::start_connect,
        oauth::start::start_reconnect,
        oauth::callback,
        oauth::pending::confirm,
        oauth::pending::ask_again,
        session::mint_link,
        session::signin_form,
        session::signin,
        session::signout,
        session::session_token,
        page::accounts_page,
        page::accounts_js,
        page::accounts_css,
        page::style_css,
    ),
    components(schemas(session::LinkRequest)),
    tags(
        (name = "accounts", description = "The workspace's connected accounts and their health."),
        (name = "oauth", description = "Connecting and reconnecting through OAuth, bound to the browser that started it."),
        (name = "page", description = "The Accounts page: its files, sign-in by page link, its session."),
    )
)]
struct ApiDoc;

/// The gateway's OpenAPI document (served at `/openapi.json`, committed as
/// docs/api/auth-gateway.openapi.json).
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
