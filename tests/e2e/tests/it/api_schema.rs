//! `make test-api`: schemathesis against the services' OpenAPI documents (docs/api/README.md).
//!
//! Starts the system, fills one workspace with realistic data (two connected accounts, one of
//! them broken with its notification, a page session), then runs
//! `schemathesis run <service>/openapi.json` for every service in [`SERVICES`] with that
//! workspace's member token (and an operator token for the security scheme `operator`), and
//! asserts that it finds nothing. Needs `bash scripts/api/setup.sh` first; without schemathesis
//! it fails instead of skipping.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _};
use lifeline_e2e::{eventually, new_browser, System};
use lifeline_kit::{
    auth::{JwtKeys, Role},
    ids::WorkspaceId,
};
use serde_json::json;

use crate::connected_account;

/// A service under test: its name (the document's `info.title`) and where it listens.
struct Service {
    name: &'static str,
    base: fn(&System) -> &str,
}

/// Every service with an OpenAPI document. Adding one is one entry here.
const SERVICES: &[Service] = &[
    Service { name: "auth-gateway", base: |s| &s.gateway },
    Service { name: "publisher", base: |s| &s.publisher },
    Service { name: "notifier", base: |s| &s.notifier },
];

/// Test cases per operation and phase (LIFELINE_API_MAX_EXAMPLES overrides it for a deeper
/// run): sized so that each service takes under a minute on two cores.
const MAX_EXAMPLES: &str = "150";
/// One worker: with two, schemathesis's threads parse Python source at the same time
/// (Hypothesis describing its filters), and CPython before 3.11.8 and 3.12.1 then fails at random
/// with `SystemError: AST constructor recursion depth mismatch` (CPython gh-106905). CI's Python is
/// 3.11.7, and one CI run ended that way on an operation that passed in every other run.
const WORKERS: &str = "1";
/// Runs are reproducible unless LIFELINE_API_SEED says otherwise.
const DEFAULT_SEED: &str = "20260601";

fn repo() -> anyhow::Result<PathBuf> {
    Ok(Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize()?)
}

/// A page session of `ws` (the `lifeline_session` cookie), signed in as a browser would.
async fn page_session(system: &System, ws: WorkspaceId) -> anyhow::Result<String> {
    let r = system
        .http
        .post(format!("{}/v1/page-links", system.gateway))
        .bearer_auth(system.token(ws))
        .send()
        .await?;
    let link: serde_json::Value = r.json().await?;
    let url = url::Url::parse(link["url"].as_str().context("page link url")?)?;
    let secret = url.query_pairs().find(|(k, _)| k == "link").context("link")?.1.into_owned();
    let browser = new_browser();
    let r = browser
        .post(format!("{}/signin", system.gateway))
        .form(&[("link", secret.as_str())])
        .send()
        .await?;
    if r.status().as_u16() != 303 {
        bail!("signing in failed: {}", r.status());
    }
    let cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("lifeline_session="))
        .and_then(|v| v.split(';').next())
        .context("no session cookie")?
        .to_owned();
    let token = system
        .http
        .get(format!("{}/session/token", system.gateway))
        .header("cookie", format!("lifeline_session={cookie}"))
        .send()
        .await?;
    if token.status().as_u16() != 200 {
        bail!("the page session gets no token: {}", token.status());
    }
    Ok(cookie)
}

/// One workspace with what the APIs show: a healthy LinkedIn account, an X account that broke
/// (revoked, a post parked) with its notification, an authorization under way.
async fn realistic_data(system: &System) -> anyhow::Result<WorkspaceId> {
    let (ws, broken) = connected_account(system, "alice").await?;
    let (status, body) = system.oauth_on("linkedin", ws, None, "bob").await?;
    if status != 200 || body["result"] != "connected" {
        bail!("connecting LinkedIn failed: {status} {body}");
    }
    system.sim_post("/_sim/x/accounts/alice/revoke", json!({})).await?;
    system.schedule_post(ws, &broken, "a post that waits for the reconnect").await?;
    eventually(Duration::from_secs(30), || async {
        let (_, n) = system.get(&system.notifier, "/v1/notifications", ws).await?;
        match n["notifications"].as_array().map(Vec::len) {
            Some(1..) => Ok(()),
            _ => bail!("no notification yet: {n}"),
        }
    })
    .await?;
    // Half an authorization: the account shows `reconnecting`.
    system.start_authorization(ws, Some(&broken)).await?;
    Ok(ws)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs schemathesis: bash scripts/api/setup.sh (make test-api)"]
async fn services_answer_as_their_openapi_documents_say() -> anyhow::Result<()> {
    let repo = repo()?;
    let schemathesis = repo.join(".run/tools/schemathesis-venv/bin/schemathesis");
    if !schemathesis.exists() {
        bail!("{} is missing: run `bash scripts/api/setup.sh`", schemathesis.display());
    }
    let system = System::start().await?;
    let ws = realistic_data(&system).await?;
    let keys = JwtKeys::new(&system.jwt_secret.clone().into());
    let operator = keys.mint_as("api-schema", ws, Role::Operator, Duration::from_secs(3600));
    let session = page_session(&system, ws).await?;
    let signout_session = page_session(&system, ws).await?;
    let seed = std::env::var("LIFELINE_API_SEED").unwrap_or_else(|_| DEFAULT_SEED.into());
    let examples =
        std::env::var("LIFELINE_API_MAX_EXAMPLES").unwrap_or_else(|_| MAX_EXAMPLES.into());
    let reports = repo.join(".run/api");

    let mut failed = Vec::new();
    for service in SERVICES {
        let base = (service.base)(&system);
        let mut cmd = Command::new(&schemathesis);
        cmd.current_dir(&repo)
            .env("LIFELINE_API_TOKEN", system.token(ws))
            .env("LIFELINE_API_OPERATOR_TOKEN", &operator)
            .env("LIFELINE_API_PAGE_SESSION", &session)
            .env("LIFELINE_API_SIGNOUT_SESSION", &signout_session)
            .env("NO_COLOR", "1")
            .arg("--config-file")
            .arg(repo.join("scripts/api/schemathesis.toml"))
            .arg("run")
            .arg(format!("{base}/openapi.json"))
            .args(["--checks", "all", "--max-examples", &examples, "--workers", WORKERS])
            .args(["--seed", &seed, "--no-color", "--generation-database", "none"])
            .args(["--report", "junit,vcr"])
            .arg("--report-dir")
            .arg(reports.join(service.name));
        let started = Instant::now();
        let output = tokio::task::spawn_blocking(move || cmd.output())
            .await?
            .context("running schemathesis")?;
        println!("===== schemathesis: {} ({:.0} s)", service.name, started.elapsed().as_secs_f64());
        println!("{}", String::from_utf8_lossy(&output.stdout));
        eprintln!("{}", String::from_utf8_lossy(&output.stderr));
        if !output.status.success() {
            failed.push(format!("{} ({})", service.name, output.status));
        }
    }
    system.stop().await?;
    if !failed.is_empty() {
        bail!("schemathesis found problems in: {}", failed.join(", "));
    }
    Ok(())
}
