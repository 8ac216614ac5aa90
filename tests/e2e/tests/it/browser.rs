//! The Accounts page in headless Chromium (tests/browser): sign in by link, reconnect, disconnect.
//!
//! This test starts the system, connects an X account, mints a page link and runs
//! `node tests/browser/story.mjs`, which drives the page. When the story prints
//! `WAIT break <user> <n>`, the test revokes the user on the simulator, schedules `n` posts and
//! answers `OK {"posts": [...]}`. Afterwards it checks what the page claimed against the
//! simulator and the database. Needs `bash tests/browser/setup.sh` first; without Chromium or
//! node_modules it fails instead of skipping. Screenshots land in .run/browser/screenshots
//! (LIFELINE_SCREENSHOTS=$PWD/docs/screenshots refreshes the documented ones).

use std::{
    io::{BufRead as _, BufReader, Write as _},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _};
use lifeline_e2e::{counts, System};
use lifeline_events::AuthFailureCause;
use lifeline_kit::{ids::WorkspaceId, Platform};
use serde_json::{json, Value};

use crate::{connected_account, post_reaches};

const CHROMIUM: &str = "/usr/bin/chromium";
const USER: &str = "alice";
const SECOND_USER: &str = "bob";
/// The whole story takes about a minute; this bounds a hung browser.
const STORY_TIMEOUT: Duration = Duration::from_secs(300);

/// Kills the story (our own child, by its handle) if the test ends before it does.
struct Story(Child);

impl Drop for Story {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn browser_dir() -> anyhow::Result<PathBuf> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize()?;
    Ok(repo.join("tests/browser"))
}

/// Chromium and playwright-core must be there: a missing one fails the test, it never skips.
fn prerequisites(dir: &Path) -> anyhow::Result<()> {
    if !Path::new(CHROMIUM).exists() {
        bail!("{CHROMIUM} is missing: run `bash tests/browser/setup.sh` (make test-browser does)");
    }
    if !dir.join("node_modules/playwright-core/package.json").exists() {
        bail!(
            "{}/node_modules has no playwright-core: run `bash tests/browser/setup.sh`",
            dir.display()
        );
    }
    Ok(())
}

async fn page_link(system: &System, ws: WorkspaceId) -> anyhow::Result<String> {
    let r = system
        .http
        .post(format!("{}/v1/page-links", system.gateway))
        .bearer_auth(system.token(ws))
        .send()
        .await?;
    let status = r.status();
    let body: Value = r.json().await?;
    if !status.is_success() {
        bail!("minting a page link failed: {status} {body}");
    }
    Ok(body["url"].as_str().context("url")?.to_owned())
}

/// The story's `WAIT break <user> <n>`: the user revokes the app on the platform, then `n` posts
/// are scheduled for the account (they fail for auth reasons and wait for a reconnect).
async fn break_account(
    system: &System,
    ws: WorkspaceId,
    account: &str,
    args: &[&str],
    texts: &mut Vec<String>,
    posts: &mut Vec<String>,
) -> anyhow::Result<Value> {
    let [user, n] = args else { bail!("break wants <user> <count>, got {args:?}") };
    if *user != USER {
        bail!("the story asked to break {user}, but the connected account is {USER}");
    }
    let n: usize = n.parse().context("post count")?;
    system.sim_post(&format!("/_sim/x/accounts/{user}/revoke"), json!({})).await?;
    let mut ids = Vec::new();
    for _ in 0..n {
        let text = format!("browser story post {}", texts.len() + 1);
        let id = system.schedule_post(ws, account, &text).await?;
        texts.push(text);
        posts.push(id.clone());
        ids.push(id);
    }
    Ok(json!({ "posts": ids }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs Chromium and tests/browser/node_modules: bash tests/browser/setup.sh"]
async fn accounts_page_story_in_headless_chromium() -> anyhow::Result<()> {
    let dir = browser_dir()?;
    prerequisites(&dir)?;

    let system = System::start().await?;
    let (ws, account) = connected_account(&system, USER).await?;
    let link = page_link(&system, ws).await?;
    // Screenshots go to .run/ (gitignored) so a test run leaves the tree clean; point
    // LIFELINE_SCREENSHOTS at docs/screenshots to refresh the documented ones.
    let shots = match std::env::var_os("LIFELINE_SCREENSHOTS") {
        Some(dir) => PathBuf::from(dir),
        None => dir.join("../../.run/browser/screenshots"),
    };

    let mut child = Command::new("node")
        .arg(dir.join("story.mjs"))
        .current_dir(&dir)
        .env("LIFELINE_GATEWAY", &system.gateway)
        .env("LIFELINE_SIM", &system.sim)
        .env("LIFELINE_PAGE_LINK", &link)
        .env("LIFELINE_USER", USER)
        .env("LIFELINE_SECOND_USER", SECOND_USER)
        .env("LIFELINE_WORKSPACE", ws.to_string())
        .env("LIFELINE_PLATFORM_NAME", Platform::X.display_name())
        .env("LIFELINE_CAUSE_TEXT", AuthFailureCause::Revoked.explain())
        .env("LIFELINE_SCREENSHOTS", &shots)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting `node tests/browser/story.mjs` (is node on PATH?)")?;
    let mut stdin = child.stdin.take().context("stdin")?;
    let stdout = child.stdout.take().context("stdout")?;
    let mut story = Story(child);

    // The story's lines arrive on a channel, so waiting for them never blocks the runtime.
    let (tx, mut lines) = tokio::sync::mpsc::unbounded_channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });

    let started = Instant::now();
    let mut texts = Vec::new();
    let mut posts = Vec::new();
    let mut result = None;
    let mut failure = None;
    loop {
        let left = STORY_TIMEOUT.saturating_sub(started.elapsed());
        let Ok(line) = tokio::time::timeout(left, lines.recv()).await else {
            bail!("the story did not finish within {STORY_TIMEOUT:?}");
        };
        let Some(line) = line else { break };
        println!("story | {line}");
        if let Some(wait) = line.strip_prefix("WAIT ") {
            let words: Vec<&str> = wait.split_whitespace().collect();
            let answer = match words.split_first() {
                Some((&"break", args)) => {
                    break_account(&system, ws, &account, args, &mut texts, &mut posts).await
                }
                _ => Err(anyhow::anyhow!("unknown request {wait:?}")),
            };
            let reply = match &answer {
                Ok(v) => format!("OK {v}\n"),
                Err(e) => format!("ERR {e:#}\n"),
            };
            stdin.write_all(reply.as_bytes())?;
            stdin.flush()?;
            answer?;
        } else if let Some(json) = line.strip_prefix("RESULT ") {
            result = Some(serde_json::from_str::<Value>(json).context("the story's RESULT")?);
        } else if let Some(why) = line.strip_prefix("FAIL ") {
            failure = Some(why.to_owned());
        } else if let Some(why) = failure.as_mut() {
            // A failure's details and screenshot path follow on the next lines.
            why.push('\n');
            why.push_str(&line);
        }
    }
    drop(stdin);
    let status = story.0.wait()?;
    let _ = reader.join();
    if let Some(why) = failure {
        bail!("the browser story failed: {why}");
    }
    if !status.success() {
        bail!("the browser story exited with {status}");
    }
    let result = result.context("the story ended without a RESULT line")?;
    println!("story took {:.1} s", started.elapsed().as_secs_f64());

    // Every post the page said went out is published, and on X exactly once.
    let reported: Vec<&str> =
        result["posts"].as_array().context("posts")?.iter().filter_map(Value::as_str).collect();
    assert_eq!(reported, posts.iter().map(String::as_str).collect::<Vec<_>>(), "{result}");
    assert!(!posts.is_empty());
    for post in &posts {
        post_reaches(&system, ws, post, "published").await?;
    }
    let seen = counts(system.sim_post_log(USER).await?);
    for text in &texts {
        assert_eq!(seen.get(text), Some(&1), "{text} on X: {seen:?}");
    }
    assert_eq!(seen.len(), texts.len(), "only the story's posts are on X: {seen:?}");

    // The account disconnected on the page is gone: from the API, the database and the list.
    let gone: Vec<&str> = result["disconnected"]
        .as_array()
        .context("disconnected")?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(gone.len(), 1, "{result}");
    assert_ne!(gone[0], account, "the story disconnected the wrong account");
    let (code, body) =
        system.get(&system.gateway, &format!("/v1/accounts/{}", gone[0]), ws).await?;
    assert_eq!(code, 404, "{body}");
    let db = system.db().await?;
    let (rows,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM gateway.accounts WHERE id::text = $1 OR username = $2",
    )
    .bind(gone[0])
    .bind(SECOND_USER)
    .fetch_one(&db)
    .await?;
    assert_eq!(rows, 0, "the disconnected account is still stored");
    let (_, list) = system.get(&system.gateway, "/v1/accounts", ws).await?;
    let ids: Vec<&str> = list["accounts"]
        .as_array()
        .context("accounts")?
        .iter()
        .filter_map(|a| a["id"].as_str())
        .collect();
    assert_eq!(ids, [account.as_str()], "{list}");
    let (_, a) = system.get(&system.gateway, &format!("/v1/accounts/{account}"), ws).await?;
    assert_eq!(a["status"], "healthy", "{a}");

    db.close().await;
    system.stop().await
}
