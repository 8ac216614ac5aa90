//! Start in any order: every replica of every service is started before NATS and Postgres
//! exist (as pods scheduled before their dependencies), says not-ready meanwhile, and becomes
//! ready on its own once they answer, without exiting. Prints how long each took after NATS
//! and Postgres answered. Part of `make test-cluster` (docs/testing.md).

use std::time::Duration;

use lifeline_cluster::{Cluster, Options};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "starts a NATS cluster, a throwaway Postgres and the real binaries: make test-cluster"]
async fn services_started_before_nats_and_postgres_become_ready() -> anyhow::Result<()> {
    let mut options = Options::from_env();
    options.services_first = Some(Duration::from_secs(3));
    let mut cluster = Cluster::start(options).await?;

    eprintln!(
        "== start order: services first, NATS and Postgres 3 s later ({}) ==",
        cluster.nats.version
    );
    for (name, status, body) in &cluster.readyz_before_infra {
        eprintln!("  {name} before NATS and Postgres: /readyz {status} {body}");
        assert_eq!(*status, 503, "{name} must say not-ready while NATS and Postgres are missing");
        assert!(body.contains("starting"), "{name} should say what it is waiting for: {body}");
    }
    let infra = cluster.infra_started_after.expect("services were started first");
    let answered = cluster
        .ready_after
        .iter()
        .filter(|(n, _)| n == "postgres" || n.starts_with("nats-"))
        .map(|(_, d)| *d)
        .max()
        .expect("NATS and Postgres answered");
    eprintln!(
        "  NATS and Postgres started {:.2} s after the services, answered {:.2} s after that",
        infra.as_secs_f64(),
        answered.saturating_sub(infra).as_secs_f64()
    );
    let mut slowest = Duration::ZERO;
    for s in &cluster.services {
        let ready = cluster
            .ready_after
            .iter()
            .find(|(n, _)| *n == s.name)
            .map(|(_, d)| *d)
            .expect("every service became ready");
        let after = ready.saturating_sub(answered);
        slowest = slowest.max(after);
        eprintln!(
            "  {}: ready {:.2} s after NATS and Postgres answered",
            s.name,
            after.as_secs_f64()
        );
        assert_eq!(s.proc.starts, 1, "{} was restarted", s.name);
    }
    for s in &mut cluster.services {
        assert!(s.proc.exited().is_none(), "{} exited", s.name);
    }
    eprintln!("  slowest: {:.2} s", slowest.as_secs_f64());
    cluster.succeeded();
    Ok(())
}
