//! Postgres: one pool per service, each service's tables in its own schema, migrations embedded
//! in the service binary and run at start.

use std::time::Duration;

use sqlx::{
    migrate::Migrator,
    postgres::{PgConnectOptions, PgPoolOptions},
    ConnectOptions, Connection, PgPool,
};

use secrecy::ExposeSecret;

use crate::config::CommonConfig;

/// Connects to `DATABASE_URL` once, creating the database first if it does not exist yet (a
/// fresh machine); the caller retries (see [`crate::service`]). Says in the log whether the
/// connection is encrypted, and warns when it is not and the server is not on this host, since
/// `sslmode=prefer` (the default) falls back to plaintext without a word.
pub async fn connect(config: &CommonConfig) -> Result<PgPool, sqlx::Error> {
    let options: PgConnectOptions = config.database_url.expose_secret().parse()?;
    let options =
        options.application_name(config.service).log_statements(tracing::log::LevelFilter::Trace);
    ensure_database(&options).await?;
    let pool = PgPoolOptions::new()
        .max_connections(config.db_max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options.clone())
        .await?;
    let encrypted: Option<bool> =
        sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_optional(&pool)
            .await
            .unwrap_or(None);
    let host = options.get_host().to_owned();
    let local =
        host.starts_with('/') || host == "localhost" || host.starts_with("127.") || host == "::1";
    match encrypted {
        Some(true) => tracing::info!(%host, "postgres connected over TLS"),
        _ if local => tracing::info!(%host, "postgres connected without TLS (local server)"),
        _ => tracing::warn!(
            %host,
            "postgres connection is NOT encrypted; set sslmode=verify-full (and sslrootcert) in DATABASE_URL"
        ),
    }
    Ok(pool)
}

/// Whether a Postgres error is worth retrying at start-up (the server is not up yet, is
/// starting or shutting down, or has no connection slot free) rather than a mistake to report.
pub fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => true,
        sqlx::Error::Tls(_) => false,
        sqlx::Error::Database(db) => {
            matches!(
                db.code().as_deref(),
                Some("57P01" | "57P02" | "57P03" | "53300" | "08006" | "08001")
            )
        }
        _ => false,
    }
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

/// `migrator`, except that migrations applied by a newer release are not an error: during a
/// rolling upgrade (or a rollback) an older replica keeps running against the newer schema,
/// which works because migrations are additive (expand first, contract in a later release:
/// docs/deploy.md). sqlx's `migrate!` builds a `Migrator` that refuses unknown applied
/// versions and cannot be cloned, so the copy is made field by field.
fn tolerant(migrator: &Migrator) -> Migrator {
    Migrator {
        migrations: migrator.migrations.clone(),
        ignore_missing: true,
        locking: migrator.locking,
        no_tx: migrator.no_tx,
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
        tolerant(migrator).run_direct(&mut *conn).await?;
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
