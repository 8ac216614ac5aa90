//! The account model every platform shares: users created on first sign-in,
//! validated authorize requests, single-use authorization codes, opaque
//! tokens with their own lifetimes and causes of death, and the post log.
//! Each platform folder puts its own lifetimes, rotation rules and wire
//! formats on top.

mod posts;
mod tokens;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};
use sha2::{Digest as _, Sha256};

use crate::clock::Clock;
use crate::support::random_b64;

pub(crate) use posts::{Post, Stats};
pub(crate) use tokens::{grant_base, timed, Death, Kind, Refusal, Token, TokenState};

/// Authorization codes live 10 platform minutes (Google, LinkedIn: 30 min,
/// Meta: 10 min, TikTok: undocumented)...
pub(crate) const CODE_LIFETIME: Duration = Duration::from_secs(10 * 60);
/// ...but never less than 5 real seconds, so a high time scale cannot make a
/// code expire before any client could redeem it.
pub(crate) const CODE_MIN_REAL_LIFETIME: Duration = Duration::from_secs(5);

pub(crate) const HOUR: Duration = Duration::from_secs(60 * 60);
pub(crate) const DAY: Duration = Duration::from_secs(24 * 60 * 60);

#[derive(Debug, Clone, Default)]
pub(crate) struct User {
    pub key: String,
    pub username: String,
    pub name: String,
    /// The platform's id of the user (Google: the channel id).
    pub id: String,
    /// A second id the platform gives the user (Facebook: their Page).
    pub secondary_id: String,
}

/// PKCE as RFC 7636 defines it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pkce {
    pub challenge: String,
    /// `S256` or `plain`.
    pub method: String,
}

impl Pkce {
    pub fn verifies(&self, verifier: &str) -> bool {
        match self.method.as_str() {
            "plain" => self.challenge == verifier,
            _ => URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) == self.challenge,
        }
    }
}

/// A validated authorize request.
#[derive(Debug, Clone)]
pub(crate) struct AuthRequest {
    pub client_id: String,
    pub redirect_uri: String,
    pub scopes: Vec<String>,
    pub state: Option<String>,
    pub pkce: Option<Pkce>,
    /// Google `access_type=offline`.
    pub offline: bool,
    /// Google `prompt` contains `consent`.
    pub prompt_consent: bool,
}

impl AuthRequest {
    /// A request without PKCE or offline access, as most platforms make.
    pub fn plain(
        client_id: &str,
        redirect_uri: &str,
        scopes: Vec<String>,
        state: Option<String>,
    ) -> Self {
        Self {
            client_id: client_id.to_owned(),
            redirect_uri: redirect_uri.to_owned(),
            scopes,
            state,
            pkce: None,
            offline: false,
            prompt_consent: false,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Code {
    pub client_id: String,
    pub redirect_uri: String,
    pub scopes: Vec<String>,
    pub user_key: String,
    pub expires_at: Instant,
    pub spent: bool,
    pub pkce: Option<Pkce>,
    /// Google: `access_type=offline`; whether to issue a refresh token.
    pub offline: bool,
}

impl Code {
    /// A fresh, unspent code for what `request` asked, granted to `user_key`. Platforms with
    /// PKCE or offline access set those on top.
    pub fn for_request(request: &AuthRequest, user_key: String, clock: &Clock) -> Code {
        Code {
            client_id: request.client_id.clone(),
            redirect_uri: request.redirect_uri.clone(),
            scopes: request.scopes.clone(),
            user_key,
            expires_at: code_expiry(clock),
            spent: false,
            pkce: None,
            offline: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CodeError {
    Unknown,
    WrongClient,
    Spent,
    Expired,
    RedirectMismatch,
}

#[derive(Debug, Default)]
pub(crate) struct Accounts {
    /// Keyed by lowercased username.
    users: HashMap<String, User>,
    users_created: u64,
    codes: HashMap<String, Code>,
    tokens: HashMap<String, Token>,
    next_grant: u64,
    posts: Vec<Post>,
    next_post: u64,
    pub stats: Stats,
}

/// A username the simulator accepts: 1–30 letters, digits, `_` or `.`.
pub(crate) fn valid_username(u: &str) -> bool {
    (1..=30).contains(&u.len())
        && u.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
}

/// `demo_user` → `Demo User`.
pub(crate) fn display_name(username: &str) -> String {
    let name = username
        .split(['_', '.'])
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut cs = p.chars();
            cs.next().map(|f| f.to_uppercase().chain(cs).collect::<String>()).unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(" ");
    if name.is_empty() {
        username.to_owned()
    } else {
        name
    }
}

/// A new opaque secret: `prefix` + 48 random base64url characters.
pub(crate) fn secret(prefix: &str) -> String {
    format!("{prefix}{}", random_b64(36))
}

pub(crate) fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

impl Accounts {
    /// Signs `username` in, creating the user on first sight with ids from
    /// `make_ids(n)` (n = 0, 1, … per platform). Ids are stable.
    pub fn sign_in(
        &mut self,
        username: &str,
        make_ids: impl FnOnce(u64) -> (String, String),
    ) -> User {
        let key = username.to_ascii_lowercase();
        if let Some(u) = self.users.get(&key) {
            return u.clone();
        }
        let (id, secondary_id) = make_ids(self.users_created);
        self.users_created += 1;
        let user = User {
            key: key.clone(),
            username: username.to_owned(),
            name: display_name(username),
            id,
            secondary_id,
        };
        self.users.insert(key, user.clone());
        user
    }

    pub fn user(&self, key: &str) -> Option<&User> {
        self.users.get(key)
    }

    pub fn user_by_username(&self, username: &str) -> Option<&User> {
        self.users.get(&username.to_ascii_lowercase())
    }

    /// The user the platform knows by `id` (X: `GET /2/users/{id}/tweets`).
    pub fn user_by_id(&self, id: &str) -> Option<&User> {
        self.users.values().find(|u| u.id == id)
    }

    pub fn issue_code(&mut self, code: Code) -> String {
        self.issue_code_as(random_b64(32), code)
    }

    /// Stores `code` under a string the platform made in its own shape.
    pub fn issue_code_as(&mut self, s: String, code: Code) -> String {
        self.codes.insert(s.clone(), code);
        s
    }

    /// Redeems a code: single use, spent by the first attempt that names the
    /// right client, even a failed one.
    pub fn redeem_code(
        &mut self,
        code: &str,
        client_id: &str,
        redirect_uri: Option<&str>,
        now: Instant,
    ) -> Result<Code, CodeError> {
        let entry = self.codes.get_mut(code).ok_or(CodeError::Unknown)?;
        if entry.client_id != client_id {
            return Err(CodeError::WrongClient);
        }
        if entry.spent {
            return Err(CodeError::Spent);
        }
        entry.spent = true;
        if entry.expires_at <= now {
            return Err(CodeError::Expired);
        }
        if redirect_uri.is_some_and(|r| r != entry.redirect_uri) {
            return Err(CodeError::RedirectMismatch);
        }
        Ok(entry.clone())
    }
}

/// The code expiry for a code issued now.
fn code_expiry(clock: &Clock) -> Instant {
    clock.now() + clock.real_at_least(CODE_LIFETIME, CODE_MIN_REAL_LIFETIME)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_s256_rfc7636() {
        let p = Pkce {
            challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
            method: "S256".into(),
        };
        assert!(p.verifies("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"));
        assert!(!p.verifies("x"));
    }

    #[test]
    fn same_username_same_user_case_insensitive() {
        let mut a = Accounts::default();
        let ids = |n: u64| (n.to_string(), String::new());
        let first = a.sign_in("demo_user", ids);
        let again = a.sign_in("Demo_User", ids);
        let other = a.sign_in("other", ids);
        assert_eq!(first.id, again.id);
        assert_ne!(first.id, other.id);
        assert_eq!(first.name, "Demo User");
        assert_eq!(a.user_by_id(&other.id).map(|u| u.key.as_str()), Some("other"));
    }

    #[test]
    fn display_names() {
        assert_eq!(display_name("demo_user"), "Demo User");
        assert_eq!(display_name("_"), "_");
    }
}
