//! The vault: account credentials encrypted with AES-256-GCM under a named key (so keys can
//! rotate), bound to their account and field, and written only by compare-and-swap on a version
//! so a reconnect racing a refresh can never replace a newer token with an older one.

use std::collections::HashMap;

use aes_gcm::{
    aead::{Aead, KeyInit, Payload},
    Aes256Gcm, Nonce,
};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use lifeline_kit::{
    config::{ConfigError, Env},
    ids::{AccountId, WorkspaceId},
    Platform,
};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sqlx::{PgConnection, PgPool, Row};

mod rewrap;

pub use rewrap::{after_pass, AfterPass, RewrapBatch, RewrapOptions, RewrapProgress};

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");
pub const SCHEMA: &str = "vault";

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("credential of account {0} changed concurrently (version conflict)")]
    VersionConflict(AccountId),
    #[error("account {0} already has credentials")]
    AlreadyExists(AccountId),
    #[error("no credentials for account {0}")]
    NotFound(AccountId),
    #[error("credential sealed with unknown key {0:?}; add it to LIFELINE_VAULT_KEYS")]
    UnknownKey(String),
    #[error("credential of account {0} cannot be decrypted (wrong key or tampered row)")]
    Undecryptable(AccountId),
    #[error("credential row is invalid: {0}")]
    Corrupt(String),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

/// The encryption keys: `LIFELINE_VAULT_KEYS` = `id:base64key,id2:base64key` (32-byte keys), and
/// `LIFELINE_VAULT_ACTIVE_KEY` naming the one new writes use (default: the last listed).
#[derive(Clone)]
pub struct VaultKeys {
    active: String,
    keys: HashMap<String, Aes256Gcm>,
}

impl std::fmt::Debug for VaultKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultKeys")
            .field("active", &self.active)
            .field("keys", &self.keys.len())
            .finish()
    }
}

impl VaultKeys {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        const NAME: &str = "LIFELINE_VAULT_KEYS";
        let raw = env.required(
            NAME,
            "set it to id:base64(32 random bytes), e.g. k1:$(openssl rand -base64 32)",
        )?;
        let mut keys = HashMap::new();
        let mut last = None;
        for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (id, b64) = entry
                .split_once(':')
                .ok_or_else(|| env.invalid(NAME, "each entry must be id:base64key"))?;
            if id.is_empty()
                || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(
                    env.invalid(NAME, format!("key id {id:?} must be letters, digits, '-' or '_'"))
                );
            }
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|_| env.invalid(NAME, format!("key {id:?} is not valid base64")))?;
            let cipher = Aes256Gcm::new_from_slice(&bytes).map_err(|_| {
                env.invalid(NAME, format!("key {id:?} must be 32 bytes, got {}", bytes.len()))
            })?;
            keys.insert(id.to_owned(), cipher);
            last = Some(id.to_owned());
        }
        let active = match env.raw("LIFELINE_VAULT_ACTIVE_KEY") {
            Some(a) if keys.contains_key(&a) => a,
            Some(a) => {
                return Err(
                    env.invalid("LIFELINE_VAULT_ACTIVE_KEY", format!("{a:?} is not in {NAME}"))
                )
            }
            None => last.ok_or_else(|| env.invalid(NAME, "no keys given"))?,
        };
        Ok(VaultKeys { active, keys })
    }

    /// A single random key, for tests and development.
    pub fn generate(id: &str) -> (Self, String) {
        let mut key = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut key);
        let b64 = base64::engine::general_purpose::STANDARD.encode(key);
        let keys = HashMap::from([(id.to_owned(), Aes256Gcm::new(&key.into()))]);
        (VaultKeys { active: id.to_owned(), keys }, format!("{id}:{b64}"))
    }

    pub fn active_key_id(&self) -> &str {
        &self.active
    }

    /// Whether a key with this id was given (a row under any other id cannot be opened).
    pub fn has_key(&self, key_id: &str) -> bool {
        self.keys.contains_key(key_id)
    }

    /// The ids of the keys given, sorted.
    pub fn key_ids(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = self.keys.keys().map(String::as_str).collect();
        ids.sort_unstable();
        ids
    }

    fn aad(account: AccountId, field: &str) -> String {
        format!("lifeline-vault:v1:{account}:{field}")
    }

    /// Encrypts a credential field under the active key, bound to its account and field.
    pub fn seal(&self, account: AccountId, field: &str, plaintext: &SecretString) -> Vec<u8> {
        self.seal_bound(&Self::aad(account, field), plaintext)
    }

    pub fn open(
        &self,
        key_id: &str,
        account: AccountId,
        field: &str,
        sealed: &[u8],
    ) -> Result<SecretString, VaultError> {
        self.open_bound(key_id, &Self::aad(account, field), sealed).map_err(|e| match e {
            VaultError::Undecryptable(_) => VaultError::Undecryptable(account),
            other => other,
        })
    }

    /// Encrypts any secret under the active key, bound to `context` (which must be given again
    /// to open it); the result is `nonce || ciphertext || tag`.
    pub fn seal_bound(&self, context: &str, plaintext: &SecretString) -> Vec<u8> {
        let cipher = &self.keys[&self.active];
        let mut nonce = [0u8; 12];
        rand::thread_rng().fill_bytes(&mut nonce);
        let aad = context.as_bytes();
        let ct = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload { msg: plaintext.expose_secret().as_bytes(), aad },
            )
            // AES-GCM encryption only fails for inputs far larger than any token.
            .unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        out
    }

    pub fn open_bound(
        &self,
        key_id: &str,
        context: &str,
        sealed: &[u8],
    ) -> Result<SecretString, VaultError> {
        let cipher =
            self.keys.get(key_id).ok_or_else(|| VaultError::UnknownKey(key_id.to_owned()))?;
        let undecryptable = || VaultError::Undecryptable(AccountId(uuid::Uuid::nil()));
        if sealed.len() < 12 + 16 {
            return Err(undecryptable());
        }
        let (nonce, ct) = sealed.split_at(12);
        let plain = cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad: context.as_bytes() })
            .map_err(|_| undecryptable())?;
        String::from_utf8(plain).map(SecretString::from).map_err(|_| undecryptable())
    }
}

/// Tokens and their lifetimes as a platform granted them.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub access_token: SecretString,
    pub refresh_token: Option<SecretString>,
    pub access_expires_at: Option<DateTime<Utc>>,
    pub refresh_expires_at: Option<DateTime<Utc>>,
    pub scopes: Vec<String>,
}

/// A stored credential, decrypted.
#[derive(Debug, Clone)]
pub struct Credential {
    pub account_id: AccountId,
    pub workspace_id: WorkspaceId,
    pub platform: Platform,
    pub platform_user_id: String,
    pub tokens: Tokens,
    pub first_granted_at: DateTime<Utc>,
    pub version: i64,
}

/// Non-secret facts about a credential (no decryption needed).
#[derive(Debug, Clone)]
pub struct CredentialInfo {
    pub account_id: AccountId,
    pub workspace_id: WorkspaceId,
    pub platform: Platform,
    pub platform_user_id: String,
    pub access_expires_at: Option<DateTime<Utc>>,
    pub refresh_expires_at: Option<DateTime<Utc>>,
    pub has_refresh_token: bool,
    pub first_granted_at: DateTime<Utc>,
    pub version: i64,
}

const LOAD: &str =
    "SELECT account_id, workspace_id, platform, platform_user_id, key_id, access_token,
        refresh_token, access_expires_at, refresh_expires_at, scopes, first_granted_at, version
     FROM vault.credentials";

#[derive(Clone, Debug)]
pub struct Vault {
    pool: PgPool,
    keys: VaultKeys,
}

impl Vault {
    pub fn new(pool: PgPool, keys: VaultKeys) -> Self {
        Vault { pool, keys }
    }

    pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
        lifeline_kit::db::migrate(pool, SCHEMA, &MIGRATOR).await
    }

    /// [`Vault::migrate`] in the shape a service's start-up takes it
    /// (`lifeline_kit::service::Spec::extra_migrations`).
    pub fn migration(
        pool: PgPool,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<(), sqlx::migrate::MigrateError>> + Send>,
    > {
        Box::pin(async move { Vault::migrate(&pool).await })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Stores the first credential of a new account (version 1), inside the caller's transaction.
    pub async fn insert(
        &self,
        tx: &mut PgConnection,
        account: AccountId,
        workspace: WorkspaceId,
        platform: Platform,
        platform_user_id: &str,
        tokens: &Tokens,
    ) -> Result<i64, VaultError> {
        let done = sqlx::query(
            "INSERT INTO vault.credentials (account_id, workspace_id, platform, platform_user_id, key_id,
                 access_token, refresh_token, access_expires_at, refresh_expires_at, scopes,
                 first_granted_at, version)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, now(), 1)
             ON CONFLICT (account_id) DO NOTHING",
        )
        .bind(account)
        .bind(workspace)
        .bind(platform.as_str())
        .bind(platform_user_id)
        .bind(self.keys.active_key_id())
        .bind(self.keys.seal(account, "access", &tokens.access_token))
        .bind(tokens.refresh_token.as_ref().map(|r| self.keys.seal(account, "refresh", r)))
        .bind(tokens.access_expires_at)
        .bind(tokens.refresh_expires_at)
        .bind(&tokens.scopes)
        .execute(tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(VaultError::AlreadyExists(account));
        }
        Ok(1)
    }

    /// Replaces the tokens if the stored version is still `expected`; returns the new version.
    /// `reset_grant` restarts `first_granted_at` (a new authorization, not a refresh).
    /// `tokens` is the whole new set: a caller whose refresh returned no new refresh token passes
    /// the old one, which is then re-sealed under the active key.
    pub async fn compare_and_swap(
        &self,
        conn: &mut PgConnection,
        account: AccountId,
        expected: i64,
        tokens: &Tokens,
        reset_grant: bool,
    ) -> Result<i64, VaultError> {
        self.compare_and_swap_many(conn, &[(account, expected, tokens)], reset_grant)
            .await?
            .remove(&account)
            .ok_or(VaultError::VersionConflict(account))
    }

    /// [`Vault::compare_and_swap`] for many credentials in one statement. Returns the new
    /// version of each credential that was still at its expected version; the others changed
    /// concurrently and are absent.
    pub async fn compare_and_swap_many(
        &self,
        conn: &mut PgConnection,
        swaps: &[(AccountId, i64, &Tokens)],
        reset_grant: bool,
    ) -> Result<HashMap<AccountId, i64>, VaultError> {
        if swaps.is_empty() {
            return Ok(HashMap::new());
        }
        let mut ids = Vec::with_capacity(swaps.len());
        let mut expected = Vec::with_capacity(swaps.len());
        let mut access = Vec::with_capacity(swaps.len());
        let mut refresh = Vec::with_capacity(swaps.len());
        let mut access_exp = Vec::with_capacity(swaps.len());
        let mut refresh_exp = Vec::with_capacity(swaps.len());
        let mut scopes = Vec::with_capacity(swaps.len());
        for (account, version, tokens) in swaps {
            ids.push(account.0);
            expected.push(*version);
            access.push(self.keys.seal(*account, "access", &tokens.access_token));
            refresh.push(
                tokens.refresh_token.as_ref().map(|r| self.keys.seal(*account, "refresh", r)),
            );
            access_exp.push(tokens.access_expires_at);
            refresh_exp.push(tokens.refresh_expires_at);
            // OAuth scopes never contain the unit separator (RFC 6749 §3.3).
            scopes.push(tokens.scopes.join("\u{1f}"));
        }
        let rows: Vec<(uuid::Uuid, i64)> = sqlx::query_as(
            "UPDATE vault.credentials c SET
                 key_id = $1, access_token = u.access, refresh_token = u.refresh,
                 access_expires_at = u.access_exp, refresh_expires_at = u.refresh_exp,
                 scopes = string_to_array(u.scopes, chr(31)),
                 first_granted_at = CASE WHEN $9 THEN now() ELSE c.first_granted_at END,
                 version = c.version + 1, updated_at = now()
             FROM unnest($2::uuid[], $3::bigint[], $4::bytea[], $5::bytea[], $6::timestamptz[],
                         $7::timestamptz[], $8::text[])
                  AS u(account_id, expected, access, refresh, access_exp, refresh_exp, scopes)
             WHERE c.account_id = u.account_id AND c.version = u.expected
             RETURNING c.account_id, c.version",
        )
        .bind(self.keys.active_key_id())
        .bind(&ids)
        .bind(&expected)
        .bind(&access)
        .bind(&refresh)
        .bind(&access_exp)
        .bind(&refresh_exp)
        .bind(&scopes)
        .bind(reset_grant)
        .fetch_all(conn)
        .await?;
        Ok(rows.into_iter().map(|(a, v)| (AccountId(a), v)).collect())
    }

    pub async fn load(&self, account: AccountId) -> Result<Option<Credential>, VaultError> {
        let row = sqlx::query(&format!("{LOAD} WHERE account_id = $1"))
            .bind(account)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| self.decode(&row)).transpose()
    }

    /// Loads many credentials in one query (the refresher's leased batch). Accounts without a
    /// credential are absent from the answer; one that cannot be decrypted is an `Err` in its
    /// slot and does not spoil the others.
    pub async fn load_many(
        &self,
        accounts: &[AccountId],
    ) -> Result<Vec<(AccountId, Result<Credential, VaultError>)>, VaultError> {
        let ids: Vec<uuid::Uuid> = accounts.iter().map(|a| a.0).collect();
        let rows = sqlx::query(&format!("{LOAD} WHERE account_id = ANY($1)"))
            .bind(&ids)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                let account = AccountId(row.try_get("account_id")?);
                Ok((account, self.decode(row)))
            })
            .collect()
    }

    fn decode(&self, row: &sqlx::postgres::PgRow) -> Result<Credential, VaultError> {
        let account = AccountId(row.try_get("account_id")?);
        let key_id: String = row.try_get("key_id")?;
        let platform: String = row.try_get("platform")?;
        let refresh: Option<Vec<u8>> = row.try_get("refresh_token")?;
        let access: Vec<u8> = row.try_get("access_token")?;
        Ok(Credential {
            account_id: account,
            workspace_id: row.try_get("workspace_id")?,
            platform: platform.parse().map_err(|e: lifeline_kit::events::UnknownPlatform| {
                VaultError::Corrupt(e.to_string())
            })?,
            platform_user_id: row.try_get("platform_user_id")?,
            tokens: Tokens {
                access_token: self.keys.open(&key_id, account, "access", &access)?,
                refresh_token: refresh
                    .map(|r| self.keys.open(&key_id, account, "refresh", &r))
                    .transpose()?,
                access_expires_at: row.try_get("access_expires_at")?,
                refresh_expires_at: row.try_get("refresh_expires_at")?,
                scopes: row.try_get("scopes")?,
            },
            first_granted_at: row.try_get("first_granted_at")?,
            version: row.try_get("version")?,
        })
    }

    /// Facts about a credential without decrypting it (ownership checks, scheduling).
    pub async fn info(&self, account: AccountId) -> Result<Option<CredentialInfo>, VaultError> {
        let row = sqlx::query(
            "SELECT workspace_id, platform, platform_user_id, access_expires_at, refresh_expires_at,
                    refresh_token IS NOT NULL AS has_refresh_token, first_granted_at, version
             FROM vault.credentials WHERE account_id = $1",
        )
        .bind(account)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let platform: String = row.try_get("platform")?;
        Ok(Some(CredentialInfo {
            account_id: account,
            workspace_id: row.try_get("workspace_id")?,
            platform: platform.parse().map_err(|e: lifeline_kit::events::UnknownPlatform| {
                VaultError::Corrupt(e.to_string())
            })?,
            platform_user_id: row.try_get("platform_user_id")?,
            access_expires_at: row.try_get("access_expires_at")?,
            refresh_expires_at: row.try_get("refresh_expires_at")?,
            has_refresh_token: row.try_get("has_refresh_token")?,
            first_granted_at: row.try_get("first_granted_at")?,
            version: row.try_get("version")?,
        }))
    }

    pub async fn delete(
        &self,
        conn: &mut PgConnection,
        account: AccountId,
    ) -> Result<bool, VaultError> {
        let r = sqlx::query("DELETE FROM vault.credentials WHERE account_id = $1")
            .bind(account)
            .execute(conn)
            .await?;
        Ok(r.rows_affected() > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_in_their_context() {
        let (keys, _) = VaultKeys::generate("k1");
        let account = AccountId::new();
        let secret = SecretString::from("token-value");
        let sealed = keys.seal(account, "access", &secret);
        assert!(
            !sealed.windows(11).any(|w| w == b"token-value"),
            "ciphertext must not contain the token"
        );
        assert_eq!(
            keys.open("k1", account, "access", &sealed).expect("opens").expose_secret(),
            "token-value"
        );
        assert!(keys.open("k1", account, "refresh", &sealed).is_err(), "bound to the field");
        assert!(
            keys.open("k1", AccountId::new(), "access", &sealed).is_err(),
            "bound to the account"
        );
        assert!(matches!(
            keys.open("k0", account, "access", &sealed),
            Err(VaultError::UnknownKey(_))
        ));
        let mut tampered = sealed.clone();
        tampered[20] ^= 1;
        assert!(keys.open("k1", account, "access", &tampered).is_err(), "tampering is detected");
    }

    #[test]
    fn keys_parse_from_env_and_rotate() {
        let (_, k1) = VaultKeys::generate("k1");
        let (_, k2) = VaultKeys::generate("k2");
        let keys =
            VaultKeys::from_env(&Env::from_pairs([("LIFELINE_VAULT_KEYS", format!("{k1},{k2}"))]))
                .expect("valid");
        assert_eq!(keys.active_key_id(), "k2");
        let keys = VaultKeys::from_env(&Env::from_pairs([
            ("LIFELINE_VAULT_KEYS", format!("{k1},{k2}")),
            ("LIFELINE_VAULT_ACTIVE_KEY", "k1".to_owned()),
        ]))
        .expect("valid");
        assert_eq!(keys.active_key_id(), "k1");
    }

    #[test]
    fn bad_keys_name_the_variable() {
        for bad in ["k1", "k1:notbase64!!", "k1:c2hvcnQ=", "bad id:AAAA"] {
            let err = VaultKeys::from_env(&Env::from_pairs([("LIFELINE_VAULT_KEYS", bad)]))
                .expect_err(bad);
            assert!(err.to_string().contains("LIFELINE_VAULT_KEYS"), "{err}");
        }
        let err = VaultKeys::from_env(&Env::from_pairs([("X", "y")])).expect_err("missing");
        assert!(err.to_string().contains("LIFELINE_VAULT_KEYS"), "{err}");
    }
}
