//! A Lifeline service as a child process (the release binary built next to the benchmark), so
//! that its CPU and memory are its own and can be measured.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use anyhow::{bail, Context as _};

pub struct Service {
    child: Child,
    name: String,
    pub url: String,
}

impl Service {
    /// Starts the binary `bin` with exactly `env`, as instance `instance`, on a free port.
    pub fn start(bin: &str, env: &[(String, String)], instance: &str) -> anyhow::Result<Service> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let path = sibling(bin)?;
        let child = Command::new(&path)
            .env_clear()
            .envs(env.iter().cloned())
            .env("LIFELINE_INSTANCE_ID", instance)
            .env("LIFELINE_HTTP_ADDR", format!("127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", path.display()))?;
        Ok(Service { child, name: bin.to_owned(), url: format!("http://127.0.0.1:{port}") })
    }

    /// Waits (up to 60 s) for `/readyz`; fails if the process exits first.
    pub async fn ready(&mut self, http: &reqwest::Client) -> anyhow::Result<()> {
        for _ in 0..600 {
            if let Some(status) = self.child.try_wait()? {
                bail!("{} exited: {status}", self.name);
            }
            if let Ok(r) = http.get(format!("{}/readyz", self.url)).send().await {
                if r.status().is_success() {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("{} not ready after 60 s", self.name)
    }

    /// (current, peak) resident set size in MiB.
    pub fn rss(&self) -> anyhow::Result<(f64, f64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
                .map(|kb| kb / 1024.0)
                .unwrap_or(f64::NAN)
        };
        Ok((field("VmRSS:"), field("VmHWM:")))
    }

    pub async fn metrics(&self, http: &reqwest::Client) -> anyhow::Result<String> {
        Ok(http.get(format!("{}/metrics", self.url)).send().await?.text().await?)
    }

    pub fn stop(self) {
        drop(self);
    }
}

/// A benchmark that fails half-way must not leave its service running.
impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A binary built next to this one (`target/release/…`).
fn sibling(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let bin = exe.parent().context("exe dir")?.join(name);
    if !bin.exists() {
        bail!("{} is missing: build it first (the make target does)", bin.display());
    }
    Ok(bin)
}
