//! Webhooks checked by an implementation we did not write: every delivery is verified by the
//! Standard Webhooks reference library (PyPI `standardwebhooks`) in
//! scripts/notify/webhook_receiver.py. Needs the virtualenv of scripts/notify/setup.sh, so the
//! tests are ignored in `make test` and run by `make test-notify`.

use std::{
    collections::HashMap,
    io::{BufRead as _, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::{ensure, Context as _};
use lifeline_e2e::{eventually, Options, System};
use lifeline_kit::ids::WorkspaceId;
use serde_json::{json, Value};

use crate::notify::{inject_auth_failed, notify_env, webhook_channel};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The Python receiver as a child process; its JSON lines are collected as they come.
struct PyReceiver {
    child: Child,
    url: String,
    secret_file: PathBuf,
    lines: Arc<Mutex<Vec<Value>>>,
}

impl PyReceiver {
    fn start(fail_first: usize) -> anyhow::Result<PyReceiver> {
        let python = root().join(".run/tools/notify-venv/bin/python");
        ensure!(python.exists(), "run scripts/notify/setup.sh first (make test-notify does)");
        let secret_file = std::env::temp_dir().join(format!("whsec-{}", uuid::Uuid::new_v4()));
        std::fs::write(&secret_file, "whsec_AAAA")?;
        let mut child = Command::new(python)
            .arg(root().join("scripts/notify/webhook_receiver.py"))
            .args(["--secret-file", &secret_file.to_string_lossy()])
            .args(["--fail-first", &fail_first.to_string()])
            .stdout(Stdio::piped())
            .spawn()?;
        let mut out = BufReader::new(child.stdout.take().context("stdout")?);
        let mut first = String::new();
        out.read_line(&mut first)?;
        let port = serde_json::from_str::<Value>(&first)?["listening"].as_u64().context(first)?;
        let lines: Arc<Mutex<Vec<Value>>> = Arc::default();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                if let (Ok(v), Ok(mut l)) = (serde_json::from_str(&line), sink.lock()) {
                    l.push(v);
                }
            }
        });
        Ok(PyReceiver { child, url: format!("http://127.0.0.1:{port}/hook"), secret_file, lines })
    }

    fn use_secret(&self, secret: &str) -> anyhow::Result<()> {
        Ok(std::fs::write(&self.secret_file, secret)?)
    }

    fn lines(&self) -> Vec<Value> {
        self.lines.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

impl Drop for PyReceiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.secret_file);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs scripts/notify/setup.sh; run by make test-notify"]
async fn notify_every_webhook_verifies_with_the_reference_library() -> anyhow::Result<()> {
    let env = notify_env("0s,200ms,200ms,200ms,200ms");
    let system = System::start_with(Options { env, ..Options::default() }).await?;
    let receiver = PyReceiver::start(2)?;
    let ws = WorkspaceId::new();
    let (channel, secret) = webhook_channel(&system, ws, &receiver.url).await?;
    receiver.use_secret(&secret)?;

    let accounts: Vec<uuid::Uuid> = (0..3).map(|_| uuid::Uuid::now_v7()).collect();
    for a in &accounts {
        inject_auth_failed(&system, ws, *a).await?;
        inject_auth_failed(&system, ws, *a).await?;
    }
    let accepted = |lines: &[Value]| lines.iter().filter(|l| l["answered"] == 204).count();
    eventually(Duration::from_secs(20), || async {
        ensure!(accepted(&receiver.lines()) == 3, "{:?}", receiver.lines());
        Ok(())
    })
    .await?;

    // After a rotation the receiver still holding the old secret verifies (two signatures),
    // and so does one that switched to the new secret.
    let rotate = format!("/v1/notification-channels/{channel}/rotate-secret");
    let (_, rotated) = system.post_json(&system.notifier, &rotate, ws, &json!({})).await?;
    let test = format!("/v1/notification-channels/{channel}/test");
    system.post_json(&system.notifier, &test, ws, &json!({})).await?;
    eventually(Duration::from_secs(10), || async {
        ensure!(accepted(&receiver.lines()) == 4);
        Ok(())
    })
    .await?;
    receiver.use_secret(rotated["secret"].as_str().context("secret")?)?;
    system.post_json(&system.notifier, &test, ws, &json!({})).await?;
    eventually(Duration::from_secs(10), || async {
        ensure!(accepted(&receiver.lines()) == 5);
        Ok(())
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(800)).await;

    let lines = receiver.lines();
    for l in &lines {
        assert_eq!(l["verified"], true, "every delivery verifies: {l}");
    }
    let mut per_id: HashMap<String, (usize, usize)> = HashMap::new();
    for l in &lines {
        let e = per_id.entry(l["webhook_id"].as_str().unwrap_or_default().to_owned()).or_default();
        e.0 += 1;
        e.1 += usize::from(l["answered"] == 204);
    }
    assert_eq!(per_id.len(), 5, "three accounts and two test messages: {per_id:?}");
    assert!(per_id.values().all(|(_, ok)| *ok == 1), "one success per message: {per_id:?}");
    // The first two verified requests were answered 500 and retried with the same id.
    assert_eq!(lines.len(), 7, "{lines:?}");
    assert_eq!(lines.iter().filter(|l| l["signatures"] == 2).count(), 2);
    let types: Vec<&str> =
        lines.iter().filter(|l| l["answered"] == 204).filter_map(|l| l["type"].as_str()).collect();
    assert_eq!(
        types,
        ["account.needs_reconnect"; 3]
            .iter()
            .copied()
            .chain(["channel.test"; 2])
            .collect::<Vec<_>>()
    );
    drop(receiver);
    system.stop().await
}
