//! `dead-letters list|replay`: the publisher's dead-lettered posts, filtered and paged, and
//! replaying them through `POST /v1/replays`: a dry run first (how many, a sample, per platform
//! and kind), a confirmation above `--confirm-above` posts, then the recorded replay, followed
//! to the end with a progress bar (`replays::follow`) unless `--no-wait`.

use std::io::IsTerminal as _;

use chrono::{DateTime, SecondsFormat, Utc};
use clap::{Args, Subcommand};
use lifeline_kit::{
    config::Env,
    ids::{AccountId, PostId, WorkspaceId},
    Platform,
};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::{
    api::{self, ApiClient, Service},
    cli::{parse_rfc3339, GlobalArgs},
    output::{self, cell, Table},
    replays, CtlError,
};

/// Failure kinds the publisher records.
const KINDS: [&str; 5] = ["auth", "rate_limited", "transient", "ambiguous", "rejected"];

#[derive(Debug, Subcommand)]
pub enum DeadLettersCommand {
    /// List dead-lettered posts that have not been replayed, oldest first, by pages.
    List(DeadLettersListArgs),
    /// Replay dead-lettered posts: one with --post, those matching filters, or every one with
    /// --all. Recorded (who, when, filter, note, how many) and paced per platform.
    Replay(ReplayArgs),
}

/// Which dead letters; every flag narrows.
#[derive(Debug, Clone, Default, Args)]
pub struct FilterArgs {
    /// Only this workspace's (operator tokens; a member token sees only its own).
    #[arg(long, value_name = "UUID")]
    pub workspace: Option<WorkspaceId>,
    /// Only this account's.
    #[arg(long, value_name = "UUID")]
    pub account: Option<AccountId>,
    /// Only this platform's.
    #[arg(long)]
    pub platform: Option<Platform>,
    /// Only this failure kind.
    #[arg(long, value_parser = KINDS)]
    pub kind: Option<String>,
    /// Only those whose reason contains this text (case-insensitive).
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    /// Only dead letters from this moment on (RFC 3339).
    #[arg(long, value_name = "RFC3339", value_parser = parse_rfc3339)]
    pub since: Option<DateTime<Utc>>,
    /// Only dead letters before this moment (RFC 3339).
    #[arg(long, value_name = "RFC3339", value_parser = parse_rfc3339)]
    pub until: Option<DateTime<Utc>>,
}

#[derive(Debug, Args)]
pub struct DeadLettersListArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
    /// The `next` cursor printed under the previous page.
    #[arg(long, value_name = "CURSOR")]
    pub cursor: Option<String>,
    /// Dead letters per page (1 to 1000; the publisher's default is 100).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub limit: Option<u16>,
    /// Print the service's JSON answer as is.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The dead-lettered post to replay.
    #[arg(long, value_name = "UUID", conflicts_with = "all")]
    pub post: Option<PostId>,
    /// Replay every dead letter the token reaches (needed when no filter is given).
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Only print how many would be replayed, a sample and counts per platform and kind.
    #[arg(long)]
    pub dry_run: bool,
    /// Ask before replaying more than this many posts.
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub confirm_above: u64,
    /// Do not ask (needed above --confirm-above when stdin is not a terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Why, kept with the replay in the history.
    #[arg(long)]
    pub note: Option<String>,
    /// Repeating a replay with the same key does nothing twice (default: a new key per run).
    #[arg(long, value_name = "KEY")]
    pub idempotency_key: Option<String>,
    /// Return once the replay is recorded instead of following it to the end.
    #[arg(long)]
    pub no_wait: bool,
    /// Print the service's JSON answers as is.
    #[arg(long)]
    pub json: bool,
}

/// The filter's fields, as the publisher names them in a query and a JSON body alike.
const FILTER_FIELDS: [&str; 7] =
    ["workspace", "account_id", "platform", "kind", "reason", "since", "until"];

/// The filter as the publisher reads it: only the flags that were given.
pub fn filter_json(f: &FilterArgs) -> Map<String, Value> {
    let time = |t: DateTime<Utc>| json!(t.to_rfc3339_opts(SecondsFormat::AutoSi, true));
    let mut m = Map::new();
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            m.insert(k.to_owned(), v);
        }
    };
    put("workspace", f.workspace.map(|w| json!(w.to_string())));
    put("account_id", f.account.map(|a| json!(a.to_string())));
    put("platform", f.platform.map(|p| json!(p.as_str())));
    put("kind", f.kind.as_ref().map(|k| json!(k)));
    put("reason", f.reason.as_ref().map(|r| json!(r)));
    put("since", f.since.map(time));
    put("until", f.until.map(time));
    m
}

/// The query of `GET /v1/dead-letters` for `args`.
pub fn list_query(args: &DeadLettersListArgs) -> Vec<(&'static str, String)> {
    let f = filter_json(&args.filter);
    let mut q: Vec<(&'static str, String)> = FILTER_FIELDS
        .iter()
        .filter_map(|k| f.get(*k).and_then(Value::as_str).map(|v| (*k, v.to_owned())))
        .collect();
    if let Some(c) = &args.cursor {
        q.push(("after", c.clone()));
    }
    if let Some(l) = args.limit {
        q.push(("limit", l.to_string()));
    }
    q
}

/// The filter of a replay: one post, the given filters, or everything with `--all`; a replay
/// with nothing to narrow it and no `--all` is refused rather than read as "all".
pub fn replay_filter(args: &ReplayArgs) -> Result<Map<String, Value>, CtlError> {
    let mut f = filter_json(&args.filter);
    if let Some(post) = args.post {
        f.insert("post_id".into(), json!(post.to_string()));
    } else if f.is_empty() && !args.all {
        return Err(CtlError::Usage(
            "say which dead letters to replay: --post, a filter (--platform, --kind, --reason, \
             --account, --workspace, --since, --until) or --all"
                .into(),
        ));
    }
    Ok(f)
}

#[derive(Debug, Deserialize)]
struct DeadLetterPage {
    dead_letters: Vec<DeadLetterRow>,
    #[serde(default)]
    next: Option<String>,
}

#[derive(Debug, Deserialize)]
struct DeadLetterRow {
    #[serde(default)]
    workspace_id: Option<WorkspaceId>,
    post_id: PostId,
    account_id: AccountId,
    #[serde(default)]
    platform: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    attempts: i64,
    #[serde(default)]
    dead_lettered_at: Option<DateTime<Utc>>,
    #[serde(default)]
    replay_count: i64,
}

fn table(rows: &[DeadLetterRow]) -> Table {
    let mut t = Table::new(&[
        "POST",
        "WORKSPACE",
        "ACCOUNT",
        "PLATFORM",
        "KIND",
        "ATTEMPTS",
        "REPLAYS",
        "DEAD_LETTERED_AT",
        "REASON",
    ]);
    for d in rows {
        t.row(vec![
            d.post_id.to_string(),
            d.workspace_id.map(|w| w.to_string()).unwrap_or_default(),
            d.account_id.to_string(),
            d.platform.clone(),
            d.kind.clone(),
            d.attempts.to_string(),
            d.replay_count.to_string(),
            api::time(d.dead_lettered_at),
            cell(&d.reason, 48),
        ]);
    }
    t
}

/// A dry run's or a replay's answer.
#[derive(Debug, Deserialize)]
struct ReplayAnswer {
    #[serde(default)]
    repeated: bool,
    matched: u64,
    #[serde(default)]
    by_platform: std::collections::BTreeMap<String, u64>,
    #[serde(default)]
    by_kind: std::collections::BTreeMap<String, u64>,
    #[serde(default)]
    sample: Vec<DeadLetterRow>,
    #[serde(default)]
    replay: Option<replays::ReplayRow>,
}

/// `x 2, linkedin 1`.
fn counts(m: &std::collections::BTreeMap<String, u64>) -> String {
    let parts: Vec<String> = m.iter().map(|(k, n)| format!("{k} {n}")).collect();
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join(", ")
    }
}

pub async fn run(global: &GlobalArgs, env: &Env, cmd: &DeadLettersCommand) -> Result<(), CtlError> {
    let client = ApiClient::new(global, env)?;
    let service = Service::publisher(global);
    match cmd {
        DeadLettersCommand::List(args) => {
            let raw = client.get(&service, "v1/dead-letters", &list_query(args)).await?;
            if args.json {
                return output::line(raw.trim_end());
            }
            let page: DeadLetterPage = api::parse(&service, "v1/dead-letters", &raw)?;
            output::line(&table(&page.dead_letters).render())?;
            match page.next {
                Some(next) => output::line(&format!("more: --cursor {next}")),
                None => Ok(()),
            }
        }
        DeadLettersCommand::Replay(args) => replay(&client, &service, args).await,
    }
}

async fn replay(client: &ApiClient, service: &Service, args: &ReplayArgs) -> Result<(), CtlError> {
    let filter = replay_filter(args)?;
    let url = service.url("v1/replays", &[])?;
    let dry_body = json!({"filter": filter, "dry_run": true});
    let raw = client.send(service, Method::POST, url.clone(), Some(dry_body)).await?;
    let dry: ReplayAnswer = api::parse(service, "v1/replays", &raw)?;
    if args.dry_run {
        return if args.json { output::line(raw.trim_end()) } else { print_dry_run(&dry) };
    }
    if dry.matched == 0 {
        return output::line("no dead letters match; nothing replayed");
    }
    if dry.matched > args.confirm_above && !args.yes {
        confirm(dry.matched, args.confirm_above)?;
    }
    let key = args.idempotency_key.clone().unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let mut body = json!({"filter": filter, "idempotency_key": key});
    if let Some(note) = &args.note {
        body["note"] = json!(note);
    }
    let raw = client.send(service, Method::POST, url, Some(body)).await?;
    let answer: ReplayAnswer = api::parse(service, "v1/replays", &raw)?;
    let replay = answer.replay.ok_or_else(|| CtlError::BadResponse {
        service: service.name,
        url: format!("{}v1/replays", service.base),
        reason: "the answer names no replay".into(),
    })?;
    if args.json {
        output::line(raw.trim_end())?;
    } else if answer.repeated {
        output::line(&format!(
            "replay {} was made already with this idempotency key ({} posts); nothing queued again",
            replay.id, replay.post_count
        ))?;
    } else {
        output::line(&format!(
            "replay {}: queued {} dead letters ({}), paced per platform",
            replay.id,
            replay.post_count,
            counts(&answer.by_platform)
        ))?;
    }
    if args.no_wait || replay.post_count == 0 {
        return Ok(());
    }
    replays::follow(client, service, replay.id, replay.post_count as u64).await
}

fn print_dry_run(dry: &ReplayAnswer) -> Result<(), CtlError> {
    output::line(&format!(
        "dry run: {} dead letters would be replayed\nper platform: {}\nper kind: {}",
        dry.matched,
        counts(&dry.by_platform),
        counts(&dry.by_kind)
    ))?;
    if !dry.sample.is_empty() {
        output::line(&format!("sample:\n{}", table(&dry.sample).render()))?;
    }
    Ok(())
}

/// Asks on the terminal; without one (CI, a pipe) refuses with what to do instead.
fn confirm(matched: u64, above: u64) -> Result<(), CtlError> {
    if !std::io::stdin().is_terminal() {
        return Err(CtlError::Usage(format!(
            "refusing to replay {matched} dead letters (more than --confirm-above {above}) without \
             a confirmation, and stdin is not a terminal to ask on: check with --dry-run, then \
             pass --yes"
        )));
    }
    eprint!("replay {matched} dead letters? [y/N] ");
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .map_err(|e| CtlError::Usage(format!("cannot read the answer: {e}")))?;
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err(CtlError::Usage("not confirmed; nothing replayed".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn replay_args(args: &[&str]) -> ReplayArgs {
        let all = ["lifelinectl", "dead-letters", "replay"].into_iter().chain(args.iter().copied());
        match crate::cli::Cli::try_parse_from(all).expect("valid").command {
            crate::cli::Command::DeadLetters(DeadLettersCommand::Replay(a)) => a,
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn a_replay_sends_only_the_given_filters_and_needs_a_target() {
        assert!(matches!(replay_filter(&replay_args(&[])), Err(CtlError::Usage(_))));
        assert_eq!(replay_filter(&replay_args(&["--all"])).unwrap(), Map::new());
        let account = "0190a5c8-0000-7000-8000-0000000000aa";
        let f = replay_filter(&replay_args(&[
            "--account",
            account,
            "--platform",
            "linkedin",
            "--kind",
            "rejected",
            "--reason",
            "Duplicate",
            "--since",
            "2025-01-31T13:00:00+01:00",
        ]))
        .unwrap();
        assert_eq!(
            Value::Object(f),
            json!({"account_id": account, "platform": "linkedin", "kind": "rejected",
                   "reason": "Duplicate", "since": "2025-01-31T12:00:00Z"})
        );
        let post = "0190a5c8-0000-7000-8000-0000000000bb";
        let f = replay_filter(&replay_args(&["--post", post])).unwrap();
        assert_eq!(Value::Object(f), json!({"post_id": post}));
    }

    #[test]
    fn bad_filters_are_refused_by_the_parser() {
        let parse = |args: &[&str]| {
            let all =
                ["lifelinectl", "dead-letters", "replay"].into_iter().chain(args.iter().copied());
            crate::cli::Cli::try_parse_from(all)
        };
        assert!(parse(&["--kind", "boom"]).is_err());
        assert!(parse(&["--platform", "myspace"]).is_err());
        assert!(parse(&["--since", "yesterday"]).is_err());
        assert!(parse(&["--post", "0190a5c8-0000-7000-8000-0000000000bb", "--all"]).is_err());
        let list = ["lifelinectl", "dead-letters", "list", "--limit", "0"];
        assert!(crate::cli::Cli::try_parse_from(list).is_err());
    }

    #[test]
    fn the_list_query_carries_filters_cursor_and_limit() {
        let all = [
            "lifelinectl",
            "dead-letters",
            "list",
            "--platform",
            "x",
            "--reason",
            "too long",
            "--cursor",
            "12_abc",
            "--limit",
            "5",
        ];
        let crate::cli::Command::DeadLetters(DeadLettersCommand::List(args)) =
            crate::cli::Cli::try_parse_from(all).expect("valid").command
        else {
            panic!("parsed as another command")
        };
        let q = list_query(&args);
        for pair in [("platform", "x"), ("reason", "too long"), ("after", "12_abc"), ("limit", "5")]
        {
            assert!(q.contains(&(pair.0, pair.1.to_owned())), "{pair:?} in {q:?}");
        }
    }

    #[test]
    fn a_page_reads_the_publishers_answer() {
        let page: DeadLetterPage = serde_json::from_str(
            r#"{"dead_letters":[{"workspace_id":"0190a5c8-0000-7000-8000-0000000000cc",
                "post_id":"0190a5c8-0000-7000-8000-000000000001",
                "account_id":"0190a5c8-0000-7000-8000-0000000000aa","platform":"x","body":"hi",
                "kind":"rejected","reason":"duplicate","attempts":1,
                "dead_lettered_at":"2025-03-01T12:00:00Z","replay_count":0}],"next":"1_x"}"#,
        )
        .expect("parses");
        assert_eq!(page.next.as_deref(), Some("1_x"));
        let rendered = table(&page.dead_letters).render();
        assert!(
            rendered.contains("rejected")
                && rendered.contains("0190a5c8-0000-7000-8000-0000000000cc")
        );
    }

    #[test]
    fn counts_read_as_a_short_list() {
        let mut m = std::collections::BTreeMap::new();
        assert_eq!(counts(&m), "-");
        m.insert("x".to_owned(), 2);
        m.insert("linkedin".to_owned(), 1);
        assert_eq!(counts(&m), "linkedin 1, x 2");
    }
}
