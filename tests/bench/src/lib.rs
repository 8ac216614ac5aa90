//! What the benchmark programs share (`bench-refresh`, `bench-fanout`): the platform simulator
//! in-process, accounts connected through the platforms' real OAuth flows, services as release
//! child processes, a fresh database, and pgbench for the machine's raw Postgres rates.

pub mod postgres;
pub mod service;
pub mod sim;

/// Deletes the JetStream streams a run created under `BENCH_<tag>`.
pub async fn delete_streams(nats: &str, tag: &str) {
    if let Ok(nats) = async_nats::connect(nats).await {
        let js = async_nats::jetstream::new(nats);
        for s in [format!("BENCH_{tag}_EVENTS"), format!("BENCH_{tag}_DLQ")] {
            let _ = js.delete_stream(s).await;
        }
    }
}

/// A short random tag naming one run's subjects and streams.
pub fn run_tag() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_owned()
}
