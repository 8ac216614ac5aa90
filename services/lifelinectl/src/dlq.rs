//! `dlq`: the event dead-letter stream (`<prefix>_DLQ`, subjects `<root>.dlq.<consumer>`), where
//! a consumer copies a message it gives up on (`lifeline_kit::bus`, docs/events.md "Dead
//! letters"). Lists and shows them with the payload decoded by `events.rs`, replays them to their
//! original subject, and purges them. NATS only, like `events tail`.
//!
//! Replay publishes the original payload with the original headers (less the `Lifeline-Dlq-*`
//! ones and NATS' own `Nats-*` control headers), a new `Nats-Msg-Id` and
//! `Lifeline-Replayed-From: <DLQ sequence>`, waits for JetStream's ack from the events stream,
//! and only then deletes the dead letter. The new id is derived from the original message (its
//! events-stream sequence, subject and payload), so the copies several consumers made of one
//! message, or a replay retried within the stream's 2-minute duplicate window, publish it once.

use std::time::Duration;

use async_nats::{
    jetstream::{
        self,
        consumer::{pull, AckPolicy, DeliverPolicy},
        stream::{DeleteMessageErrorKind, LastRawMessageErrorKind, Stream},
        ErrorCode,
    },
    HeaderMap,
};
use chrono::{DateTime, SecondsFormat, Utc};
use clap::{ArgGroup, Args, Subcommand};
use futures::StreamExt;
use lifeline_events::{Platform, Subjects, EVENT_NAMES};
use lifeline_kit::bus::headers;
use serde_json::{json, Map, Value};

use crate::{
    cli::{parse_event_name, GlobalArgs},
    consumers::age,
    events::{decode_message, Decoded},
    output::{self, Table},
    CtlError,
};

/// `Lifeline-Replayed-From`: the DLQ stream sequence a replayed message came from.
pub const REPLAYED_FROM: &str = "Lifeline-Replayed-From";
/// Prefix of the headers a consumer adds to its dead-lettered copy.
const DLQ_HEADER_PREFIX: &str = "Lifeline-Dlq-";
/// More than this many dead letters in one replay or purge needs `--yes`.
pub const CONFIRM_ABOVE: usize = 10;
/// `dlq list` shows this many unless `--limit` says otherwise.
pub const DEFAULT_LIST_LIMIT: usize = 100;
/// How many payload bytes `show` prints as hex when the payload does not decode.
const HEX_PREFIX_BYTES: usize = 32;
/// How long reading the stream may wait for the next message it was told is pending.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

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

/// One message of the DLQ stream.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// Its sequence in the DLQ stream.
    pub seq: u64,
    /// Its DLQ subject, `<root>.dlq.<consumer>`.
    pub subject: String,
    /// When the DLQ stream stored it.
    pub stored_at: DateTime<Utc>,
    /// Every header, the original ones first (by name), then the `Lifeline-Dlq-*` ones.
    pub headers: Vec<(String, String)>,
    pub payload: Vec<u8>,
}

fn is_dlq_header(name: &str) -> bool {
    name.len() >= DLQ_HEADER_PREFIX.len()
        && name[..DLQ_HEADER_PREFIX.len()].eq_ignore_ascii_case(DLQ_HEADER_PREFIX)
}

/// The headers of a message as name/value pairs in a stable order: the original ones by name,
/// then the `Lifeline-Dlq-*` ones in the order docs/events.md lists them.
pub fn header_pairs(map: Option<&HeaderMap>) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = map
        .into_iter()
        .flat_map(HeaderMap::iter)
        .flat_map(|(name, values)| {
            values.iter().map(move |v| (name.to_string(), v.as_str().to_owned()))
        })
        .collect();
    let dlq_order = [
        headers::DLQ_REASON,
        headers::DLQ_ORIGINAL_SUBJECT,
        headers::DLQ_CONSUMER,
        headers::DLQ_STREAM_SEQUENCE,
    ];
    let rank = |name: &str| {
        if is_dlq_header(name) {
            1 + dlq_order
                .iter()
                .position(|d| d.eq_ignore_ascii_case(name))
                .unwrap_or(dlq_order.len())
        } else {
            0
        }
    };
    // Stable: several values of one header keep their order.
    pairs.sort_by(|a, b| {
        (rank(&a.0), a.0.to_ascii_lowercase()).cmp(&(rank(&b.0), b.0.to_ascii_lowercase()))
    });
    pairs
}

/// `gave up after 10 deliveries` → 10: the only place a dead letter records its deliveries.
pub fn deliveries_in(reason: &str) -> Option<u64> {
    let rest = reason.split("gave up after ").nth(1)?;
    let (n, unit) = rest.split_once(' ')?;
    unit.starts_with("deliver").then(|| n.parse().ok()).flatten()
}

/// 64-bit FNV-1a: a stable fingerprint (the same in every build) for the replay id.
fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in part.iter().chain(std::iter::once(&0xff)) {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

/// `ff 00 13 37 …` → `ff001337…`: the first bytes of a payload, for one that does not decode.
pub fn hex_prefix(payload: &[u8]) -> String {
    let mut hex: String =
        payload.iter().take(HEX_PREFIX_BYTES).map(|b| format!("{b:02x}")).collect();
    if payload.len() > HEX_PREFIX_BYTES {
        hex.push('…');
    }
    hex
}

impl DeadLetter {
    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The durable that gave up: its header, or else the DLQ subject's last token.
    pub fn consumer(&self) -> &str {
        self.header(headers::DLQ_CONSUMER)
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| self.subject.rsplit('.').next().unwrap_or_default())
    }

    pub fn reason(&self) -> Option<&str> {
        self.header(headers::DLQ_REASON)
    }

    pub fn original_subject(&self) -> Option<&str> {
        self.header(headers::DLQ_ORIGINAL_SUBJECT).filter(|s| !s.is_empty())
    }

    /// Its sequence in the events stream (`0`, or absent, when the consumer did not know it).
    pub fn original_sequence(&self) -> Option<u64> {
        self.header(headers::DLQ_STREAM_SEQUENCE)?.trim().parse().ok().filter(|s| *s > 0)
    }

    /// How many deliveries the consumer made before giving up, when the reason says.
    pub fn deliveries(&self) -> Option<u64> {
        self.reason().and_then(deliveries_in)
    }

    /// The `<event>` segment of the original subject.
    pub fn event_name<'a>(&'a self, subjects: &Subjects) -> Option<&'a str> {
        subjects.parse_event(self.original_subject()?).map(|(name, _, _)| name)
    }

    /// The payload decoded as the event its original subject names.
    pub fn decode(&self, subjects: &Subjects) -> Result<Decoded, String> {
        let subject = self
            .original_subject()
            .ok_or_else(|| format!("no {} header", headers::DLQ_ORIGINAL_SUBJECT))?;
        decode_message(subjects, subject, &self.payload).map_err(|e| e.to_string())
    }

    /// The subject a replay publishes to, or why it must not: it has to be an events subject of
    /// a known event, platform and account under the configured root, or the message would be
    /// published where no Lifeline consumer (or the wrong stream) picks it up.
    pub fn replay_subject(&self, subjects: &Subjects) -> Result<&str, String> {
        let Some(subject) = self.original_subject() else {
            return Err(format!(
                "it has no {} header, so where it came from is unknown",
                headers::DLQ_ORIGINAL_SUBJECT
            ));
        };
        let not_ours = || {
            format!(
                "its original subject {subject:?} is not an events subject under the root {:?} \
                 ({}.events.v1.<event>.<platform>.<account>; check --subject-root)",
                subjects.root(),
                subjects.root()
            )
        };
        if subject.chars().any(|c| c == '*' || c == '>' || c.is_whitespace() || c.is_control()) {
            return Err(not_ours());
        }
        let (event, platform, account) = subjects.parse_event(subject).ok_or_else(not_ours)?;
        if !EVENT_NAMES.contains(&event) {
            return Err(format!(
                "its original subject {subject:?} names the unknown event {event:?}"
            ));
        }
        if platform.parse::<Platform>().is_err() || uuid::Uuid::parse_str(account).is_err() {
            return Err(not_ours());
        }
        Ok(subject)
    }

    /// The replay's `Nats-Msg-Id`: new (never the original event id, which the duplicate window
    /// may still hold), and the same for every copy of one original message, so those publish
    /// once within the window.
    pub fn replay_msg_id(&self) -> String {
        let fingerprint =
            fnv1a(&[self.original_subject().unwrap_or_default().as_bytes(), &self.payload]);
        match self.original_sequence() {
            Some(seq) => format!("replay-{seq}-{fingerprint:016x}"),
            None => format!("replay-dlq{}-{fingerprint:016x}", self.seq),
        }
    }

    /// The replay's headers: the original ones except `Lifeline-Dlq-*`, NATS' `Nats-*` control
    /// headers (`Nats-Msg-Id` is replaced; an `Nats-Expected-*` or `Nats-Rollup` must not act
    /// again) and an older `Lifeline-Replayed-From`; then the new id and where it came from.
    pub fn replay_headers(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .headers
            .iter()
            .filter(|(name, _)| {
                !is_dlq_header(name)
                    && !name.to_ascii_lowercase().starts_with("nats-")
                    && !name.eq_ignore_ascii_case(REPLAYED_FROM)
            })
            .cloned()
            .collect();
        out.push((headers::MSG_ID.to_owned(), self.replay_msg_id()));
        out.push((REPLAYED_FROM.to_owned(), self.seq.to_string()));
        out
    }

    fn age_seconds(&self, now: DateTime<Utc>) -> i64 {
        (now - self.stored_at).num_seconds().max(0)
    }

    /// One `list` entry.
    pub fn summary_json(&self, subjects: &Subjects, now: DateTime<Utc>) -> Value {
        json!({
            "seq": self.seq,
            "stored_at": self.stored_at.to_rfc3339_opts(SecondsFormat::Millis, true),
            "age_seconds": self.age_seconds(now),
            "consumer": self.consumer(),
            "original_subject": self.original_subject(),
            "original_stream_sequence": self.original_sequence(),
            "event": self.event_name(subjects),
            "reason": self.reason(),
            "deliveries": self.deliveries(),
        })
    }

    /// Everything `show --json` prints.
    pub fn detail_json(&self, subjects: &Subjects, stream: &str, now: DateTime<Utc>) -> Value {
        let mut value = self.summary_json(subjects, now);
        let mut header_obj = Map::new();
        for (name, v) in &self.headers {
            match header_obj.get_mut(name) {
                None => {
                    header_obj.insert(name.clone(), json!(v));
                }
                Some(Value::Array(items)) => items.push(json!(v)),
                Some(first) => *first = json!([first.clone(), v]),
            }
        }
        let payload = match self.decode(subjects) {
            Ok(decoded) => json!({
                "size": self.payload.len(),
                "decoded": true,
                "event": decoded.to_json(),
            }),
            Err(error) => json!({
                "size": self.payload.len(),
                "decoded": false,
                "decode_error": error,
                "hex_prefix": hex_prefix(&self.payload),
            }),
        };
        if let Value::Object(map) = &mut value {
            map.insert("stream".into(), json!(stream));
            map.insert("subject".into(), json!(self.subject));
            map.insert("headers".into(), Value::Object(header_obj));
            map.insert("payload".into(), payload);
        }
        value
    }

    /// `show`'s human form.
    pub fn detail_text(&self, subjects: &Subjects, stream: &str, now: DateTime<Utc>) -> String {
        let mut out = format!(
            "dead letter {} in {stream} ({}), stored {} ({} ago)\n",
            self.seq,
            self.subject,
            self.stored_at.to_rfc3339_opts(SecondsFormat::Secs, true),
            age(self.age_seconds(now)),
        );
        let line = |out: &mut String, k: &str, v: &str| {
            out.push_str(&format!("{k:<18} {}\n", output::cell(v, 400)));
        };
        line(&mut out, "consumer:", self.consumer());
        line(&mut out, "reason:", self.reason().unwrap_or("-"));
        line(&mut out, "deliveries:", &self.deliveries().map_or("-".into(), |d| d.to_string()));
        line(&mut out, "original subject:", self.original_subject().unwrap_or("- (missing)"));
        line(
            &mut out,
            "original seq:",
            &self.original_sequence().map_or("-".into(), |s| s.to_string()),
        );
        line(
            &mut out,
            "replay:",
            &match self.replay_subject(subjects) {
                Ok(s) => format!("to {s} as Nats-Msg-Id {}", self.replay_msg_id()),
                Err(why) => format!("refused: {why}"),
            },
        );
        out.push_str("headers:\n");
        for (name, value) in &self.headers {
            out.push_str(&format!("  {name}: {}\n", output::cell(value, 400)));
        }
        match self.decode(subjects) {
            Ok(decoded) => {
                out.push_str(&format!(
                    "payload ({} bytes, decodes as {}):\n",
                    self.payload.len(),
                    decoded.event.name()
                ));
                let pretty = serde_json::to_string_pretty(&decoded.to_json()).unwrap_or_default();
                for l in pretty.lines() {
                    out.push_str("  ");
                    out.push_str(l);
                    out.push('\n');
                }
            }
            Err(error) => {
                out.push_str(&format!(
                    "payload ({} bytes) DOES NOT DECODE: {}\n  hex: {}\n",
                    self.payload.len(),
                    output::cell(&error, 400),
                    if self.payload.is_empty() {
                        "(empty)".into()
                    } else {
                        hex_prefix(&self.payload)
                    },
                ));
            }
        }
        out.pop();
        out
    }
}

/// The `list` table.
pub fn table(dead: &[DeadLetter], now: DateTime<Utc>) -> Table {
    let mut t = Table::new(&["SEQ", "AGE", "CONSUMER", "DELIVERIES", "ORIGINAL_SUBJECT", "REASON"]);
    for d in dead {
        t.row(vec![
            d.seq.to_string(),
            age(d.age_seconds(now)),
            d.consumer().to_owned(),
            d.deliveries().map(|n| n.to_string()).unwrap_or_default(),
            d.original_subject().unwrap_or_default().to_owned(),
            output::cell(d.reason().unwrap_or_default(), 80),
        ]);
    }
    t
}

/// Refuses more than [`CONFIRM_ABOVE`] dead letters without `--yes` (a dry run changes nothing,
/// so it needs none).
pub fn confirm(n: usize, args: &DlqTargetArgs, verb: &str) -> Result<(), CtlError> {
    if n <= CONFIRM_ABOVE || args.yes || args.dry_run {
        return Ok(());
    }
    let narrow =
        if args.all { ", or narrow with --consumer, --event, --since or --limit" } else { "" };
    Err(CtlError::Usage(format!(
        "{} selected to {verb}: more than {CONFIRM_ABOVE} need --yes (pass --yes \
         to {verb} all {n}, --dry-run to see them first{narrow})",
        count(n)
    )))
}

/// `1 dead letter`, `3 dead letters`.
pub fn count(n: usize) -> String {
    if n == 1 {
        "1 dead letter".to_owned()
    } else {
        format!("{n} dead letters")
    }
}

/// Sequences as given, sorted (stream order) and without repeats.
pub fn unique_sorted(seqs: &[u64]) -> Vec<u64> {
    let mut out = seqs.to_vec();
    out.sort_unstable();
    out.dedup();
    out
}

impl From<async_nats::jetstream::message::StreamMessage> for DeadLetter {
    fn from(m: async_nats::jetstream::message::StreamMessage) -> DeadLetter {
        DeadLetter {
            seq: m.sequence,
            subject: m.subject.to_string(),
            stored_at: DateTime::from_timestamp(m.time.unix_timestamp(), m.time.nanosecond())
                .unwrap_or_default(),
            headers: header_pairs(Some(&m.headers)),
            payload: m.payload.to_vec(),
        }
    }
}

/// The DLQ stream, opened with the configured names.
struct Dlq {
    js: jetstream::Context,
    stream: Stream,
    name: String,
    events: String,
    subjects: Subjects,
}

impl Dlq {
    async fn open(global: &GlobalArgs) -> Result<Dlq, CtlError> {
        let js = crate::nats::jetstream(global).await?;
        let name = format!("{}_DLQ", global.stream_prefix);
        let stream = js.get_stream(&name).await.map_err(|e| {
            CtlError::JetStream(format!(
                "cannot open stream {name}: {e} (check --stream-prefix or LIFELINE_STREAM_PREFIX)"
            ))
        })?;
        Ok(Dlq {
            js,
            stream,
            name,
            events: format!("{}_EVENTS", global.stream_prefix),
            subjects: Subjects::new(global.subject_root.clone()),
        })
    }

    fn not_found(&self, seqs: &[u64]) -> CtlError {
        let list: Vec<String> = seqs.iter().map(u64::to_string).collect();
        let (what, them) = if seqs.len() == 1 {
            (format!("dead letter {}", list[0]), "it")
        } else {
            (format!("dead letters {}", list.join(", ")), "they")
        };
        CtlError::Dlq(format!(
            "no {what} in {}: {them} may have been replayed or purged already, or expired after \
             30 days (see `lifelinectl dlq list`)",
            self.name
        ))
    }

    /// One dead letter; `Ok(None)` when the stream does not hold that sequence.
    async fn get(&self, seq: u64) -> Result<Option<DeadLetter>, CtlError> {
        match self.stream.get_raw_message(seq).await {
            Ok(msg) => Ok(Some(DeadLetter::from(msg))),
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
            Err(e) => {
                Err(CtlError::JetStream(format!("cannot read message {seq} of {}: {e}", self.name)))
            }
        }
    }

    /// The given sequences, all of them or an error naming the missing ones.
    async fn get_all(&self, seqs: &[u64]) -> Result<Vec<DeadLetter>, CtlError> {
        let mut found = Vec::new();
        let mut missing = Vec::new();
        for seq in unique_sorted(seqs) {
            match self.get(seq).await? {
                Some(d) => found.push(d),
                None => missing.push(seq),
            }
        }
        if missing.is_empty() {
            Ok(found)
        } else {
            Err(self.not_found(&missing))
        }
    }

    /// Reads the stream oldest first through an ephemeral consumer (nothing is acknowledged),
    /// up to the last message it held when the command started, so what a replay dead-letters
    /// again is not picked up a second time. Returns at most `limit` matches, and whether more
    /// matched.
    async fn select(
        &self,
        filter: &Filter,
        limit: Option<usize>,
    ) -> Result<(Vec<DeadLetter>, bool), CtlError> {
        let js_err = |what: &str, e: &dyn std::fmt::Display| {
            CtlError::JetStream(format!("{what} {}: {e}", self.name))
        };
        let info = self.stream.get_info().await.map_err(|e| js_err("cannot read", &e))?;
        let last = info.state.last_sequence;
        if info.state.messages == 0 {
            return Ok((Vec::new(), false));
        }
        let deliver_policy = match filter.since {
            None => DeliverPolicy::All,
            Some(t) => {
                let nanos = t.timestamp_nanos_opt().map_or(0, i128::from);
                match async_nats::datetime::from_nanos(nanos) {
                    Ok(start_time) => DeliverPolicy::ByStartTime { start_time },
                    Err(_) => DeliverPolicy::All,
                }
            }
        };
        let consumer = self
            .stream
            .create_consumer(pull::Config {
                description: Some("lifelinectl dlq".to_owned()),
                filter_subject: filter.subject(&self.subjects),
                deliver_policy,
                ack_policy: AckPolicy::None,
                inactive_threshold: Duration::from_secs(30),
                memory_storage: true,
                ..Default::default()
            })
            .await
            .map_err(|e| js_err("cannot create a consumer on", &e))?;
        let consumer_name = consumer.cached_info().name.clone();
        let mut pending = consumer.cached_info().num_pending;
        let mut found = Vec::new();
        let mut more = false;
        if pending > 0 {
            let mut messages =
                consumer.messages().await.map_err(|e| js_err("cannot read from", &e))?;
            while pending > 0 {
                let next = tokio::time::timeout(READ_TIMEOUT, messages.next())
                    .await
                    .map_err(|_| js_err("no message within 10s while reading", &"timed out"))?;
                let msg = match next {
                    None => break,
                    Some(Ok(msg)) => msg,
                    Some(Err(e)) => return Err(js_err("cannot read from", &e)),
                };
                let (seq, published) = {
                    let info = msg.info().map_err(|e| js_err("bad message metadata from", &e))?;
                    pending = info.pending;
                    (info.stream_sequence, info.published)
                };
                if seq > last {
                    break;
                }
                let dead = DeadLetter {
                    seq,
                    subject: msg.subject.to_string(),
                    stored_at: DateTime::from_timestamp(
                        published.unix_timestamp(),
                        published.nanosecond(),
                    )
                    .unwrap_or_default(),
                    headers: header_pairs(msg.headers.as_ref()),
                    payload: msg.payload.to_vec(),
                };
                if filter.matches(&dead, &self.subjects) {
                    if limit.is_some_and(|l| found.len() >= l) {
                        more = true;
                        break;
                    }
                    found.push(dead);
                }
                if seq >= last {
                    break;
                }
            }
        }
        // Best effort: the server removes it after 30 s of inactivity anyway.
        let _ = self.stream.delete_consumer(&consumer_name).await;
        Ok((found, more))
    }

    async fn targets(&self, args: &DlqTargetArgs) -> Result<Vec<DeadLetter>, CtlError> {
        if args.all {
            let filter = Filter::new(&args.filter, Utc::now());
            let limit = args.filter.limit.map(|l| l as usize);
            Ok(self.select(&filter, limit).await?.0)
        } else {
            self.get_all(&args.seqs).await
        }
    }

    /// Deletes one dead letter; `Ok(false)` when it was gone already.
    async fn delete(&self, seq: u64) -> Result<bool, CtlError> {
        match self.stream.delete_message(seq).await {
            Ok(deleted) => Ok(deleted),
            Err(e)
                if matches!(e.kind(), DeleteMessageErrorKind::JetStream(err)
                    if err.error_code() == ErrorCode::NO_MESSAGE_FOUND) =>
            {
                Ok(false)
            }
            Err(e) => Err(CtlError::JetStream(format!(
                "cannot delete message {seq} of {}: {e}",
                self.name
            ))),
        }
    }

    /// The events stream must hold the events subjects of this root, or a replay would land in
    /// another stream (or none).
    async fn check_events_stream(&self) -> Result<(), CtlError> {
        let stream = self.js.get_stream(&self.events).await.map_err(|e| {
            CtlError::JetStream(format!(
                "cannot open stream {}: {e} (check --stream-prefix or LIFELINE_STREAM_PREFIX)",
                self.events
            ))
        })?;
        let want = self.subjects.all_events();
        if stream.cached_info().config.subjects.contains(&want) {
            Ok(())
        } else {
            Err(CtlError::Dlq(format!(
                "stream {} does not hold {want}: --subject-root and --stream-prefix do not belong \
                 together; nothing was replayed",
                self.events
            )))
        }
    }
}

fn plan_table(dead: &[DeadLetter], subjects: &Subjects, replay: bool) -> Table {
    let mut t = if replay {
        Table::new(&["SEQ", "CONSUMER", "TO_SUBJECT", "NEW_MSG_ID", "PAYLOAD"])
    } else {
        Table::new(&["SEQ", "CONSUMER", "ORIGINAL_SUBJECT", "REASON"])
    };
    let mut ids = std::collections::HashSet::new();
    for d in dead {
        if replay {
            let id = d.replay_msg_id();
            let payload = match d.decode(subjects) {
                Ok(decoded) => decoded.event.name().to_owned(),
                Err(_) => format!("does not decode ({} bytes)", d.payload.len()),
            };
            let payload = if ids.insert(id.clone()) {
                payload
            } else {
                format!("{payload}; a copy of an earlier one: published once")
            };
            t.row(vec![
                d.seq.to_string(),
                d.consumer().to_owned(),
                d.replay_subject(subjects).unwrap_or_default().to_owned(),
                id,
                payload,
            ]);
        } else {
            t.row(vec![
                d.seq.to_string(),
                d.consumer().to_owned(),
                d.original_subject().unwrap_or_default().to_owned(),
                output::cell(d.reason().unwrap_or_default(), 80),
            ]);
        }
    }
    t
}

fn header_map(pairs: &[(String, String)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(name.as_str(), value.as_str());
    }
    map
}

/// `dlq …`.
pub async fn run(global: &GlobalArgs, cmd: &DlqCommand) -> Result<(), CtlError> {
    match cmd {
        DlqCommand::List(args) => list(global, args).await,
        DlqCommand::Show(args) => show(global, args).await,
        DlqCommand::Replay(args) => replay(global, args).await,
        DlqCommand::Purge(args) => purge(global, args).await,
    }
}

async fn list(global: &GlobalArgs, args: &DlqListArgs) -> Result<(), CtlError> {
    let dlq = Dlq::open(global).await?;
    let now = Utc::now();
    let filter = Filter::new(&args.filter, now);
    let limit = args.filter.limit.map_or(DEFAULT_LIST_LIMIT, |l| l as usize);
    let (dead, more) = dlq.select(&filter, Some(limit)).await?;
    if args.json {
        let all: Vec<Value> = dead.iter().map(|d| d.summary_json(&dlq.subjects, now)).collect();
        return output::line(
            &json!({ "stream": dlq.name, "dead_letters": all, "more": more }).to_string(),
        );
    }
    if dead.is_empty() {
        eprintln!("no dead letters in {} match", dlq.name);
        return Ok(());
    }
    output::line(&table(&dead, now).render())?;
    if more {
        eprintln!(
            "showing the oldest {limit}; more match (raise --limit, or narrow with --since, \
             --consumer or --event)"
        );
    }
    Ok(())
}

async fn show(global: &GlobalArgs, args: &DlqShowArgs) -> Result<(), CtlError> {
    let dlq = Dlq::open(global).await?;
    let dead = dlq.get(args.seq).await?.ok_or_else(|| dlq.not_found(&[args.seq]))?;
    let now = Utc::now();
    if args.json {
        output::line(&dead.detail_json(&dlq.subjects, &dlq.name, now).to_string())
    } else {
        output::line(&dead.detail_text(&dlq.subjects, &dlq.name, now))
    }
}

async fn replay(global: &GlobalArgs, args: &DlqTargetArgs) -> Result<(), CtlError> {
    let dlq = Dlq::open(global).await?;
    let dead = dlq.targets(args).await?;
    if dead.is_empty() {
        eprintln!("no dead letters in {} match; nothing to replay", dlq.name);
        return Ok(());
    }
    let refused: Vec<String> = dead
        .iter()
        .filter_map(|d| {
            d.replay_subject(&dlq.subjects).err().map(|why| format!("{}: {why}", d.seq))
        })
        .collect();
    if !refused.is_empty() {
        return Err(CtlError::Dlq(format!(
            "refusing to replay {} of the {} selected; nothing was published. {} \
             (inspect with `lifelinectl dlq show <seq>`, remove with `lifelinectl dlq purge <seq>`)",
            count(refused.len()),
            dead.len(),
            refused.join("; ")
        )));
    }
    confirm(dead.len(), args, "replay")?;
    if args.dry_run {
        output::line(&plan_table(&dead, &dlq.subjects, true).render())?;
        eprintln!(
            "dry run: {} would be replayed to {} and removed from {}; nothing changed",
            count(dead.len()),
            dlq.events,
            dlq.name
        );
        return Ok(());
    }
    dlq.check_events_stream().await?;
    let (mut published, mut duplicates, mut removed) = (0usize, 0usize, 0usize);
    for d in &dead {
        let subject = d.replay_subject(&dlq.subjects).map_err(CtlError::Dlq)?.to_owned();
        let done = format!(
            "(done before this: {published} replayed, {duplicates} duplicates, {removed} removed)"
        );
        let ack = dlq
            .js
            .publish_with_headers(
                subject.clone(),
                header_map(&d.replay_headers()),
                d.payload.clone().into(),
            )
            .await
            .map_err(|e| CtlError::JetStream(format!("cannot publish dead letter {}: {e} {done}", d.seq)))?
            .await
            .map_err(|e| {
                CtlError::JetStream(format!(
                    "no acknowledgement for dead letter {} on {subject}: {e}; it stays in {} {done}",
                    d.seq, dlq.name
                ))
            })?;
        if ack.stream != dlq.events {
            return Err(CtlError::Dlq(format!(
                "dead letter {} was stored by stream {} instead of {}; it stays in {} {done}",
                d.seq, ack.stream, dlq.events, dlq.name
            )));
        }
        let gone = match dlq.delete(d.seq).await {
            Ok(deleted) => deleted,
            Err(e) => {
                return Err(CtlError::Dlq(format!(
                    "dead letter {} was published ({} seq {}) but not removed: {e}; remove it \
                     with `lifelinectl dlq purge {}` {done}",
                    d.seq, dlq.events, ack.sequence, d.seq
                )))
            }
        };
        removed += usize::from(gone);
        let tail = if gone {
            format!("removed from {}", dlq.name)
        } else {
            format!("it had been removed from {} meanwhile", dlq.name)
        };
        if ack.duplicate {
            duplicates += 1;
            output::line(&format!(
                "dead letter {}: the same message was replayed already ({} seq {}, Nats-Msg-Id \
                 {}), not published again; {tail}",
                d.seq,
                dlq.events,
                ack.sequence,
                d.replay_msg_id()
            ))?;
        } else {
            published += 1;
            output::line(&format!(
                "dead letter {} replayed to {subject}: {} seq {}, Nats-Msg-Id {}; {tail}",
                d.seq,
                dlq.events,
                ack.sequence,
                d.replay_msg_id()
            ))?;
        }
    }
    output::line(&format!(
        "replayed {published}, {duplicates} duplicate copies; removed {removed} from {}",
        dlq.name
    ))
}

async fn purge(global: &GlobalArgs, args: &DlqTargetArgs) -> Result<(), CtlError> {
    let dlq = Dlq::open(global).await?;
    let dead = dlq.targets(args).await?;
    if dead.is_empty() {
        eprintln!("no dead letters in {} match; nothing to purge", dlq.name);
        return Ok(());
    }
    confirm(dead.len(), args, "purge")?;
    if args.dry_run {
        output::line(&plan_table(&dead, &dlq.subjects, false).render())?;
        eprintln!(
            "dry run: {} would be deleted from {}; nothing changed",
            count(dead.len()),
            dlq.name
        );
        return Ok(());
    }
    let mut removed = 0usize;
    for d in &dead {
        if dlq.delete(d.seq).await? {
            removed += 1;
            output::line(&format!(
                "purged dead letter {} ({}, {})",
                d.seq,
                d.consumer(),
                d.original_subject().unwrap_or("no original subject")
            ))?;
        } else {
            eprintln!("dead letter {} had been removed from {} meanwhile", d.seq, dlq.name);
        }
    }
    output::line(&format!("purged {removed} from {}", dlq.name))
}

#[cfg(test)]
#[path = "dlq_tests.rs"]
mod tests;
