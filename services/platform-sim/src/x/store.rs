//! X's in-memory model: users, authorization codes, token families, tweets.
//! Pure logic over `Instant`s, so the HTTP layer stays a thin translation.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use sha2::{Digest as _, Sha256};

use crate::clock::Clock;
use crate::support::random_b64;

/// X access tokens live 2 hours (platform time).
pub(crate) const ACCESS_TOKEN_LIFETIME: Duration = Duration::from_secs(2 * 60 * 60);
/// X does not document it; about 6 months is reported. Each rotation starts a
/// fresh lifetime.
pub(crate) const REFRESH_TOKEN_LIFETIME: Duration = Duration::from_secs(180 * 24 * 60 * 60);
/// X authorization codes are short-lived; 30 platform seconds...
pub(crate) const CODE_LIFETIME: Duration = Duration::from_secs(30);
/// ...but never less than 5 real seconds, or a high time scale would make the
/// code expire before any client could redeem it.
pub(crate) const CODE_MIN_REAL_LIFETIME: Duration = Duration::from_secs(5);
/// Same text from the same user within this platform window is a duplicate.
pub(crate) const DUPLICATE_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);
/// X rate-limit windows are 15 minutes (platform time).
pub(crate) const RATE_WINDOW: Duration = Duration::from_secs(15 * 60);

/// First user id handed out; X user ids are large numeric strings.
const FIRST_USER_ID: u64 = 1_440_000_000_000_000_000;
/// Twitter's snowflake epoch (2010-11-04), so tweet ids look and sort like X's.
const SNOWFLAKE_EPOCH_MS: i64 = 1_288_834_974_657;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChallengeMethod {
    S256,
    Plain,
}

impl ChallengeMethod {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "S256" => Some(Self::S256),
            "plain" => Some(Self::Plain),
            _ => None,
        }
    }

    fn verifies(self, challenge: &str, verifier: &str) -> bool {
        match self {
            Self::Plain => challenge == verifier,
            Self::S256 => URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) == challenge,
        }
    }
}

/// A validated authorize request (everything but `state`, which only
/// travels back to the client).
#[derive(Debug, Clone)]
pub(crate) struct AuthRequest {
    pub client_id: String,
    pub redirect_uri: String,
    pub scopes: Vec<String>,
    pub code_challenge: String,
    pub method: ChallengeMethod,
}

#[derive(Debug, Clone)]
pub(crate) struct User {
    pub id: String,
    pub username: String,
    pub name: String,
}

#[derive(Debug)]
struct AuthCode {
    request: AuthRequest,
    user_key: String,
    expires_at: Instant,
    spent: bool,
}

/// Who a token speaks for; shared by every token of one authorization.
#[derive(Debug, Clone)]
struct Grant {
    client_id: String,
    user_key: String,
    scopes: Vec<String>,
    /// Every token descending from one authorization code shares a family,
    /// so reuse of a spent refresh token can revoke all of them.
    family: u64,
}

#[derive(Debug)]
struct AccessToken {
    grant: Grant,
    expires_at: Instant,
    revoked: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RefreshStatus {
    Active,
    /// Already exchanged once; presenting it again is reuse.
    Spent,
    Revoked,
}

#[derive(Debug)]
struct RefreshToken {
    grant: Grant,
    expires_at: Instant,
    status: RefreshStatus,
}

#[derive(Debug, Clone)]
pub(crate) struct Tweet {
    pub id: String,
    pub user_key: String,
    pub text: String,
    pub created_at: DateTime<Utc>,
    accepted_at: Instant,
}

/// A successful token response.
#[derive(Debug)]
pub(crate) struct TokenSet {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub expires_in: u64,
    pub scope: String,
}

/// Why a code or refresh token was refused. X answers all of these with the
/// same `invalid_request` body; the variants exist for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GrantError {
    Unknown,
    Expired,
    Spent,
    Revoked,
    WrongClient,
    RedirectMismatch,
    VerifierMismatch,
    /// A spent refresh token was presented again: the family is now revoked.
    RefreshReuse,
}

/// The caller of an API request.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub user: User,
    pub user_key: String,
    pub scopes: Vec<String>,
}

impl Caller {
    pub fn has_scopes(&self, needed: &[&str]) -> bool {
        needed.iter().all(|n| self.scopes.iter().any(|s| s == n))
    }
}

#[derive(Debug)]
pub(crate) enum TweetError {
    Duplicate,
}

#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub refresh_token_reuse: u64,
    pub tokens_issued: u64,
    pub refreshes: u64,
    pub posts: u64,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    used: u32,
}

/// What to put in `x-rate-limit-*`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RateInfo {
    pub limit: u32,
    pub remaining: u32,
    pub reset_at: Instant,
}

#[derive(Debug, Default)]
pub(crate) struct XStore {
    /// Keyed by lowercased username: X usernames are case-insensitive.
    users: HashMap<String, User>,
    users_created: u64,
    codes: HashMap<String, AuthCode>,
    access: HashMap<String, AccessToken>,
    refresh: HashMap<String, RefreshToken>,
    next_family: u64,
    tweets: Vec<Tweet>,
    last_tweet_id: u64,
    windows: HashMap<(&'static str, String), Window>,
    pub stats: Stats,
}

/// A token in X's shape: base64url of `random:issued_ms:1:1:kind:1`.
fn opaque_token(kind: &str) -> String {
    let raw = format!("{}:{}:1:1:{kind}:1", random_b64(32), Utc::now().timestamp_millis());
    URL_SAFE_NO_PAD.encode(raw)
}

fn display_name(username: &str) -> String {
    username
        .split('_')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut cs = p.chars();
            cs.next().map(|f| f.to_uppercase().chain(cs).collect::<String>()).unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

impl XStore {
    /// Signs `username` in, creating the user on first sight. The id is
    /// stable across sign-ins.
    pub fn sign_in(&mut self, username: &str) -> (String, User) {
        let key = username.to_ascii_lowercase();
        if let Some(u) = self.users.get(&key) {
            return (key, u.clone());
        }
        let id = FIRST_USER_ID + self.users_created;
        self.users_created += 1;
        let name = display_name(username);
        let user = User {
            id: id.to_string(),
            username: username.to_owned(),
            name: if name.is_empty() { username.to_owned() } else { name },
        };
        self.users.insert(key.clone(), user.clone());
        (key, user)
    }

    pub fn user_by_id(&self, id: &str) -> Option<(&String, &User)> {
        self.users.iter().find(|(_, u)| u.id == id)
    }

    pub fn issue_code(&mut self, request: AuthRequest, user_key: String, clock: &Clock) -> String {
        let code = opaque_token("ac");
        let expires_at = clock.now() + clock.real_at_least(CODE_LIFETIME, CODE_MIN_REAL_LIFETIME);
        self.codes.insert(code.clone(), AuthCode { request, user_key, expires_at, spent: false });
        code
    }

    /// `authorization_code` grant. A code is spent by its first redemption
    /// attempt that names the right client, even a failed one, as single-use
    /// codes must not allow guessing the verifier.
    pub fn exchange_code(
        &mut self,
        code: &str,
        client_id: &str,
        redirect_uri: &str,
        verifier: &str,
        clock: &Clock,
    ) -> Result<TokenSet, GrantError> {
        let now = clock.now();
        let entry = self.codes.get_mut(code).ok_or(GrantError::Unknown)?;
        if entry.request.client_id != client_id {
            return Err(GrantError::WrongClient);
        }
        if entry.spent {
            return Err(GrantError::Spent);
        }
        entry.spent = true;
        if entry.expires_at <= now {
            return Err(GrantError::Expired);
        }
        if entry.request.redirect_uri != redirect_uri {
            return Err(GrantError::RedirectMismatch);
        }
        if !entry.request.method.verifies(&entry.request.code_challenge, verifier) {
            return Err(GrantError::VerifierMismatch);
        }
        let user_key = entry.user_key.clone();
        let scopes = entry.request.scopes.clone();
        let family = self.next_family;
        self.next_family += 1;
        let grant = Grant { client_id: client_id.to_owned(), user_key, scopes, family };
        Ok(self.issue_tokens(grant, clock))
    }

    /// `refresh_token` grant: single use, rotating. Presenting a spent token
    /// revokes the whole family (the legitimate holder and the thief alike,
    /// which is what forces a reconnect).
    pub fn refresh(
        &mut self,
        refresh_token: &str,
        client_id: &str,
        clock: &Clock,
    ) -> Result<TokenSet, GrantError> {
        let now = clock.now();
        let entry = self.refresh.get_mut(refresh_token).ok_or(GrantError::Unknown)?;
        if entry.grant.client_id != client_id {
            return Err(GrantError::WrongClient);
        }
        match entry.status {
            RefreshStatus::Revoked => return Err(GrantError::Revoked),
            RefreshStatus::Spent => {
                let family = entry.grant.family;
                self.revoke_family(family);
                self.stats.refresh_token_reuse += 1;
                return Err(GrantError::RefreshReuse);
            }
            RefreshStatus::Active => {}
        }
        if entry.expires_at <= now {
            return Err(GrantError::Expired);
        }
        entry.status = RefreshStatus::Spent;
        let grant = entry.grant.clone();
        self.stats.refreshes += 1;
        Ok(self.issue_tokens(grant, clock))
    }

    fn issue_tokens(&mut self, grant: Grant, clock: &Clock) -> TokenSet {
        let now = clock.now();
        let expires_in = clock.wire_expires_in(ACCESS_TOKEN_LIFETIME);
        let access_token = opaque_token("at");
        let scope = grant.scopes.join(" ");
        let refresh_token = grant.scopes.iter().any(|s| s == "offline.access").then(|| {
            let rt = opaque_token("rt");
            self.refresh.insert(
                rt.clone(),
                RefreshToken {
                    grant: grant.clone(),
                    expires_at: now + clock.real(REFRESH_TOKEN_LIFETIME),
                    status: RefreshStatus::Active,
                },
            );
            rt
        });
        self.access.insert(
            access_token.clone(),
            AccessToken {
                grant,
                // Expiry matches the reported `expires_in` exactly.
                expires_at: now + Duration::from_secs(expires_in),
                revoked: false,
            },
        );
        self.stats.tokens_issued += 1;
        TokenSet { access_token, refresh_token, expires_in, scope }
    }

    fn revoke_family(&mut self, family: u64) -> usize {
        let mut n = 0;
        for t in self.access.values_mut().filter(|t| t.grant.family == family && !t.revoked) {
            t.revoked = true;
            n += 1;
        }
        for t in self
            .refresh
            .values_mut()
            .filter(|t| t.grant.family == family && t.status != RefreshStatus::Revoked)
        {
            t.status = RefreshStatus::Revoked;
            n += 1;
        }
        n
    }

    /// `POST /2/oauth2/revoke`: a refresh token takes its whole family with
    /// it (RFC 7009 §2.1), an access token only itself. Tokens of other
    /// clients and unknown tokens are silently ignored, as RFC 7009 requires.
    pub fn revoke_token(&mut self, token: &str, client_id: &str) {
        if let Some(rt) = self.refresh.get(token) {
            if rt.grant.client_id == client_id {
                let family = rt.grant.family;
                self.revoke_family(family);
            }
        } else if let Some(at) = self.access.get_mut(token) {
            if at.grant.client_id == client_id {
                at.revoked = true;
            }
        }
    }

    /// The user behind a bearer token, if it is known, live and unrevoked.
    pub fn authenticate(&self, bearer: &str, now: Instant) -> Option<Caller> {
        let t = self.access.get(bearer)?;
        if t.revoked || t.expires_at <= now {
            return None;
        }
        let user = self.users.get(&t.grant.user_key)?.clone();
        Some(Caller { user, user_key: t.grant.user_key.clone(), scopes: t.grant.scopes.clone() })
    }

    /// Control API: the user revoked the app(s). Every token and pending code
    /// dies; the user can authorize again.
    pub fn revoke_user(&mut self, username: &str) -> Option<usize> {
        let key = username.to_ascii_lowercase();
        self.users.get(&key)?;
        let mut n = 0;
        for t in self.access.values_mut().filter(|t| t.grant.user_key == key && !t.revoked) {
            t.revoked = true;
            n += 1;
        }
        for t in self
            .refresh
            .values_mut()
            .filter(|t| t.grant.user_key == key && t.status != RefreshStatus::Revoked)
        {
            t.status = RefreshStatus::Revoked;
            n += 1;
        }
        for c in self.codes.values_mut().filter(|c| c.user_key == key) {
            c.spent = true;
        }
        Some(n)
    }

    /// Control API: the user unticked `scope`; live tokens lose it.
    pub fn remove_scope_user(&mut self, username: &str, scope: &str) -> Option<usize> {
        let key = username.to_ascii_lowercase();
        self.users.get(&key)?;
        let mut n = 0;
        let grants = self
            .access
            .values_mut()
            .map(|t| &mut t.grant)
            .chain(self.refresh.values_mut().map(|t| &mut t.grant));
        for g in grants.filter(|g| g.user_key == key) {
            let before = g.scopes.len();
            g.scopes.retain(|s| s != scope);
            n += usize::from(g.scopes.len() != before);
        }
        Some(n)
    }

    /// Control API: expire the user's live access tokens now.
    pub fn expire_user(&mut self, username: &str, now: Instant) -> Option<usize> {
        let key = username.to_ascii_lowercase();
        self.users.get(&key)?;
        let mut n = 0;
        for t in self
            .access
            .values_mut()
            .filter(|t| t.grant.user_key == key && !t.revoked && t.expires_at > now)
        {
            t.expires_at = now;
            n += 1;
        }
        Some(n)
    }

    pub fn post_tweet(
        &mut self,
        user_key: &str,
        text: &str,
        clock: &Clock,
    ) -> Result<Tweet, TweetError> {
        let now = clock.now();
        let window = clock.real(DUPLICATE_WINDOW);
        let duplicate = self.tweets.iter().any(|t| {
            t.user_key == user_key && t.text == text && now.duration_since(t.accepted_at) < window
        });
        if duplicate {
            return Err(TweetError::Duplicate);
        }
        let created_at = Utc::now();
        let snowflake = u64::try_from((created_at.timestamp_millis() - SNOWFLAKE_EPOCH_MS).max(0))
            .unwrap_or(0)
            << 22;
        self.last_tweet_id = snowflake.max(self.last_tweet_id + 1);
        let tweet = Tweet {
            id: self.last_tweet_id.to_string(),
            user_key: user_key.to_owned(),
            text: text.to_owned(),
            created_at,
            accepted_at: now,
        };
        self.tweets.push(tweet.clone());
        self.stats.posts += 1;
        Ok(tweet)
    }

    /// The user's tweets, newest first.
    pub fn tweets_of(&self, user_key: &str, max: usize) -> Vec<Tweet> {
        self.tweets.iter().rev().filter(|t| t.user_key == user_key).take(max).cloned().collect()
    }

    /// All tweets in acceptance order, with their author.
    pub fn all_tweets(&self) -> Vec<(Tweet, User)> {
        self.tweets
            .iter()
            .filter_map(|t| self.users.get(&t.user_key).map(|u| (t.clone(), u.clone())))
            .collect()
    }

    /// Counts one call against the caller's 15-minute window for `endpoint`.
    /// Only reported in headers: organic limits are not enforced, so only
    /// injected rate limits produce a 429 (tests stay deterministic).
    pub fn count_call(
        &mut self,
        endpoint: &'static str,
        user_key: &str,
        limit: u32,
        clock: &Clock,
    ) -> RateInfo {
        let now = clock.now();
        let len = clock.real(RATE_WINDOW);
        let w = self
            .windows
            .entry((endpoint, user_key.to_owned()))
            .or_insert(Window { started: now, used: 0 });
        if now.duration_since(w.started) >= len {
            *w = Window { started: now, used: 0 };
        }
        w.used = w.used.saturating_add(1);
        RateInfo { limit, remaining: limit.saturating_sub(w.used), reset_at: w.started + len }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: ChallengeMethod, challenge: &str, scopes: &[&str]) -> AuthRequest {
        AuthRequest {
            client_id: "app".into(),
            redirect_uri: "http://cb".into(),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            code_challenge: challenge.into(),
            method,
        }
    }

    #[test]
    fn s256_matches_rfc7636_example() {
        // RFC 7636 appendix B.
        assert!(ChallengeMethod::S256.verifies(
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
        ));
        assert!(!ChallengeMethod::S256.verifies("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "x"));
    }

    #[test]
    fn same_username_same_id_case_insensitive() {
        let mut s = XStore::default();
        let (_, a) = s.sign_in("demo_user");
        let (_, b) = s.sign_in("Demo_User");
        let (_, c) = s.sign_in("other");
        assert_eq!(a.id, b.id);
        assert_ne!(a.id, c.id);
        assert_eq!(a.name, "Demo User");
    }

    #[test]
    fn no_refresh_token_without_offline_access() {
        let clock = Clock::new(1.0);
        let mut s = XStore::default();
        let (key, _) = s.sign_in("u");
        let code = s.issue_code(request(ChallengeMethod::Plain, "v", &["tweet.read"]), key, &clock);
        let set = s.exchange_code(&code, "app", "http://cb", "v", &clock).expect("valid");
        assert!(set.refresh_token.is_none());
        assert_eq!(set.expires_in, 7200);
    }

    #[test]
    fn failed_redemption_spends_the_code() {
        let clock = Clock::new(1.0);
        let mut s = XStore::default();
        let (key, _) = s.sign_in("u");
        let code = s.issue_code(request(ChallengeMethod::Plain, "v", &["tweet.read"]), key, &clock);
        assert_eq!(
            s.exchange_code(&code, "app", "http://cb", "wrong", &clock).err(),
            Some(GrantError::VerifierMismatch)
        );
        assert_eq!(
            s.exchange_code(&code, "app", "http://cb", "v", &clock).err(),
            Some(GrantError::Spent)
        );
    }

    #[test]
    fn tweet_ids_increase() {
        let clock = Clock::new(1.0);
        let mut s = XStore::default();
        let a = s.post_tweet("u", "a", &clock).expect("ok");
        let b = s.post_tweet("u", "b", &clock).expect("ok");
        assert!(b.id.parse::<u64>().expect("numeric") > a.id.parse::<u64>().expect("numeric"));
    }
}
