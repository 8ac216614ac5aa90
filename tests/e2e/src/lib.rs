//! A whole Lifeline in one process for end-to-end tests: the platform simulator and the four
//! services on ephemeral ports, against the real NATS and Postgres, each test with its own
//! database, subject root and streams so tests run in parallel without meeting.
//!
//! Tests talk to it only through public surfaces: the services' HTTP APIs, the simulator's
//! control API, and NATS subjects.

use std::{
    collections::HashMap,
    io::Write,
    net::SocketAddr,
    sync::{Arc, Mutex, OnceLock},
    time::Duration,
};

use anyhow::{bail, Context as _};
use futures::StreamExt;
use lifeline_kit::{config::Env, ids::WorkspaceId};
use serde_json::{json, Value};
use tokio::{net::TcpListener, task::JoinSet};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The platforms the end-to-end system registers with the simulator and the services.
pub const PLATFORMS: [&str; 7] =
    ["x", "linkedin", "instagram", "facebook", "youtube", "tiktok", "threads"];

fn client_id(platform: &str) -> String {
    format!("lifeline-e2e-{platform}")
}

/// Every log line any component in this process wrote, as JSON lines.
pub fn captured_logs() -> String {
    String::from_utf8_lossy(&log_buffer().lock().map(|b| b.clone()).unwrap_or_default())
        .into_owned()
}

fn log_buffer() -> &'static Arc<Mutex<Vec<u8>>> {
    static BUF: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    BUF.get_or_init(|| Arc::new(Mutex::new(Vec::new())))
}

#[derive(Clone)]
struct BufferWriter;

impl Write for BufferWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut b) = log_buffer().lock() {
            b.extend_from_slice(data);
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Captures logs at debug level for our crates (and what the libraries log at info), so the
/// secret-leak test scans more than production would write.
pub fn init_logging() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        use tracing_subscriber::{layer::SubscriberExt, util::SubscriberInitExt};
        let filter = tracing_subscriber::EnvFilter::new(
            "debug,sqlx=info,hyper=info,hyper_util=info,h2=info,rustls=info,reqwest=debug,async_nats=info,tower=info,oauth2=debug",
        );
        let layer = tracing_subscriber::fmt::layer().json().with_writer(|| BufferWriter);
        // Spans get OpenTelemetry contexts (not exported), so trace propagation through NATS
        // headers is exercised as in production.
        use opentelemetry::trace::TracerProvider as _;
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        opentelemetry::global::set_text_map_propagator(opentelemetry_sdk::propagation::TraceContextPropagator::new());
        let otel = tracing_opentelemetry::layer().with_tracer(provider.tracer("e2e"));
        let _ = tracing_subscriber::registry().with(filter).with(otel).with(layer).try_init();
    });
}

/// What the system was started with.
#[derive(Clone, Debug)]
pub struct Options {
    /// Simulated platform time runs this many times faster than real time.
    pub time_scale: f64,
    pub oauth_session_ttl: &'static str,
    /// First retry delay of the publisher after a transient failure.
    pub publish_retry_base: &'static str,
    /// token-refresher replicas started in process (each with its own instance id).
    pub refreshers: usize,
    /// Extra configuration for every service, overriding the defaults.
    pub env: Vec<(&'static str, String)>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            time_scale: 1.0,
            oauth_session_ttl: "10m",
            publish_retry_base: "200ms",
            refreshers: 1,
            env: Vec::new(),
        }
    }
}

/// A message seen on the events subjects.
#[derive(Clone, Debug)]
pub struct Seen {
    pub subject: String,
    pub payload: Vec<u8>,
    /// The trace id of its `traceparent` header, if any.
    pub trace_id: Option<String>,
}

type EventLog = Arc<Mutex<Vec<Seen>>>;

/// The services the harness runs in process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Gateway,
    Publisher,
    Notifier,
    Refresher,
}

/// One service running in process with a stop signal of its own, so that it can be restarted
/// with another configuration ([`System::roll_out`]).
struct InProcess {
    kind: Kind,
    instance_id: String,
    addr: SocketAddr,
    stop: CancellationToken,
    stopped: tokio::sync::oneshot::Receiver<()>,
}

/// Parses `env` as `kind`'s configuration and starts it on `listener`, stopping with `parent`.
fn spawn_in_process(
    tasks: &mut JoinSet<anyhow::Result<()>>,
    kind: Kind,
    listener: TcpListener,
    env: &Env,
    instance_id: String,
    parent: &CancellationToken,
) -> anyhow::Result<InProcess> {
    let addr = listener.local_addr()?;
    let stop = parent.child_token();
    let s = stop.clone();
    let run: std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>> + Send>> =
        match kind {
            Kind::Gateway => {
                let config = auth_gateway::Config::from_env(env)?;
                Box::pin(async move {
                    auth_gateway::run(listener, config, s).await.context("auth-gateway")
                })
            }
            Kind::Publisher => {
                let config = publisher::Config::from_env(env)?;
                Box::pin(
                    async move { publisher::run(listener, config, s).await.context("publisher") },
                )
            }
            Kind::Notifier => {
                let config = notifier::Config::from_env(env)?;
                Box::pin(
                    async move { notifier::run(listener, config, s).await.context("notifier") },
                )
            }
            Kind::Refresher => {
                let config = token_refresher::Config::from_env(env)?;
                Box::pin(async move {
                    token_refresher::run(listener, config, s).await.context("token-refresher")
                })
            }
        };
    let (done, stopped) = tokio::sync::oneshot::channel();
    tasks.spawn(async move {
        let result = run.await;
        let _ = done.send(());
        result
    });
    Ok(InProcess { kind, instance_id, addr, stop, stopped })
}

/// A running Lifeline.
pub struct System {
    pub gateway: String,
    pub publisher: String,
    pub notifier: String,
    pub refresher: String,
    pub sim: String,
    pub subject_root: String,
    pub stream_prefix: String,
    pub database_url: String,
    pub nats: async_nats::Client,
    pub jwt_secret: String,
    pub http: reqwest::Client,
    /// The configuration every service was started with (less the instance id), for starting
    /// more replicas, in process or as child processes.
    pub env: Vec<(String, String)>,
    refreshers: usize,
    services: Vec<InProcess>,
    events: EventLog,
    shutdown: CancellationToken,
    tasks: JoinSet<anyhow::Result<()>>,
    database: String,
}

fn nats_url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

fn server_url() -> String {
    std::env::var("LIFELINE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

async fn bind() -> anyhow::Result<(TcpListener, String)> {
    let l = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let url = format!("http://{}", l.local_addr()?);
    Ok((l, url))
}

impl System {
    pub async fn start() -> anyhow::Result<System> {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(options: Options) -> anyhow::Result<System> {
        init_logging();
        let id = Uuid::new_v4().simple().to_string();
        let subject_root = format!("e2e{}", &id[..12]);
        let stream_prefix = format!("E2E{}", &id[..12].to_uppercase());
        let database = format!("lifeline_e2e_{}", &id[..16]);
        let database_url = format!("{}/{database}", server_url());
        let jwt_secret = format!("e2e-jwt-secret-{id}");
        let (_, vault_keys) = lifeline_vault_key();
        let client_secret = format!("client-secret-{id}");
        let shutdown = CancellationToken::new();
        let mut tasks = JoinSet::new();

        let (sim_listener, sim) = bind().await?;
        let sim_config = platform_sim::SimConfig {
            time_scale: options.time_scale,
            clients: PLATFORMS
                .iter()
                .map(|p| platform_sim::ClientRegistration {
                    platform: (*p).into(),
                    client_id: client_id(p),
                    client_secret: Some(client_secret.clone()),
                })
                .collect(),
            public_base_url: sim.clone(),
            ..platform_sim::SimConfig::default()
        };
        tasks.spawn(platform_sim::run(sim_listener, sim_config, shutdown.clone()));

        let (gw_listener, gateway) = bind().await?;
        let (pub_listener, publisher) = bind().await?;
        let (not_listener, notifier) = bind().await?;
        let (ref_listener, refresher) = bind().await?;
        let env = |service: &str| {
            let clients = PLATFORMS.iter().flat_map(|p| {
                let upper = p.to_uppercase();
                [
                    (format!("LIFELINE_{upper}_CLIENT_ID"), client_id(p)),
                    (format!("LIFELINE_{upper}_CLIENT_SECRET"), client_secret.clone()),
                ]
            });
            let common = [
                ("NATS_URL", nats_url()),
                ("DATABASE_URL", database_url.clone()),
                ("LIFELINE_SUBJECT_ROOT", subject_root.clone()),
                ("LIFELINE_STREAM_PREFIX", stream_prefix.clone()),
                ("LIFELINE_JWT_SECRET", jwt_secret.clone()),
                ("LIFELINE_VAULT_KEYS", vault_keys.clone()),
                ("LIFELINE_SIM_URL", sim.clone()),
                // The simulator serves media over http on loopback, which production refuses.
                ("LIFELINE_MEDIA_ALLOW_HTTP", "true".to_owned()),
                ("LIFELINE_MEDIA_ALLOW_HOSTS", "127.0.0.1".to_owned()),
                ("LIFELINE_PUBLIC_URL", gateway.clone()),
                ("LIFELINE_GATEWAY_URL", gateway.clone()),
                ("LIFELINE_PUBLISHER_URL", publisher.clone()),
                ("LIFELINE_OAUTH_SESSION_TTL", options.oauth_session_ttl.to_owned()),
                ("LIFELINE_PUBLISH_SWEEP_INTERVAL", "100ms".to_owned()),
                ("LIFELINE_REFRESH_SWEEP_INTERVAL", "100ms".to_owned()),
                ("LIFELINE_PUBLISH_RETRY_BASE", options.publish_retry_base.to_owned()),
                ("LIFELINE_REFRESH_RETRY_BASE", "200ms".to_owned()),
                ("LIFELINE_DB_MAX_CONNECTIONS", "5".to_owned()),
                ("LIFELINE_NOTIFY_GRACE", "2s".to_owned()),
                ("LIFELINE_INSTANCE_ID", format!("{service}-{}", &id[..8])),
            ];
            let pairs: Vec<(String, String)> = common
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .chain(clients)
                .chain(options.env.iter().map(|(k, v)| ((*k).to_owned(), v.clone())))
                .collect();
            pairs
        };
        let config_of = |service: &str| Env::from_pairs(env(service));

        // Create the streams before anything publishes, and listen to every event from the start.
        let nats =
            async_nats::connect(nats_url()).await.context("NATS must be running (make infra)")?;
        let events = Arc::new(Mutex::new(Vec::new()));
        let mut sub = nats.subscribe(format!("{subject_root}.events.>")).await?;
        let sink = events.clone();
        tokio::spawn(async move {
            while let Some(m) = sub.next().await {
                let trace_id = m
                    .headers
                    .as_ref()
                    .and_then(|h| h.get("traceparent"))
                    .and_then(|v| v.as_str().split('-').nth(1).map(str::to_owned));
                if let Ok(mut e) = sink.lock() {
                    e.push(Seen {
                        subject: m.subject.to_string(),
                        payload: m.payload.to_vec(),
                        trace_id,
                    });
                }
            }
        });

        let instance_id = |service: &str| format!("{service}-{}", &id[..8]);
        let mut services = Vec::new();
        for (kind, listener, name) in [
            (Kind::Gateway, gw_listener, "gateway"),
            (Kind::Publisher, pub_listener, "publisher"),
            (Kind::Notifier, not_listener, "notifier"),
        ] {
            let env = config_of(name);
            services.push(spawn_in_process(
                &mut tasks,
                kind,
                listener,
                &env,
                instance_id(name),
                &shutdown,
            )?);
        }
        let mut first_listener = Some(ref_listener);
        for replica in 0..options.refreshers {
            let (listener, name) = match first_listener.take() {
                Some(l) => (l, "refresher".to_owned()),
                None => (bind().await?.0, format!("refresher{replica}")),
            };
            let env = config_of(&name);
            services.push(spawn_in_process(
                &mut tasks,
                Kind::Refresher,
                listener,
                &env,
                instance_id(&name),
                &shutdown,
            )?);
        }
        drop(first_listener);
        let shared_env: Vec<(String, String)> =
            env("shared").into_iter().filter(|(k, _)| k != "LIFELINE_INSTANCE_ID").collect();

        let http = new_browser();
        let mut system = System {
            gateway,
            publisher,
            notifier,
            refresher,
            sim,
            subject_root,
            stream_prefix,
            database_url,
            nats,
            jwt_secret,
            http,
            env: shared_env,
            refreshers: options.refreshers,
            services,
            events,
            shutdown,
            tasks,
            database,
        };
        if let Err(e) = system.wait_ready().await {
            let errors: Vec<String> = captured_logs()
                .lines()
                .filter(|l| l.contains("\"ERROR\"") || l.contains("\"WARN\""))
                .map(str::to_owned)
                .collect();
            let tail = errors[errors.len().saturating_sub(20)..].join("\n");
            if let Ok(path) = std::env::var("LIFELINE_E2E_LOG_DUMP") {
                let _ = std::fs::write(path, captured_logs());
            }
            return Err(e.context(format!(
                "the system did not become ready; last warnings and errors:\n{tail}"
            )));
        }
        Ok(system)
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let mut bases = vec![&self.gateway, &self.publisher, &self.notifier, &self.sim];
        if self.refreshers > 0 {
            bases.push(&self.refresher);
        }
        let bases: Vec<String> = bases.into_iter().cloned().collect();
        for base in &bases {
            // A component that stopped will never become ready: report why at once.
            if let Some(done) = self.tasks.try_join_next() {
                bail!(
                    "a component stopped while starting: {:?}",
                    done.map(|r| r.map_err(|e| format!("{e:#}")))
                );
            }
            let path = if base == &self.sim { "healthz" } else { "readyz" };
            let http = &self.http;
            eventually(Duration::from_secs(60), || async move {
                let r = http.get(format!("{base}/{path}")).send().await?;
                if r.status().is_success() {
                    Ok(())
                } else {
                    bail!("{base} not ready: {}", r.status())
                }
            })
            .await?;
        }
        Ok(())
    }

    /// A bearer token for a workspace.
    /// Starts one more token-refresher replica in this process, named `name`.
    pub async fn spawn_refresher(&mut self, name: &str) -> anyhow::Result<String> {
        let (listener, url) = bind().await?;
        let env = self.env_of(name);
        let service = spawn_in_process(
            &mut self.tasks,
            Kind::Refresher,
            listener,
            &env,
            name.to_owned(),
            &self.shutdown,
        )?;
        self.services.push(service);
        self.refreshers += 1;
        Ok(url)
    }

    /// Starts one more notifier replica in this process, named `name`, against the same
    /// database and streams; returns its base URL.
    pub async fn spawn_notifier(&mut self, name: &str) -> anyhow::Result<String> {
        let (listener, url) = bind().await?;
        let env = self.env_of(name);
        let service = spawn_in_process(
            &mut self.tasks,
            Kind::Notifier,
            listener,
            &env,
            name.to_owned(),
            &self.shutdown,
        )?;
        self.services.push(service);
        Ok(url)
    }

    fn env_of(&self, instance_id: &str) -> Env {
        Env::from_pairs(
            self.env
                .iter()
                .cloned()
                .chain([("LIFELINE_INSTANCE_ID".to_owned(), instance_id.to_owned())]),
        )
    }

    /// A rolling update: sets `changes` in the configuration (an empty value unsets a variable)
    /// and restarts every in-process service with it, one at a time, as a Deployment replaces
    /// its pods: each stops as on SIGTERM (draining its in-flight work), starts again on the
    /// same port and instance id, and is ready before the next one stops. The simulator keeps
    /// running, and so does whatever `refresher_process` started.
    pub async fn roll_out(&mut self, changes: &[(&str, String)]) -> anyhow::Result<()> {
        for (name, value) in changes {
            self.env.retain(|(k, _)| k != name);
            self.env.push(((*name).to_owned(), value.clone()));
        }
        for i in 0..self.services.len() {
            let old = &mut self.services[i];
            let (kind, addr, instance_id) = (old.kind, old.addr, old.instance_id.clone());
            old.stop.cancel();
            let _ = (&mut old.stopped).await;
            let listener = eventually(Duration::from_secs(10), || async move {
                Ok(TcpListener::bind(addr).await?)
            })
            .await
            .with_context(|| format!("rebinding {addr} for {kind:?}"))?;
            let env = self.env_of(&instance_id);
            self.services[i] = spawn_in_process(
                &mut self.tasks,
                kind,
                listener,
                &env,
                instance_id,
                &self.shutdown,
            )?;
            let (http, url) = (&self.http, format!("http://{addr}/readyz"));
            eventually(Duration::from_secs(60), || async {
                let r = http.get(&url).send().await?;
                if r.status().is_success() {
                    Ok(())
                } else {
                    bail!("{kind:?} at {addr} not ready after restart: {}", r.status())
                }
            })
            .await?;
        }
        Ok(())
    }

    /// A token-refresher replica as a child process (so that it can be killed with SIGKILL),
    /// named `name`, serving on `port`.
    pub async fn refresher_process(
        &self,
        name: &str,
        port: u16,
    ) -> anyhow::Result<std::process::Command> {
        let bin = workspace_binary("token-refresher").await?;
        let mut cmd = std::process::Command::new(bin);
        cmd.env_clear()
            .envs(self.env.iter().cloned())
            .env("LIFELINE_INSTANCE_ID", name)
            .env("LIFELINE_HTTP_ADDR", format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null());
        Ok(cmd)
    }

    pub fn token(&self, workspace: WorkspaceId) -> String {
        let keys = lifeline_kit::auth::JwtKeys::new(&self.jwt_secret.clone().into());
        keys.mint("e2e", workspace, Duration::from_secs(3600))
    }

    /// Connects (or, with `account`, reconnects) an X account by going through the OAuth flow as
    /// `username`: the gateway's authorize URL, the simulator's consent (approved by script), and
    /// the callback. Returns the callback's HTTP status and body.
    pub async fn oauth(
        &self,
        workspace: WorkspaceId,
        account: Option<&str>,
        username: &str,
    ) -> anyhow::Result<(u16, Value)> {
        self.oauth_on("x", workspace, account, username).await
    }

    /// Connects `count` accounts of `platform` through the gateway's OAuth flow (users
    /// `<prefix>0`, `<prefix>1`, …), 16 at a time, in one workspace; returns their ids.
    pub async fn connect_many(
        &self,
        platform: &str,
        prefix: &str,
        count: usize,
        ws: WorkspaceId,
    ) -> anyhow::Result<Vec<String>> {
        use futures::{stream, TryStreamExt as _};
        stream::iter(0..count)
            .map(|i| async move {
                let user = format!("{prefix}{i}");
                let (status, body) = self.oauth_on(platform, ws, None, &user).await?;
                if status != 200 || body["result"] != "connected" {
                    bail!("connecting {platform} {user} failed: {status} {body}");
                }
                Ok(body["account_id"].as_str().context("account_id")?.to_owned())
            })
            .buffer_unordered(16)
            .try_collect()
            .await
    }

    /// [`System::oauth`] on any platform.
    pub async fn oauth_on(
        &self,
        platform: &str,
        workspace: WorkspaceId,
        account: Option<&str>,
        username: &str,
    ) -> anyhow::Result<(u16, Value)> {
        self.oauth_in(&self.http, platform, workspace, account, username).await
    }

    /// Connects a new `platform` account of `username` to `workspace` through the whole OAuth
    /// flow and returns its id; anything but `connected` fails.
    pub async fn connect(
        &self,
        platform: &str,
        username: &str,
        workspace: WorkspaceId,
    ) -> anyhow::Result<String> {
        let (status, body) = self.oauth_on(platform, workspace, None, username).await?;
        if status != 200 || body["result"] != "connected" {
            bail!("connecting {platform} {username} failed: {status} {body}");
        }
        Ok(body["account_id"].as_str().context("account_id")?.to_owned())
    }

    /// The whole flow in one browser (`browser`'s cookie jar binds the flow, as a real
    /// browser's does): start, the simulator's consent, the callback and, for a new identity,
    /// the confirmation. Returns the last answer's status and body.
    pub async fn oauth_in(
        &self,
        browser: &reqwest::Client,
        platform: &str,
        workspace: WorkspaceId,
        account: Option<&str>,
        username: &str,
    ) -> anyhow::Result<(u16, Value)> {
        let authorize = self.start_authorization_in(browser, platform, workspace, account).await?;
        let callback = self.approve(&authorize, username).await?;
        let (status, body) = self.callback_in(browser, &callback).await?;
        if status == 200 && body["result"] == "confirmation_required" {
            let token = body["confirmation"].as_str().context("confirmation")?;
            return self.confirm_in(browser, token, "connect").await;
        }
        Ok((status, body))
    }

    /// Answers the gateway's "Connect @… to workspace …?" (`decision`: `connect` or `cancel`).
    pub async fn confirm_in(
        &self,
        browser: &reqwest::Client,
        confirmation: &str,
        decision: &str,
    ) -> anyhow::Result<(u16, Value)> {
        let r = browser
            .post(format!("{}/oauth/confirm", self.gateway))
            .header("accept", "application/json")
            .json(&json!({ "confirmation": confirmation, "decision": decision }))
            .send()
            .await?;
        let status = r.status().as_u16();
        Ok((status, r.json().await.unwrap_or(Value::Null)))
    }

    pub async fn start_authorization(
        &self,
        workspace: WorkspaceId,
        account: Option<&str>,
    ) -> anyhow::Result<String> {
        self.start_authorization_on("x", workspace, account).await
    }

    pub async fn start_authorization_on(
        &self,
        platform: &str,
        workspace: WorkspaceId,
        account: Option<&str>,
    ) -> anyhow::Result<String> {
        self.start_authorization_in(&self.http, platform, workspace, account).await
    }

    /// Starts an authorization from `browser` (which keeps the binding cookie it is given).
    pub async fn start_authorization_in(
        &self,
        browser: &reqwest::Client,
        platform: &str,
        workspace: WorkspaceId,
        account: Option<&str>,
    ) -> anyhow::Result<String> {
        let req = match account {
            Some(id) => browser.post(format!("{}/v1/accounts/{id}/reconnect", self.gateway)),
            None => browser
                .post(format!("{}/v1/accounts/connect", self.gateway))
                .json(&json!({ "platform": platform })),
        };
        let r = req.bearer_auth(self.token(workspace)).send().await?;
        let status = r.status();
        let body: Value = r.json().await?;
        if !status.is_success() {
            bail!("starting authorization failed: {status} {body}");
        }
        Ok(body["authorize_url"].as_str().context("authorize_url")?.to_owned())
    }

    /// Approves an authorization at the simulator as `username`; returns the callback URL it
    /// redirects to.
    pub async fn approve(&self, authorize_url: &str, username: &str) -> anyhow::Result<String> {
        let mut url = url::Url::parse(authorize_url)?;
        url.query_pairs_mut().append_pair("sim_approve_as", username);
        let r = self.http.get(url).send().await?;
        if r.status().as_u16() != 302 {
            bail!(
                "simulator did not redirect: {} {}",
                r.status(),
                r.text().await.unwrap_or_default()
            );
        }
        Ok(r.headers().get("location").context("location")?.to_str()?.to_owned())
    }

    /// Opens the callback URL in the harness's own browser (`System::http`).
    pub async fn callback(&self, callback_url: &str) -> anyhow::Result<(u16, Value)> {
        self.callback_in(&self.http, callback_url).await
    }

    pub async fn callback_in(
        &self,
        browser: &reqwest::Client,
        callback_url: &str,
    ) -> anyhow::Result<(u16, Value)> {
        let r = browser.get(callback_url).header("accept", "application/json").send().await?;
        let status = r.status().as_u16();
        let body = r.json().await.unwrap_or(Value::Null);
        Ok((status, body))
    }

    pub async fn get(
        &self,
        base: &str,
        path: &str,
        workspace: WorkspaceId,
    ) -> anyhow::Result<(u16, Value)> {
        self.send_as(reqwest::Method::GET, base, path, workspace, None).await
    }

    /// `DELETE {base}{path}` as the workspace: the status and the JSON body, if any.
    pub async fn delete(
        &self,
        base: &str,
        path: &str,
        workspace: WorkspaceId,
    ) -> anyhow::Result<(u16, Value)> {
        self.send_as(reqwest::Method::DELETE, base, path, workspace, None).await
    }

    pub async fn post_json(
        &self,
        base: &str,
        path: &str,
        workspace: WorkspaceId,
        body: &Value,
    ) -> anyhow::Result<(u16, Value)> {
        self.send_as(reqwest::Method::POST, base, path, workspace, Some(body)).await
    }

    /// A request to `{base}{path}` with the workspace's token (and a JSON body): the status and
    /// the JSON answer (`null` when there is none).
    async fn send_as(
        &self,
        method: reqwest::Method,
        base: &str,
        path: &str,
        workspace: WorkspaceId,
        body: Option<&Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut request =
            self.http.request(method, format!("{base}{path}")).bearer_auth(self.token(workspace));
        if let Some(body) = body {
            request = request.json(body);
        }
        let r = request.send().await?;
        let status = r.status().as_u16();
        Ok((status, r.json().await.unwrap_or(Value::Null)))
    }

    pub async fn schedule_post(
        &self,
        workspace: WorkspaceId,
        account: &str,
        text: &str,
    ) -> anyhow::Result<String> {
        let (status, body) = self
            .post_json(
                &self.publisher,
                "/v1/posts",
                workspace,
                &json!({"account_id": account, "text": text}),
            )
            .await?;
        if status != 201 {
            bail!("scheduling failed: {status} {body}");
        }
        Ok(body["id"].as_str().context("post id")?.to_owned())
    }

    pub async fn sim_post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let r = self.http.post(format!("{}{path}", self.sim)).json(&body).send().await?;
        if !r.status().is_success() {
            bail!("sim {path}: {}", r.status());
        }
        Ok(r.json().await?)
    }

    pub async fn sim_get(&self, path: &str) -> anyhow::Result<Value> {
        Ok(self.http.get(format!("{}{path}", self.sim)).send().await?.json().await?)
    }

    /// Texts the simulator accepted as posts, in order, for one X user.
    pub async fn sim_post_log(&self, username: &str) -> anyhow::Result<Vec<String>> {
        self.sim_post_log_on("x", username).await
    }

    /// Texts the simulator accepted as posts, in order, for one user of one platform.
    pub async fn sim_post_log_on(
        &self,
        platform: &str,
        username: &str,
    ) -> anyhow::Result<Vec<String>> {
        let log =
            self.sim_get(&format!("/_sim/posts?platform={platform}&username={username}")).await?;
        Ok(log["posts"]
            .as_array()
            .map(|a| a.iter().filter_map(|p| p["text"].as_str().map(str::to_owned)).collect())
            .unwrap_or_default())
    }

    /// Every event seen on this system's subjects so far: (event name, raw payload).
    pub fn events(&self) -> Vec<(String, Vec<u8>)> {
        self.seen().into_iter().map(|(name, seen)| (name, seen.payload)).collect()
    }

    /// Every event seen so far with its name, payload and trace id.
    pub fn seen(&self) -> Vec<(String, Seen)> {
        let all = self.events.lock().map(|e| e.clone()).unwrap_or_default();
        let subjects = lifeline_events::Subjects::new(self.subject_root.clone());
        all.into_iter()
            .filter_map(|seen| {
                let name =
                    subjects.parse_event(&seen.subject).map(|(name, _, _)| name.to_owned())?;
                Some((name, seen))
            })
            .collect()
    }

    pub fn event_names(&self) -> Vec<String> {
        self.events().into_iter().map(|(n, _)| n).collect()
    }

    /// Events of one kind, decoded.
    pub fn events_of<E: lifeline_events::Event>(&self) -> Vec<E> {
        self.events()
            .into_iter()
            .filter(|(n, _)| n == E::NAME)
            .filter_map(|(_, p)| E::decode(p.as_slice()).ok())
            .collect()
    }

    /// A direct connection to this system's database, for at-rest checks.
    pub async fn db(&self) -> anyhow::Result<sqlx::PgPool> {
        Ok(sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .connect(&self.database_url)
            .await?)
    }

    /// Stops every component and drops the test database.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        while let Some(r) = self.tasks.join_next().await {
            r??;
        }
        let admin = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(&format!("{}/postgres", server_url()))
            .await?;
        sqlx::query(&format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.database))
            .execute(&admin)
            .await?;
        let js = async_nats::jetstream::new(self.nats.clone());
        for stream in
            [format!("{}_EVENTS", self.stream_prefix), format!("{}_DLQ", self.stream_prefix)]
        {
            let _ = js.delete_stream(stream).await;
        }
        Ok(())
    }
}

fn lifeline_vault_key() -> (Vec<u8>, String) {
    use base64::Engine as _;
    use rand::RngCore;
    let mut key = vec![0u8; 32];
    rand::thread_rng().fill_bytes(&mut key);
    let b64 = base64::engine::general_purpose::STANDARD.encode(&key);
    (key, format!("e2e1:{b64}"))
}

/// Retries `check` until it passes or `within` runs out; returns its last error on timeout.
/// A new HTTP client with its own cookie jar that does not follow redirects: one browser.
pub fn new_browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .expect("an HTTP client builds")
}

pub async fn eventually<F, Fut, T>(within: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match check().await {
            Ok(v) => return Ok(v),
            Err(e) if tokio::time::Instant::now() >= deadline => {
                return Err(anyhow::anyhow!("not true within {within:?}: {e:#}"))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Counts how often each item occurs.
pub fn counts<I: IntoIterator<Item = String>>(items: I) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for i in items {
        *m.entry(i).or_insert(0) += 1;
    }
    m
}

/// Builds the workspace as `make test` does (`cargo build --workspace --all-targets`: a no-op
/// after it) in the cargo target directory this test binary runs from, and returns the path of
/// the binary `bin`. Building the whole workspace, rather than `-p <package>`, keeps one feature resolution for
/// every build, so that the artifacts are shared instead of rebuilt. A failed build fails the
/// test: an older binary left there would test code that is not the tree's.
pub async fn workspace_binary(bin: &str) -> anyhow::Result<std::path::PathBuf> {
    let exe = std::env::current_exe()?;
    let path = exe
        .parent()
        .and_then(std::path::Path::parent)
        .context("test binary outside a cargo target directory")?
        .join(bin);
    let status = tokio::task::spawn_blocking(|| build_workspace().status()).await??;
    if !status.success() || !path.exists() {
        bail!("cannot build {bin} ({status}) at {}", path.display());
    }
    Ok(path)
}

/// `cargo build --workspace --all-targets`, without the variables cargo sets for a running test
/// (`CARGO_PKG_*`, `CARGO_MANIFEST_DIR`, ...): build scripts that watch them (ring's does) would
/// otherwise run again and rebuild everything above them, here and in the next build outside.
pub fn build_workspace() -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO"));
    cmd.args(["build", "--quiet", "--workspace", "--all-targets"])
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if cargo_sets_for_tests(&key) {
            cmd.env_remove(&*key);
        }
    }
    cmd
}

/// Whether cargo sets the variable `key` for the test binary it runs (as opposed to a variable
/// that configures cargo itself, like `CARGO_HOME` or `CARGO_TARGET_DIR`).
fn cargo_sets_for_tests(key: &str) -> bool {
    key.starts_with("CARGO_PKG_")
        || key.starts_with("CARGO_BIN_")
        || key.starts_with("CARGO_MANIFEST_")
        || matches!(
            key,
            "CARGO_CRATE_NAME" | "CARGO_PRIMARY_PACKAGE" | "CARGO_TARGET_TMPDIR" | "OUT_DIR"
        )
}
