//! The account model the six OAuth platforms after X share: users created on
//! first sign-in, single-use authorization codes, opaque tokens with their
//! own lifetimes and causes of death, and the post log. Each platform folder
//! puts its own lifetimes, rotation rules and wire formats on top.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::json;
use sha2::{Digest as _, Sha256};

use crate::clock::Clock;
use crate::state::PostRecord;
use crate::support::random_b64;

/// Authorization codes live 10 platform minutes (Google, LinkedIn: 30 min,
/// Meta: 10 min, TikTok: undocumented)...
pub(crate) const CODE_LIFETIME: Duration = Duration::from_secs(10 * 60);
/// ...but never less than 5 real seconds, so a high time scale cannot make a
/// code expire before any client could redeem it.
pub(crate) const CODE_MIN_REAL_LIFETIME: Duration = Duration::from_secs(5);

pub(crate) const HOUR: Duration = Duration::from_secs(60 * 60);
pub(crate) const DAY: Duration = Duration::from_secs(24 * 60 * 60);

#[derive(Debug, Clone)]
pub(crate) struct User {
    pub key: String,
    pub username: String,
    pub name: String,
    /// The platform's id of the user (Google: the channel id).
    pub id: String,
    /// A second id the platform gives the user (Facebook: their Page).
    pub secondary_id: String,
}

/// Why a token stopped working before its time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Death {
    Revoked,
    PasswordChanged,
    Checkpoint,
    Deauthorized,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenState {
    Live,
    /// A rotating refresh token already exchanged once.
    Spent,
    Dead(Death),
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
    pub fn for_request(
        request: &crate::authorize::AuthRequest,
        user_key: String,
        clock: &Clock,
    ) -> Code {
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

/// What kind of token a string is; platforms use the subset they need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Access,
    Refresh,
    /// Meta: a 1-hour token straight from the code.
    ShortLived,
    /// Meta: a 60-day token from the exchange or a refresh.
    LongLived,
    /// Facebook: a Page access token.
    Page,
}

impl Kind {
    /// Whether the token authorizes API calls (all but refresh tokens).
    pub fn is_access(self) -> bool {
        self != Self::Refresh
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub kind: Kind,
    pub user_key: String,
    pub client_id: String,
    pub scopes: Vec<String>,
    pub issued_at: Instant,
    /// `None`: never expires.
    pub expires_at: Option<Instant>,
    pub state: TokenState,
    /// Every token descending from one authorization shares a grant.
    pub grant: u64,
    /// When the grant was first made (LinkedIn counts 365 days from it).
    pub granted_at: Instant,
}

impl Token {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    Unknown,
    Expired {
        at: Instant,
    },
    Spent,
    Dead(Death),
    /// Known token of another kind (a refresh token used as a bearer).
    WrongKind,
}

#[derive(Debug, Clone)]
pub(crate) struct Post {
    pub id: String,
    pub user_key: String,
    pub text: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub refresh_token_reuse: u64,
    pub duplicate_posts: u64,
    pub tokens_issued: u64,
    pub refreshes: u64,
    pub posts: u64,
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

    pub fn issue_code(&mut self, code: Code) -> String {
        let s = random_b64(32);
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

    pub fn new_grant(&mut self) -> u64 {
        self.next_grant += 1;
        self.next_grant
    }

    /// Stores a token under `prefix`+random and counts it as issued when it
    /// is what a token response returns (`counted`).
    pub fn insert_token(&mut self, prefix: &str, token: Token) -> String {
        let s = secret(prefix);
        self.tokens.insert(s.clone(), token);
        s
    }

    pub fn token(&self, s: &str) -> Option<&Token> {
        self.tokens.get(s)
    }

    pub fn token_mut(&mut self, s: &str) -> Option<&mut Token> {
        self.tokens.get_mut(s)
    }

    /// The token if it is known, of an accepted kind, alive and unexpired.
    pub fn check(&self, s: &str, kinds: &[Kind], now: Instant) -> Result<Token, Refusal> {
        let t = self.tokens.get(s).ok_or(Refusal::Unknown)?;
        if !kinds.contains(&t.kind) {
            return Err(Refusal::WrongKind);
        }
        match t.state {
            TokenState::Dead(d) => return Err(Refusal::Dead(d)),
            TokenState::Spent => return Err(Refusal::Spent),
            TokenState::Live => {}
        }
        if let Some(at) = t.expires_at.filter(|at| *at <= now) {
            return Err(Refusal::Expired { at });
        }
        Ok(t.clone())
    }

    /// Kills the user's tokens matching `filter` with `death` and spends
    /// their pending codes. `None` when the user is unknown.
    pub fn kill_user(
        &mut self,
        username: &str,
        death: Death,
        filter: impl Fn(&Token) -> bool,
    ) -> Option<usize> {
        let key = self.user_by_username(username)?.key.clone();
        let mut n = 0;
        for t in self.tokens.values_mut().filter(|t| t.user_key == key) {
            if matches!(t.state, TokenState::Live | TokenState::Spent) && filter(t) {
                t.state = TokenState::Dead(death);
                n += 1;
            }
        }
        for c in self.codes.values_mut().filter(|c| c.user_key == key) {
            c.spent = true;
        }
        Some(n)
    }

    /// Kills every token of one grant (a client revoking its own token).
    pub fn kill_grant(&mut self, grant: u64, death: Death) -> usize {
        let mut n = 0;
        for t in self.tokens.values_mut().filter(|t| t.grant == grant) {
            if t.state != TokenState::Dead(death) {
                t.state = TokenState::Dead(death);
                n += 1;
            }
        }
        n
    }

    /// Expires the user's live tokens matching `filter` now.
    pub fn expire_user(
        &mut self,
        username: &str,
        now: Instant,
        filter: impl Fn(&Token) -> bool,
    ) -> Option<usize> {
        let key = self.user_by_username(username)?.key.clone();
        let mut n = 0;
        for t in self.tokens.values_mut().filter(|t| t.user_key == key) {
            let live = t.state == TokenState::Live && t.expires_at.is_none_or(|e| e > now);
            if live && filter(t) {
                t.expires_at = Some(now);
                n += 1;
            }
        }
        Some(n)
    }

    /// Removes `scope` from every token of the user (the user unticked it).
    pub fn remove_scope(&mut self, username: &str, scope: &str) -> Option<usize> {
        let key = self.user_by_username(username)?.key.clone();
        let mut n = 0;
        for t in self.tokens.values_mut().filter(|t| t.user_key == key) {
            let before = t.scopes.len();
            t.scopes.retain(|s| s != scope);
            if t.scopes.len() != before {
                n += 1;
            }
        }
        Some(n)
    }

    /// The user's grants to `client_id` that are still alive.
    pub fn has_live_grant(&self, user_key: &str, client_id: &str, kind: Kind) -> bool {
        self.tokens.values().any(|t| {
            t.user_key == user_key
                && t.client_id == client_id
                && t.kind == kind
                && t.state == TokenState::Live
        })
    }

    /// Records an accepted post; the same text from the same user twice is
    /// accepted but counted as a duplicate. `id` builds the id from a counter.
    pub fn record_post(
        &mut self,
        user_key: &str,
        text: &str,
        id: impl FnOnce(u64) -> String,
    ) -> Post {
        if self.posts.iter().any(|p| p.user_key == user_key && p.text == text) {
            self.stats.duplicate_posts += 1;
        }
        self.next_post += 1;
        let post = Post {
            id: id(self.next_post),
            user_key: user_key.to_owned(),
            text: text.to_owned(),
            created_at: Utc::now(),
        };
        self.posts.push(post.clone());
        self.stats.posts += 1;
        post
    }

    pub fn posts_of<'a>(&'a self, user_key: &'a str) -> impl Iterator<Item = &'a Post> + 'a {
        self.posts.iter().filter(move |p| p.user_key == user_key)
    }

    pub fn post_records(&self, platform: &'static str) -> Vec<PostRecord> {
        self.posts
            .iter()
            .filter_map(|p| {
                let u = self.users.get(&p.user_key)?;
                Some(PostRecord {
                    platform,
                    id: p.id.clone(),
                    user_id: u.id.clone(),
                    username: u.username.clone(),
                    text: p.text.clone(),
                    created_at: rfc3339(p.created_at),
                })
            })
            .collect()
    }

    pub fn stats_json(&self) -> serde_json::Value {
        let s = &self.stats;
        json!({
            "refresh_token_reuse": s.refresh_token_reuse,
            "duplicate_posts": s.duplicate_posts,
            "tokens_issued": s.tokens_issued,
            "refreshes": s.refreshes,
            "posts": s.posts,
        })
    }
}

/// Builds a token valid for `lifetime` (platform time) from now, whose
/// expiry matches the `expires_in` reported on the wire exactly; returns the
/// token and that `expires_in`.
pub(crate) fn timed(clock: &Clock, kind: Kind, base: &Token, lifetime: Duration) -> (Token, u64) {
    let now = clock.now();
    let expires_in = clock.wire_expires_in(lifetime);
    let t = Token {
        kind,
        issued_at: now,
        expires_at: Some(now + Duration::from_secs(expires_in)),
        state: TokenState::Live,
        ..base.clone()
    };
    (t, expires_in)
}

/// A token template for a fresh grant (expiry and kind set by `timed`).
pub(crate) fn grant_base(
    user_key: &str,
    client_id: &str,
    scopes: Vec<String>,
    grant: u64,
    now: Instant,
) -> Token {
    Token {
        kind: Kind::Access,
        user_key: user_key.to_owned(),
        client_id: client_id.to_owned(),
        scopes,
        issued_at: now,
        expires_at: None,
        state: TokenState::Live,
        grant,
        granted_at: now,
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
    fn duplicates_are_counted_not_refused() {
        let mut a = Accounts::default();
        a.record_post("u", "hi", |n| n.to_string());
        a.record_post("u", "hi", |n| n.to_string());
        a.record_post("v", "hi", |n| n.to_string());
        assert_eq!(a.stats.posts, 3);
        assert_eq!(a.stats.duplicate_posts, 1);
    }

    #[test]
    fn display_names() {
        assert_eq!(display_name("demo_user"), "Demo User");
        assert_eq!(display_name("_"), "_");
    }
}
