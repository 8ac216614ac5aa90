//! Connecting to NATS the way the services do: servers from `--nats-url`, authentication and TLS
//! from the same `LIFELINE_NATS_*` variables.

use async_nats::jetstream;
use lifeline_kit::config::redact_url;

use crate::{cli::GlobalArgs, CtlError};

/// A JetStream context on the servers of `--nats-url` / `NATS_URL`.
pub async fn jetstream(global: &GlobalArgs) -> Result<jetstream::Context, CtlError> {
    let env = lifeline_kit::config::Env::from_pairs(
        std::env::vars().chain([("NATS_URL".to_owned(), global.nats_url.clone())]),
    );
    let nats = lifeline_kit::config::NatsConfig::from_env(&env).map_err(|e| {
        CtlError::NatsConnect { url: redact_url(&global.nats_url), reason: e.to_string() }
    })?;
    let client = lifeline_kit::bus::connect_client("lifelinectl", &nats).await.map_err(|e| {
        CtlError::NatsConnect { url: nats.servers_for_display(), reason: e.to_string() }
    })?;
    Ok(jetstream::new(client))
}
