//! Tokens: what kind each is, how it dies, how the store checks and kills
//! them, and how a platform builds one with the lifetime it reports.

use std::time::{Duration, Instant};

use super::{secret, Accounts};
use crate::clock::Clock;
use crate::state::AccountAction;

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

impl Accounts {
    pub fn new_grant(&mut self) -> u64 {
        self.next_grant += 1;
        self.next_grant
    }

    /// Stores a token under `prefix`+random.
    pub fn insert_token(&mut self, prefix: &str, token: Token) -> String {
        self.insert_token_as(secret(prefix), token)
    }

    /// Stores a token under a string the platform made in its own shape.
    pub fn insert_token_as(&mut self, s: String, token: Token) -> String {
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
        let n = self.update_tokens_of(&key, |t| {
            let alive = matches!(t.state, TokenState::Live | TokenState::Spent);
            if alive && filter(t) {
                t.state = TokenState::Dead(death);
            }
            alive && filter(t)
        });
        for c in self.codes.values_mut().filter(|c| c.user_key == key) {
            c.spent = true;
        }
        Some(n)
    }

    /// Runs `update` over every token of the user `key`; returns how many it
    /// changed (it says so by returning `true`).
    fn update_tokens_of(&mut self, key: &str, mut update: impl FnMut(&mut Token) -> bool) -> usize {
        self.tokens.values_mut().filter(|t| t.user_key == key).map(|t| usize::from(update(t))).sum()
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
        Some(self.update_tokens_of(&key, |t| {
            let live = t.state == TokenState::Live && t.expires_at.is_none_or(|e| e > now);
            let expire = live && filter(t);
            if expire {
                t.expires_at = Some(now);
            }
            expire
        }))
    }

    /// Removes `scope` from every token of the user (the user unticked it).
    pub fn remove_scope(&mut self, username: &str, scope: &str) -> Option<usize> {
        let key = self.user_by_username(username)?.key.clone();
        Some(self.update_tokens_of(&key, |t| {
            let before = t.scopes.len();
            t.scopes.retain(|s| s != scope);
            t.scopes.len() != before
        }))
    }

    /// A control action on a platform with one signal for every way a
    /// connection dies (LinkedIn, TikTok, X): the user's tokens are revoked;
    /// `expire` lapses the access tokens, `remove-scope` takes the scope away.
    pub fn apply_revoking(
        &mut self,
        username: &str,
        action: &AccountAction,
        now: Instant,
    ) -> Option<usize> {
        match action {
            AccountAction::Expire => self.expire_user(username, now, |t| t.kind == Kind::Access),
            AccountAction::RemoveScope(scope) => self.remove_scope(username, scope),
            AccountAction::Revoke
            | AccountAction::PasswordChange
            | AccountAction::SecurityCheckpoint
            | AccountAction::Deauthorize => self.kill_user(username, Death::Revoked, |_| true),
        }
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
