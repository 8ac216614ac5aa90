//! One dead letter: its headers, where it came from, how a replay republishes it, and how it is
//! shown.

use async_nats::HeaderMap;
use chrono::{DateTime, SecondsFormat, Utc};
use lifeline_events::{Platform, Subjects, EVENT_NAMES};
use lifeline_kit::bus::headers;
use serde_json::{json, Map, Value};

use crate::{
    consumers::age,
    events::{decode_message, Decoded},
    output::{self, Table},
    CtlError,
};

use super::{DlqTargetArgs, CONFIRM_ABOVE, DLQ_HEADER_PREFIX, HEX_PREFIX_BYTES, REPLAYED_FROM};

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
