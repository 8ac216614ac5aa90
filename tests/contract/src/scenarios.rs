//! The scenarios the contract table (`tests/contract.rs`) is made of. Each takes the platform and,
//! where platforms differ, the documented expectation; [`Facts`] holds the per-platform facts
//! the generic scenarios check.

use std::time::Duration;

use lifeline_kit::Platform;
use lifeline_platforms::{Failure, MediaKind, PostDraft, Published, Reconciliation};
use serde_json::{json, Value};

use crate::{
    assert_outcome, display_name, for_seconds, secret, username, Call, Connected, Expect, Options,
    Sim, DAY,
};

/// What a refresh-capable grant carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshToken {
    /// No refresh token (Facebook: Page tokens do not expire, health comes from probes).
    None,
    /// A separate refresh token.
    Separate,
    /// The long-lived access token refreshes itself (Instagram, Threads).
    Itself,
}

/// Per-platform facts from `../shared/PLATFORMS.md` and `docs/platform-sim.md`.
pub struct Facts {
    /// The authorize path under the simulator (the host/prefix contract).
    pub authorize_path: &'static str,
    pub pkce: bool,
    pub refresh_token: RefreshToken,
    /// Access-token lifetime in platform seconds (`None`: never expires).
    pub expires_in: Option<u64>,
    /// Refresh-token lifetime in platform seconds, when the answer states one.
    pub refresh_expires_in: Option<u64>,
    /// (username, display name) `identify` reports for a user who signed in as `u`.
    pub names: fn(&str) -> (String, String),
    /// The scope whose removal stops publishing (the platform's own scope string).
    pub publish_scope: &'static str,
    /// Whether `find_published` can look the post up. LinkedIn (member posts need
    /// `r_member_social`) and TikTok (only the lost publish id names a publish) cannot, and say
    /// so: `Reconciliation::CannotCheck`, and `find_published` answers `Ambiguous`.
    pub reconciles: bool,
}

const SIXTY_DAYS: u64 = 60 * DAY;
const YEAR: u64 = 365 * DAY;

pub fn facts(p: Platform) -> Facts {
    match p {
        Platform::X => Facts {
            authorize_path: "/x/i/oauth2/authorize",
            pkce: true,
            refresh_token: RefreshToken::Separate,
            expires_in: Some(2 * 3600),
            refresh_expires_in: None,
            names: |u| (u.to_owned(), display_name(u)),
            publish_scope: "tweet.write",
            reconciles: true,
        },
        Platform::LinkedIn => Facts {
            authorize_path: "/linkedin/www/oauth/v2/authorization",
            pkce: false,
            refresh_token: RefreshToken::Separate,
            expires_in: Some(SIXTY_DAYS),
            refresh_expires_in: Some(YEAR),
            // No public handle and no `email` scope: the name stands in.
            names: |u| (String::new(), display_name(u)),
            publish_scope: "w_member_social",
            reconciles: false,
        },
        Platform::Instagram => Facts {
            authorize_path: "/instagram/api/oauth/authorize",
            pkce: false,
            refresh_token: RefreshToken::Itself,
            expires_in: Some(SIXTY_DAYS),
            refresh_expires_in: Some(SIXTY_DAYS),
            names: |u| (u.to_owned(), u.to_owned()),
            publish_scope: "instagram_business_content_publish",
            reconciles: true,
        },
        Platform::Facebook => Facts {
            authorize_path: "/facebook/www/v21.0/dialog/oauth",
            pkce: false,
            refresh_token: RefreshToken::None,
            expires_in: None,
            refresh_expires_in: None,
            // A Page token: `/me` is the Page, "<Display Name>'s Page".
            names: |u| (String::new(), format!("{}'s Page", display_name(u))),
            publish_scope: "pages_manage_posts",
            reconciles: true,
        },
        Platform::YouTube => Facts {
            authorize_path: "/google/accounts/o/oauth2/v2/auth",
            pkce: true,
            refresh_token: RefreshToken::Separate,
            expires_in: Some(3600),
            refresh_expires_in: None,
            names: |u| (format!("@{u}"), display_name(u)),
            publish_scope: "https://www.googleapis.com/auth/youtube.upload",
            reconciles: true,
        },
        Platform::TikTok => Facts {
            authorize_path: "/tiktok/www/v2/auth/authorize/",
            pkce: true,
            refresh_token: RefreshToken::Separate,
            expires_in: Some(DAY),
            refresh_expires_in: Some(YEAR),
            // `username` needs user.info.profile, which Lifeline does not ask for.
            names: |u| (String::new(), display_name(u)),
            publish_scope: "video.publish",
            reconciles: false,
        },
        Platform::Threads => Facts {
            authorize_path: "/threads/www/oauth/authorize",
            pkce: false,
            refresh_token: RefreshToken::Itself,
            expires_in: Some(SIXTY_DAYS),
            refresh_expires_in: Some(SIXTY_DAYS),
            names: |u| (u.to_owned(), display_name(u)),
            publish_scope: "threads_content_publish",
            reconciles: true,
        },
    }
}

/// Connect: the authorize URL (right host, state, PKCE where supported), consent, code
/// exchange, identify; the grant's lifetimes are the documented ones; reconnecting as the same
/// user identifies the same platform user, another user a different one.
pub async fn connect(p: Platform) {
    let sim = Sim::start().await;
    let f = facts(p);
    let start = sim.connector(p).authorize("state-1");
    assert!(
        start.url.as_str().starts_with(&format!("{}{}?", sim.base, f.authorize_path)),
        "{p:?}: {}",
        start.url
    );
    let q =
        |name: &str| start.url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned());
    assert_eq!(q("state").as_deref(), Some("state-1"));
    assert_eq!(start.pkce_verifier.is_some(), f.pkce, "{p:?}: PKCE verifier");
    assert_eq!(q("code_challenge_method").as_deref(), f.pkce.then_some("S256"), "{p:?}");
    assert_eq!(q("code_challenge").is_some(), f.pkce, "{p:?}: code_challenge");

    let user = username("contract");
    let c = sim.connect(p, &user).await;
    let (name, display) = (f.names)(&user);
    assert_eq!(
        (c.user.username.as_str(), c.user.display_name.as_str()),
        (name.as_str(), display.as_str())
    );
    assert!(!c.user.id.is_empty(), "{p:?}: a user id");
    match f.refresh_token {
        RefreshToken::None => assert!(c.grant.refresh_token.is_none(), "{p:?}"),
        RefreshToken::Separate => {
            let rt = secret(&c.grant.refresh_token).expect("a refresh token");
            assert_ne!(rt, secret(&Some(c.grant.access_token.clone())).expect("access"));
        }
        RefreshToken::Itself => assert_eq!(
            secret(&c.grant.refresh_token),
            secret(&Some(c.grant.access_token.clone())),
            "{p:?}: the long-lived token refreshes itself"
        ),
    }
    assert_eq!(c.grant.expires_in, f.expires_in.map(Duration::from_secs), "{p:?}: expires_in");
    assert_eq!(
        c.grant.refresh_expires_in,
        f.refresh_expires_in.map(Duration::from_secs),
        "{p:?}: refresh_expires_in"
    );
    assert!(!c.grant.scopes.is_empty(), "{p:?}: scopes");

    let again = sim.connect(p, &user).await;
    assert_eq!(again.user, c.user, "{p:?}: the same user reconnecting");
    let other = sim.connect(p, &username("other")).await;
    assert_ne!(other.user.id, c.user.id, "{p:?}: another user");
}

/// Probe: a live token works; a token the platform never issued is refused as an auth failure.
pub async fn probe(p: Platform) {
    let sim = Sim::start().await;
    let c = sim.connect(p, &username("probe")).await;
    assert_outcome(&format!("{p:?} probe"), &c.probe().await, &Expect::Ok);
    let forged = lifeline_platforms::AccessToken {
        secret: "not-a-token-this-platform-issued".to_owned().into(),
        expires_at: c.token.expires_at,
    };
    let got = c.connector.probe(&forged).await;
    assert_outcome(
        &format!("{p:?} probe with an unknown token"),
        &got,
        &crate::auth(crate::Revoked),
    );
}

/// Publish: the post reaches the platform once, under the connected user, with the id the
/// connector reports; where the connector reconciles, `find_published` finds it.
pub async fn publish(p: Platform) {
    let sim = Sim::start().await;
    let user = username("publish");
    let c = sim.connect(p, &user).await;
    let post = sim.draft(p, "hello from the contract tests");
    let since = chrono::Utc::now();
    let published = c.publish(&post).await.unwrap_or_else(|e| panic!("{p:?}: publish: {e:?}"));
    assert_logged_once(&sim, &c, &post, &published.platform_post_id).await;
    // A connector that reports the account's posting budget reports it with the publish: one
    // call of the window spent, its reset ahead.
    if c.connector.reports_rate_budget() {
        let budget = published.rate_budget.unwrap_or_else(|| panic!("{p:?}: no rate budget"));
        assert!(budget.reset_at > since, "{p:?}: {budget:?}");
        assert!(budget.limit.is_some_and(|l| budget.remaining + 1 == l), "{p:?}: {budget:?}");
    } else {
        assert_eq!(published.rate_budget, None, "{p:?}");
    }
    if facts(p).reconciles {
        let found = c
            .connector
            .find_published(&c.token, &c.user.id, &post, since)
            .await
            .unwrap_or_else(|e| panic!("{p:?}: find_published: {e:?}"));
        let found = found.map(|f| f.platform_post_id);
        assert_eq!(
            found.as_deref(),
            Some(published.platform_post_id.as_str()),
            "{p:?}: reconciliation finds the post"
        );
        let other = sim.draft(p, "never published");
        let found = c
            .connector
            .find_published(&c.token, &c.user.id, &other, since)
            .await
            .unwrap_or_else(|e| panic!("{p:?}: find_published: {e:?}"));
        assert_eq!(found, None, "{p:?}: an unpublished post is not found");
    }
    // Platforms that take an image as well (Facebook photos, Threads image posts).
    if matches!(p, Platform::Facebook | Platform::Threads) {
        let post =
            PostDraft { media: Some(sim.media(MediaKind::Image)), ..sim.draft(p, "picture") };
        let published =
            c.publish(&post).await.unwrap_or_else(|e| panic!("{p:?}: image publish: {e:?}"));
        assert_logged_once(&sim, &c, &post, &published.platform_post_id).await;
    }
}

async fn assert_logged_once(sim: &Sim, c: &Connected, post: &PostDraft, id: &str) {
    let p = c.platform;
    let log = sim.posts(p, &c.username).await;
    let ours: Vec<&Value> = log.iter().filter(|e| e["text"] == post.text.as_str()).collect();
    assert_eq!(ours.len(), 1, "{p:?}: exactly one post with the text: {log:?}");
    assert_eq!(ours[0]["id"], id, "{p:?}: the connector reports the platform's post id");
    if p == Platform::Facebook {
        // Page posts are `{page-id}_{post-id}`; the log names the person behind the Page.
        assert!(id.starts_with(&format!("{}_", c.user.id)), "{p:?}: {id} is on Page {}", c.user.id);
    } else {
        assert_eq!(ours[0]["user_id"], c.user.id.as_str(), "{p:?}: posted as the identified user");
    }
}

/// Rotating refresh tokens (X, TikTok): the answer carries a new refresh token, and the spent
/// one is refused. X additionally kills the whole family when a spent token is presented.
pub async fn refresh_rotating(p: Platform, reuse_kills_family: bool) {
    let sim = Sim::start().await;
    let f = facts(p);
    let mut c = sim.connect(p, &username("rotate")).await;
    let old_rt = c.grant.refresh_token.clone();
    let old_access = c.grant.access_token.clone();
    let grant = c.refresh().await.unwrap_or_else(|e| panic!("{p:?}: refresh: {e:?}"));
    assert_eq!(grant.expires_in, f.expires_in.map(Duration::from_secs), "{p:?}");
    let new_rt = secret(&grant.refresh_token).expect("a rotated refresh token").to_owned();
    assert_ne!(Some(new_rt.as_str()), secret(&old_rt), "{p:?}: rotated");
    assert_ne!(secret(&Some(grant.access_token.clone())), secret(&Some(old_access)));
    c.adopt(grant);
    assert_outcome(&format!("{p:?} probe after refresh"), &c.probe().await, &Expect::Ok);

    let spent = c.connector.refresh(old_rt.as_ref().expect("old")).await;
    assert_outcome(&format!("{p:?} spent refresh token"), &spent, &crate::auth(crate::Revoked));
    if reuse_kills_family {
        assert_outcome(
            &format!("{p:?} newest refresh token after reuse"),
            &c.refresh().await,
            &crate::auth(crate::Revoked),
        );
    }
}

/// LinkedIn: refreshing returns a new access token and the same refresh token, whose lifetime
/// is counted from the first grant and never extended.
pub async fn refresh_linkedin() {
    let p = Platform::LinkedIn;
    // 1000×: 365 days are 8.76 real hours, so a second of waiting is visible in the answer.
    let sim = Sim::scaled(1000.0).await;
    let c = sim.connect(p, &username("refresh")).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let grant = c.refresh().await.unwrap_or_else(|e| panic!("{p:?}: refresh: {e:?}"));
    assert_eq!(secret(&grant.refresh_token), secret(&c.grant.refresh_token), "same refresh token");
    assert_ne!(
        secret(&Some(grant.access_token.clone())),
        secret(&Some(c.grant.access_token.clone()))
    );
    assert_eq!(grant.expires_in, Some(Duration::from_secs(SIXTY_DAYS / 1000)));
    let (before, after) =
        (c.grant.refresh_expires_in.expect("lifetime"), grant.refresh_expires_in.expect("left"));
    assert!(after < before, "the refresh token's life is not extended: {before:?} → {after:?}");
    let mut c = c;
    c.adopt(grant);
    assert_outcome("LinkedIn probe after refresh", &c.probe().await, &Expect::Ok);
}

/// YouTube: the refresh answer has no refresh token (Google does not rotate); the old one keeps
/// working.
pub async fn refresh_youtube() {
    let p = Platform::YouTube;
    let sim = Sim::start().await;
    let mut c = sim.connect(p, &username("refresh")).await;
    let grant = c.refresh().await.unwrap_or_else(|e| panic!("{p:?}: refresh: {e:?}"));
    assert!(grant.refresh_token.is_none(), "Google refresh tokens do not rotate");
    assert_eq!(grant.expires_in, Some(Duration::from_secs(3600)));
    assert_ne!(
        secret(&Some(grant.access_token.clone())),
        secret(&Some(c.grant.access_token.clone()))
    );
    c.adopt(grant);
    assert_outcome("YouTube probe after refresh", &c.probe().await, &Expect::Ok);
    assert_outcome("YouTube second refresh", &c.refresh().await, &Expect::Ok);
}

/// Instagram, Threads: the long-lived token refreshes itself once it is at least 24 hours old
/// (before that the platform refuses with code 100, which must not look like an auth failure);
/// the result is valid 60 days from then.
pub async fn refresh_meta(p: Platform) {
    // 172,800×: 24 hours are 0.5 s, 60 days 30 s.
    let scale = 172_800.0;
    let sim = Sim::scaled(scale).await;
    let mut c = sim.connect(p, &username("refresh")).await;
    assert_outcome(&format!("{p:?} refresh under 24 h"), &c.refresh().await, &Expect::Rejected);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let grant = c.refresh().await.unwrap_or_else(|e| panic!("{p:?}: refresh: {e:?}"));
    assert_eq!(grant.expires_in, Some(Duration::from_secs(SIXTY_DAYS / scale as u64)));
    assert_eq!(secret(&grant.refresh_token), secret(&Some(grant.access_token.clone())));
    assert_ne!(
        secret(&Some(grant.access_token.clone())),
        secret(&Some(c.grant.access_token.clone())),
        "{p:?}: a new token"
    );
    c.adopt(grant);
    assert_outcome(&format!("{p:?} probe after refresh"), &c.probe().await, &Expect::Ok);
}

/// Facebook: no refresh token and no expiry; `refresh` is refused without a call, and the Page
/// token keeps working.
pub async fn refresh_facebook() {
    let p = Platform::Facebook;
    let sim = Sim::start().await;
    let c = sim.connect(p, &username("refresh")).await;
    assert!(c.grant.refresh_token.is_none() && c.grant.expires_in.is_none());
    let got = c.connector.refresh(&c.grant.access_token).await;
    assert_outcome("Facebook refresh", &got, &Expect::Rejected);
    assert_outcome("Facebook probe", &c.probe().await, &Expect::Ok);
}

/// Something happens to the account on the platform (`/_sim/{p}/accounts/{u}/{action}`); then
/// each call has the documented outcome.
pub async fn after(p: Platform, action: &str, calls: &[(Call, Expect)]) {
    let sim = Sim::start().await;
    let user = username(action.split('-').next().unwrap_or("acct"));
    let c = sim.connect(p, &user).await;
    let body = match action {
        "remove-scope" => json!({ "scope": facts(p).publish_scope }),
        _ => json!({}),
    };
    sim.account_action(p, &user, action, body).await;
    c.expect(&sim, calls).await;
}

/// The access token runs out on its own (platform time scaled so it lasts about a second) and
/// our record knows it: the API's bare 401 is an expiry, and the refresh token still works.
pub async fn expires(p: Platform) {
    let lifetime = facts(p).expires_in.expect("an expiring token");
    let sim = Sim::scaled(lifetime as f64).await;
    let mut c = sim.connect(p, &username("expiry")).await;
    assert_eq!(c.grant.expires_in, Some(Duration::from_secs(1)), "{p:?}");
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_outcome(&format!("{p:?} probe"), &c.probe().await, &crate::auth(crate::Expired));
    let grant = c.refresh().await.unwrap_or_else(|e| panic!("{p:?}: refresh: {e:?}"));
    c.adopt(grant);
    assert_outcome(&format!("{p:?} probe after refresh"), &c.probe().await, &Expect::Ok);
}

/// A platform-wide fault (`/_sim/{p}/{fault}`) while the calls are made.
pub async fn fault(p: Platform, fault: &str, body: Value, calls: &[(Call, Expect)]) {
    fault_with(Options::default(), p, fault, body, calls).await
}

pub async fn fault_with(
    options: Options,
    p: Platform,
    fault: &str,
    body: Value,
    calls: &[(Call, Expect)],
) {
    let sim = Sim::start_with(options).await;
    let c = sim.connect(p, &username("fault")).await;
    sim.control(&format!("{}/{fault}", p.as_str()), body).await;
    c.expect(&sim, calls).await;
    sim.control(&format!("{}/clear-faults", p.as_str()), json!({})).await;
    // Once the fault is over the account works again: nothing was broken for good.
    assert_outcome(&format!("{p:?} probe after the fault"), &c.probe().await, &Expect::Ok);
}

/// The rate limit the simulator injects, in seconds.
pub const RATE_LIMIT_SECONDS: f64 = 120.0;

pub async fn rate_limited(p: Platform, calls: &[(Call, Expect)]) {
    fault(p, "rate-limit", for_seconds(RATE_LIMIT_SECONDS), calls).await
}

/// A 503 outage: every endpoint, OAuth included.
pub async fn outage(p: Platform, calls: &[(Call, Expect)]) {
    fault(p, "outage", json!({ "for_seconds": 60, "status": 503 }), calls).await
}

/// The platform hangs: the connectors' timeout (1 s here) ends each call.
pub async fn hangs(p: Platform, calls: &[(Call, Expect)]) {
    let options = Options { platform_timeout: "1s", ..Options::default() };
    let body = json!({ "for_seconds": 30, "status": 503, "hang": true });
    fault_with(options, p, "outage", body, calls).await
}

pub async fn rejects_content(p: Platform, calls: &[(Call, Expect)]) {
    fault(p, "reject-content", for_seconds(60.0), calls).await
}

/// The platform takes the post and then drops the connection without answering
/// (`/_sim/{p}/ambiguous`, at the step where the post becomes real): the publish is ambiguous,
/// neither a success nor a plain transient error. Then `find_published` finds exactly the post
/// the platform stored (its id as the platform logged it) where the platform can be checked, or
/// says that it cannot look; either way the post log holds it once. Before that, without the
/// fault, a post that was never sent is not found.
pub async fn ambiguous(p: Platform) {
    let sim = Sim::start().await;
    let user = username("ambig");
    let c = sim.connect(p, &user).await;
    let f = facts(p);
    let reconciliation = c.connector.reconciliation();
    assert_eq!(
        matches!(reconciliation, Reconciliation::Lists),
        f.reconciles,
        "{p:?}: {reconciliation:?}"
    );
    let since = chrono::Utc::now();
    let look = |post: PostDraft| {
        let c = &c;
        async move { c.connector.find_published(&c.token, &c.user.id, &post, since).await }
    };
    let cannot_look = |what: &str, got: &Result<Option<Published>, Failure>| {
        assert!(
            matches!(got, Err(Failure::Ambiguous { .. })),
            "{p:?} {what}: a platform that cannot be checked must say so, got {got:?}"
        );
    };

    let never = sim.draft(p, "never sent");
    let got = look(never.clone()).await;
    match reconciliation {
        Reconciliation::Lists => {
            assert_eq!(got, Ok(None), "{p:?}: a post never sent is not found")
        }
        Reconciliation::CannotCheck { .. } => cannot_look("before the fault", &got),
    }

    sim.control(&format!("{}/ambiguous", p.as_str()), json!({ "count": 1 })).await;
    let post = sim.draft(p, "answer lost");
    let got = c.publish(&post).await;
    assert_outcome(&format!("{p:?} publish with the answer lost"), &got, &Expect::Ambiguous);
    let stats = sim.stats().await;
    assert_eq!(stats[p.as_str()]["lost_answers"], 1, "{p:?}: the fault fired: {stats}");

    let stored = logged_once(&sim, &c, &post).await;
    let got = look(post.clone()).await;
    match reconciliation {
        Reconciliation::Lists => {
            let want = Published::new(stored.clone());
            assert_eq!(got, Ok(Some(want)), "{p:?}: the post the platform stored is found");
            let got = look(never).await;
            assert_eq!(got, Ok(None), "{p:?}: still, a post never sent is not found");
        }
        Reconciliation::CannotCheck { why } => {
            assert!(!why.is_empty(), "{p:?}: say why");
            cannot_look("after the lost answer", &got);
        }
    }
    assert_eq!(logged_once(&sim, &c, &post).await, stored, "{p:?}: looking posts nothing");
    assert_eq!(sim.stats().await[p.as_str()]["duplicate_posts"], 0, "{p:?}");

    // The fault was for one publish: the next one is answered.
    let next = sim.draft(p, "answered");
    let published = c.publish(&next).await.unwrap_or_else(|e| panic!("{p:?}: publish: {e:?}"));
    assert_logged_once(&sim, &c, &next, &published.platform_post_id).await;
}

/// The id of the one post with `post`'s text in the log (the same checks as
/// [`assert_logged_once`], whose id the caller does not know yet).
async fn logged_once(sim: &Sim, c: &Connected, post: &PostDraft) -> String {
    let log = sim.posts(c.platform, &c.username).await;
    let ours: Vec<&Value> = log.iter().filter(|e| e["text"] == post.text.as_str()).collect();
    assert_eq!(ours.len(), 1, "{:?}: exactly one post with the text: {log:?}", c.platform);
    let id = ours[0]["id"].as_str().expect("a post id").to_owned();
    assert_logged_once(sim, c, post, &id).await;
    id
}
