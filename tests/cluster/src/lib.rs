//! A real Lifeline cluster under failure: the real binaries as child processes (so they can
//! be SIGKILLed) on a 3-node NATS JetStream cluster with R3 streams and a throwaway Postgres
//! made with `initdb`, two replicas of every service and the platform simulator.
//!
//! The scenario (`tests/failover.rs`, `make test-cluster`) is described in docs/testing.md.

pub mod api;
pub mod cluster;
pub mod events;
pub mod nats;
pub mod notify;
pub mod postgres;
pub mod process;
pub mod watch;

pub use api::Account;
pub use cluster::{eventually, Cluster, NatsUrls, Options};
pub use events::{Recorded, Recorder};
