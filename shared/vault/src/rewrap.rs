//! Re-wrapping: re-encrypting stored credentials under the active key, so that an old key can be
//! removed. A re-wrap changes the ciphertext and `key_id` only, never `version`: a refresh in
//! flight (whose compare-and-swap expects the version it loaded) still succeeds afterwards, so a
//! rotated refresh token the platform already issued is never lost to a re-wrap.

use std::{collections::BTreeMap, time::Duration};

use lifeline_kit::ids::AccountId;
use secrecy::SecretString;
use sqlx::Row;

use crate::{Vault, VaultError};

/// What one batch of [`Vault::rewrap_batch`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RewrapBatch {
    /// Rows re-encrypted under the active key, by the key they were under before.
    pub rewrapped: BTreeMap<String, u64>,
    /// Rows under a key id this process was not given (left as they are), by key id.
    pub unknown_key: BTreeMap<String, u64>,
    /// Rows whose ciphertext does not open under their key (tampered, or a key id reused for
    /// another key); left as they are.
    pub undecryptable: Vec<AccountId>,
    /// Where the next batch starts (exclusive); `None` once the pass has reached the end.
    pub next: Option<AccountId>,
}

impl RewrapBatch {
    pub fn rewrapped_rows(&self) -> u64 {
        self.rewrapped.values().sum()
    }
}

/// The totals of a whole re-wrap run, passed to the progress callback after every batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RewrapProgress {
    /// Rows not under the active key when the run started.
    pub total: u64,
    /// Rows re-encrypted so far, by the key they were under before.
    pub rewrapped: BTreeMap<String, u64>,
    /// Rows under key ids this process does not have, as counted by the latest pass.
    pub unknown_key: BTreeMap<String, u64>,
    /// Rows that do not decrypt, as found by the latest pass.
    pub undecryptable: Vec<AccountId>,
    /// The pass in progress (1 for the first). A later pass picks up rows that were locked by a
    /// concurrent write during the previous one.
    pub pass: u32,
    /// Batches committed so far.
    pub batches: u64,
    /// Time since the run started.
    pub elapsed: Duration,
    /// Rows still under a known old key after the last pass (0 when the run succeeded).
    pub left: u64,
}

impl RewrapProgress {
    pub fn rewrapped_rows(&self) -> u64 {
        self.rewrapped.values().sum()
    }

    /// Rows re-encrypted per second so far.
    pub fn rate(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.rewrapped_rows() as f64 / secs
        } else {
            0.0
        }
    }
}

/// How a re-wrap run paces itself.
#[derive(Debug, Clone, Copy)]
pub struct RewrapOptions {
    /// Rows per batch (one short transaction each).
    pub batch: u32,
    /// Pause between batches, to leave the database to the services.
    pub pause: Duration,
    /// Passes over the table before giving up on rows that keep appearing under an old key.
    pub max_passes: u32,
    /// Pause before another pass.
    pub pass_pause: Duration,
}

impl Default for RewrapOptions {
    fn default() -> Self {
        RewrapOptions {
            batch: 500,
            pause: Duration::ZERO,
            max_passes: 10,
            pass_pause: Duration::from_millis(500),
        }
    }
}

/// What a whole run should do next after a pass: pure, so it is tested without a database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterPass {
    /// Every row a known key can open is under the active key.
    Done,
    /// Rows under an old key remain (locked during the pass, or written since): go again.
    AnotherPass,
    /// Rows keep appearing under an old key: some writer still uses it as its active key.
    GiveUp,
}

/// `left`: rows still under a known old key after `pass` passes, not counting undecryptable ones.
pub fn after_pass(left: u64, pass: u32, max_passes: u32) -> AfterPass {
    if left == 0 {
        AfterPass::Done
    } else if pass < max_passes {
        AfterPass::AnotherPass
    } else {
        AfterPass::GiveUp
    }
}

impl Vault {
    /// Rows per key id, without decrypting anything.
    pub async fn rows_per_key(&self) -> Result<BTreeMap<String, u64>, VaultError> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT key_id, count(*) FROM vault.credentials GROUP BY key_id")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().map(|(k, n)| (k, u64::try_from(n).unwrap_or(0))).collect())
    }

    /// Re-encrypts up to `limit` rows not under the active key, in account id order after
    /// `after`, in one short transaction. Rows another transaction holds locked right now (a
    /// refresh or reconnect being written, a publish check) are skipped rather than waited for:
    /// a re-wrap that never waits cannot be part of a deadlock, so it can never make a refresher's
    /// batch fail. A later pass picks them up. Versions stay as they are.
    pub async fn rewrap_batch(
        &self,
        after: Option<AccountId>,
        limit: u32,
    ) -> Result<RewrapBatch, VaultError> {
        let active = self.keys.active_key_id();
        let mut tx = self.pool.begin().await?;
        // Account ids are UUIDv7 and never nil, so the nil UUID is "from the start".
        let rows = sqlx::query(
            "SELECT account_id, key_id, access_token, refresh_token, version
             FROM vault.credentials
             WHERE key_id <> $1 AND account_id > $2
             ORDER BY account_id
             LIMIT $3
             FOR UPDATE SKIP LOCKED",
        )
        .bind(active)
        .bind(after.map_or(uuid::Uuid::nil(), |a| a.0))
        .bind(i64::from(limit.max(1)))
        .fetch_all(&mut *tx)
        .await?;

        let mut batch = RewrapBatch::default();
        let mut ids = Vec::with_capacity(rows.len());
        let mut seen = Vec::with_capacity(rows.len());
        let mut access = Vec::with_capacity(rows.len());
        let mut refresh = Vec::with_capacity(rows.len());
        let mut from_key = Vec::with_capacity(rows.len());
        for row in &rows {
            let account = AccountId(row.try_get("account_id")?);
            batch.next = Some(account);
            let key_id: String = row.try_get("key_id")?;
            if !self.keys.has_key(&key_id) {
                *batch.unknown_key.entry(key_id).or_default() += 1;
                continue;
            }
            match self.reseal(account, &key_id, row) {
                Ok((a, r)) => {
                    ids.push(account.0);
                    seen.push(row.try_get::<i64, _>("version")?);
                    access.push(a);
                    refresh.push(r);
                    from_key.push(key_id);
                }
                Err(VaultError::Undecryptable(_)) => batch.undecryptable.push(account),
                Err(e) => return Err(e),
            }
        }
        if rows.len() < limit.max(1) as usize {
            batch.next = None;
        }
        if !ids.is_empty() {
            // `updated_at` stays: the credential itself did not change. The version check cannot
            // fail under the row lock; it keeps this statement safe on its own.
            let done: Vec<(uuid::Uuid,)> = sqlx::query_as(
                "UPDATE vault.credentials c SET key_id = $1, access_token = u.access,
                     refresh_token = u.refresh
                 FROM unnest($2::uuid[], $3::bigint[], $4::bytea[], $5::bytea[])
                      AS u(account_id, seen, access, refresh)
                 WHERE c.account_id = u.account_id AND c.version = u.seen
                 RETURNING c.account_id",
            )
            .bind(active)
            .bind(&ids)
            .bind(&seen)
            .bind(&access)
            .bind(&refresh)
            .fetch_all(&mut *tx)
            .await?;
            let done: std::collections::HashSet<uuid::Uuid> =
                done.into_iter().map(|(a,)| a).collect();
            for (id, key) in ids.iter().zip(from_key) {
                if done.contains(id) {
                    *batch.rewrapped.entry(key).or_default() += 1;
                }
            }
        }
        tx.commit().await?;
        Ok(batch)
    }

    /// The row's ciphertexts opened under `key_id` and sealed again under the active key.
    fn reseal(
        &self,
        account: AccountId,
        key_id: &str,
        row: &sqlx::postgres::PgRow,
    ) -> Result<(Vec<u8>, Option<Vec<u8>>), VaultError> {
        let access: Vec<u8> = row.try_get("access_token")?;
        let refresh: Option<Vec<u8>> = row.try_get("refresh_token")?;
        let reseal = |field: &str, sealed: &[u8]| -> Result<Vec<u8>, VaultError> {
            let plain: SecretString = self.keys.open(key_id, account, field, sealed)?;
            Ok(self.keys.seal(account, field, &plain))
        };
        Ok((reseal("access", &access)?, refresh.map(|r| reseal("refresh", &r)).transpose()?))
    }

    /// Re-wraps every row not under the active key, batch after batch and pass after pass until
    /// none is left (or [`RewrapOptions::max_passes`] ran out), calling `progress` after each
    /// batch and at the end. Running it again once it is done finds nothing to do. Rows under
    /// unknown keys and undecryptable rows are reported, not touched, and do not keep it going.
    pub async fn rewrap_all(
        &self,
        options: RewrapOptions,
        mut progress: impl FnMut(&RewrapProgress),
    ) -> Result<RewrapProgress, VaultError> {
        let started = tokio::time::Instant::now();
        let active = self.keys.active_key_id().to_owned();
        let old_rows = |per_key: &BTreeMap<String, u64>| -> u64 {
            per_key.iter().filter(|(k, _)| **k != active).map(|(_, n)| n).sum()
        };
        let mut state =
            RewrapProgress { total: old_rows(&self.rows_per_key().await?), ..Default::default() };
        loop {
            state.pass += 1;
            state.unknown_key.clear();
            state.undecryptable.clear();
            let mut cursor = None;
            loop {
                let batch = self.rewrap_batch(cursor, options.batch).await?;
                state.batches += 1;
                for (key, n) in batch.rewrapped {
                    *state.rewrapped.entry(key).or_default() += n;
                }
                for (key, n) in batch.unknown_key {
                    *state.unknown_key.entry(key).or_default() += n;
                }
                state.undecryptable.extend(batch.undecryptable);
                state.elapsed = started.elapsed();
                progress(&state);
                match batch.next {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
                if !options.pause.is_zero() {
                    tokio::time::sleep(options.pause).await;
                }
            }
            let per_key = self.rows_per_key().await?;
            let stuck = state.unknown_key.values().sum::<u64>() + state.undecryptable.len() as u64;
            state.left = old_rows(&per_key).saturating_sub(stuck);
            // Rows written under an old key after the run started count towards the total too.
            state.total = state.total.max(state.rewrapped_rows() + state.left + stuck);
            match after_pass(state.left, state.pass, options.max_passes) {
                AfterPass::AnotherPass => tokio::time::sleep(options.pass_pause).await,
                AfterPass::Done | AfterPass::GiveUp => break,
            }
        }
        state.elapsed = started.elapsed();
        progress(&state);
        Ok(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_ends_when_no_old_row_is_left_or_passes_run_out() {
        assert_eq!(after_pass(0, 1, 10), AfterPass::Done);
        assert_eq!(after_pass(0, 10, 10), AfterPass::Done);
        assert_eq!(after_pass(3, 1, 10), AfterPass::AnotherPass);
        assert_eq!(after_pass(3, 10, 10), AfterPass::GiveUp);
    }

    #[test]
    fn the_rate_counts_rewrapped_rows_over_elapsed_time() {
        let p = RewrapProgress {
            rewrapped: BTreeMap::from([("k1".to_owned(), 300), ("k0".to_owned(), 100)]),
            elapsed: Duration::from_secs(2),
            ..Default::default()
        };
        assert_eq!(p.rewrapped_rows(), 400);
        assert!((p.rate() - 200.0).abs() < f64::EPSILON);
        assert_eq!(RewrapProgress::default().rate(), 0.0);
    }
}
