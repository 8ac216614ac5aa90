//! The platform simulator for a benchmark, and accounts connected on it through the production
//! connectors' OAuth flows (the simulator's consent page approved by script).

use anyhow::{bail, Context as _};
use chrono::Utc;
use futures::{stream, StreamExt as _};
use lifeline_kit::{ids::AccountId, Platform};
use lifeline_platforms::{Connectors, Grant};
use lifeline_vault::{Tokens, Vault};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub const CLIENT_SECRET: &str = "bench-client-secret";

pub fn client_id(p: Platform) -> String {
    format!("lifeline-bench-{}", p.as_str())
}

/// Starts a simulator whose clock runs `time_scale` times faster than real time; returns its URL.
pub async fn start(time_scale: f64, shutdown: &CancellationToken) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let config = platform_sim::SimConfig {
        time_scale,
        clients: Platform::ALL
            .iter()
            .map(|p| platform_sim::ClientRegistration {
                platform: p.as_str().into(),
                client_id: client_id(*p),
                client_secret: Some(CLIENT_SECRET.into()),
            })
            .collect(),
        public_base_url: url.clone(),
        ..platform_sim::SimConfig::default()
    };
    tokio::spawn(platform_sim::run(listener, config, shutdown.clone()));
    Ok(url)
}

/// The client id and secret of every platform, as the services read them.
pub fn client_env() -> Vec<(String, String)> {
    let mut env = Vec::new();
    for p in Platform::ALL {
        let upper = p.as_str().to_uppercase();
        env.push((format!("LIFELINE_{upper}_CLIENT_ID"), client_id(p)));
        env.push((format!("LIFELINE_{upper}_CLIENT_SECRET"), CLIENT_SECRET.into()));
    }
    env
}

/// Sets every platform's answer latency on the simulator at `sim` for the next hour.
pub async fn set_latency(http: &reqwest::Client, sim: &str, ms: u64) -> anyhow::Result<()> {
    for p in Platform::ALL {
        let r = http
            .post(format!("{sim}/_sim/{}/latency", p.as_str()))
            .json(&serde_json::json!({"ms": ms, "for_seconds": 3600.0}))
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("setting latency on {p}: {}", r.status());
        }
    }
    Ok(())
}

/// One account through the platform's OAuth flow: authorize URL, the simulator's consent
/// (approved by script), code exchange with PKCE where the platform has it.
pub async fn connect(
    connectors: &Connectors,
    http: &reqwest::Client,
    platform: Platform,
    username: &str,
) -> anyhow::Result<Grant> {
    let connector = connectors.get(platform).context("connector")?;
    let start = connector.authorize(&Uuid::new_v4().to_string());
    let mut url = start.url.clone();
    url.query_pairs_mut().append_pair("sim_approve_as", username);
    let r = http.get(url).send().await?;
    if r.status().as_u16() != 302 {
        bail!("{platform}: consent answered {}", r.status());
    }
    let location = r.headers().get("location").context("location")?.to_str()?;
    let code = url::Url::parse(location)?
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .context("no code in the redirect")?;
    connector
        .exchange_code(&code, start.pkce_verifier.as_ref())
        .await
        .map_err(|e| anyhow::anyhow!("{platform}: {e}"))
}

/// An account connected on the simulator, not yet stored.
pub struct Seeded {
    pub account: AccountId,
    pub platform: Platform,
    pub user: String,
    pub grant: Grant,
    pub at: chrono::DateTime<Utc>,
}

/// Connects `count` accounts of `platform` (users named from `prefix`), 64 flows at a time.
pub async fn seed_platform(
    connectors: &Connectors,
    platform: Platform,
    prefix: &str,
    count: usize,
) -> anyhow::Result<Vec<Seeded>> {
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
    let results: Vec<anyhow::Result<Seeded>> = stream::iter(0..count)
        .map(|i| {
            let http = http.clone();
            async move {
                let name = platform.as_str();
                let user = format!("{prefix}{}{i}", &name[..name.len().min(2)]);
                let grant = connect(connectors, &http, platform, &user).await?;
                Ok(Seeded { account: AccountId::new(), platform, user, grant, at: Utc::now() })
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    results.into_iter().collect()
}

/// Stores the seeded accounts' credentials in the vault, all in `workspace`.
pub async fn store(
    pool: &PgPool,
    vault: &Vault,
    workspace: lifeline_kit::ids::WorkspaceId,
    seeded: &[Seeded],
) -> anyhow::Result<()> {
    for chunk in seeded.chunks(1000) {
        let mut tx = pool.begin().await?;
        for s in chunk {
            let tokens = Tokens {
                access_token: s.grant.access_token.clone(),
                refresh_token: s.grant.refresh_token.clone(),
                access_expires_at: s.grant.access_expires_at(s.at),
                refresh_expires_at: s.grant.refresh_expires_at(s.at),
                scopes: s.grant.scopes.clone(),
            };
            vault.insert(&mut tx, s.account, workspace, s.platform, &s.user, &tokens).await?;
        }
        tx.commit().await?;
    }
    Ok(())
}
