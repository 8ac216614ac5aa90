//! `lifelinectl dlq` against the running system: dead letters of the event consumers are listed,
//! shown with their payload decoded (or not), replayed to their original subject — where the
//! consumers process them — and purged; and what the command refuses.

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{bail, ensure, Context as _};
use async_nats::HeaderMap;
use lifeline_e2e::{eventually, System};
use lifeline_events::{
    AuthFailed, AuthFailureCause, AuthFailureSource, Envelope, Platform, PostRetryRequested,
    RetryReason, Subject,
};
use lifeline_kit::{
    bus::Bus,
    config::{CommonConfig, Env},
    ids::WorkspaceId,
};
use prost::Message as _;
use serde_json::Value;

/// The CLI pointed at the system's subjects and streams.
struct Ctl<'a> {
    bin: PathBuf,
    system: &'a System,
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Ctl<'_> {
    async fn run(&self, args: &[&str]) -> anyhow::Result<Out> {
        let mut cmd = std::process::Command::new(&self.bin);
        cmd.env_clear()
            .env(
                "NATS_URL",
                std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into()),
            )
            .env("LIFELINE_SUBJECT_ROOT", &self.system.subject_root)
            .env("LIFELINE_STREAM_PREFIX", &self.system.stream_prefix)
            .args(args);
        let out = tokio::task::spawn_blocking(move || cmd.output()).await??;
        Ok(Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    /// Runs a command that must succeed; prints it like a terminal session, returns stdout.
    async fn ok(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = self.run(args).await?;
        ensure!(out.code == 0, "lifelinectl {args:?} exited {}: {}", out.code, out.stderr);
        println!("$ lifelinectl {}\n{}{}", args.join(" "), out.stdout, out.stderr);
        Ok(out.stdout)
    }

    /// Runs a command that must fail with `code`; returns its stderr.
    async fn fails(&self, args: &[&str], code: i32) -> anyhow::Result<String> {
        let out = self.run(args).await?;
        ensure!(
            out.code == code,
            "lifelinectl {args:?} exited {} instead of {code}: {}{}",
            out.code,
            out.stdout,
            out.stderr
        );
        println!("$ lifelinectl {}   # exit {code}\n{}", args.join(" "), out.stderr);
        Ok(out.stderr)
    }

    async fn json(&self, args: &[&str]) -> anyhow::Result<Value> {
        let out = self.run(args).await?;
        ensure!(out.code == 0, "lifelinectl {args:?} exited {}: {}", out.code, out.stderr);
        serde_json::from_str(&out.stdout).with_context(|| format!("{args:?}: {}", out.stdout))
    }

    async fn list(&self) -> anyhow::Result<Vec<Value>> {
        let all = self.json(&["dlq", "list", "--json", "--limit", "1000"]).await?;
        Ok(all["dead_letters"].as_array().cloned().unwrap_or_default())
    }
}

fn seq(entry: &Value) -> u64 {
    entry["seq"].as_u64().unwrap_or_default()
}

fn envelope(ws: WorkspaceId, account: uuid::Uuid) -> Option<Envelope> {
    Some(Envelope::build(
        Subject { workspace_id: ws.0, account_id: account, platform: Platform::X },
        None,
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dead_letters_are_listed_shown_replayed_and_purged() -> anyhow::Result<()> {
    let bin = lifeline_e2e::workspace_binary("lifelinectl").await?;
    let system = System::start().await?;
    let started = Instant::now();
    let ctl = Ctl { bin, system: &system };
    let js = async_nats::jetstream::new(system.nats.clone());
    let root = system.subject_root.clone();
    let events_stream = js.get_stream(format!("{}_EVENTS", system.stream_prefix)).await?;

    // 1. Poison, the way it happens: bytes no consumer of auth_failed can decode (the gateway,
    //    the notifier and the refresher each dead-letter a copy), and a retry request whose
    //    post_id is not a UUID (it decodes; the publisher's handler refuses it).
    let garbage_account = uuid::Uuid::now_v7();
    let garbage_subject = format!("{root}.events.v1.auth_failed.x.{garbage_account}");
    js.publish(garbage_subject.clone(), vec![0xff, 0x00, 0x13, 0x37].into()).await?.await?;
    let retry_subject = format!("{root}.events.v1.post_retry_requested.x.{}", uuid::Uuid::now_v7());
    let bad_retry = PostRetryRequested {
        envelope: envelope(WorkspaceId::new(), uuid::Uuid::now_v7()),
        post_id: "not-a-post-id".into(),
        reason: RetryReason::OperatorReplay as i32,
    };
    js.publish(retry_subject.clone(), bad_retry.encode_to_vec().into()).await?.await?;

    // 2. A valid failure the notifier gave up on after 10 deliveries (say Postgres was down for
    //    the minutes those take): the copy the kit's MAX_DELIVERIES watch makes, written with the
    //    kit's own `Bus::dead_letter`, with a trace context and a header of another team.
    let config = CommonConfig::from_env(&Env::from_pairs(system.env.clone()), "notifier", 0)?;
    let bus = Bus::connect(&config).await?;
    let ws = WorkspaceId::new();
    let account = uuid::Uuid::now_v7();
    let valid_subject = format!("{root}.events.v1.auth_failed.x.{account}");
    let valid = AuthFailed {
        envelope: envelope(ws, account),
        cause: AuthFailureCause::Revoked as i32,
        source: AuthFailureSource::Probe as i32,
        detail: "probe refused (dlq test)".into(),
        credential_version: 1,
        post_id: String::new(),
    };
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let mut original_headers = HeaderMap::new();
    original_headers.insert("traceparent", traceparent);
    original_headers.insert("X-Origin", "dlq-test");
    bus.dead_letter(
        "notifier-auth_failed",
        &valid_subject,
        900_001,
        Some(original_headers),
        valid.encode_to_vec().into(),
        "gave up after 10 deliveries",
    )
    .await?;
    // And one whose original subject is not an events subject of this system.
    bus.dead_letter(
        "notifier-auth_failed",
        &format!("elsewhere.events.v1.auth_failed.x.{account}"),
        900_002,
        None,
        valid.encode_to_vec().into(),
        "gave up after 10 deliveries",
    )
    .await?;

    // 3. `dlq list` shows them all, oldest first.
    let listed = eventually(Duration::from_secs(20), || async {
        let all = ctl.list().await?;
        let garbage = all.iter().filter(|d| d["original_subject"] == garbage_subject.as_str());
        let retry = all.iter().filter(|d| d["original_subject"] == retry_subject.as_str());
        if garbage.count() >= 2 && retry.count() >= 1 && all.len() >= 5 {
            Ok(all)
        } else {
            bail!("{all:?}")
        }
    })
    .await?;
    let seqs: Vec<u64> = listed.iter().map(seq).collect();
    ensure!(seqs.windows(2).all(|w| w[0] < w[1]), "oldest first: {seqs:?}");
    let find = |pred: &dyn Fn(&Value) -> bool| -> anyhow::Result<Value> {
        listed.iter().find(|d| pred(d)).cloned().with_context(|| format!("{listed:#?}"))
    };
    let valid_entry = find(&|d| d["original_subject"] == valid_subject.as_str())?;
    ensure!(valid_entry["consumer"] == "notifier-auth_failed", "{valid_entry}");
    ensure!(valid_entry["deliveries"] == 10 && valid_entry["event"] == "auth_failed");
    ensure!(valid_entry["original_stream_sequence"] == 900_001);
    let valid_seq = seq(&valid_entry);
    let elsewhere_seq = seq(&find(&|d| {
        d["original_subject"].as_str().is_some_and(|s| s.starts_with("elsewhere."))
    })?);
    let retry_entry = find(&|d| {
        d["consumer"] == "publisher-post_retry_requested"
            && d["original_subject"] == retry_subject.as_str()
    })?;
    ensure!(retry_entry["reason"].as_str().is_some_and(|r| r.contains("invalid post_id")));
    ensure!(retry_entry["deliveries"].is_null(), "{retry_entry}");
    let garbage: Vec<Value> = listed
        .iter()
        .filter(|d| d["original_subject"] == garbage_subject.as_str())
        .cloned()
        .collect();
    let consumers: Vec<&str> = garbage.iter().filter_map(|d| d["consumer"].as_str()).collect();
    for c in ["auth-gateway-auth_failed", "notifier-auth_failed"] {
        ensure!(consumers.contains(&c), "{c} dead-lettered the garbage: {consumers:?}");
    }
    ensure!(garbage
        .iter()
        .all(|d| d["reason"].as_str().is_some_and(|r| r.contains("undecodable"))));

    let table = ctl.ok(&["dlq", "list"]).await?;
    ensure!(table.starts_with("SEQ") && table.contains("ORIGINAL_SUBJECT"), "{table}");
    ensure!(table.contains(&valid_subject) && table.contains("gave up after 10 deliveries"));
    let filtered = ctl
        .json(&["dlq", "list", "--json", "--consumer", "publisher-post_retry_requested"])
        .await?;
    let filtered = filtered["dead_letters"].as_array().cloned().unwrap_or_default();
    ensure!(!filtered.is_empty() && filtered.iter().all(|d| d["event"] == "post_retry_requested"));
    let by_event = ctl.json(&["dlq", "list", "--json", "--event", "post_retry_requested"]).await?;
    ensure!(by_event["dead_letters"].as_array().map(Vec::len) >= Some(1));
    let recent = ctl.json(&["dlq", "list", "--json", "--since", "10m", "--limit", "2"]).await?;
    ensure!(recent["dead_letters"].as_array().map(Vec::len) == Some(2) && recent["more"] == true);
    let future = ctl.json(&["dlq", "list", "--json", "--since", "2999-01-01T00:00:00Z"]).await?;
    ensure!(future["dead_letters"].as_array().is_some_and(Vec::is_empty), "{future}");

    // 4. `dlq show`: the decoded fields, the headers kept and added, or the bytes that do not
    //    decode.
    let shown = ctl.json(&["dlq", "show", &valid_seq.to_string(), "--json"]).await?;
    ensure!(shown["payload"]["decoded"] == true, "{shown}");
    ensure!(shown["payload"]["event"]["payload"]["detail"] == "probe refused (dlq test)");
    ensure!(shown["payload"]["event"]["payload"]["cause"] == "revoked");
    ensure!(shown["payload"]["event"]["envelope"]["workspace_id"] == ws.to_string().as_str());
    ensure!(
        shown["headers"]["traceparent"] == traceparent
            && shown["headers"]["X-Origin"] == "dlq-test"
    );
    ensure!(shown["headers"]["Lifeline-Dlq-Reason"] == "gave up after 10 deliveries");
    ensure!(shown["headers"]["Nats-Msg-Id"] == "dlq-notifier-auth_failed-900001");
    let text = ctl.ok(&["dlq", "show", &valid_seq.to_string()]).await?;
    ensure!(text.contains("decodes as auth_failed") && text.contains("probe refused"), "{text}");
    let garbage_seq = seq(&garbage[0]);
    let shown = ctl.json(&["dlq", "show", &garbage_seq.to_string(), "--json"]).await?;
    ensure!(shown["payload"]["decoded"] == false && shown["payload"]["size"] == 4, "{shown}");
    ensure!(shown["payload"]["hex_prefix"] == "ff001337", "{shown}");
    let text = ctl.ok(&["dlq", "show", &garbage_seq.to_string()]).await?;
    ensure!(text.contains("DOES NOT DECODE") && text.contains("hex: ff001337"), "{text}");
    let text = ctl.ok(&["dlq", "show", &seq(&retry_entry).to_string()]).await?;
    ensure!(text.contains("not-a-post-id"), "decoded, though poison: {text}");

    // 5. Refusals: unknown sequences, bad filters, a subject outside the root, too many without
    //    --yes. None of them changes anything.
    let before = ctl.list().await?.len();
    for verb in ["show", "replay", "purge"] {
        let err = ctl.fails(&["dlq", verb, "999999"], 1).await?;
        ensure!(err.contains("no dead letter 999999 in"), "{verb}: {err}");
    }
    let err = ctl.fails(&["dlq", "list", "--since", "yesterday"], 2).await?;
    ensure!(err.contains("--since") && err.contains("RFC 3339"), "{err}");
    let err = ctl.fails(&["dlq", "list", "--consumer", "notifier.auth_failed"], 2).await?;
    ensure!(err.contains("--consumer"), "{err}");
    let err = ctl.fails(&["dlq", "replay", "--event", "auth_fail", "--all"], 2).await?;
    ensure!(err.contains("auth_failed"), "lists the valid events: {err}");
    ctl.fails(&["dlq", "replay", "3", "--since", "2h"], 2).await?;
    let err = ctl.fails(&["dlq", "replay", &elsewhere_seq.to_string()], 1).await?;
    ensure!(err.contains("not an events subject under the root"), "{err}");
    ensure!(err.contains("nothing was published"), "{err}");
    // Five more undecodable failures: three copies each, so well over ten dead letters.
    for _ in 0..5 {
        js.publish(garbage_subject.clone(), vec![0x0a, 0xff].into()).await?.await?;
    }
    eventually(Duration::from_secs(20), || async {
        let n = ctl.list().await?.len();
        if n >= before + 10 {
            Ok(n)
        } else {
            bail!("{n} dead letters")
        }
    })
    .await?;
    // Let the last copies land, so the count below is stable.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let total = ctl.list().await?.len();
    let err = ctl.fails(&["dlq", "purge", "--all"], 2).await?;
    ensure!(err.contains(&format!("{total} dead letters")) && err.contains("--yes"), "{err}");
    let err = ctl.fails(&["dlq", "replay", "--all", "--event", "auth_failed"], 2).await?;
    ensure!(err.contains("--yes") && err.contains("--dry-run"), "{err}");
    // Over everything, the one outside the root is refused before the count is looked at.
    let err = ctl.fails(&["dlq", "replay", "--all", "--yes"], 1).await?;
    ensure!(err.contains(&format!("{elsewhere_seq}: its original subject")), "{err}");
    let dry = ctl.ok(&["dlq", "purge", "--all", "--dry-run"]).await?;
    ensure!(dry.lines().count() == total + 1, "one row per dead letter: {dry}");
    let dry = ctl.ok(&["dlq", "replay", &valid_seq.to_string(), "--dry-run"]).await?;
    ensure!(dry.contains(&valid_subject) && dry.contains("replay-900001-"), "{dry}");
    ensure!(ctl.list().await?.len() == total, "refusals and dry runs change nothing");

    // 6. Replay the valid one: it goes to its original subject with the original headers, a new
    //    id and where it came from; the notifier processes it; it leaves the DLQ.
    let (_, n) = system.get(&system.notifier, "/v1/notifications", ws).await?;
    ensure!(n["notifications"].as_array().is_some_and(Vec::is_empty), "not yet: {n}");
    let out = ctl.ok(&["dlq", "replay", &valid_seq.to_string()]).await?;
    ensure!(out.contains(&format!("dead letter {valid_seq} replayed to {valid_subject}")), "{out}");
    ensure!(out.contains("replayed 1, 0 duplicate copies; removed 1"), "{out}");
    eventually(Duration::from_secs(15), || async {
        let (_, n) = system.get(&system.notifier, "/v1/notifications", ws).await?;
        if n["notifications"].as_array().map(Vec::len) == Some(1) {
            Ok(())
        } else {
            bail!("{n}")
        }
    })
    .await?;
    let replayed = events_stream.get_last_raw_message_by_subject(&valid_subject).await?;
    let header = |k: &str| replayed.headers.get(k).map(|v| v.as_str().to_owned());
    ensure!(header("Lifeline-Replayed-From") == Some(valid_seq.to_string()));
    ensure!(header("Nats-Msg-Id").is_some_and(|id| id.starts_with("replay-900001-")));
    ensure!(header("traceparent").as_deref() == Some(traceparent));
    ensure!(header("X-Origin").as_deref() == Some("dlq-test"));
    ensure!(header("Lifeline-Dlq-Reason").is_none() && header("Lifeline-Dlq-Consumer").is_none());
    ensure!(AuthFailed::decode(replayed.payload.as_ref())? == valid, "the payload, byte for byte");
    // Replaying it again is an error, not a second publish.
    let err = ctl.fails(&["dlq", "replay", &valid_seq.to_string()], 1).await?;
    ensure!(err.contains("replayed or purged already"), "{err}");
    ctl.fails(&["dlq", "show", &valid_seq.to_string()], 1).await?;
    let again = events_stream.get_last_raw_message_by_subject(&valid_subject).await?;
    ensure!(again.sequence == replayed.sequence, "published once");

    // 7. The first garbage's copies (one per consumer) share the original: replayed together
    //    they are published once, and the consumers dead-letter it again, headers and all.
    let copies: Vec<String> = garbage.iter().map(|d| seq(d).to_string()).collect();
    let newest = ctl.list().await?.iter().map(seq).max().unwrap_or(0);
    let mut args = vec!["dlq", "replay"];
    args.extend(copies.iter().map(String::as_str));
    let out = ctl.ok(&args).await?;
    ensure!(out.contains(&format!("replayed 1, {} duplicate copies", copies.len() - 1)), "{out}");
    let requeued = eventually(Duration::from_secs(20), || async {
        let all = ctl.list().await?;
        let back: Vec<u64> = all
            .iter()
            .filter(|d| d["original_subject"] == garbage_subject.as_str() && seq(d) > newest)
            .map(seq)
            .collect();
        if back.len() >= 2 {
            Ok(back)
        } else {
            bail!("{back:?}")
        }
    })
    .await?;
    let mut again_dead = None;
    for s in &requeued {
        let d = ctl.json(&["dlq", "show", &s.to_string(), "--json"]).await?;
        if d["headers"]["Lifeline-Replayed-From"].is_string() {
            again_dead = Some(d);
            break;
        }
    }
    let again_dead = again_dead.context("the replayed garbage came back with its replay header")?;
    ensure!(again_dead["headers"]["Lifeline-Replayed-From"] == copies[0].as_str(), "{again_dead}");

    // 8. Purge: one by its sequence, then the rest of one event in bulk.
    let retry_seq = seq(&retry_entry).to_string();
    let out = ctl.ok(&["dlq", "purge", &retry_seq]).await?;
    ensure!(out.contains(&format!("purged dead letter {retry_seq}")), "{out}");
    ctl.fails(&["dlq", "show", &retry_seq], 1).await?;
    ctl.fails(&["dlq", "purge", &retry_seq], 1).await?;
    let out = ctl.ok(&["dlq", "purge", "--all", "--event", "auth_failed", "--yes"]).await?;
    ensure!(out.contains("purged"), "{out}");
    let left = ctl.list().await?;
    ensure!(
        left.iter().all(|d| d["event"] != "auth_failed"),
        "only other events and the subject outside the root are left: {left:#?}"
    );
    ensure!(left.iter().any(|d| seq(d) == elsewhere_seq), "{left:#?}");
    println!("dlq test body took {:.1}s", started.elapsed().as_secs_f64());
    system.stop().await
}
