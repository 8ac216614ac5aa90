//! Migrations during a rolling upgrade: a replica of the previous release, which does not know
//! the newest migration, still starts against the migrated schema (against the machine's
//! Postgres on 127.0.0.1:5432, in a database of its own).

use lifeline_kit::config::{CommonConfig, Env};
use sqlx::migrate::Migrator;

async fn migrator(dir: &std::path::Path, files: &[(&str, &str)]) -> Migrator {
    std::fs::create_dir_all(dir).expect("dir");
    for (name, sql) in files {
        std::fs::write(dir.join(name), sql).expect("write migration");
    }
    Migrator::new(dir).await.expect("migrations")
}

#[tokio::test]
async fn an_older_release_starts_against_a_newer_schema() {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let database = format!("lifeline_kit_migrate_{}", &id[..12]);
    let env = Env::from_pairs([
        ("DATABASE_URL", format!("postgres://postgres@127.0.0.1:5432/{database}")),
        ("LIFELINE_INSTANCE_ID", "t".to_owned()),
    ]);
    let config = CommonConfig::from_env(&env, "migrations-test", 1).expect("config");
    let pool =
        lifeline_kit::db::connect(&config).await.expect("Postgres must be running (make infra)");

    let scratch = std::env::temp_dir().join(format!("lifeline-migrations-{id}"));
    let first = ("0001_things.sql", "CREATE TABLE things (id bigint PRIMARY KEY);");
    let second = ("0002_more.sql", "ALTER TABLE things ADD COLUMN name text;");
    let old = migrator(&scratch.join("old"), &[first]).await;
    let new = migrator(&scratch.join("new"), &[first, second]).await;

    lifeline_kit::db::migrate(&pool, "upgrade", &new).await.expect("the new release migrates");
    lifeline_kit::db::migrate(&pool, "upgrade", &old)
        .await
        .expect("the previous release starts against the newer schema");
    lifeline_kit::db::migrate(&pool, "upgrade", &new).await.expect("and the new one again");

    let changed =
        migrator(&scratch.join("changed"), &[("0001_things.sql", "CREATE TABLE other (id int);")])
            .await;
    let err = lifeline_kit::db::migrate(&pool, "upgrade", &changed)
        .await
        .expect_err("an applied migration that was edited is refused");
    assert!(matches!(err, sqlx::migrate::MigrateError::VersionMismatch(1)), "{err}");

    pool.close().await;
    let admin =
        sqlx::PgPool::connect("postgres://postgres@127.0.0.1:5432/postgres").await.expect("admin");
    sqlx::query(&format!("DROP DATABASE \"{database}\" WITH (FORCE)"))
        .execute(&admin)
        .await
        .expect("drop");
    let _ = std::fs::remove_dir_all(scratch);
}
