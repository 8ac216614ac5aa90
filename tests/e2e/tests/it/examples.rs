//! The subscriber examples in `examples/` (Python, TypeScript) against the reconnect story.
//!
//! Ignored by default because it needs `scripts/examples/setup.sh` (the virtualenv, `npm ci`,
//! the generated code); with `--ignored` and no setup it fails, saying what to run.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    ffi::OsString,
    io::{BufRead, BufReader, Read},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{Arc, Mutex},
    thread::JoinHandle,
    time::Duration,
};

use anyhow::{bail, ensure, Context as _};
use lifeline_e2e::{eventually, System};
use lifeline_events::{v1, Envelope};
use prost::Message as _;
use serde_json::{json, Value};

use crate::{connected_account, post_reaches};

/// Seconds of silence after which the examples exit: longer than any pause in the story.
const IDLE_SECONDS: &str = "10";

/// Any event's envelope: every event message has it as field 1, so one type reads them all.
#[derive(Clone, PartialEq, prost::Message)]
struct Enveloped {
    #[prost(message, optional, tag = "1")]
    envelope: Option<Envelope>,
}

fn workspace_root() -> anyhow::Result<PathBuf> {
    Ok(Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize()?)
}

/// `value` of the environment variable `key`, or `default` relative to the workspace root.
fn path_from_env(root: &Path, key: &str, default: &str) -> PathBuf {
    std::env::var_os(key).map_or_else(|| root.join(default), PathBuf::from)
}

/// How to start one example; fails when the setup has not run.
struct Example {
    name: &'static str,
    program: PathBuf,
    args: Vec<OsString>,
}

fn examples(root: &Path) -> anyhow::Result<Vec<Example>> {
    let setup = "run scripts/examples/setup.sh first (the plan: make test-examples)";
    let python =
        path_from_env(root, "LIFELINE_EXAMPLES_PYTHON", ".run/tools/examples-venv/bin/python");
    ensure!(
        python.exists(),
        "no Python at {} (LIFELINE_EXAMPLES_PYTHON): {setup}",
        python.display()
    );
    let generated = root.join("examples/python/gen/lifeline/events/v1/events_pb2.py");
    ensure!(generated.exists(), "no generated Python code at {}: {setup}", generated.display());
    let node =
        std::env::var_os("LIFELINE_EXAMPLES_NODE").map_or_else(|| "node".into(), PathBuf::from);
    let compiled = root.join("examples/typescript/dist/subscriber.js");
    ensure!(compiled.exists(), "no compiled TypeScript at {}: {setup}", compiled.display());
    let version = Command::new(&node).arg("--version").output();
    ensure!(
        version.as_ref().is_ok_and(|o| o.status.success()),
        "cannot run {} (LIFELINE_EXAMPLES_NODE): {version:?}",
        node.display()
    );
    Ok(vec![
        Example {
            name: "python",
            program: python,
            args: vec![root.join("examples/python/subscriber.py").into()],
        },
        Example { name: "typescript", program: node, args: vec![compiled.into()] },
    ])
}

/// A child process whose output lines are collected while it runs; killed if dropped running.
struct Running {
    name: String,
    child: Child,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
    readers: Vec<JoinHandle<()>>,
}

/// What a finished child printed.
struct Finished {
    status: ExitStatus,
    stdout: Vec<String>,
    stderr: Vec<String>,
}

fn collect_lines(pipe: impl Read + Send + 'static) -> (Arc<Mutex<Vec<String>>>, JoinHandle<()>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            if let Ok(mut l) = sink.lock() {
                l.push(line);
            }
        }
    });
    (lines, reader)
}

impl Running {
    fn spawn(name: &str, mut command: Command) -> anyhow::Result<Running> {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {name}: {command:?}"))?;
        let (stdout, out_reader) = collect_lines(child.stdout.take().context("stdout")?);
        let (stderr, err_reader) = collect_lines(child.stderr.take().context("stderr")?);
        Ok(Running {
            name: name.to_owned(),
            child,
            stdout,
            stderr,
            readers: vec![out_reader, err_reader],
        })
    }

    fn stderr(&self) -> String {
        self.stderr.lock().map(|l| l.join("\n")).unwrap_or_default()
    }

    /// Waits for the process to exit by itself within `within`.
    async fn finish(&mut self, within: Duration) -> anyhow::Result<Finished> {
        let deadline = tokio::time::Instant::now() + within;
        let status = loop {
            if let Some(status) = self.child.try_wait()? {
                break status;
            }
            if tokio::time::Instant::now() >= deadline {
                bail!("{} still running after {within:?}; stderr:\n{}", self.name, self.stderr());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let readers = std::mem::take(&mut self.readers);
        tokio::task::spawn_blocking(move || readers.into_iter().for_each(|r| drop(r.join())))
            .await?;
        let take =
            |lines: &Arc<Mutex<Vec<String>>>| lines.lock().map(|l| l.clone()).unwrap_or_default();
        Ok(Finished { status, stdout: take(&self.stdout), stderr: take(&self.stderr) })
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One event as a subscriber printed it: what the comparisons need.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Line {
    event: String,
    event_id: String,
    account_id: String,
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> anyhow::Result<&'a str> {
    v.pointer(pointer).and_then(Value::as_str).with_context(|| format!("no {pointer} in {v}"))
}

fn parse_lines(who: &str, lines: &[String]) -> anyhow::Result<Vec<Value>> {
    lines
        .iter()
        .map(|l| {
            serde_json::from_str(l)
                .with_context(|| format!("{who} printed a line that is not JSON: {l}"))
        })
        .collect()
}

/// Per account, the (event, event id) sequence.
fn per_account(lines: &[Line]) -> BTreeMap<String, Vec<(String, String)>> {
    let mut m: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for l in lines {
        m.entry(l.account_id.clone()).or_default().push((l.event.clone(), l.event_id.clone()));
    }
    m
}

fn platform_name(raw: i32) -> String {
    v1::Platform::try_from(raw)
        .map(|p| p.as_str_name().trim_start_matches("PLATFORM_").to_ascii_lowercase())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs scripts/examples/setup.sh; run with --ignored"]
async fn python_and_typescript_subscribers_decode_the_reconnect_story() -> anyhow::Result<()> {
    let root = workspace_root()?;
    let examples = examples(&root)?;
    let lifelinectl = lifeline_e2e::workspace_binary("lifelinectl").await?;
    let system = System::start().await?;
    let nats_url = system
        .env
        .iter()
        .find(|(k, _)| k == "NATS_URL")
        .map(|(_, v)| v.clone())
        .context("the system's NATS_URL")?;
    let stream = format!("{}_EVENTS", system.stream_prefix);

    // Both subscribers run for the whole story, each with its own durable on this test's stream.
    let mut running = Vec::new();
    for example in &examples {
        let mut cmd = Command::new(&example.program);
        cmd.args(&example.args)
            .args(["--nats-url", &nats_url, "--stream", &stream])
            .args(["--subject-root", &system.subject_root])
            .args(["--durable", &format!("example-{}", example.name), "--idle", IDLE_SECONDS]);
        running.push(Running::spawn(example.name, cmd)?);
    }
    // Wait until both durables exist, so the examples read live rather than catching up.
    let js = async_nats::jetstream::new(system.nats.clone());
    let events_stream = js.get_stream(&stream).await?;
    for example in &examples {
        let durable = format!("example-{}", example.name);
        let (es, durable) = (&events_stream, durable.as_str());
        eventually(Duration::from_secs(30), || async move {
            es.consumer_info(durable)
                .await
                .map(drop)
                .with_context(|| format!("no consumer {durable} yet"))
        })
        .await
        .with_context(|| {
            format!(
                "{}: {}",
                example.name,
                running.iter().map(Running::stderr).collect::<Vec<_>>().join("\n")
            )
        })?;
    }

    // A message no protobuf runtime can decode (a field-1 length prefix cut short): each example
    // must log and terminate it, and go on.
    let poison_subject =
        format!("{}.events.v1.post_published.x.{}", system.subject_root, uuid::Uuid::new_v4());
    let poison_seq = js.publish(poison_subject, vec![0x0a_u8, 0xff].into()).await?.await?.sequence;

    // The reconnect story, with a second healthy account posting meanwhile.
    let (ws, account) = connected_account(&system, "dana").await?;
    let (other_ws, other) = connected_account(&system, "erin").await?;
    let first = system.schedule_post(ws, &account, "dana's first post").await?;
    post_reaches(&system, ws, &first, "published").await?;
    system.sim_post("/_sim/x/accounts/dana/revoke", json!({})).await?;
    let mut parked = Vec::new();
    for i in 0..3 {
        parked.push(system.schedule_post(ws, &account, &format!("dana {i} after revoke")).await?);
    }
    let others_post = system.schedule_post(other_ws, &other, "erin while dana is broken").await?;
    for post in &parked {
        post_reaches(&system, ws, post, "failed_auth").await?;
    }
    post_reaches(&system, other_ws, &others_post, "published").await?;
    eventually(Duration::from_secs(10), || async {
        let (_, a) = system.get(&system.gateway, &format!("/v1/accounts/{account}"), ws).await?;
        if a["status"] == "needs_reconnect" {
            Ok(())
        } else {
            bail!("account is {a}")
        }
    })
    .await?;
    let (status, body) = system.oauth(ws, Some(&account), "dana").await?;
    ensure!(status == 200 && body["result"] == "reconnected", "reconnect: {status} {body}");
    for post in &parked {
        post_reaches(&system, ws, post, "published").await?;
    }

    // Lifeline's own record: every event the harness saw that decodes, by event id.
    eventually(Duration::from_secs(10), || async {
        let seen = system.seen();
        let published = seen
            .iter()
            .filter(|(n, s)| {
                n == "post_published" && Enveloped::decode(s.payload.as_slice()).is_ok()
            })
            .count();
        // dana's first and retried posts, and erin's.
        if published >= parked.len() + 2 {
            Ok(())
        } else {
            bail!("{published} post_published so far")
        }
    })
    .await?;
    // Let stragglers (the refresher's confirming failure, notifications) settle.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let harness: HashMap<String, (String, Envelope)> = system
        .seen()
        .into_iter()
        .filter_map(|(name, seen)| {
            let envelope = Enveloped::decode(seen.payload.as_slice()).ok()?.envelope?;
            Some((envelope.event_id.clone(), (name, envelope)))
        })
        .collect();

    // Lifeline's CLI reads the same stream from the start.
    let mut cmd = Command::new(&lifelinectl);
    cmd.args(["events", "tail", "--all", "--json", "--count", &harness.len().to_string()])
        .env_clear()
        .env("NATS_URL", &nats_url)
        .env("LIFELINE_SUBJECT_ROOT", &system.subject_root)
        .env("LIFELINE_STREAM_PREFIX", &system.stream_prefix);
    let ctl =
        Running::spawn("lifelinectl events tail", cmd)?.finish(Duration::from_secs(60)).await?;
    ensure!(ctl.status.success(), "lifelinectl: {}\n{}", ctl.status, ctl.stderr.join("\n"));
    let ctl_json = parse_lines("lifelinectl", &ctl.stdout)?;
    let ctl_lines: Vec<Line> = ctl_json
        .iter()
        .map(|v| {
            Ok(Line {
                event: str_at(v, "/event")?.to_owned(),
                event_id: str_at(v, "/envelope/event_id")?.to_owned(),
                account_id: str_at(v, "/envelope/account_id")?.to_owned(),
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let ctl_by_id: HashMap<&str, &Value> = ctl_json
        .iter()
        .filter_map(|v| Some((v.pointer("/envelope/event_id")?.as_str()?, v)))
        .collect();

    println!("--- lifelinectl events tail --all --json ({} events)", ctl_lines.len());
    for l in &ctl.stdout {
        println!("{l}");
    }

    let mut outputs: Vec<(&str, Vec<Value>)> = Vec::new();
    for (example, mut process) in examples.iter().zip(running) {
        let done = process.finish(Duration::from_secs(120)).await?;
        println!("--- {} example: {} events, stderr:", example.name, done.stdout.len());
        for l in &done.stderr {
            println!("  {l}");
        }
        for l in &done.stdout {
            println!("{l}");
        }
        ensure!(done.status.success(), "{} exited with {}", example.name, done.status);
        let values = parse_lines(example.name, &done.stdout)?;

        // It terminated the poison, said so, and printed nothing for it.
        let terminated = done.stderr.iter().any(|l| {
            serde_json::from_str::<Value>(l)
                .is_ok_and(|v| v["level"] == "warn" && v["stream_sequence"] == poison_seq)
        });
        ensure!(
            terminated,
            "{} did not report terminating stream sequence {poison_seq}",
            example.name
        );
        ensure!(
            values.iter().all(|v| v["stream_sequence"] != poison_seq),
            "{} printed the undecodable message",
            example.name
        );

        // In stream order, with the same events and ids as lifelinectl.
        let sequences: Vec<u64> =
            values.iter().filter_map(|v| v["stream_sequence"].as_u64()).collect();
        ensure!(
            sequences.len() == values.len(),
            "{}: every line has a stream_sequence",
            example.name
        );
        ensure!(
            sequences.windows(2).all(|w| w[0] < w[1]),
            "{}: not in stream order: {sequences:?}",
            example.name
        );
        let lines: Vec<Line> = values
            .iter()
            .map(|v| {
                Ok(Line {
                    event: str_at(v, "/event")?.to_owned(),
                    event_id: str_at(v, "/event_id")?.to_owned(),
                    account_id: str_at(v, "/account_id")?.to_owned(),
                })
            })
            .collect::<anyhow::Result<_>>()?;
        assert_eq!(
            per_account(&lines),
            per_account(&ctl_lines),
            "{} vs lifelinectl, per account",
            example.name
        );
        assert_eq!(lines, ctl_lines, "{} vs lifelinectl, in stream order", example.name);

        // And as the harness recorded them: same ids, and the envelope decoded field by field.
        let ids: BTreeSet<&str> = lines.iter().map(|l| l.event_id.as_str()).collect();
        let recorded: BTreeSet<&str> = harness.keys().map(String::as_str).collect();
        assert_eq!(ids, recorded, "{} vs the harness's record", example.name);
        for v in &values {
            let id = str_at(v, "/event_id")?;
            let (name, envelope) = &harness[id];
            assert_eq!(str_at(v, "/event")?, name, "{v}");
            assert_eq!(str_at(v, "/msg_id")?, id, "Nats-Msg-Id is the event id: {v}");
            assert_eq!(str_at(v, "/account_id")?, envelope.account_id, "{v}");
            assert_eq!(str_at(v, "/workspace_id")?, envelope.workspace_id, "{v}");
            assert_eq!(str_at(v, "/correlation_id")?, envelope.correlation_id, "{v}");
            assert_eq!(str_at(v, "/causation_id")?, envelope.causation_id, "{v}");
            assert_eq!(str_at(v, "/platform")?, platform_name(envelope.platform), "{v}");
            // The payload's own fields, as lifelinectl decoded them.
            let ctl_payload = &ctl_by_id[id]["payload"];
            if let Some(post) = ctl_payload["post_id"].as_str() {
                assert_eq!(v["payload"]["post_id"], post, "{v}");
            }
        }

        // The story as the subscriber tells it: one reconnect of dana's, whose retries are
        // exactly the parked posts, caused by it.
        let of = |event: &str| -> Vec<&Value> {
            values
                .iter()
                .filter(|v| v["event"] == event && v["account_id"] == account.as_str())
                .collect()
        };
        let reconnects = of("account_reconnected");
        ensure!(reconnects.len() == 1, "{}: reconnects {reconnects:?}", example.name);
        let reconnect = reconnects[0];
        assert_eq!(reconnect["payload"]["reason"], "RECONNECT_REASON_USER_REAUTHORIZED");
        let retries = of("post_retry_requested");
        let mut retried: Vec<&str> =
            retries.iter().filter_map(|r| r["payload"]["post_id"].as_str()).collect();
        retried.sort_unstable();
        let mut expected: Vec<&str> = parked.iter().map(String::as_str).collect();
        expected.sort_unstable();
        assert_eq!(retried, expected, "{}", example.name);
        assert!(retries.iter().all(|r| r["causation_id"] == reconnect["event_id"]), "{retries:?}");
        let failures = of("auth_failed");
        assert!(
            failures.iter().all(|f| f["payload"]["cause"] == "AUTH_FAILURE_CAUSE_REVOKED"),
            "{failures:?}"
        );

        // Every message acknowledged (or terminated): nothing pending on its durable.
        let info = events_stream.consumer_info(format!("example-{}", example.name)).await?;
        assert_eq!((info.num_pending, info.num_ack_pending), (0, 0), "{}: {info:?}", example.name);
        outputs.push((example.name, values));
    }

    // Both languages print the same line for every event: one contract, two runtimes.
    let (first, rest) = outputs.split_first().context("examples")?;
    for (name, values) in rest {
        assert_eq!(values, &first.1, "{name} vs {}", first.0);
    }
    system.stop().await
}
