//! The email channel against a real SMTP server: scripts/notify/smtp_catcher.py (PyPI
//! `aiosmtpd`) receives the message and Python's email package parses it. Needs the virtualenv of
//! scripts/notify/setup.sh, so the test is ignored in `make test` and run by `make test-notify`.

use std::{
    io::{BufRead as _, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::{ensure, Context as _};
use lifeline_e2e::{eventually, Options, System};
use serde_json::{json, Value};

use crate::{
    connected_account,
    notify::{create_channel, inject_auth_failed, notify_env},
};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The SMTP catcher as a child process; the messages it parsed are collected as they come.
struct Catcher {
    child: Child,
    port: u16,
    mail: Arc<Mutex<Vec<Value>>>,
    dir: PathBuf,
}

impl Catcher {
    fn start() -> anyhow::Result<Catcher> {
        let python = root().join(".run/tools/notify-venv/bin/python");
        ensure!(python.exists(), "run scripts/notify/setup.sh first (make test-notify does)");
        let dir = std::env::temp_dir().join(format!("lifeline-mail-{}", uuid::Uuid::new_v4()));
        let mut child = Command::new(python)
            .arg(root().join("scripts/notify/smtp_catcher.py"))
            .args(["--dir", &dir.to_string_lossy()])
            .stdout(Stdio::piped())
            .spawn()?;
        let mut out = BufReader::new(child.stdout.take().context("stdout")?);
        let mut first = String::new();
        out.read_line(&mut first)?;
        let port = serde_json::from_str::<Value>(&first)?["listening"].as_u64().context(first)?;
        let mail: Arc<Mutex<Vec<Value>>> = Arc::default();
        let sink = mail.clone();
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                if let (Ok(v), Ok(mut l)) = (serde_json::from_str(&line), sink.lock()) {
                    l.push(v);
                }
            }
        });
        Ok(Catcher { child, port: u16::try_from(port)?, mail, dir })
    }

    fn mail(&self) -> Vec<Value> {
        self.mail.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

impl Drop for Catcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs scripts/notify/setup.sh; run by make test-notify"]
async fn notify_email_reaches_a_real_smtp_server_with_both_parts_and_the_link() -> anyhow::Result<()>
{
    let catcher = Catcher::start()?;
    let mut env = notify_env("0s,200ms,200ms");
    env.extend([
        ("LIFELINE_SMTP_HOST", "127.0.0.1".to_owned()),
        ("LIFELINE_SMTP_PORT", catcher.port.to_string()),
        ("LIFELINE_SMTP_TLS", "none".to_owned()),
        ("LIFELINE_SMTP_FROM", "Lifeline <alerts@lifeline.test>".to_owned()),
    ]);
    let system = System::start_with(Options { env, ..Options::default() }).await?;
    let (ws, account) = connected_account(&system, "acme").await?;
    create_channel(&system, ws, json!({"kind": "email", "address": "owner@acme.test"})).await?;

    inject_auth_failed(&system, ws, account.parse()?).await?;
    let mail = eventually(Duration::from_secs(20), || async {
        let mail = catcher.mail();
        ensure!(!mail.is_empty(), "no mail yet");
        Ok(mail)
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(catcher.mail().len(), 1, "one email per message");
    let m = &mail[0];
    assert_eq!(m["subject"], "@acme on X needs reconnecting", "{m}");
    assert_eq!(m["header_from"], "Lifeline <alerts@lifeline.test>");
    assert_eq!(m["header_to"], "owner@acme.test");
    assert_eq!(m["to"], json!(["owner@acme.test"]));
    assert_eq!(m["content_type"], "multipart/alternative");
    assert!(m["message_id"].as_str().is_some_and(|id| id.ends_with("@lifeline.notifier>")), "{m}");
    // A person's message links a single-use sign-in link to the Accounts page at the account.
    let text = m["text"].as_str().unwrap_or_default();
    let html = m["html"].as_str().unwrap_or_default();
    let prefix = format!("{}/signin?link=", system.gateway);
    let link = text
        .lines()
        .find_map(|l| l.strip_prefix("Reconnect: "))
        .filter(|l| l.starts_with(&prefix))
        .with_context(|| format!("no sign-in link in {text}"))?
        .to_owned();
    assert!(text.contains("access was revoked"), "{text}");
    assert!(
        text.contains("make sure you're not revoking app permissions on X's settings page"),
        "{text}"
    );
    assert!(
        html.contains(&format!("href=\"{}\"", link.replace('&', "&amp;")))
            && html.contains("<h2>@acme on X needs reconnecting</h2>"),
        "{html}"
    );
    // The link works: opening it only shows a button (a mail scanner's fetch does not use it
    // up), posting it signs in once and opens the page at the account.
    let browser = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
    let page = browser.get(&link).send().await?;
    assert_eq!(page.status(), 200);
    assert!(page.text().await?.contains("Sign in"));
    let secret = link.strip_prefix(&prefix).unwrap_or_default();
    let signin = format!("{}/signin", system.gateway);
    let first = browser.post(&signin).form(&[("link", secret)]).send().await?;
    assert_eq!(first.status(), 303);
    assert_eq!(first.headers()["location"], format!("/?account={account}").as_str());
    let again = browser.post(&signin).form(&[("link", secret)]).send().await?;
    assert_eq!(again.status(), 410, "the link signs in once");
    drop(catcher);
    system.stop().await
}
