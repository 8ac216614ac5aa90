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

mod args;
mod letter;
mod stream;

use std::time::Duration;

use async_nats::HeaderMap;
use chrono::Utc;
use lifeline_events::Subjects;
use serde_json::{json, Value};

use crate::{
    cli::GlobalArgs,
    output::{self, Table},
    CtlError,
};

use self::stream::Dlq;
pub use self::{args::*, letter::*};

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
mod tests;
