//! Operator replay of dead-lettered posts: filters by workspace, platform, kind and reason; a
//! dry run that counts and changes nothing; a replay that publishes exactly the matching posts
//! once, at the platform's replay rate, recorded with who, filter, note and count; the same
//! replay again does nothing; members reach only their own workspace. Then the CLI as a process:
//! dry run, the refusal without a terminal, and the progress to the end.

use std::time::Duration;

use anyhow::{ensure, Context as _};
use lifeline_e2e::{eventually, Options, System};
use lifeline_kit::{
    auth::{JwtKeys, Role},
    ids::WorkspaceId,
};
use serde_json::{json, Value};

use crate::post_reaches;

async fn call(
    system: &System,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> anyhow::Result<(u16, Value)> {
    let mut r =
        system.http.request(method, format!("{}{path}", system.publisher)).bearer_auth(token);
    if let Some(body) = body {
        r = r.json(&body);
    }
    let r = r.send().await?;
    let status = r.status().as_u16();
    Ok((status, r.json().await.unwrap_or(Value::Null)))
}

async fn get(system: &System, path: &str, token: &str) -> anyhow::Result<(u16, Value)> {
    call(system, reqwest::Method::GET, path, token, None).await
}

async fn replay(system: &System, token: &str, body: Value) -> anyhow::Result<(u16, Value)> {
    call(system, reqwest::Method::POST, "/v1/replays", token, Some(body)).await
}

/// Schedules `texts` on `account` while the simulator refuses every post's content on
/// `platform`, and waits until each is dead-lettered; returns the post ids.
async fn rejected_posts(
    system: &System,
    ws: WorkspaceId,
    account: &str,
    texts: &[&str],
) -> anyhow::Result<Vec<String>> {
    let mut posts = Vec::new();
    for text in texts {
        posts.push(system.schedule_post(ws, account, text).await?);
    }
    for post in &posts {
        post_reaches(system, ws, post, "dead_lettered").await?;
    }
    Ok(posts)
}

/// How many times the simulator stored `text` for `user` on `platform`.
async fn stored(system: &System, platform: &str, user: &str, text: &str) -> anyhow::Result<usize> {
    Ok(system.sim_post_log_on(platform, user).await?.iter().filter(|t| *t == text).count())
}

async fn statuses(
    system: &System,
    ws: WorkspaceId,
    posts: &[String],
) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for post in posts {
        let (_, body) = system.get(&system.publisher, &format!("/v1/posts/{post}"), ws).await?;
        out.push(body["status"].as_str().unwrap_or_default().to_owned());
    }
    Ok(out)
}

/// Polls the replay until it is done; returns its last progress.
async fn replay_done(system: &System, id: &str, token: &str) -> anyhow::Result<Value> {
    eventually(Duration::from_secs(30), || async {
        let (status, body) = get(system, &format!("/v1/replays/{id}"), token).await?;
        ensure!(status == 200 && body["done"] == true, "replay {id}: {status} {body}");
        Ok(body)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_filtered_replay_publishes_exactly_its_posts_once_recorded_and_scoped(
) -> anyhow::Result<()> {
    // X is paced at one replayed post per second, so its two posts leave a second apart.
    let system = System::start_with(Options {
        env: vec![("LIFELINE_REPLAY_RATE", "50,x=1".to_owned())],
        ..Options::default()
    })
    .await?;
    let keys = JwtKeys::new(&system.jwt_secret.clone().into());
    let (ws_a, ws_b) = (WorkspaceId::new(), WorkspaceId::new());
    let x_a = system.connect("x", "rio", ws_a).await?;
    let li_a = system.connect("linkedin", "lena", ws_a).await?;
    let x_b = system.connect("x", "sol", ws_b).await?;

    // Rejected content on X (two in A, one in B) and LinkedIn (one in A), then one LinkedIn
    // post whose answer is lost (ambiguous: LinkedIn cannot be checked, so it is dead-lettered).
    for p in ["x", "linkedin"] {
        system.sim_post(&format!("/_sim/{p}/reject-content"), json!({"for_seconds": 60.0})).await?;
    }
    let x_texts = ["rio's first, refused", "rio's second, refused"];
    let x_posts = rejected_posts(&system, ws_a, &x_a, &x_texts).await?;
    let li_rejected = rejected_posts(&system, ws_a, &li_a, &["lena's, refused"]).await?;
    let b_posts = rejected_posts(&system, ws_b, &x_b, &["sol's, refused"]).await?;
    for p in ["x", "linkedin"] {
        system.sim_post(&format!("/_sim/{p}/clear-faults"), json!({})).await?;
    }
    system.sim_post("/_sim/linkedin/ambiguous", json!({"count": 1})).await?;
    let li_ambiguous = rejected_posts(&system, ws_a, &li_a, &["lena's, answer lost"]).await?;

    let member_a = keys.mint("alice", ws_a, Duration::from_secs(600));
    let member_b = keys.mint("bob", ws_b, Duration::from_secs(600));
    let operator =
        keys.mint_as("ops@example", WorkspaceId::new(), Role::Operator, Duration::from_secs(600));

    // Members see their own workspace only and cannot name another.
    let (_, own) = get(&system, "/v1/dead-letters", &member_a).await?;
    assert_eq!(own["dead_letters"].as_array().map(Vec::len), Some(4), "{own}");
    let (status, body) =
        get(&system, &format!("/v1/dead-letters?workspace={ws_b}"), &member_a).await?;
    assert_eq!((status, body["error"].as_str()), (403, Some("forbidden")), "{body}");
    let (status, body) = replay(&system, &member_a, json!({"filter": {"workspace": ws_b}})).await?;
    assert_eq!(status, 403, "{body}");
    let (status, body) = get(&system, &format!("/v1/replays?workspace={ws_b}"), &member_a).await?;
    assert_eq!(status, 403, "{body}");
    let (_, ambiguous) =
        get(&system, "/v1/dead-letters?platform=linkedin&kind=ambiguous", &member_a).await?;
    let listed = ambiguous["dead_letters"].as_array().context("dead_letters")?;
    assert_eq!(listed.len(), 1, "{ambiguous}");
    assert_eq!(listed[0]["post_id"], li_ambiguous[0].as_str());
    let (_, first) = get(&system, "/v1/dead-letters?limit=3", &member_a).await?;
    let next = first["next"].as_str().context("a next cursor")?;
    let (_, rest) =
        get(&system, &format!("/v1/dead-letters?limit=3&after={next}"), &member_a).await?;
    assert_eq!(rest["dead_letters"].as_array().map(Vec::len), Some(1), "{rest}");

    // Bad input is refused and changes nothing.
    for bad in [
        json!({"filter": {"kind": "boom"}}),
        json!({"filter": {"platform": "myspace"}}),
        json!({"filter": {}, "surprise": 1}),
        json!({"filter": {}, "note": " "}),
    ] {
        let (status, body) = replay(&system, &operator, bad.clone()).await?;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    // A window that ends before it starts matches nothing, as in the lists: no error.
    let since = "2026-01-02T00:00:00Z";
    let inverted =
        json!({"filter": {"since": since, "until": "2026-01-01T00:00:00Z"}, "dry_run": true});
    let (status, body) = replay(&system, &operator, inverted).await?;
    assert_eq!((status, body["matched"].as_i64()), (200, Some(0)), "{body}");

    // The dry run counts A's X dead letters, shows them, and changes nothing.
    let filter = json!({"workspace": ws_a, "platform": "x", "kind": "rejected"});
    let (status, dry) =
        replay(&system, &operator, json!({"filter": filter, "dry_run": true})).await?;
    assert_eq!(status, 200, "{dry}");
    assert_eq!(dry["matched"], 2, "{dry}");
    assert_eq!(dry["by_platform"], json!({"x": 2}), "{dry}");
    assert_eq!(dry["by_kind"], json!({"rejected": 2}), "{dry}");
    let sampled: Vec<&str> = dry["sample"]
        .as_array()
        .context("sample")?
        .iter()
        .filter_map(|d| d["post_id"].as_str())
        .collect();
    for post in &x_posts {
        assert!(sampled.contains(&post.as_str()), "{post} in {dry}");
    }
    assert!(dry.get("replay").is_none(), "{dry}");
    let all_a: Vec<String> = [&x_posts[..], &li_rejected[..], &li_ambiguous[..]].concat();
    assert_eq!(statuses(&system, ws_a, &all_a).await?, vec!["dead_lettered"; 4]);
    let (_, history) = get(&system, "/v1/replays", &operator).await?;
    assert_eq!(history["replays"].as_array().map(Vec::len), Some(0), "{history}");

    // The replay: recorded, the same request again does nothing, another under its key is refused.
    let request =
        json!({"filter": filter, "note": "content filter lifted", "idempotency_key": "k1"});
    let (status, made) = replay(&system, &operator, request.clone()).await?;
    assert_eq!(status, 202, "{made}");
    assert_eq!(
        (made["matched"].as_i64(), made["replay"]["post_count"].as_i64()),
        (Some(2), Some(2))
    );
    let id = made["replay"]["id"].as_str().context("replay id")?.to_owned();
    let (status, again) = replay(&system, &operator, request.clone()).await?;
    assert_eq!((status, again["repeated"].as_bool()), (200, Some(true)), "{again}");
    assert_eq!(again["replay"]["id"], id.as_str());
    let mut other = request.clone();
    other["note"] = json!("another reason");
    let (status, body) = replay(&system, &operator, other).await?;
    assert_eq!((status, body["error"].as_str()), (409, Some("idempotency_key_reused")), "{body}");

    let done = replay_done(&system, &id, &operator).await?;
    assert_eq!(
        (done["published"].as_i64(), done["failed_again"].as_i64()),
        (Some(2), Some(0)),
        "{done}"
    );
    for text in x_texts {
        assert_eq!(stored(&system, "x", "rio", text).await?, 1, "{text} on X exactly once");
    }
    // The rest is untouched: still dead-lettered, never sent.
    let rest: Vec<String> = [&li_rejected[..], &li_ambiguous[..]].concat();
    assert_eq!(statuses(&system, ws_a, &rest).await?, vec!["dead_lettered"; 2]);
    assert_eq!(statuses(&system, ws_b, &b_posts).await?, vec!["dead_lettered"]);
    assert_eq!(stored(&system, "linkedin", "lena", "lena's, refused").await?, 0);
    // The same replay once more after it finished still queues nothing.
    let (status, again) = replay(&system, &operator, request).await?;
    assert_eq!((status, again["repeated"].as_bool()), (200, Some(true)), "{again}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    for text in x_texts {
        assert_eq!(stored(&system, "x", "rio", text).await?, 1, "{text} still once");
    }

    // X's rate (1/s) spread the two releases over a second.
    let db = system.db().await?;
    let released: Vec<chrono::DateTime<chrono::Utc>> = sqlx::query_scalar(
        "SELECT released_at FROM publisher.replay_posts WHERE replay_id = $1 ORDER BY released_at",
    )
    .bind(id.parse::<uuid::Uuid>()?)
    .fetch_all(&db)
    .await?;
    assert_eq!(released.len(), 2);
    let gap = released[1] - released[0];
    assert!(gap >= chrono::Duration::milliseconds(900), "x releases {gap:?} apart");

    // The history: who, the filter kept to A, the note, how many; A's member sees it, B's not.
    let (_, history) = get(&system, "/v1/replays", &operator).await?;
    let r = &history["replays"][0];
    assert_eq!(history["replays"].as_array().map(Vec::len), Some(1), "{history}");
    assert_eq!(r["requested_by"], "ops@example");
    assert_eq!(r["workspace_id"], ws_a.to_string());
    assert_eq!(r["filter"], filter, "{r}");
    assert_eq!(
        (r["note"].as_str(), r["post_count"].as_i64()),
        (Some("content filter lifted"), Some(2))
    );
    let (_, seen_by_a) = get(&system, "/v1/replays", &member_a).await?;
    assert_eq!(seen_by_a["replays"].as_array().map(Vec::len), Some(1), "{seen_by_a}");
    let (_, seen_by_b) = get(&system, "/v1/replays", &member_b).await?;
    assert_eq!(seen_by_b["replays"].as_array().map(Vec::len), Some(0), "{seen_by_b}");
    let (status, _) = get(&system, &format!("/v1/replays/{id}"), &member_b).await?;
    assert_eq!(status, 404, "B cannot read A's replay");

    // A member replays their own by a piece of the reason, in another case.
    let (_, b_list) = get(&system, "/v1/dead-letters", &member_b).await?;
    let reason = b_list["dead_letters"][0]["reason"].as_str().context("reason")?;
    let piece: String = reason.chars().take(12).collect::<String>().to_uppercase();
    let (status, made) = replay(&system, &member_b, json!({"filter": {"reason": piece}})).await?;
    assert_eq!((status, made["replay"]["post_count"].as_i64()), (202, Some(1)), "{made}");
    let id_b = made["replay"]["id"].as_str().context("replay id")?;
    replay_done(&system, id_b, &member_b).await?;
    assert_eq!(stored(&system, "x", "sol", "sol's, refused").await?, 1);
    assert_eq!(statuses(&system, ws_a, &rest).await?, vec!["dead_lettered"; 2], "A's untouched");
    system.stop().await
}

/// Runs the CLI with the publisher's URL and `token`; returns (exit code, stdout, stderr).
async fn lifelinectl(
    bin: &std::path::Path,
    system: &System,
    token: &str,
    args: &[&str],
) -> anyhow::Result<(i32, String, String)> {
    let mut cmd = std::process::Command::new(bin);
    cmd.env_clear()
        .env("LIFELINE_PUBLISHER_URL", &system.publisher)
        .env("LIFELINE_TOKEN", token)
        .stdin(std::process::Stdio::null())
        .args(args);
    let out = tokio::task::spawn_blocking(move || cmd.output()).await??;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_cli_dry_runs_asks_and_follows_a_replay_to_the_end() -> anyhow::Result<()> {
    let bin = lifeline_e2e::workspace_binary("lifelinectl").await?;
    let system = System::start_with(Options {
        env: vec![("LIFELINE_REPLAY_RATE", "2".to_owned())],
        ..Options::default()
    })
    .await?;
    let ws = WorkspaceId::new();
    let account = system.connect("x", "cleo", ws).await?;
    system.sim_post("/_sim/x/reject-content", json!({"for_seconds": 60.0})).await?;
    let texts: Vec<String> = (1..=5).map(|i| format!("cleo's post {i}, refused")).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let posts = rejected_posts(&system, ws, &account, &refs).await?;
    system.sim_post("/_sim/x/clear-faults", json!({})).await?;
    let token = system.token(ws);

    let (code, out, err) =
        lifelinectl(&bin, &system, &token, &["dead-letters", "list", "--platform", "x"]).await?;
    ensure!(code == 0, "list: {err}");
    for post in &posts {
        assert!(out.contains(post.as_str()), "{post} in {out}");
    }

    let (code, out, err) = lifelinectl(
        &bin,
        &system,
        &token,
        &["dead-letters", "replay", "--platform", "x", "--dry-run"],
    )
    .await?;
    ensure!(code == 0, "dry run: {err}");
    println!("$ lifelinectl dead-letters replay --platform x --dry-run\n{out}");
    assert!(out.contains("dry run: 5 dead letters would be replayed"), "{out}");
    assert!(out.contains("per platform: x 5") && out.contains("per kind: rejected 5"), "{out}");

    // Above --confirm-above with no terminal to ask on: refused, nothing replayed.
    let (code, _, err) = lifelinectl(
        &bin,
        &system,
        &token,
        &["dead-letters", "replay", "--platform", "x", "--confirm-above", "3"],
    )
    .await?;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("stdin is not a terminal") && err.contains("--yes"), "{err}");
    assert_eq!(statuses(&system, ws, &posts).await?, vec!["dead_lettered"; 5]);

    let args = [
        "dead-letters",
        "replay",
        "--platform",
        "x",
        "--confirm-above",
        "3",
        "--yes",
        "--note",
        "cli check",
    ];
    let (code, out, err) = lifelinectl(&bin, &system, &token, &args).await?;
    println!("$ lifelinectl {}\n{out}", args.join(" "));
    ensure!(code == 0, "replay: {err}");
    assert!(out.contains("queued 5 dead letters (x 5)"), "{out}");
    let last = out.lines().last().unwrap_or_default();
    assert!(last.contains("done in") && last.contains("published 5, failed again 0"), "{out}");
    assert!(out.contains("5/5 done"), "{out}");
    for text in &texts {
        assert_eq!(stored(&system, "x", "cleo", text).await?, 1, "{text} once");
    }

    let (code, out, err) = lifelinectl(&bin, &system, &token, &["replays", "list"]).await?;
    ensure!(code == 0, "replays list: {err}");
    println!("$ lifelinectl replays list\n{out}");
    assert!(
        out.contains("cli check") && out.contains("e2e") && out.contains(r#""platform":"x""#),
        "{out}"
    );
    system.stop().await
}
