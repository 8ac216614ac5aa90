//! Re-wrapping under a new key: every row moves, versions stay, and writers that compare and swap
//! concurrently never lose their write.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use lifeline_kit::ids::AccountId;
use lifeline_vault::{RewrapOptions, Vault, VaultKeys};
use secrecy::ExposeSecret;

use crate::{insert_many, keys, tokens, Db};

struct Keys {
    k1: String,
    k2: String,
}

fn two_keys() -> Keys {
    Keys { k1: VaultKeys::generate("k1").1, k2: VaultKeys::generate("k2").1 }
}

async fn versions(db: &Db) -> anyhow::Result<HashMap<uuid::Uuid, (String, i64)>> {
    let rows: Vec<(uuid::Uuid, String, i64)> =
        sqlx::query_as("SELECT account_id, key_id, version FROM vault.credentials")
            .fetch_all(&db.pool)
            .await?;
    Ok(rows.into_iter().map(|(a, k, v)| (a, (k, v))).collect())
}

#[tokio::test]
async fn every_row_moves_to_the_active_key_with_its_version_and_a_second_run_does_nothing(
) -> anyhow::Result<()> {
    let db = Db::fresh().await?;
    let k = two_keys();
    let old = Vault::new(db.pool.clone(), keys(&[&k.k1], None));
    let ids = insert_many(&old, 25).await?;
    // Some rows have been refreshed a few times (versions other than 1).
    for account in &ids[..5] {
        let mut conn = db.pool.acquire().await?;
        old.compare_and_swap(&mut conn, *account, 1, &tokens(&format!("{account}-1"), true), false)
            .await?;
    }
    let before = versions(&db).await?;

    let new = Vault::new(db.pool.clone(), keys(&[&k.k1, &k.k2], None));
    let mut seen = Vec::new();
    let options = RewrapOptions { batch: 7, ..RewrapOptions::default() };
    let done = new.rewrap_all(options, |p| seen.push(p.clone())).await?;
    assert_eq!(done.total, 25);
    assert_eq!(done.rewrapped.get("k1"), Some(&25));
    assert_eq!(done.left, 0);
    assert_eq!(done.pass, 1);
    assert_eq!(done.batches, 4, "7 + 7 + 7 + 4 rows");
    let counts: Vec<u64> = seen.iter().map(|p| p.rewrapped_rows()).collect();
    assert_eq!(counts, [7, 14, 21, 25, 25], "progress after each batch and at the end");

    let after = versions(&db).await?;
    for (account, (key, version)) in &after {
        assert_eq!(key, "k2");
        assert_eq!(*version, before[account].1, "a re-wrap keeps the version");
    }
    assert_eq!(new.rows_per_key().await?, [("k2".to_owned(), 25)].into());
    // The same plaintext, readable with k2 alone.
    let only_k2 = Vault::new(db.pool.clone(), keys(&[&k.k2], None));
    for (i, account) in ids.iter().enumerate() {
        let c = only_k2.load(*account).await?.expect("stored");
        let generation = if i < 5 { 1 } else { 0 };
        assert_eq!(c.tokens.access_token.expose_secret(), format!("access-{account}-{generation}"));
    }

    let again = new.rewrap_all(options, |_| {}).await?;
    assert_eq!((again.total, again.rewrapped_rows(), again.batches), (0, 0, 1));
    assert_eq!(versions(&db).await?, after, "nothing changed the second time");
    db.drop_database().await
}

#[tokio::test]
async fn a_swap_that_loaded_before_the_rewrap_still_succeeds_after_it() -> anyhow::Result<()> {
    let db = Db::fresh().await?;
    let k = two_keys();
    let old = Vault::new(db.pool.clone(), keys(&[&k.k1], None));
    let ids = insert_many(&old, 3).await?;
    // A refresher loads the credential, then the platform rotates its refresh token...
    let loaded = old.load(ids[0]).await?.expect("stored");
    let new = Vault::new(db.pool.clone(), keys(&[&k.k1, &k.k2], None));
    new.rewrap_all(RewrapOptions::default(), |_| {}).await?;
    // ...and its compare-and-swap, expecting the version it loaded, is not lost to the re-wrap,
    // even from a replica that still writes under k1.
    let mut conn = db.pool.acquire().await?;
    let v = old
        .compare_and_swap(&mut conn, ids[0], loaded.version, &tokens("rotated", true), false)
        .await?;
    // Closing the pool waits for every connection to come back.
    drop(conn);
    assert_eq!(v, loaded.version + 1);
    let c = new.load(ids[0]).await?.expect("stored");
    assert_eq!(c.tokens.refresh_token.expect("refresh").expose_secret(), "refresh-rotated");
    db.drop_database().await
}

#[tokio::test]
async fn rows_locked_by_a_writer_are_skipped_and_taken_by_a_later_pass() -> anyhow::Result<()> {
    let db = Db::fresh().await?;
    let k = two_keys();
    let old = Vault::new(db.pool.clone(), keys(&[&k.k1], None));
    let ids = insert_many(&old, 10).await?;
    let new = Vault::new(db.pool.clone(), keys(&[&k.k1, &k.k2], None));

    // A replica still on k1 is writing a refresh of one account: its transaction holds the row.
    let mut writer = db.pool.begin().await?;
    old.compare_and_swap(&mut writer, ids[4], 1, &tokens("refreshed", true), false).await?;
    let first = new.rewrap_batch(None, 100).await?;
    assert_eq!(first.rewrapped.get("k1"), Some(&9), "the locked row is skipped, not waited for");
    assert_eq!(first.next, None);
    writer.commit().await?;

    let options = RewrapOptions { pass_pause: Duration::from_millis(10), ..Default::default() };
    let done = new.rewrap_all(options, |_| {}).await?;
    assert_eq!((done.rewrapped_rows(), done.left), (1, 0));
    let c = new.load(ids[4]).await?.expect("stored");
    assert_eq!(c.version, 2, "the writer's swap counted, the re-wrap added nothing");
    assert_eq!(c.tokens.access_token.expose_secret(), "access-refreshed");
    assert_eq!(versions(&db).await?[&ids[4].0].0, "k2");
    db.drop_database().await
}

#[tokio::test]
async fn batches_page_by_account_id_and_resume_after_the_last_one() -> anyhow::Result<()> {
    let db = Db::fresh().await?;
    let k = two_keys();
    let old = Vault::new(db.pool.clone(), keys(&[&k.k1], None));
    let ids = insert_many(&old, 5).await?;
    let new = Vault::new(db.pool.clone(), keys(&[&k.k1, &k.k2], None));
    let first = new.rewrap_batch(None, 2).await?;
    assert_eq!((first.rewrapped_rows(), first.next), (2, Some(ids[1])));
    // A run that stopped here (killed, say) starts over and finds only the rest.
    let second = new.rewrap_batch(None, 2).await?;
    assert_eq!((second.rewrapped_rows(), second.next), (2, Some(ids[3])));
    let third = new.rewrap_batch(second.next, 2).await?;
    assert_eq!((third.rewrapped_rows(), third.next), (1, None));
    assert_eq!(new.rows_per_key().await?, [("k2".to_owned(), 5)].into());
    db.drop_database().await
}

#[tokio::test]
async fn unknown_keys_and_undecryptable_rows_are_reported_and_left_alone() -> anyhow::Result<()> {
    let db = Db::fresh().await?;
    let k = two_keys();
    let k0 = VaultKeys::generate("k0").1;
    let ancient = Vault::new(db.pool.clone(), keys(&[&k0], None));
    let lost = insert_many(&ancient, 2).await?;
    let old = Vault::new(db.pool.clone(), keys(&[&k.k1], None));
    let ids = insert_many(&old, 4).await?;
    sqlx::query("UPDATE vault.credentials SET access_token = set_byte(access_token, 20, get_byte(access_token, 20) # 1) WHERE account_id = $1")
        .bind(ids[2])
        .execute(&db.pool)
        .await?;

    let new = Vault::new(db.pool.clone(), keys(&[&k.k1, &k.k2], None));
    let options = RewrapOptions { pass_pause: Duration::from_millis(10), ..Default::default() };
    let done = new.rewrap_all(options, |_| {}).await?;
    assert_eq!(done.rewrapped.get("k1"), Some(&3));
    assert_eq!(done.unknown_key, [("k0".to_owned(), 2)].into());
    assert_eq!(done.undecryptable, vec![ids[2]]);
    assert_eq!(done.left, 0, "rows no key can open do not keep the run going");
    assert_eq!(done.pass, 1);
    assert_eq!(
        new.rows_per_key().await?,
        [("k0".to_owned(), 2), ("k1".to_owned(), 1), ("k2".to_owned(), 3)].into()
    );
    assert!(lost.iter().all(|a| !ids.contains(a)));
    db.drop_database().await
}

/// Writers do what refreshers do — load a few credentials, wait for the platform, swap the new
/// tokens in expecting the loaded version — while a re-wrap runs in small batches: no swap ever
/// loses its version (including those whose row was re-wrapped between load and swap), no
/// statement deadlocks, and every row ends under k2 with the writers' last tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_swaps_never_lose_to_a_rewrap() -> anyhow::Result<()> {
    const ROWS: usize = 2000;
    const WRITERS: usize = 8;
    let db = Db::fresh().await?;
    let k = two_keys();
    let old = Vault::new(db.pool.clone(), keys(&[&k.k1], None));
    let ids = insert_many(&old, ROWS).await?;
    // The writers run as rolled-out services do: both keys known, k2 active.
    let writer = Vault::new(db.pool.clone(), keys(&[&k.k1, &k.k2], None));
    let stop = Arc::new(AtomicBool::new(false));
    let swaps = Arc::new(AtomicU64::new(0));
    let raced = Arc::new(AtomicU64::new(0));
    let mut writers = tokio::task::JoinSet::new();
    for w in 0..WRITERS {
        let (vault, stop, swaps, raced) =
            (writer.clone(), stop.clone(), swaps.clone(), raced.clone());
        // Each writer owns its own accounts, so nobody but the re-wrap meets its rows.
        let mine: Vec<AccountId> = ids.iter().copied().skip(w).step_by(WRITERS).collect();
        writers.spawn(async move {
            let mut generation: HashMap<AccountId, u64> = HashMap::new();
            let mut round = 0usize;
            while !stop.load(Ordering::Relaxed) {
                round += 1;
                // A few accounts at a time, in an order unlike the re-wrap's.
                let chunk: Vec<AccountId> =
                    mine.iter().copied().rev().skip(round * 7 % mine.len()).take(5).collect();
                let key_before = key_ids(vault.pool(), &chunk).await?;
                let loaded = vault.load_many(&chunk).await?;
                tokio::time::sleep(Duration::from_millis(20)).await;
                let key_at_swap = key_ids(vault.pool(), &chunk).await?;
                let mut next = Vec::new();
                for (account, c) in loaded {
                    let c = c?;
                    if key_before.get(&account) != key_at_swap.get(&account) {
                        raced.fetch_add(1, Ordering::Relaxed);
                    }
                    let g = generation.entry(account).or_insert(0);
                    *g += 1;
                    next.push((account, c.version, tokens(&format!("{account}-{g}"), true)));
                }
                let swaps_in: Vec<_> = next.iter().map(|(a, v, t)| (*a, *v, t)).collect();
                let mut conn = vault.pool().acquire().await?;
                let stored = vault.compare_and_swap_many(&mut conn, &swaps_in, false).await?;
                anyhow::ensure!(
                    stored.len() == swaps_in.len(),
                    "{} of {} swaps lost their version",
                    swaps_in.len() - stored.len(),
                    swaps_in.len()
                );
                swaps.fetch_add(stored.len() as u64, Ordering::Relaxed);
            }
            Ok::<_, anyhow::Error>(generation)
        });
    }

    while swaps.load(Ordering::Relaxed) == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let rewrapper = Vault::new(db.pool.clone(), keys(&[&k.k1, &k.k2], None));
    let before = swaps.load(Ordering::Relaxed);
    let options = RewrapOptions {
        batch: 16,
        pause: Duration::from_millis(5),
        pass_pause: Duration::from_millis(50),
        ..Default::default()
    };
    let done = rewrapper.rewrap_all(options, |_| {}).await;
    let during = swaps.load(Ordering::Relaxed) - before;
    stop.store(true, Ordering::Relaxed);
    let mut last = HashMap::new();
    while let Some(w) = writers.join_next().await {
        last.extend(w??);
    }
    let done = done?;
    eprintln!(
        "re-wrapped {} of {ROWS} rows in {} passes while {during} swaps were written, {} of \
         them to a row re-wrapped between their load and their swap",
        done.rewrapped_rows(),
        done.pass,
        raced.load(Ordering::Relaxed)
    );
    assert!(during > 0, "the writers ran during the re-wrap");
    assert!(done.rewrapped_rows() > 0, "the re-wrap had work of its own");
    assert_eq!(done.left, 0);
    assert_eq!(rewrapper.rows_per_key().await?, [("k2".to_owned(), ROWS as u64)].into());
    for account in &ids {
        let c = rewrapper.load(*account).await?.expect("stored");
        let g = last.get(account).copied().unwrap_or(0);
        assert_eq!(c.version, 1 + g as i64, "every swap counted, none was undone");
        assert_eq!(c.tokens.access_token.expose_secret(), format!("access-{account}-{g}"));
    }
    db.drop_database().await
}

async fn key_ids(
    pool: &sqlx::PgPool,
    accounts: &[AccountId],
) -> anyhow::Result<HashMap<AccountId, String>> {
    let ids: Vec<uuid::Uuid> = accounts.iter().map(|a| a.0).collect();
    let rows: Vec<(uuid::Uuid, String)> = sqlx::query_as(
        "SELECT account_id, key_id FROM vault.credentials WHERE account_id = ANY($1)",
    )
    .bind(&ids)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|(a, k)| (AccountId(a), k)).collect())
}

/// Prints the rate of a re-wrap over a few thousand rows (a figure, not a pass/fail check).
#[tokio::test]
async fn rewrap_rate() -> anyhow::Result<()> {
    let rows: usize = std::env::var("LIFELINE_REWRAP_RATE_ROWS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(5000);
    let db = Db::fresh().await?;
    let k = two_keys();
    let old = Vault::new(db.pool.clone(), keys(&[&k.k1], None));
    for _ in 0..rows.div_ceil(1000) {
        insert_many(&old, 1000.min(rows)).await?;
    }
    let new = Vault::new(db.pool.clone(), keys(&[&k.k1, &k.k2], None));
    let done = new.rewrap_all(RewrapOptions::default(), |_| {}).await?;
    eprintln!(
        "re-wrapped {} rows in {:.2?} ({:.0} rows/s, batches of 500)",
        done.rewrapped_rows(),
        done.elapsed,
        done.rate()
    );
    assert_eq!(done.left, 0);
    db.drop_database().await
}
