//! Three replicas over 2,000 accounts on the rotating-token platforms: every account is
//! refreshed before its token lapses, and no refresh token is ever presented twice.

use std::{collections::HashMap, time::Duration};

use chrono::{DateTime, Utc};
use lifeline_e2e::{Options, System};
use lifeline_events::{from_timestamp, AccountConnected, AuthFailed, Event as _, TokenRefreshed};
use lifeline_kit::ids::WorkspaceId;

use crate::{all_refreshed, needing_reconnect, states, HEAVY};

/// Platform time runs 720× faster: X's 2-hour tokens last 10 s, TikTok's 24-hour ones 120 s.
const SCALE: f64 = 720.0;
const X_ACCOUNTS: usize = 600;
const TIKTOK_ACCOUNTS: usize = 1400;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_refresh_2000_rotating_accounts_on_time_without_reuse() -> anyhow::Result<()>
{
    let _turn = HEAVY.lock().await;
    let options = Options {
        time_scale: SCALE,
        refreshers: 3,
        env: vec![("LIFELINE_REFRESH_RATE", "0".into())],
        ..Options::default()
    };
    let system = System::start_with(options).await?;
    let ws = WorkspaceId::new();
    let started = std::time::Instant::now();
    let mut accounts = system.connect_many("x", "rx", X_ACCOUNTS, ws).await?;
    accounts.extend(system.connect_many("tiktok", "rt", TIKTOK_ACCOUNTS, ws).await?);
    eprintln!("connected {} accounts in {:?}", accounts.len(), started.elapsed());
    let db = system.db().await?;

    // Every account refreshed at least once: TikTok's first refresh is due about 115 s after
    // its connect, X's every 7.5 s.
    all_refreshed(&system, &db, accounts.len(), 1, Duration::from_secs(240)).await?;
    let stats = system.sim_get("/_sim/stats").await?;
    assert_eq!(stats["x"]["refresh_token_reuse"], 0, "{stats}");
    assert_eq!(stats["tiktok"]["refresh_token_reuse"], 0, "{stats}");

    // On time: every refresh happened while the token it replaced was still valid.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut valid_until: HashMap<String, DateTime<Utc>> = HashMap::new();
    for c in system.events_of::<AccountConnected>() {
        let env = c.envelope.expect("envelope");
        let at = env.occurred_at.as_ref().and_then(from_timestamp).expect("occurred_at");
        let life = if env.platform == lifeline_events::Platform::X as i32 { 10 } else { 120 };
        valid_until.insert(env.account_id, at + chrono::Duration::seconds(life));
    }
    assert_eq!(valid_until.len(), accounts.len(), "every connect was seen");
    let mut refreshed = system.events_of::<TokenRefreshed>();
    refreshed.sort_by_key(|r| r.credential_version);
    let mut late = Vec::new();
    let mut count: HashMap<String, usize> = HashMap::new();
    for r in &refreshed {
        let env = r.envelope.as_ref().expect("envelope");
        let at = env.occurred_at.as_ref().and_then(from_timestamp).expect("occurred_at");
        let until = valid_until.get(&env.account_id).copied().expect("a connected account");
        if at > until {
            late.push(format!(
                "{} refreshed {}ms late",
                env.account_id,
                (at - until).num_milliseconds()
            ));
        }
        let next = r.access_expires_at.as_ref().and_then(from_timestamp).expect("expiry");
        valid_until.insert(env.account_id.clone(), next);
        *count.entry(env.account_id.clone()).or_default() += 1;
    }
    assert!(late.is_empty(), "{} late refreshes: {:?}", late.len(), &late[..late.len().min(10)]);
    assert_eq!(count.len(), accounts.len(), "every account has TokenRefreshed events");
    eprintln!(
        "{} refreshes over {} accounts in {:?}",
        refreshed.len(),
        accounts.len(),
        started.elapsed()
    );

    // Nothing broke on the way.
    assert!(system.events_of::<AuthFailed>().is_empty(), "{}", AuthFailed::NAME);
    assert_eq!(needing_reconnect(&db).await?, 0);
    let by_state = states(&db).await?;
    assert_eq!(by_state.get("active").copied(), Some(2000), "{by_state:?}");
    system.stop().await
}
