//! A fresh benchmark database, and pgbench: the machine's raw Postgres rates, which every
//! benchmark reports its own rate against (measured in the same run, on the same load).

use std::process::Command;

use anyhow::{bail, Context as _};
use sqlx::postgres::PgPoolOptions;

/// Drops and creates database `db` on the server at `postgres` (a URL without a database).
pub async fn fresh_database(postgres: &str, db: &str) -> anyhow::Result<()> {
    let admin =
        PgPoolOptions::new().max_connections(1).connect(&format!("{postgres}/postgres")).await?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")).execute(&admin).await?;
    sqlx::query(&format!("CREATE DATABASE {db}")).execute(&admin).await?;
    admin.close().await;
    Ok(())
}

/// pgbench's transactions per second, `clients` clients for 10 s each.
#[derive(Debug, Clone, Copy)]
pub struct Pgbench {
    /// A single-row UPDATE per transaction.
    pub single_update: Option<f64>,
    /// The TPC-B-like `-N` (three statements per transaction, no branch/teller updates).
    pub tpcb_n: f64,
}

/// Runs pgbench against a scratch database (scale 10): `-N`, and with `single_update` also a
/// one-row UPDATE script. Blocking: call it from `spawn_blocking`.
pub fn pgbench(postgres: &str, clients: u32, single_update: bool) -> anyhow::Result<Pgbench> {
    let url = url::Url::parse(postgres)?;
    let host = url.host_str().unwrap_or("127.0.0.1").to_owned();
    let port = url.port().unwrap_or(5432).to_string();
    let user =
        if url.username().is_empty() { "postgres".to_owned() } else { url.username().to_owned() };
    let base = |extra: &[&str]| {
        let mut c = Command::new("pgbench");
        c.args(["-h", &host, "-p", &port, "-U", &user]).args(extra);
        c
    };
    let admin = |sql: &str| {
        Command::new("psql")
            .args(["-h", &host, "-p", &port, "-U", &user, "-d", "postgres", "-qc", sql])
            .status()
    };
    admin("DROP DATABASE IF EXISTS lifeline_pgbench")?;
    admin("CREATE DATABASE lifeline_pgbench")?;
    let init = base(&["-i", "-s", "10", "-q", "lifeline_pgbench"]).output()?;
    if !init.status.success() {
        bail!("pgbench -i failed: {}", String::from_utf8_lossy(&init.stderr));
    }
    let clients = clients.to_string();
    let tps = |extra: &[&str]| -> anyhow::Result<f64> {
        let mut all = vec!["-n", "-c", &clients, "-j", "2", "-T", "10"];
        all.extend_from_slice(extra);
        all.push("lifeline_pgbench");
        let out = base(&all).output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines()
            .find(|l| l.starts_with("tps = "))
            .and_then(|l| l.split_whitespace().nth(2))
            .and_then(|v| v.parse().ok())
            .with_context(|| {
                format!("no tps in pgbench output: {text} {}", String::from_utf8_lossy(&out.stderr))
            })
    };
    let single = if single_update {
        let script = std::env::temp_dir().join("lifeline-bench-update.sql");
        std::fs::write(
            &script,
            "\\set aid random(1, 100000 * :scale)\nUPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = :aid;\n",
        )?;
        Some(tps(&["-f", script.to_str().unwrap_or_default()])?)
    } else {
        None
    };
    let tpcb_n = tps(&["-N"])?;
    admin("DROP DATABASE IF EXISTS lifeline_pgbench")?;
    Ok(Pgbench { single_update: single, tpcb_n })
}
