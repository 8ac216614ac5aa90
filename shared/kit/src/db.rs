//! Postgres: one pool per service, each service's tables in its own schema, migrations embedded
//! in the service binary and run at start.

use std::time::Duration;

use sqlx::{
    migrate::Migrator,
    postgres::{PgConnectOptions, PgPoolOptions},
    ConnectOptions, Connection, PgPool,
};

use crate::config::CommonConfig;

/// Connects to `DATABASE_URL`, creating the database first if it does not exist yet (a fresh
/// machine), and waits up to `wait` for Postgres to come up.
pub async fn connect(config: &CommonConfig, wait: Duration) -> Result<PgPool, sqlx::Error> {
    let options: PgConnectOptions = config.database_url.parse()?;
    let options =
        options.application_name(config.service).log_statements(tracing::log::LevelFilter::Trace);
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match ensure_database(&options).await {
            Ok(()) => break,
            Err(e) if tokio::time::Instant::now() < deadline && is_unavailable(&e) => {
                tracing::warn!(error = %e, "postgres not reachable yet; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e),
        }
    }
    PgPoolOptions::new()
        .max_connections(config.db_max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await
}

fn is_unavailable(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut)
}

async fn ensure_database(options: &PgConnectOptions) -> Result<(), sqlx::Error> {
    match sqlx::PgConnection::connect_with(options).await {
        Ok(c) => c.close().await,
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("3D000") => {
            let name = options.get_database().unwrap_or("postgres").to_owned();
            let mut admin =
                sqlx::PgConnection::connect_with(&options.clone().database("postgres")).await?;
            // Services starting together would race: CREATE DATABASE fails while another copies
            // template1. One at a time, and only if it is still missing.
            sqlx::query("SELECT pg_advisory_lock(7207200)").execute(&mut admin).await?;
            let exists: bool =
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                    .bind(&name)
                    .fetch_one(&mut admin)
                    .await?;
            let created = if exists {
                Ok(())
            } else {
                let create = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
                sqlx::query(&create)
                    .execute(&mut admin)
                    .await
                    .map(|_| tracing::info!(database = %name, "created database"))
            };
            let _ = sqlx::query("SELECT pg_advisory_unlock(7207200)").execute(&mut admin).await;
            admin.close().await?;
            created
        }
        Err(e) => Err(e),
    }
}

/// Runs a service's migrations inside its own schema. The migration history table lives in that
/// schema too, so services migrate independently of one another.
pub async fn migrate(
    pool: &PgPool,
    schema: &str,
    migrator: &Migrator,
) -> Result<(), sqlx::migrate::MigrateError> {
    let mut conn = pool.acquire().await?;
    // Two services creating the same schema at once race on the catalog; the lock serialises them.
    sqlx::query("SELECT pg_advisory_lock(7207201)").execute(&mut *conn).await?;
    let result = async {
        sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {schema}")).execute(&mut *conn).await?;
        sqlx::query(&format!("SET search_path TO {schema}")).execute(&mut *conn).await?;
        migrator.run_direct(&mut *conn).await?;
        sqlx::query("RESET search_path").execute(&mut *conn).await?;
        Ok::<_, sqlx::migrate::MigrateError>(())
    }
    .await;
    sqlx::query("SELECT pg_advisory_unlock(7207201)").execute(&mut *conn).await?;
    if result.is_err() {
        // The connection may be left with another search_path; do not return it to the pool.
        conn.detach();
    }
    result
}
