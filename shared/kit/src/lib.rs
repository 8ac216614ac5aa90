//! The shared kit every Lifeline service is built from: typed config, telemetry, the event bus
//! (JetStream), Postgres, the transactional outbox, the HTTP surface, API auth and shutdown.

pub mod auth;
pub mod backoff;
pub mod breaker;
pub mod bus;
pub mod config;
pub mod db;
pub mod http;
pub mod ids;
mod json_body;
pub mod openapi;
pub mod outbox;
pub mod readiness;
pub mod service;
pub mod shutdown;
pub mod telemetry;

pub use lifeline_events as events;
pub use lifeline_events::Platform;
