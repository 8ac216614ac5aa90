//! The command line: global flags (each with an environment fallback) and one subcommand group
//! per concern. Values are parsed into domain types here, so a typo fails before any I/O.

use std::{str::FromStr, time::Duration};

use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};
use lifeline_events::{Platform, EVENT_NAMES};
use lifeline_kit::{
    auth::Role,
    ids::{AccountId, PostId, WorkspaceId},
};
use secrecy::SecretString;
use url::Url;

#[derive(Debug, Parser)]
#[command(name = "lifelinectl", version, about = "Operator CLI for Lifeline", max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Where the services are and how to authenticate. `global = true` lets them go before or after
/// the subcommand.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// NATS server(s) with JetStream, comma-separated; authentication and TLS come from the
    /// same `LIFELINE_NATS_*` variables as the services' (docs/configuration.md).
    #[arg(long, global = true, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,
    /// Root of every subject (`<root>.events.v1.…`).
    #[arg(
        long,
        global = true,
        env = "LIFELINE_SUBJECT_ROOT",
        default_value = "lifeline",
        value_parser = parse_name_token
    )]
    pub subject_root: String,
    /// Prefix of the stream names (`LIFELINE` reads the stream `LIFELINE_EVENTS`).
    #[arg(
        long,
        global = true,
        env = "LIFELINE_STREAM_PREFIX",
        default_value = "LIFELINE",
        value_parser = parse_name_token
    )]
    pub stream_prefix: String,
    /// Base URL of auth-gateway (accounts API).
    #[arg(
        long,
        global = true,
        env = "LIFELINE_GATEWAY_URL",
        default_value = "http://127.0.0.1:8080",
        value_parser = parse_base_url
    )]
    pub gateway_url: Url,
    /// Base URL of the publisher (posts and dead-letter API).
    #[arg(
        long,
        global = true,
        env = "LIFELINE_PUBLISHER_URL",
        default_value = "http://127.0.0.1:8081",
        value_parser = parse_base_url
    )]
    pub publisher_url: Url,
    /// Base URL of the notifier (notifications API).
    #[arg(
        long,
        global = true,
        env = "LIFELINE_NOTIFIER_URL",
        default_value = "http://127.0.0.1:8082",
        value_parser = parse_base_url
    )]
    pub notifier_url: Url,
    /// API bearer token (a JWT). Ignored when --workspace is given.
    #[arg(
        long,
        global = true,
        env = "LIFELINE_TOKEN",
        hide_env_values = true,
        value_parser = parse_secret
    )]
    pub token: Option<SecretString>,
    /// Workspace to act for: API commands mint a short-lived token for it with
    /// LIFELINE_JWT_SECRET; `token mint` also accepts `new` for a fresh workspace.
    #[arg(long, global = true, value_name = "UUID|new")]
    pub workspace: Option<WorkspaceArg>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Mint API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Watch the event stream.
    #[command(subcommand)]
    Events(EventsCommand),
    /// Connected accounts and their health (auth-gateway).
    #[command(subcommand)]
    Accounts(AccountsCommand),
    /// Scheduled and published posts (publisher).
    #[command(subcommand)]
    Posts(PostsCommand),
    /// Posts that could not go out, and replaying them (publisher).
    #[command(subcommand)]
    DeadLetters(crate::dead_letters::DeadLettersCommand),
    /// The history of dead-letter replays and one replay's progress (publisher).
    #[command(subcommand)]
    Replays(crate::replays::ReplaysCommand),
    /// In-app notifications (notifier).
    #[command(subcommand)]
    Notifications(NotificationsCommand),
    /// Print a single-use link that signs a browser in to the Accounts page (auth-gateway);
    /// send it to the workspace's owner. Needs an API token, like the other API commands.
    PageLink(PageLinkArgs),
    /// Every durable consumer of the events stream, Lifeline's and other teams', with its lag.
    Consumers(ConsumersArgs),
    /// Messages event consumers gave up on (LIFELINE_DLQ): list, show, replay, purge.
    ///
    /// NATS only. Not the publisher's dead-lettered posts, which are `dead-letters`.
    #[command(subcommand)]
    Dlq(crate::dlq::DlqCommand),
    /// Vault key rotation: rows per key, and re-encrypting every row under the active key.
    /// Reaches Postgres directly (DATABASE_URL) with the services' LIFELINE_VAULT_KEYS.
    #[command(subcommand)]
    Vault(VaultCommand),
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Print an HS256 JWT for --workspace, signed with LIFELINE_JWT_SECRET.
    Mint(MintArgs),
}

#[derive(Debug, Args)]
pub struct MintArgs {
    /// The token's `sub` claim: who is calling (only logged by the services).
    #[arg(long, default_value = "lifelinectl", value_parser = parse_token_subject)]
    pub subject: String,
    /// Lifetime, like 30m, 12h or 24h; at most LIFELINE_JWT_MAX_TTL (default 24h), since the
    /// services refuse longer-lived tokens.
    #[arg(long, default_value = "24h", value_parser = parse_ttl)]
    pub ttl: Duration,
    /// `member` (its workspace only) or `operator` (also the operator endpoints, across
    /// workspaces).
    #[arg(long, default_value = "member", value_parser = parse_role)]
    pub role: Role,
}

pub fn parse_role(s: &str) -> Result<Role, String> {
    match s {
        "member" => Ok(Role::Member),
        "operator" => Ok(Role::Operator),
        other => Err(format!("unknown role {other:?}: member or operator")),
    }
}

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Print events as they arrive (an ephemeral ordered consumer; nothing is acknowledged).
    Tail(TailArgs),
}

#[derive(Debug, Args)]
pub struct TailArgs {
    /// Only this event kind, e.g. auth_failed.
    #[arg(long, value_parser = parse_event_name)]
    pub event: Option<String>,
    /// Only this platform.
    #[arg(long)]
    pub platform: Option<Platform>,
    /// Only this account.
    #[arg(long, value_name = "UUID")]
    pub account: Option<AccountId>,
    /// Start from the oldest event the stream still holds instead of only new ones.
    #[arg(long)]
    pub all: bool,
    /// One JSON object per line instead of the human form.
    #[arg(long)]
    pub json: bool,
    /// Exit after printing this many events.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print the service's JSON answer as is.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum AccountsCommand {
    /// List the workspace's accounts with their status and broken-connection cause.
    List(ListArgs),
    /// The current state of every account from the LIFELINE_ACCOUNTS bucket (NATS, no token):
    /// all workspaces, or --workspace's; then the stream sequence to follow the events from.
    State(AccountsStateArgs),
}

#[derive(Debug, Args)]
pub struct AccountsStateArgs {
    /// One JSON object (`accounts`, `follow_from_sequence`) instead of the table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ConsumersArgs {
    /// One JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PageLinkArgs {
    /// Open the page at this account (the link's page scrolls to it).
    #[arg(long, value_name = "UUID")]
    pub account: Option<AccountId>,
    /// Print the service's JSON answer (`url`, `expires_at`) as is.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum PostsCommand {
    /// List posts, newest first as the publisher returns them.
    List(PostsListArgs),
    /// Edit the text or media of a post that has not gone out, or move it (--at).
    Edit(PostEditArgs),
    /// Cancel a post that has not gone out (scheduled, or waiting for a reconnect).
    Cancel(PostCancelArgs),
}

#[derive(Debug, Args)]
pub struct PostsListArgs {
    /// Only this account's posts.
    #[arg(long, value_name = "UUID")]
    pub account: Option<AccountId>,
    /// Only posts in this status; several separated by commas (the publisher validates them).
    #[arg(long)]
    pub status: Option<String>,
    /// Only this platform's posts.
    #[arg(long)]
    pub platform: Option<Platform>,
    /// Only posts scheduled at or after this moment (RFC 3339).
    #[arg(long, value_name = "RFC3339", value_parser = parse_rfc3339)]
    pub from: Option<DateTime<Utc>>,
    /// Only posts scheduled before this moment (RFC 3339).
    #[arg(long, value_name = "RFC3339", value_parser = parse_rfc3339)]
    pub to: Option<DateTime<Utc>>,
    /// Posts per page (1 to 1000).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub limit: u32,
    /// Follow the pages to the end instead of printing only the first.
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub list: ListArgs,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("change").required(true).multiple(true)
    .args(["text", "at", "media_url", "no_media"])))]
pub struct PostEditArgs {
    /// The post to change.
    #[arg(long, value_name = "UUID")]
    pub post: PostId,
    /// The new text.
    #[arg(long)]
    pub text: Option<String>,
    /// The new publishing time (RFC 3339); only while the post is still scheduled.
    #[arg(long, value_name = "RFC3339", value_parser = parse_rfc3339)]
    pub at: Option<DateTime<Utc>>,
    /// New media URL (with --media-kind).
    #[arg(long, value_name = "URL", requires = "media_kind", conflicts_with = "no_media")]
    pub media_url: Option<String>,
    /// `image` or `video`.
    #[arg(long, value_parser = ["image", "video"], requires = "media_url")]
    pub media_kind: Option<String>,
    /// Remove the post's media.
    #[arg(long)]
    pub no_media: bool,
    /// Print the service's JSON answer as is.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PostCancelArgs {
    /// The post to cancel.
    #[arg(long, value_name = "UUID")]
    pub post: PostId,
    /// Print the service's JSON answer as is.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum NotificationsCommand {
    /// List the workspace's in-app notifications.
    List(ListArgs),
}

#[derive(Debug, Subcommand)]
pub enum VaultCommand {
    /// Rows and open OAuth sessions per key id; fails when a row's key id is not in
    /// LIFELINE_VAULT_KEYS.
    Status(StatusArgs),
    /// Re-encrypt every credential not under the active key (LIFELINE_VAULT_ACTIVE_KEY, default
    /// the last of LIFELINE_VAULT_KEYS), in batches, without changing any credential's version.
    /// Safe to run while the services run, and to run again: rows already under the active key
    /// are skipped.
    Rewrap(RewrapArgs),
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// One JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RewrapArgs {
    /// Rows per batch; each batch is one short transaction.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub batch: u32,
    /// Pause between batches (like 50ms), to leave the database to the services.
    #[arg(long, default_value = "0s", value_parser = parse_pause)]
    pub pause: Duration,
    /// Re-wrap what can be re-wrapped even though some rows are under key ids not in
    /// LIFELINE_VAULT_KEYS (those are left as they are, and the command still fails at the end).
    #[arg(long)]
    pub skip_unknown_keys: bool,
}

/// `--workspace`: an existing workspace, or `new` to generate one (only meaningful when minting).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkspaceArg {
    New,
    Id(WorkspaceId),
}

impl FromStr for WorkspaceArg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "new" {
            return Ok(WorkspaceArg::New);
        }
        s.parse()
            .map(WorkspaceArg::Id)
            .map_err(|e| format!("expected a workspace UUID or `new`: {e}"))
    }
}

/// Rejects event names that no producer emits, listing the valid ones, so a typo does not
/// silently tail nothing.
pub fn parse_event_name(s: &str) -> Result<String, String> {
    if EVENT_NAMES.contains(&s) {
        Ok(s.to_owned())
    } else {
        Err(format!("unknown event {s:?}; valid events: {}", EVENT_NAMES.join(", ")))
    }
}

/// A subject root or stream prefix becomes part of a subject or stream name; dots or wildcards
/// would silently change what a filter matches.
pub fn parse_name_token(s: &str) -> Result<String, String> {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        Ok(s.to_owned())
    } else {
        Err("use letters, digits, '-' or '_' only".to_owned())
    }
}

/// A service base URL; the API paths are joined onto it, so it may carry a path prefix (a
/// gateway behind an ingress at `/lifeline/`).
pub fn parse_base_url(s: &str) -> Result<Url, String> {
    let mut url = Url::parse(s).map_err(|e| format!("{s:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{s:?} must start with http:// or https://"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("{s:?} must not have a query or fragment"));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// `--ttl`: a kit duration (`30m`, `24h`, `7d`), positive and bounded.
pub fn parse_ttl(s: &str) -> Result<Duration, String> {
    let digits = s.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(s.len());
    // `parse_duration` converts through f64 seconds and would panic past u64::MAX seconds; ten
    // digits of any unit stays far below that.
    if digits > 10 {
        return Err(format!("{s:?} is too long a lifetime"));
    }
    match lifeline_kit::config::parse_duration(s) {
        Some(d) if d >= Duration::from_secs(1) => Ok(d),
        Some(_) => Err("the lifetime must be at least 1s".to_owned()),
        None => Err(format!("{s:?} is not a duration like 30m, 24h or 7d")),
    }
}

/// `--pause`: a kit duration from 0s up to a minute.
pub fn parse_pause(s: &str) -> Result<Duration, String> {
    match lifeline_kit::config::parse_duration(s) {
        Some(d) if d <= Duration::from_secs(60) => Ok(d),
        Some(_) => Err("the pause must be at most 60s".to_owned()),
        None => Err(format!("{s:?} is not a duration like 0s, 50ms or 1s")),
    }
}

fn parse_token_subject(s: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        Err("the subject must not be empty".to_owned())
    } else {
        Ok(s.to_owned())
    }
}

pub(crate) fn parse_rfc3339(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{s:?} is not an RFC 3339 time like 2025-01-31T12:00:00Z: {e}"))
}

/// Keeps the token in a `SecretString` from the moment it is parsed, so `Debug` never shows it.
fn parse_secret(s: &str) -> Result<SecretString, String> {
    if s.trim().is_empty() {
        Err("the token must not be empty".to_owned())
    } else {
        Ok(SecretString::from(s.trim().to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("lifelinectl").chain(args.iter().copied()))
    }

    #[test]
    fn the_command_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn unknown_events_are_rejected_with_the_valid_names() {
        let err = parse(&["events", "tail", "--event", "auth_fail"]).expect_err("typo");
        let msg = err.to_string();
        assert!(msg.contains("auth_failed") && msg.contains("post_dead_lettered"), "{msg}");
        for name in EVENT_NAMES {
            parse(&["events", "tail", "--event", name]).expect("valid event");
        }
    }

    #[test]
    fn invalid_platforms_and_ids_are_rejected() {
        assert!(parse(&["events", "tail", "--platform", "myspace"]).is_err());
        assert!(parse(&["events", "tail", "--account", "nope"]).is_err());
        assert!(parse(&["events", "tail", "--count", "0"]).is_err());
        let cli = parse(&["events", "tail", "--platform", "linkedin", "--count", "3"]).expect("ok");
        let Command::Events(EventsCommand::Tail(args)) = cli.command else {
            panic!("parsed as another command")
        };
        assert_eq!(args.platform, Some(Platform::LinkedIn));
        assert_eq!(args.count, Some(3));
    }

    #[test]
    fn replay_takes_one_post_or_filters_but_not_both() {
        let id = "0190a5c8-0000-7000-8000-000000000000";
        assert!(parse(&["dead-letters", "replay", "--post", id, "--all"]).is_err());
        assert!(parse(&["dead-letters", "replay", "--all", "--since", "yesterday"]).is_err());
        parse(&["dead-letters", "replay", "--post", id]).expect("one post");
        parse(&[
            "dead-letters",
            "replay",
            "--account",
            id,
            "--since",
            "2025-01-31T12:00:00Z",
            "--dry-run",
        ])
        .expect("bulk with filters");
        parse(&["replays", "list", "--limit", "5"]).expect("history");
    }

    #[test]
    fn global_flags_work_on_either_side_of_the_subcommand() {
        let cli =
            parse(&["--subject-root", "t1", "accounts", "list", "--gateway-url", "http://gw:9/x"])
                .expect("ok");
        assert_eq!(cli.global.subject_root, "t1");
        assert_eq!(cli.global.gateway_url.as_str(), "http://gw:9/x/");
        assert!(parse(&["--subject-root", "a.b", "accounts", "list"]).is_err());
        assert!(parse(&["--stream-prefix", "A>", "accounts", "list"]).is_err());
        assert!(parse(&["--publisher-url", "ftp://x", "posts", "list"]).is_err());
    }

    #[test]
    fn vault_rewrap_takes_a_bounded_batch_and_pause() {
        let cli = parse(&["vault", "rewrap"]).expect("defaults");
        let Command::Vault(VaultCommand::Rewrap(args)) = cli.command else {
            panic!("parsed as another command")
        };
        assert_eq!((args.batch, args.pause, args.skip_unknown_keys), (500, Duration::ZERO, false));
        let cli = parse(&["vault", "rewrap", "--batch", "50", "--pause", "20ms"]).expect("ok");
        let Command::Vault(VaultCommand::Rewrap(args)) = cli.command else {
            panic!("parsed as another command")
        };
        assert_eq!((args.batch, args.pause), (50, Duration::from_millis(20)));
        assert!(parse(&["vault", "rewrap", "--batch", "0"]).is_err());
        assert!(parse(&["vault", "rewrap", "--pause", "5m"]).is_err());
        parse(&["vault", "status", "--json"]).expect("status");
    }

    #[test]
    fn workspace_accepts_a_uuid_or_new() {
        assert_eq!("new".parse::<WorkspaceArg>(), Ok(WorkspaceArg::New));
        assert!(matches!(
            "0190a5c8-0000-7000-8000-000000000000".parse::<WorkspaceArg>(),
            Ok(WorkspaceArg::Id(_))
        ));
        assert!("acme".parse::<WorkspaceArg>().is_err());
    }

    #[test]
    fn ttl_is_a_bounded_positive_duration() {
        assert_eq!(parse_ttl("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_ttl("30m"), Ok(Duration::from_secs(1_800)));
        assert!(parse_ttl("0s").is_err());
        assert!(parse_ttl("24").is_err());
        assert!(parse_ttl("tomorrow").is_err());
        assert!(parse_ttl("99999999999999999999999d").is_err(), "must not panic");
    }
}
