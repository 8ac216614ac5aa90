//! The budgets in `publisher.rate_budgets`: reservations in group commits (many handlers'
//! reservations in one short transaction), and what answers taught, written with the outcome
//! they came with. Rows are locked in account order, after any post row, so no two writers wait
//! for each other in a circle.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use lifeline_kit::ids::AccountId;
use sqlx::{PgConnection, PgPool};

use super::{Budget, Heard, Verdict};

const COLUMNS: &str = "window_limit, remaining, window_started, reset_at, last_reset, in_flight, lowest_seen, answered_at, booked_at, booked";

#[derive(sqlx::FromRow)]
struct Row {
    account_id: AccountId,
    #[sqlx(flatten)]
    budget: Budget,
}

/// Locks the budgets of `accounts`; with `create`, those missing are created as "nothing
/// known" first.
async fn lock(
    tx: &mut PgConnection,
    accounts: &[AccountId],
    create: bool,
) -> Result<BTreeMap<AccountId, Budget>, sqlx::Error> {
    if create {
        sqlx::query(
            "INSERT INTO publisher.rate_budgets (account_id) SELECT * FROM unnest($1::uuid[])
             ON CONFLICT DO NOTHING",
        )
        .bind(accounts)
        .execute(&mut *tx)
        .await?;
    }
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT account_id, {COLUMNS} FROM publisher.rate_budgets WHERE account_id = ANY($1)
         ORDER BY account_id FOR UPDATE"
    ))
    .bind(accounts)
    .fetch_all(&mut *tx)
    .await?;
    Ok(rows.into_iter().map(|r| (r.account_id, r.budget)).collect())
}

/// Writes budgets back.
async fn store(
    tx: &mut PgConnection,
    budgets: &BTreeMap<AccountId, Budget>,
) -> Result<(), sqlx::Error> {
    if budgets.is_empty() {
        return Ok(());
    }
    let col = |f: fn(&Budget) -> Option<DateTime<Utc>>| -> Vec<Option<DateTime<Utc>>> {
        budgets.values().map(f).collect()
    };
    let ids: Vec<AccountId> = budgets.keys().copied().collect();
    let limits: Vec<Option<i32>> = budgets.values().map(|b| b.window_limit).collect();
    let remaining: Vec<i32> = budgets.values().map(|b| b.remaining).collect();
    let in_flight: Vec<i32> = budgets.values().map(|b| b.in_flight).collect();
    let lowest: Vec<Option<i32>> = budgets.values().map(|b| b.lowest_seen).collect();
    let booked: Vec<i32> = budgets.values().map(|b| b.booked).collect();
    sqlx::query(
        "UPDATE publisher.rate_budgets b SET window_limit = u.window_limit, remaining = u.remaining,
             window_started = u.window_started, reset_at = u.reset_at, last_reset = u.last_reset,
             in_flight = u.in_flight, lowest_seen = u.lowest_seen, answered_at = u.answered_at,
             booked_at = u.booked_at, booked = u.booked, updated_at = now()
         FROM unnest($1::uuid[], $2::int[], $3::int[], $4::timestamptz[], $5::timestamptz[],
                     $6::timestamptz[], $7::int[], $8::int[], $9::timestamptz[], $10::timestamptz[],
                     $11::int[])
             AS u(account_id, window_limit, remaining, window_started, reset_at, last_reset,
                  in_flight, lowest_seen, answered_at, booked_at, booked)
         WHERE b.account_id = u.account_id",
    )
    .bind(&ids)
    .bind(&limits)
    .bind(&remaining)
    .bind(col(|b| b.window_started))
    .bind(col(|b| b.reset_at))
    .bind(col(|b| b.last_reset))
    .bind(&in_flight)
    .bind(&lowest)
    .bind(col(|b| b.answered_at))
    .bind(col(|b| b.booked_at))
    .bind(&booked)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Reserves one call for each request (an account, named once per call wanted), in one
/// transaction; answers each request's verdict, in order.
pub(crate) async fn reserve(
    pool: &PgPool,
    dead_after: std::time::Duration,
    requests: Vec<AccountId>,
) -> Result<Vec<Verdict>, sqlx::Error> {
    let mut wanted: BTreeMap<AccountId, usize> = BTreeMap::new();
    for a in &requests {
        *wanted.entry(*a).or_default() += 1;
    }
    let accounts: Vec<AccountId> = wanted.keys().copied().collect();
    let mut tx = pool.begin().await?;
    let mut budgets = lock(&mut tx, &accounts, true).await?;
    let now = Utc::now();
    let mut verdicts: BTreeMap<AccountId, std::vec::IntoIter<Verdict>> = BTreeMap::new();
    for (account, n) in wanted {
        let (after, v) =
            super::reserve(&budgets.get(&account).cloned().unwrap_or_default(), n, now, dead_after);
        budgets.insert(account, after);
        verdicts.insert(account, v.into_iter());
    }
    store(&mut tx, &budgets).await?;
    tx.commit().await?;
    metrics::histogram!("lifeline_publish_group_commit_size", "write" => "pace")
        .record(requests.len() as f64);
    Ok(requests
        .iter()
        .map(|a| verdicts.get_mut(a).and_then(Iterator::next).unwrap_or(Verdict::Go))
        .collect())
}

/// Deletes the budgets of accounts that no longer have a credential (disconnected) and were not
/// touched for `older_than_secs`: nothing is reserved against them again (a reconnect of the same
/// platform user is a new account, and the platform's answers tell its budget). Answers how many.
pub(crate) async fn forget_disconnected(
    pool: &PgPool,
    older_than_secs: f64,
) -> Result<u64, sqlx::Error> {
    let deleted = sqlx::query(
        "DELETE FROM publisher.rate_budgets b
         WHERE b.updated_at < now() - make_interval(secs => $1)
           AND NOT EXISTS (SELECT 1 FROM vault.credentials c WHERE c.account_id = b.account_id)",
    )
    .bind(older_than_secs)
    .execute(pool)
    .await?;
    Ok(deleted.rows_affected())
}

/// Records what answers taught about their accounts' budgets, in the caller's transaction.
pub(crate) async fn observe(
    tx: &mut PgConnection,
    heard: &[(AccountId, Heard)],
) -> Result<(), sqlx::Error> {
    if heard.is_empty() {
        return Ok(());
    }
    let mut accounts: Vec<AccountId> = heard.iter().map(|(a, _)| *a).collect();
    accounts.sort();
    accounts.dedup();
    // The reservation created each row; one deleted since has nothing to learn.
    let mut budgets = lock(tx, &accounts, false).await?;
    let now = Utc::now();
    for (account, h) in heard {
        if let Some(before) = budgets.get(account) {
            let after = super::observe(before, *h, now);
            budgets.insert(*account, after);
        }
    }
    store(tx, &budgets).await
}
