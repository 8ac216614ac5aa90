//! The whole system as real processes: the 3-node NATS cluster, the throwaway Postgres, the
//! simulator and N replicas of every service, started at the same moment like pods are.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant, SystemTime},
};

use anyhow::{bail, Context as _};
use base64::Engine as _;
use lifeline_kit::{auth::JwtKeys, ids::WorkspaceId};
use rand::RngCore as _;

use crate::{
    nats::NatsCluster,
    postgres::Postgres,
    process::{Ports, Proc, Scratch, Spec},
};

/// The services' binaries, in start order (all start together anyway).
pub const SERVICES: [&str; 4] = ["auth-gateway", "publisher", "notifier", "token-refresher"];
pub const SIM: &str = "platform-sim";
/// Every platform is configured, as `make run` does.
pub const PLATFORMS: [&str; 7] =
    ["x", "linkedin", "instagram", "facebook", "youtube", "tiktok", "threads"];

/// How the services are told where NATS is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NatsUrls {
    /// `NATS_URL` is the comma-separated list of the three servers (the default).
    List,
    /// Replica i gets only server i (the client learns the others from the cluster); for
    /// telling a harness problem from the services' parsing of a list.
    One,
}

#[derive(Clone, Debug)]
pub struct Options {
    pub replicas: usize,
    pub nats_bin: PathBuf,
    pub nats_urls: NatsUrls,
    /// Start the services only once NATS and Postgres answer, one after the other, each once
    /// the one before is ready (default: all at once). A diagnostic aid, not the test.
    pub staggered: bool,
    /// Extra environment for every service, overriding the defaults below.
    pub env: Vec<(String, String)>,
    /// Start the services first, and NATS and Postgres only this long after (pods scheduled
    /// before their dependencies); default: all at once.
    pub services_first: Option<Duration>,
}

impl Options {
    /// Defaults, overridden by `LIFELINE_CLUSTER_NATS_BIN`, `LIFELINE_CLUSTER_NATS_URLS=one`,
    /// `LIFELINE_CLUSTER_STAGGER=1`.
    pub fn from_env() -> Options {
        Options {
            replicas: 2,
            nats_bin: NatsCluster::binary_from_env(),
            nats_urls: match std::env::var("LIFELINE_CLUSTER_NATS_URLS").as_deref() {
                Ok("one") => NatsUrls::One,
                _ => NatsUrls::List,
            },
            staggered: std::env::var_os("LIFELINE_CLUSTER_STAGGER").is_some(),
            env: Vec::new(),
            services_first: None,
        }
    }
}

pub struct Service {
    /// `publisher-1`, also its `LIFELINE_INSTANCE_ID` and log file name.
    pub name: String,
    pub binary: &'static str,
    pub port: u16,
    pub proc: Proc,
}

impl Service {
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// A running system. Dropping it kills every process it started (services first) and stops
/// the throwaway Postgres.
pub struct Cluster {
    pub services: Vec<Service>,
    pub sim: Proc,
    pub sim_url: String,
    pub nats: NatsCluster,
    pub pg: Postgres,
    pub jwt: JwtKeys,
    pub http: reqwest::Client,
    pub options: Options,
    /// When every process was started.
    pub started_at: Instant,
    pub started_wall: SystemTime,
    /// Per process, how long from the common start until it answered ready.
    pub ready_after: Vec<(String, Duration)>,
    /// With [`Options::services_first`]: when NATS and Postgres were started, and what each
    /// service's `/readyz` answered just before (status, body).
    pub infra_started_after: Option<Duration>,
    pub readyz_before_infra: Vec<(String, u16, String)>,
    // Dropped last: the logs of a failed run stay.
    scratch: Scratch,
}

/// Cargo's target directory: `CARGO_TARGET_DIR`, else `cargo metadata`'s `target_directory`.
pub fn target_dir() -> anyhow::Result<PathBuf> {
    if let Some(d) = std::env::var_os("CARGO_TARGET_DIR") {
        return Ok(PathBuf::from(d));
    }
    let out = Command::new(cargo())
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .context("cargo metadata")?;
    if !out.status.success() {
        bail!("cargo metadata failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    Ok(PathBuf::from(meta["target_directory"].as_str().context("target_directory")?))
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// The debug binaries of the simulator and the services, built first unless
/// `LIFELINE_CLUSTER_NO_BUILD` is set (cargo is a no-op when they are fresh).
pub fn binaries() -> anyhow::Result<PathBuf> {
    let dir = target_dir()?.join("debug");
    let all: Vec<&str> = SERVICES.iter().copied().chain([SIM]).collect();
    let missing = all.iter().any(|b| !dir.join(b).exists());
    if missing || std::env::var_os("LIFELINE_CLUSTER_NO_BUILD").is_none() {
        // The whole workspace, as `make test` builds it: one feature resolution for every
        // build, so that its artifacts are reused. Without the variables cargo sets for this
        // test (`CARGO_PKG_*`, ...): build scripts that watch them (ring's) would run again.
        let mut cmd = Command::new(cargo());
        cmd.args(["build", "--quiet", "--workspace", "--all-targets"])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy();
            if key.starts_with("CARGO_PKG_")
                || key.starts_with("CARGO_BIN_")
                || key.starts_with("CARGO_MANIFEST_")
                || ["CARGO_CRATE_NAME", "CARGO_PRIMARY_PACKAGE", "CARGO_TARGET_TMPDIR"]
                    .contains(&&*key)
            {
                cmd.env_remove(&*key);
            }
        }
        let status = cmd.status().context("cargo build")?;
        if !status.success() {
            bail!("cargo build of the service binaries failed ({status})");
        }
    }
    for b in &all {
        if !dir.join(b).exists() {
            bail!("{} is missing after the build", dir.join(b).display());
        }
    }
    Ok(dir)
}

fn random(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    rand::thread_rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn url_safe(n: usize) -> String {
    random(n).replace('+', "-").replace('/', "_").trim_end_matches('=').to_owned()
}

/// Generated secrets, like `scripts/run.sh` writes to `.run/secrets.env`.
struct Secrets {
    jwt: String,
    vault_keys: String,
    client_secrets: Vec<(&'static str, String)>,
}

impl Secrets {
    fn generate() -> Secrets {
        Secrets {
            jwt: random(48),
            vault_keys: format!("k1:{}", random(32)),
            client_secrets: PLATFORMS.iter().map(|p| (*p, url_safe(24))).collect(),
        }
    }
}

fn client_id(platform: &str) -> String {
    format!("lifeline-{platform}-dev")
}

impl Cluster {
    pub async fn start(options: Options) -> anyhow::Result<Cluster> {
        tokio::task::spawn_blocking(|| {
            crate::process::reap_stale_runs(crate::postgres::stop_stale)
        })
        .await?;
        let bin = tokio::task::spawn_blocking(binaries).await??;
        let scratch = Scratch::new()?;
        let logs = scratch.logs();
        eprintln!("cluster: scratch directory {}", scratch.path().display());
        let mut ports = Ports::new();

        let pg_port = ports.take()?;
        let init = {
            let dir = scratch.path().to_path_buf();
            tokio::task::spawn_blocking(move || Postgres::init(&dir, pg_port)).await??
        };
        let mut pg = init;
        let secrets = Secrets::generate();
        let sim_port = ports.take()?;
        let sim_url = format!("http://127.0.0.1:{sim_port}");
        let mut plan: Vec<(String, &'static str, u16)> = Vec::new();
        for binary in SERVICES {
            for r in 1..=options.replicas {
                plan.push((format!("{binary}-{r}"), binary, ports.take()?));
            }
        }
        let gateway_url = format!(
            "http://127.0.0.1:{}",
            plan.iter().find(|(_, b, _)| *b == "auth-gateway").map(|p| p.2).unwrap_or(0)
        );

        // Everything starts at the same moment, as pods do; only initdb came first.
        let started_at = Instant::now();
        let started_wall = SystemTime::now();
        let mut nats = NatsCluster::prepare(&options.nats_bin, scratch.path(), &logs, &mut ports)?;
        eprintln!("cluster: {} (3 nodes: {})", nats.version, nats.urls());
        if options.services_first.is_none() {
            nats.start_all()?;
            pg.start(false)?;
        }
        let sim_env: Vec<(String, String)> = [
            ("SIM_HTTP_ADDR".to_owned(), format!("127.0.0.1:{sim_port}")),
            ("SIM_PUBLIC_BASE_URL".to_owned(), sim_url.clone()),
            ("SIM_TIME_SCALE".to_owned(), "1".to_owned()),
            ("RUST_LOG".to_owned(), "info".to_owned()),
        ]
        .into_iter()
        .chain(secrets.client_secrets.iter().flat_map(|(p, s)| {
            let up = p.to_uppercase();
            [
                (format!("SIM_{up}_CLIENT_ID"), client_id(p)),
                (format!("SIM_{up}_CLIENT_SECRET"), s.clone()),
            ]
        }))
        .collect();
        let sim = Proc::spawn(
            SIM,
            Spec { program: bin.join(SIM), args: Vec::new(), env: sim_env, clear_env: true },
            &logs,
        )?;
        if options.staggered {
            wait_nats(&nats, Duration::from_secs(60)).await?;
            let pg_ref = &pg;
            tokio::task::block_in_place(|| pg_ref.wait_ready(Duration::from_secs(60)))?;
        }
        let mut services = Vec::new();
        for (i, (name, binary, port)) in plan.into_iter().enumerate() {
            let nats_url = match options.nats_urls {
                NatsUrls::List => nats.urls(),
                NatsUrls::One => nats.nodes[i % nats.nodes.len()].url(),
            };
            let env = service_env(
                &name,
                port,
                &nats_url,
                &pg.url("lifeline"),
                &sim_url,
                &gateway_url,
                &secrets,
                &options.env,
            );
            let spec = Spec { program: bin.join(binary), args: Vec::new(), env, clear_env: true };
            let proc = Proc::spawn(&name, spec, &logs)?;
            let service = Service { name, binary, port, proc };
            if options.staggered {
                wait_ready_one(&service, Duration::from_secs(60)).await?;
            }
            services.push(service);
        }
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(20))
            .pool_max_idle_per_host(32)
            // The OAuth flows are bound to the browser that starts them by a cookie.
            .cookie_store(true)
            .build()?;
        let mut infra_started_after = None;
        let mut readyz_before_infra = Vec::new();
        if let Some(delay) = options.services_first {
            tokio::time::sleep(delay).await;
            for s in &services {
                let r = http.get(format!("{}/readyz", s.url())).send().await;
                let (status, body) = match r {
                    Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
                    Err(e) => (0, e.to_string()),
                };
                readyz_before_infra.push((s.name.clone(), status, body));
            }
            infra_started_after = Some(started_at.elapsed());
            nats.start_all()?;
            pg.start(false)?;
        }
        let jwt = JwtKeys::new(&secrets.jwt.clone().into());
        let mut cluster = Cluster {
            services,
            sim,
            sim_url,
            nats,
            pg,
            jwt,
            http,
            options,
            started_at,
            started_wall,
            ready_after: Vec::new(),
            infra_started_after,
            readyz_before_infra,
            scratch,
        };
        cluster.wait_all_ready(Duration::from_secs(90)).await?;
        // The node processes must still be there (a bad config exits at once).
        for n in &mut cluster.nats.nodes {
            if let Some(status) = n.proc.exited() {
                bail!("{} exited ({status}): {}", n.proc.name, n.proc.log_tail(20));
            }
        }
        Ok(cluster)
    }

    pub fn logs(&self) -> PathBuf {
        self.scratch.logs()
    }

    pub fn scratch(&self) -> &Path {
        self.scratch.path()
    }

    /// The run passed: its scratch directory (data and logs) is removed when it is dropped.
    pub fn succeeded(&mut self) {
        self.scratch.succeeded();
    }

    /// Waits until NATS (every node's JetStream healthz), Postgres, the simulator and every
    /// service replica answer; fails at once, with its log, if a service process exits.
    async fn wait_all_ready(&mut self, within: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        let mut pending: Vec<(String, String)> = self
            .nats
            .nodes
            .iter()
            .map(|n| (n.proc.name.clone(), n.healthz()))
            .chain([(SIM.to_owned(), format!("{}/healthz", self.sim_url))])
            .chain(self.services.iter().map(|s| (s.name.clone(), format!("{}/readyz", s.url()))))
            .collect();
        let mut pg_ready = false;
        loop {
            let mut exited = Vec::new();
            for s in &mut self.services {
                if let Some(status) = s.proc.exited() {
                    exited.push(format!(
                        "{} exited at start ({status}); last log lines:\n{}",
                        s.name,
                        s.proc.log_tail(8)
                    ));
                }
            }
            if !exited.is_empty() {
                bail!("{}\n(logs in {})", exited.join("\n\n"), self.logs().display());
            }
            if !pg_ready && self.pg.is_ready() {
                pg_ready = true;
                self.ready_after.push(("postgres".into(), self.started_at.elapsed()));
            }
            let mut still = Vec::new();
            for (name, url) in pending {
                let ok = matches!(self.http.get(&url).timeout(Duration::from_secs(2)).send().await,
                    Ok(r) if r.status().is_success());
                if ok {
                    self.ready_after.push((name, self.started_at.elapsed()));
                } else {
                    still.push((name, url));
                }
            }
            pending = still;
            if pending.is_empty() && pg_ready {
                return Ok(());
            }
            if Instant::now() > deadline {
                let names: Vec<&str> = pending.iter().map(|(n, _)| n.as_str()).collect();
                bail!(
                    "not ready within {within:?}: {names:?} (postgres ready: {pg_ready}); logs in {}",
                    self.logs().display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn service(&mut self, name: &str) -> Option<&mut Service> {
        self.services.iter_mut().find(|s| s.name == name)
    }

    /// The URLs of every replica of one binary.
    pub fn urls_of(&self, binary: &str) -> Vec<String> {
        self.services.iter().filter(|s| s.binary == binary).map(Service::url).collect()
    }

    pub fn token(&self, ws: WorkspaceId) -> String {
        self.jwt.mint("lifeline-cluster", ws, Duration::from_secs(3600))
    }

    /// What each service's log says about its start-up: the kit's own `startup_ms`, and the
    /// start-up steps it had to retry (how often, the last error).
    pub fn startup_summary(&self) -> Vec<String> {
        let mut out = Vec::new();
        for s in &self.services {
            let text = std::fs::read_to_string(s.proc.log_path()).unwrap_or_default();
            let mut startup_ms = None;
            let mut retries: BTreeMap<String, (u32, String)> = BTreeMap::new();
            for line in text.lines() {
                let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else { continue };
                let message = v["message"].as_str().unwrap_or_default();
                if message == "ready" && startup_ms.is_none() {
                    startup_ms = v["startup_ms"].as_u64();
                } else if message.starts_with("start-up step") {
                    let step = v["step"].as_str().unwrap_or("?").to_owned();
                    let e = retries.entry(step).or_insert((0, String::new()));
                    e.0 += 1;
                    e.1 = v["error"].as_str().unwrap_or_default().chars().take(160).collect();
                }
            }
            let ready = startup_ms
                .map(|ms| format!("ready after {ms} ms"))
                .unwrap_or_else(|| "no ready line".into());
            if retries.is_empty() {
                out.push(format!("{}: {ready}, no retries", s.name));
            } else {
                let steps: Vec<String> = retries
                    .iter()
                    .map(|(step, (n, e))| format!("{step} ×{n} (last: {e})"))
                    .collect();
                out.push(format!("{}: {ready}; retried {}", s.name, steps.join("; ")));
            }
        }
        out
    }

    /// Every service and simulator log line that is an ERROR, as (process, line).
    pub fn error_lines(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for s in &self.services {
            let text = std::fs::read_to_string(s.proc.log_path()).unwrap_or_default();
            for l in text.lines().filter(|l| l.contains("\"ERROR\"")) {
                out.push((s.name.clone(), l.to_owned()));
            }
        }
        out
    }
}

/// Retries `check` every 250 ms until it passes or `within` runs out.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        match check().await {
            Ok(v) => return Ok(v),
            Err(e) if Instant::now() >= deadline => bail!("{what}: not within {within:?}: {e:#}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

/// Waits until one service answers `/readyz` with 200 (fails if it exits).
async fn wait_ready_one(service: &Service, within: Duration) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + within;
    loop {
        let ok = matches!(http.get(format!("{}/readyz", service.url())).send().await,
            Ok(r) if r.status().is_success());
        if ok {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{} not ready within {within:?}: {}", service.name, service.proc.log_tail(8));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until every node's `/healthz` (JetStream included) answers 200.
pub async fn wait_nats(nats: &NatsCluster, within: Duration) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + within;
    for n in &nats.nodes {
        loop {
            let ok = matches!(http.get(n.healthz()).send().await, Ok(r) if r.status().is_success());
            if ok {
                break;
            }
            if Instant::now() > deadline {
                bail!("NATS node {} not healthy within {within:?}", n.name);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn service_env(
    name: &str,
    port: u16,
    nats_url: &str,
    database_url: &str,
    sim_url: &str,
    gateway_url: &str,
    secrets: &Secrets,
    extra: &[(String, String)],
) -> Vec<(String, String)> {
    let fixed = [
        ("NATS_URL", nats_url.to_owned()),
        ("DATABASE_URL", database_url.to_owned()),
        ("LIFELINE_HTTP_ADDR", format!("127.0.0.1:{port}")),
        ("LIFELINE_INSTANCE_ID", name.to_owned()),
        ("LIFELINE_STREAM_REPLICAS", "3".to_owned()),
        ("LIFELINE_JWT_SECRET", secrets.jwt.clone()),
        ("LIFELINE_VAULT_KEYS", secrets.vault_keys.clone()),
        ("LIFELINE_SIM_URL", sim_url.to_owned()),
        ("LIFELINE_MEDIA_ALLOW_HTTP", "true".to_owned()),
        ("LIFELINE_MEDIA_ALLOW_HOSTS", "127.0.0.1".to_owned()),
        ("LIFELINE_PUBLIC_URL", gateway_url.to_owned()),
        ("RUST_LOG", "info".to_owned()),
        // Faster than production so that a run takes minutes; each value is explained in
        // docs/testing.md.
        ("LIFELINE_PUBLISH_SWEEP_INTERVAL", "200ms".to_owned()),
        ("LIFELINE_REFRESH_SWEEP_INTERVAL", "500ms".to_owned()),
        ("LIFELINE_PUBLISH_RETRY_SCHEDULE", "200ms,500ms,1s,2s,5s".to_owned()),
        ("LIFELINE_REFRESH_RETRY_BASE", "200ms".to_owned()),
        ("LIFELINE_PLATFORM_TIMEOUT", "5s".to_owned()),
        ("LIFELINE_PUBLISH_LEASE", "10s".to_owned()),
        ("LIFELINE_PUBLISH_CONCURRENCY", "4".to_owned()),
        ("LIFELINE_DB_MAX_CONNECTIONS", "8".to_owned()),
        ("LIFELINE_NOTIFY_GRACE", "2s".to_owned()),
        // The notification tests' webhook receivers listen on loopback.
        ("LIFELINE_NOTIFY_ALLOW_PRIVATE_TARGETS", "true".to_owned()),
    ];
    let mut env: Vec<(String, String)> =
        fixed.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    for (p, secret) in &secrets.client_secrets {
        let up = p.to_uppercase();
        env.push((format!("LIFELINE_{up}_CLIENT_ID"), client_id(p)));
        env.push((format!("LIFELINE_{up}_CLIENT_SECRET"), secret.clone()));
    }
    for (k, v) in extra {
        env.retain(|(ek, _)| ek != k);
        env.push((k.clone(), v.clone()));
    }
    env
}
