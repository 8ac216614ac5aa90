//! The DLQ stream: reading dead letters by filter or sequence, and deleting them.

use std::time::Duration;

use async_nats::jetstream::{
    self,
    consumer::{pull, AckPolicy, DeliverPolicy},
    stream::{DeleteMessageErrorKind, LastRawMessageErrorKind, Stream},
    ErrorCode,
};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use lifeline_events::Subjects;

use crate::{cli::GlobalArgs, CtlError};

use super::{header_pairs, unique_sorted, DeadLetter, DlqTargetArgs, Filter, READ_TIMEOUT};

/// The DLQ stream, opened with the configured names.
pub(super) struct Dlq {
    pub(super) js: jetstream::Context,
    pub(super) stream: Stream,
    pub(super) name: String,
    pub(super) events: String,
    pub(super) subjects: Subjects,
}

impl Dlq {
    pub(super) async fn open(global: &GlobalArgs) -> Result<Dlq, CtlError> {
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

    pub(super) fn not_found(&self, seqs: &[u64]) -> CtlError {
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
    pub(super) async fn get(&self, seq: u64) -> Result<Option<DeadLetter>, CtlError> {
        match self.stream.get_raw_message(seq).await {
            Ok(msg) => Ok(Some(DeadLetter::from(msg))),
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
            Err(e) => {
                Err(CtlError::JetStream(format!("cannot read message {seq} of {}: {e}", self.name)))
            }
        }
    }

    /// The given sequences, all of them or an error naming the missing ones.
    pub(super) async fn get_all(&self, seqs: &[u64]) -> Result<Vec<DeadLetter>, CtlError> {
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
    pub(super) async fn select(
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

    pub(super) async fn targets(&self, args: &DlqTargetArgs) -> Result<Vec<DeadLetter>, CtlError> {
        if args.all {
            let filter = Filter::new(&args.filter, Utc::now());
            let limit = args.filter.limit.map(|l| l as usize);
            Ok(self.select(&filter, limit).await?.0)
        } else {
            self.get_all(&args.seqs).await
        }
    }

    /// Deletes one dead letter; `Ok(false)` when it was gone already.
    pub(super) async fn delete(&self, seq: u64) -> Result<bool, CtlError> {
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
    pub(super) async fn check_events_stream(&self) -> Result<(), CtlError> {
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
