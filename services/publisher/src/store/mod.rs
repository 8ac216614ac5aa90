//! Every SQL statement against `publisher.posts`, as named functions with typed arguments (a
//! post's status, platform and media kind are read and written as their types, never as text):
//! the API's reads and changes (`posts`), taking posts to publish and releasing parked ones
//! (`leases`), writing an attempt's outcome (`outcomes`), and dead letters and replays
//! (`replays`). Callers decide and hold the transactions; these functions only read and write.

pub(crate) mod leases;
pub(crate) mod outcomes;
pub(crate) mod posts;
pub(crate) mod replays;

/// The columns of [`crate::model::Post`], in every statement that answers posts.
const POST_COLUMNS: &str = "id, workspace_id, account_id, platform, body, media_url, media_kind, idempotency_key, scheduled_at, status,
    next_attempt_at, attempts, retryable_failures, unavailable_since, needs_reconcile, reconcile_since, platform_post_id,
    last_failure_kind, last_error, created_at, updated_at, published_at, cancelled_at";

/// Same columns qualified with the alias `p`, for `UPDATE … FROM` statements.
fn qualified_columns() -> String {
    POST_COLUMNS.split(',').map(|c| format!("p.{}", c.trim())).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use lifeline_kit::Platform;
    use lifeline_platforms::MediaKind;
    use sqlx::PgPool;

    use crate::model::PostStatus;

    /// The machine's Postgres (no table is touched: the values are only sent and read back).
    async fn pool() -> PgPool {
        PgPool::connect("postgres://postgres@127.0.0.1:5432/postgres")
            .await
            .expect("Postgres must be running (make infra)")
    }

    async fn round_trip<T>(pool: &PgPool, value: T, name: &str)
    where
        T: for<'q> sqlx::Encode<'q, sqlx::Postgres>
            + for<'r> sqlx::Decode<'r, sqlx::Postgres>
            + sqlx::Type<sqlx::Postgres>
            + Copy
            + PartialEq
            + std::fmt::Debug
            + Send
            + Unpin,
    {
        let (back, text): (T, String) = sqlx::query_as("SELECT $1::text, $1::text")
            .bind(value)
            .fetch_one(pool)
            .await
            .expect("round trip");
        assert_eq!((back, text.as_str()), (value, name));
    }

    #[tokio::test]
    async fn statuses_platforms_and_media_kinds_are_stored_by_name_and_read_back_parsed() {
        let pool = pool().await;
        for s in PostStatus::ALL {
            round_trip(&pool, s, s.as_str()).await;
        }
        for p in Platform::ALL {
            round_trip(&pool, p, p.as_str()).await;
        }
        for k in [MediaKind::Image, MediaKind::Video] {
            round_trip(&pool, k, k.as_str()).await;
        }
        // As a text[] too (`status = ANY($1)`, `platform = ANY($1)`).
        let wanted = vec![PostStatus::FailedAuth, PostStatus::RetryRequested];
        let names: Vec<String> = sqlx::query_scalar("SELECT unnest($1::text[])")
            .bind(&wanted)
            .fetch_all(&pool)
            .await
            .unwrap();
        assert_eq!(names, ["failed_auth", "retry_requested"]);
    }

    #[test]
    fn the_platform_check_constraint_names_every_platform_the_code_knows() {
        let sql = include_str!("../../migrations/0007_platform_check.sql");
        let list = &sql[sql.find("CHECK (platform IN").expect("the CHECK")..];
        let names: Vec<&str> = list.split('\'').skip(1).step_by(2).collect();
        let mut known: Vec<&str> = Platform::ALL.iter().map(|p| p.as_str()).collect();
        let mut listed = names.clone();
        known.sort_unstable();
        listed.sort_unstable();
        assert_eq!(listed, known, "0007_platform_check.sql lists {names:?}");
    }

    #[tokio::test]
    async fn a_name_the_code_does_not_know_is_a_decode_error_naming_the_column_and_the_value() {
        #[derive(Debug, sqlx::FromRow)]
        #[allow(dead_code)] // only decoded
        struct Row {
            status: PostStatus,
            platform: Platform,
            media_kind: Option<MediaKind>,
        }
        let pool = pool().await;
        for (sql, expected) in [
            (
                "SELECT 'draft' AS status, 'x' AS platform, NULL::text AS media_kind",
                r#"column "status": "draft" is not a known post status"#,
            ),
            (
                "SELECT 'scheduled' AS status, 'myspace' AS platform, NULL::text AS media_kind",
                r#"column "platform": "myspace" is not a known platform"#,
            ),
            (
                "SELECT 'scheduled' AS status, 'x' AS platform, 'gif' AS media_kind",
                r#"column "media_kind": "gif" is not a known media kind"#,
            ),
        ] {
            let e = sqlx::query_as::<_, Row>(sql).fetch_one(&pool).await.unwrap_err();
            assert!(e.to_string().contains(expected), "{sql}: {e}");
        }
        let ok: Row = sqlx::query_as(
            "SELECT 'cancelled' AS status, 'tiktok' AS platform, 'video' AS media_kind",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(
            (ok.status, ok.platform, ok.media_kind),
            (PostStatus::Cancelled, Platform::TikTok, Some(MediaKind::Video))
        );
    }
}
