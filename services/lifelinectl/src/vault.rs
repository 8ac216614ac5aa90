//! `vault status` and `vault rewrap`: the key rotation steps that need the database. They talk to
//! Postgres directly (`DATABASE_URL`) with the services' `LIFELINE_VAULT_KEYS`, and print counts
//! and key ids only, never key material or tokens.

use std::{collections::BTreeMap, fmt::Write as _, time::Duration};

use lifeline_kit::config::Env;
use lifeline_vault::{RewrapOptions, RewrapProgress, Vault, VaultKeys};
use serde_json::json;
use sqlx::{postgres::PgPoolOptions, PgPool};

use crate::{
    cli::{RewrapArgs, StatusArgs, VaultCommand},
    output::{self, Table},
    CtlError,
};

/// Progress lines during a re-wrap are at most this frequent (the first and last always print).
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

pub async fn run(env: &Env, cmd: &VaultCommand) -> Result<(), CtlError> {
    let keys = VaultKeys::from_env(env)?;
    let pool = connect(env).await?;
    let result = match cmd {
        VaultCommand::Status(args) => status(&pool, &keys, args).await,
        VaultCommand::Rewrap(args) => rewrap(&pool, keys, args).await,
    };
    pool.close().await;
    result
}

async fn connect(env: &Env) -> Result<PgPool, CtlError> {
    let url = env.required(
        "DATABASE_URL",
        "set it to the services' database, e.g. postgres://lifeline@db:5432/lifeline",
    )?;
    // The URL may hold a password: the message names the variable, never its value.
    PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(10))
        .connect(&url)
        .await
        .map_err(|e| CtlError::Postgres(e.to_string()))
}

fn db_error(e: impl std::fmt::Display) -> CtlError {
    CtlError::Postgres(e.to_string())
}

/// One key id as `vault status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyUse {
    pub key_id: String,
    pub rows: u64,
    /// Unused, unexpired OAuth sessions whose PKCE verifier the gateway sealed with this key.
    pub oauth_sessions: u64,
    pub configured: bool,
    pub active: bool,
}

/// Every key id that is configured or in use, configured ones first in id order.
pub fn key_uses(
    keys: &VaultKeys,
    rows: &BTreeMap<String, u64>,
    sessions: &BTreeMap<String, u64>,
) -> Vec<KeyUse> {
    let mut ids: Vec<&str> = keys.key_ids();
    for id in rows.keys().chain(sessions.keys()) {
        if !ids.contains(&id.as_str()) {
            ids.push(id);
        }
    }
    ids.into_iter()
        .map(|id| KeyUse {
            key_id: id.to_owned(),
            rows: rows.get(id).copied().unwrap_or(0),
            oauth_sessions: sessions.get(id).copied().unwrap_or(0),
            configured: keys.has_key(id),
            active: keys.active_key_id() == id,
        })
        .collect()
}

impl KeyUse {
    fn state(&self) -> &'static str {
        match (self.configured, self.active, self.rows + self.oauth_sessions) {
            (false, _, _) => "NOT IN LIFELINE_VAULT_KEYS",
            (true, true, _) => "active",
            (true, false, 0) => "unused (can be removed)",
            (true, false, _) => "in use (run `lifelinectl vault rewrap`)",
        }
    }
}

pub fn status_table(uses: &[KeyUse]) -> String {
    let mut table = Table::new(&["KEY", "ROWS", "OAUTH SESSIONS", "STATE"]);
    for u in uses {
        table.row(vec![
            u.key_id.clone(),
            u.rows.to_string(),
            u.oauth_sessions.to_string(),
            u.state().to_owned(),
        ]);
    }
    table.render()
}

/// The refusal for rows that no configured key can open, naming the key ids and the fix.
fn unknown_keys_error(uses: &[KeyUse]) -> Option<CtlError> {
    let unknown: Vec<String> = uses
        .iter()
        .filter(|u| !u.configured && u.rows > 0)
        .map(|u| format!("{} ({} rows)", u.key_id, u.rows))
        .collect();
    (!unknown.is_empty()).then(|| {
        CtlError::Vault(format!(
            "credentials are sealed with key ids not in LIFELINE_VAULT_KEYS: {}; give this \
             command the same keys the services have (if a key is lost, those accounts must \
             reconnect)",
            unknown.join(", ")
        ))
    })
}

/// Open OAuth sessions per key id. The table is the gateway's; a database without it (no gateway
/// has migrated yet) simply has none.
async fn oauth_sessions(pool: &PgPool) -> Result<BTreeMap<String, u64>, CtlError> {
    let rows: Result<Vec<(String, i64)>, sqlx::Error> = sqlx::query_as(
        "SELECT key_id, count(*) FROM gateway.oauth_sessions
         WHERE used_at IS NULL AND expires_at > now() GROUP BY key_id",
    )
    .fetch_all(pool)
    .await;
    match rows {
        Ok(rows) => Ok(rows.into_iter().map(|(k, n)| (k, u64::try_from(n).unwrap_or(0))).collect()),
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P01") => {
            Ok(BTreeMap::new())
        }
        Err(e) => Err(db_error(e)),
    }
}

/// `vault status`: rows and open OAuth sessions per key id. Fails (exit 1) when rows are under a
/// key id the configuration lacks, so a script notices.
async fn status(pool: &PgPool, keys: &VaultKeys, args: &StatusArgs) -> Result<(), CtlError> {
    let vault = Vault::new(pool.clone(), keys.clone());
    let rows = vault.rows_per_key().await.map_err(db_error)?;
    let sessions = oauth_sessions(pool).await?;
    let uses = key_uses(keys, &rows, &sessions);
    if args.json {
        let doc = json!({
            "active_key": keys.active_key_id(),
            "keys": uses.iter().map(|u| json!({
                "key_id": u.key_id,
                "rows": u.rows,
                "oauth_sessions": u.oauth_sessions,
                "configured": u.configured,
                "active": u.active,
            })).collect::<Vec<_>>(),
        });
        output::line(&doc.to_string())?;
    } else {
        output::line(&status_table(&uses))?;
        let old_sessions: u64 = uses.iter().filter(|u| !u.active).map(|u| u.oauth_sessions).sum();
        if old_sessions > 0 {
            output::line(&format!(
                "{old_sessions} open OAuth sessions hold a PKCE verifier under an old key; they \
                 expire within LIFELINE_OAUTH_SESSION_TTL (10 min by default)"
            ))?;
        }
    }
    unknown_keys_error(&uses).map_or(Ok(()), Err)
}

fn per_key(counts: &BTreeMap<String, u64>) -> String {
    if counts.is_empty() {
        return "none".to_owned();
    }
    counts.iter().map(|(k, n)| format!("{k}: {n}")).collect::<Vec<_>>().join(", ")
}

/// One progress line: rows done of the total, per old key, and the rate so far.
pub fn progress_line(p: &RewrapProgress) -> String {
    let mut line = format!(
        "pass {} batch {}: {}/{} rows re-wrapped ({}), {:.0} rows/s",
        p.pass,
        p.batches,
        p.rewrapped_rows(),
        p.total,
        per_key(&p.rewrapped),
        p.rate()
    );
    if !p.unknown_key.is_empty() {
        let _ = write!(line, "; skipped under unknown keys: {}", per_key(&p.unknown_key));
    }
    if !p.undecryptable.is_empty() {
        let _ = write!(line, "; undecryptable: {}", p.undecryptable.len());
    }
    line
}

/// The summary of a finished run. Rows of the total that it neither re-wrapped nor left behind
/// were rewritten by the services meanwhile (a refresh or reconnect seals under the active key),
/// or deleted.
pub fn done_line(done: &RewrapProgress, now: &BTreeMap<String, u64>) -> String {
    let stuck = done.unknown_key.values().sum::<u64>() + done.undecryptable.len() as u64;
    let by_services = done.total.saturating_sub(done.rewrapped_rows() + done.left + stuck);
    let mut line = format!(
        "done: {} rows re-wrapped in {:.2?} ({:.0} rows/s) over {} {}",
        done.rewrapped_rows(),
        done.elapsed,
        done.rate(),
        done.pass,
        if done.pass == 1 { "pass" } else { "passes" }
    );
    if by_services > 0 {
        let _ = write!(line, "; {by_services} more rewritten by the services meanwhile");
    }
    let _ = write!(line, "; rows per key now: {}", per_key(now));
    line
}

/// `vault rewrap`: re-encrypts every credential under the active key, printing progress.
async fn rewrap(pool: &PgPool, keys: VaultKeys, args: &RewrapArgs) -> Result<(), CtlError> {
    let active = keys.active_key_id().to_owned();
    let vault = Vault::new(pool.clone(), keys.clone());
    let rows = vault.rows_per_key().await.map_err(db_error)?;
    let uses = key_uses(&keys, &rows, &BTreeMap::new());
    if let Some(refusal) = unknown_keys_error(&uses) {
        if !args.skip_unknown_keys {
            return Err(CtlError::Vault(format!(
                "refusing to start: {refusal}; or pass --skip-unknown-keys to re-wrap the rest"
            )));
        }
        eprintln!("warning: {refusal}");
    }
    let old: BTreeMap<String, u64> =
        rows.iter().filter(|(k, _)| **k != active).map(|(k, n)| (k.clone(), *n)).collect();
    output::line(&format!(
        "vault rewrap: active key {active}; {} of {} rows to re-wrap ({}); batches of {}",
        old.values().sum::<u64>(),
        rows.values().sum::<u64>(),
        per_key(&old),
        args.batch
    ))?;

    let options = RewrapOptions { batch: args.batch, pause: args.pause, ..Default::default() };
    let mut last_print: Option<tokio::time::Instant> = None;
    let mut printed = String::new();
    let mut closed = false;
    let done = vault
        .rewrap_all(options, |p| {
            if closed || last_print.is_some_and(|t| t.elapsed() < PROGRESS_EVERY) {
                return;
            }
            last_print = Some(tokio::time::Instant::now());
            printed = progress_line(p);
            // A closed stdout must not stop the re-wrap half-way; the final line reports it.
            closed = output::line(&printed).is_err();
        })
        .await
        .map_err(db_error)?;
    let last = progress_line(&done);
    if last != printed {
        output::line(&last)?;
    }
    let now = vault.rows_per_key().await.map_err(db_error)?;
    output::line(&done_line(&done, &now))?;
    if done.left > 0 {
        return Err(CtlError::Vault(format!(
            "{} rows are still being written under an old key after {} passes: is every service \
             rolled out with LIFELINE_VAULT_ACTIVE_KEY={active}?",
            done.left, done.pass
        )));
    }
    if !done.undecryptable.is_empty() {
        let ids: Vec<String> = done.undecryptable.iter().map(ToString::to_string).collect();
        return Err(CtlError::Vault(format!(
            "{} credentials do not decrypt under their key (tampered, or a key id reused for \
             another key) and were left as they are: accounts {}",
            ids.len(),
            ids.join(", ")
        )));
    }
    if !done.unknown_key.is_empty() {
        return Err(CtlError::Vault(format!(
            "rows under keys not in LIFELINE_VAULT_KEYS were left as they are: {}",
            per_key(&done.unknown_key)
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use lifeline_kit::config::Env;

    fn keys() -> VaultKeys {
        let (_, k1) = VaultKeys::generate("k1");
        let (_, k2) = VaultKeys::generate("k2");
        VaultKeys::from_env(&Env::from_pairs([("LIFELINE_VAULT_KEYS", format!("{k1},{k2}"))]))
            .expect("valid")
    }

    #[test]
    fn status_shows_every_key_and_flags_unknown_ones() {
        let rows = BTreeMap::from([("k2".to_owned(), 150), ("k0".to_owned(), 3)]);
        let sessions = BTreeMap::from([("k1".to_owned(), 2)]);
        let uses = key_uses(&keys(), &rows, &sessions);
        assert_eq!(
            status_table(&uses),
            "KEY  ROWS  OAUTH SESSIONS  STATE\n\
             k1   0     2               in use (run `lifelinectl vault rewrap`)\n\
             k2   150   0               active\n\
             k0   3     0               NOT IN LIFELINE_VAULT_KEYS"
        );
        let err = unknown_keys_error(&uses).expect("k0 is unknown").to_string();
        assert!(err.contains("k0 (3 rows)"), "{err}");
        let uses = key_uses(&keys(), &BTreeMap::from([("k2".to_owned(), 1)]), &BTreeMap::new());
        assert_eq!(uses[0].state(), "unused (can be removed)");
        assert!(unknown_keys_error(&uses).is_none());
    }

    #[test]
    fn the_summary_counts_rows_the_services_moved_meanwhile() {
        let done = RewrapProgress {
            total: 306,
            rewrapped: BTreeMap::from([("k1".to_owned(), 256)]),
            pass: 1,
            batches: 26,
            elapsed: Duration::from_millis(6500),
            ..Default::default()
        };
        let now = BTreeMap::from([("k2".to_owned(), 306)]);
        assert_eq!(
            done_line(&done, &now),
            "done: 256 rows re-wrapped in 6.50s (39 rows/s) over 1 pass; 50 more rewritten by \
             the services meanwhile; rows per key now: k2: 306"
        );
    }

    #[test]
    fn progress_names_counts_keys_and_rate_only() {
        let p = RewrapProgress {
            total: 1000,
            rewrapped: BTreeMap::from([("k1".to_owned(), 500)]),
            unknown_key: BTreeMap::from([("k0".to_owned(), 2)]),
            pass: 1,
            batches: 1,
            elapsed: Duration::from_millis(250),
            ..Default::default()
        };
        assert_eq!(
            progress_line(&p),
            "pass 1 batch 1: 500/1000 rows re-wrapped (k1: 500), 2000 rows/s; skipped under \
             unknown keys: k0: 2"
        );
    }
}
