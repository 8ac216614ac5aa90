//! The vault against the real Postgres: each test in a fresh database of its own.

mod load;
mod rewrap;

use lifeline_kit::{
    config::Env,
    ids::{AccountId, WorkspaceId},
    Platform,
};
use lifeline_vault::{Tokens, Vault, VaultKeys};
use secrecy::SecretString;
use sqlx::{postgres::PgPoolOptions, PgPool};

fn server_url() -> String {
    std::env::var("LIFELINE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// A fresh, migrated database; dropped by [`Db::drop_database`].
pub struct Db {
    pub pool: PgPool,
    name: String,
}

impl Db {
    pub async fn fresh() -> anyhow::Result<Db> {
        let name = format!("lifeline_vault_{}", &uuid::Uuid::new_v4().simple().to_string()[..16]);
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect(&format!("{}/postgres", server_url()))
            .await?;
        sqlx::query(&format!("CREATE DATABASE \"{name}\"")).execute(&admin).await?;
        admin.close().await;
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .connect(&format!("{}/{name}", server_url()))
            .await?;
        Vault::migrate(&pool).await?;
        Ok(Db { pool, name })
    }

    pub async fn drop_database(self) -> anyhow::Result<()> {
        self.pool.close().await;
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect(&format!("{}/postgres", server_url()))
            .await?;
        sqlx::query(&format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name))
            .execute(&admin)
            .await?;
        Ok(())
    }
}

/// Keys parsed as a service would: `LIFELINE_VAULT_KEYS` from `entries` (each `id:base64`),
/// the last one active unless `active` says otherwise.
pub fn keys(entries: &[&str], active: Option<&str>) -> VaultKeys {
    let mut env = vec![("LIFELINE_VAULT_KEYS", entries.join(","))];
    if let Some(a) = active {
        env.push(("LIFELINE_VAULT_ACTIVE_KEY", a.to_owned()));
    }
    VaultKeys::from_env(&Env::from_pairs(env)).expect("valid keys")
}

/// Tokens whose values name the account and a generation, so a test sees which ones it reads.
pub fn tokens(tag: &str, with_refresh: bool) -> Tokens {
    Tokens {
        access_token: SecretString::from(format!("access-{tag}")),
        refresh_token: with_refresh.then(|| SecretString::from(format!("refresh-{tag}"))),
        access_expires_at: Some(chrono::Utc::now() + chrono::Duration::hours(2)),
        refresh_expires_at: None,
        scopes: vec!["tweet.write".to_owned(), "offline.access".to_owned()],
    }
}

/// Stores `count` new credentials through `vault` (every third without a refresh token, like a
/// Facebook page token); returns their ids in account id order.
pub async fn insert_many(vault: &Vault, count: usize) -> anyhow::Result<Vec<AccountId>> {
    let mut ids = Vec::with_capacity(count);
    let mut tx = vault.pool().begin().await?;
    for i in 0..count {
        let account = AccountId::new();
        let t = tokens(&format!("{account}-0"), i % 3 != 0);
        vault
            .insert(&mut tx, account, WorkspaceId::new(), Platform::X, &format!("u{i}"), &t)
            .await?;
        ids.push(account);
    }
    tx.commit().await?;
    ids.sort_by_key(|a| a.0);
    Ok(ids)
}
