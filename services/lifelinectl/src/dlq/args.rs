//! The `dlq` subcommands' arguments, and the filters they resolve to.

use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::{ArgGroup, Args, Subcommand};
use lifeline_events::Subjects;

use crate::cli::parse_event_name;

use super::DeadLetter;

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// List dead letters, oldest first (stream order, the order `replay --all` uses).
    ///
    /// One row per dead letter: its sequence in the DLQ stream, age, the consumer that gave up,
    /// the deliveries made (when the reason records them), the original subject and the reason.
    /// At most --limit (default 100); a note on stderr says when more match.
    List(DlqListArgs),
    /// Show one dead letter: headers, original subject, payload decoded to JSON.
    ///
    /// The headers are the original message's and the Lifeline-Dlq-* ones the consumer added. A
    /// payload that does not decode as the event its original subject names (often why it is
    /// here) is shown as its size and first bytes in hex instead.
    Show(DlqShowArgs),
    /// Publish dead letters again on their original subject, then remove them from the DLQ.
    ///
    /// The original headers are kept, less the Lifeline-Dlq-* and Nats-* ones; the message gets
    /// a new Nats-Msg-Id (the same for every copy of one original message, so those publish once
    /// within the events stream's 2-minute duplicate window) and Lifeline-Replayed-From: <seq>.
    /// Each dead letter is deleted only after JetStream acknowledged its publish. Every consumer
    /// of the subject receives it, not only the one that gave up. A dead letter whose original
    /// subject is not an events subject under --subject-root is refused. More than 10 need --yes.
    Replay(DlqTargetArgs),
    /// Delete dead letters from the DLQ without replaying them. More than 10 need --yes.
    Purge(DlqTargetArgs),
}

/// Which dead letters: by the consumer's DLQ subject, the original event, and age.
#[derive(Debug, Clone, Default, Args)]
#[group(skip)]
pub struct DlqFilterArgs {
    /// Only dead letters of this durable (the consumer that gave up), e.g. notifier-auth_failed.
    #[arg(long, value_name = "DURABLE", value_parser = parse_durable)]
    pub consumer: Option<String>,
    /// Only dead letters whose original subject is this event, e.g. auth_failed.
    #[arg(long, value_parser = parse_event_name)]
    pub event: Option<String>,
    /// Only dead letters stored at or after this moment: an RFC 3339 time, or a duration back
    /// from now like 30m, 2h or 7d.
    #[arg(long, value_name = "RFC3339|DURATION", value_parser = parse_since)]
    pub since: Option<Since>,
    /// At most this many, oldest first (list: default 100; replay and purge --all: every match).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub limit: Option<u32>,
}

#[derive(Debug, Args)]
pub struct DlqListArgs {
    #[command(flatten)]
    pub filter: DlqFilterArgs,
    /// One JSON object (`stream`, `dead_letters`, `more`) instead of the table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DlqShowArgs {
    /// The dead letter's sequence in the DLQ stream (the SEQ column of `dlq list`).
    #[arg(value_name = "SEQ", value_parser = clap::value_parser!(u64).range(1..))]
    pub seq: u64,
    /// One JSON object instead of the human form.
    #[arg(long)]
    pub json: bool,
}

/// The dead letters a replay or purge acts on: sequences, or `--all` narrowed by the filters.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("filters").multiple(true)
    .args(["consumer", "event", "since", "limit"]).requires("all").conflicts_with("seqs")))]
pub struct DlqTargetArgs {
    /// DLQ stream sequences (the SEQ column of `dlq list`).
    #[arg(
        value_name = "SEQ",
        required_unless_present = "all",
        conflicts_with = "all",
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub seqs: Vec<u64>,
    /// Every dead letter the filters select (--consumer, --event, --since, --limit).
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub filter: DlqFilterArgs,
    /// Print what would be done and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Go ahead with more than 10 dead letters.
    #[arg(long)]
    pub yes: bool,
}

/// `--since`: a fixed moment, or a duration back from when the command runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    At(DateTime<Utc>),
    Ago(Duration),
}

impl Since {
    pub fn resolve(self, now: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Since::At(t) => t,
            Since::Ago(d) => chrono::Duration::from_std(d)
                .ok()
                .and_then(|d| now.checked_sub_signed(d))
                .unwrap_or(DateTime::<Utc>::MIN_UTC),
        }
    }
}

pub fn parse_since(s: &str) -> Result<Since, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(Since::At(t.with_timezone(&Utc)));
    }
    let bad = || {
        format!(
            "{s:?} is neither an RFC 3339 time like 2026-12-01T00:00:00Z nor a duration back \
             from now like 30m, 2h or 7d"
        )
    };
    // `parse_duration` goes through f64 seconds; ten digits of any unit is plenty.
    let digits = s.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(s.len());
    if digits > 10 {
        return Err(bad());
    }
    match lifeline_kit::config::parse_duration(s) {
        Some(d) if !d.is_zero() => Ok(Since::Ago(d)),
        _ => Err(bad()),
    }
}

/// `--consumer`: one subject token, since it becomes `<root>.dlq.<durable>`.
pub fn parse_durable(s: &str) -> Result<String, String> {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "{s:?} is not a durable name like notifier-auth_failed (letters, digits, '-' or '_')"
        ))
    }
}

/// The filters, resolved against the time the command runs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    pub consumer: Option<String>,
    pub event: Option<String>,
    pub since: Option<DateTime<Utc>>,
}

impl Filter {
    pub fn new(args: &DlqFilterArgs, now: DateTime<Utc>) -> Filter {
        Filter {
            consumer: args.consumer.clone(),
            event: args.event.clone(),
            since: args.since.map(|s| s.resolve(now)),
        }
    }

    /// The DLQ subjects to read: one consumer's, or all of them.
    pub fn subject(&self, subjects: &Subjects) -> String {
        match &self.consumer {
            Some(c) => subjects.dlq(c),
            None => subjects.all_dlq(),
        }
    }

    /// What the subject filter cannot express: the original event, and the time (checked here
    /// too, so the result does not depend on how the server applied the start time).
    pub fn matches(&self, dead: &DeadLetter, subjects: &Subjects) -> bool {
        let event_ok =
            self.event.as_deref().is_none_or(|want| dead.event_name(subjects) == Some(want));
        let since_ok = self.since.is_none_or(|t| dead.stored_at >= t);
        let consumer_ok = self.consumer.as_deref().is_none_or(|c| dead.subject == subjects.dlq(c));
        event_ok && since_ok && consumer_ok
    }
}
