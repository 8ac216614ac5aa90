//! A subscriber of `<root>.events.v1.>` as another team would write one: a durable pull
//! consumer on the events stream, created by the test, acking what it has recorded. Being
//! durable (and replicated with the stream), losing a NATS node loses nothing it was owed; it
//! re-attaches after a failure and deduplicates redeliveries by stream sequence.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_nats::jetstream::{self, consumer::pull, consumer::AckPolicy, consumer::DeliverPolicy};
use futures::StreamExt as _;
use tokio::task::JoinHandle;

pub const DURABLE: &str = "lifeline-cluster-test";

/// One stored event as the subscriber received it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub seq: u64,
    pub subject: String,
    /// The event kind (`post_published`), from the subject.
    pub name: String,
    pub payload: Vec<u8>,
    pub msg_id: Option<String>,
    /// When the stream stored it (seconds since the epoch).
    pub stored_at: f64,
    /// How many times it was delivered to this subscriber.
    pub delivered: i64,
}

#[derive(Default)]
struct State {
    by_seq: BTreeMap<u64, Recorded>,
    redeliveries: u64,
    errors: Vec<String>,
}

pub struct Recorder {
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Recorder {
    /// Creates the durable consumer (retrying while the stream is not there or has no leader)
    /// and records everything from the stream's first message.
    pub async fn start(
        client: async_nats::Client,
        stream: String,
        root: String,
    ) -> anyhow::Result<Recorder> {
        let js = jetstream::new(client);
        let filter = format!("{root}.events.v1.>");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            match create(&js, &stream, &filter).await {
                Ok(_) => break,
                Err(e) if tokio::time::Instant::now() < deadline => {
                    eprintln!("cluster: creating the subscriber: {e:#}; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => return Err(e),
            }
        }
        let state = Arc::new(Mutex::new(State::default()));
        let task = tokio::spawn(run(js, stream, filter, root, state.clone()));
        Ok(Recorder { state, task })
    }

    /// Every distinct event recorded so far, in stream order.
    pub fn events(&self) -> Vec<Recorded> {
        self.state.lock().map(|s| s.by_seq.values().cloned().collect()).unwrap_or_default()
    }

    pub fn count(&self, name: &str) -> usize {
        self.state.lock().map(|s| s.by_seq.values().filter(|r| r.name == name).count()).unwrap_or(0)
    }

    /// Messages delivered again after they had been recorded (an ack lost with a node).
    pub fn redeliveries(&self) -> u64 {
        self.state.lock().map(|s| s.redeliveries).unwrap_or(0)
    }

    /// Errors the subscriber met and recovered from (consumer lost with a node, …).
    pub fn errors(&self) -> Vec<String> {
        self.state.lock().map(|s| s.errors.clone()).unwrap_or_default()
    }
}

async fn create(
    js: &jetstream::Context,
    stream: &str,
    filter: &str,
) -> anyhow::Result<jetstream::consumer::PullConsumer> {
    let stream = js.get_stream(stream).await?;
    Ok(stream
        .get_or_create_consumer(
            DURABLE,
            pull::Config {
                durable_name: Some(DURABLE.to_owned()),
                filter_subject: filter.to_owned(),
                deliver_policy: DeliverPolicy::All,
                ack_policy: AckPolicy::Explicit,
                ack_wait: Duration::from_secs(10),
                max_ack_pending: 5000,
                ..Default::default()
            },
        )
        .await?)
}

async fn run(
    js: jetstream::Context,
    stream: String,
    filter: String,
    root: String,
    state: Arc<Mutex<State>>,
) {
    let prefix = format!("{root}.events.v1.");
    loop {
        let messages = match create(&js, &stream, &filter).await {
            Ok(c) => c.messages().await.map_err(anyhow::Error::from),
            Err(e) => Err(e),
        };
        let mut messages = match messages {
            Ok(m) => m,
            Err(e) => {
                note(&state, format!("attach: {e:#}"));
                tokio::time::sleep(Duration::from_millis(250)).await;
                continue;
            }
        };
        while let Some(m) = messages.next().await {
            let m = match m {
                Ok(m) => m,
                Err(e) => {
                    note(&state, format!("messages: {e}"));
                    break;
                }
            };
            if let Ok(info) = m.info() {
                let subject = m.subject.to_string();
                let name = subject
                    .strip_prefix(&prefix)
                    .and_then(|rest| rest.split('.').next())
                    .unwrap_or_default()
                    .to_owned();
                let rec = Recorded {
                    seq: info.stream_sequence,
                    name,
                    payload: m.payload.to_vec(),
                    msg_id: m
                        .headers
                        .as_ref()
                        .and_then(|h| h.get("Nats-Msg-Id"))
                        .map(|v| v.as_str().to_owned()),
                    stored_at: info.published.unix_timestamp_nanos() as f64 / 1e9,
                    delivered: info.delivered,
                    subject,
                };
                if let Ok(mut s) = state.lock() {
                    match s.by_seq.entry(rec.seq) {
                        std::collections::btree_map::Entry::Occupied(_) => s.redeliveries += 1,
                        std::collections::btree_map::Entry::Vacant(v) => {
                            v.insert(rec);
                        }
                    }
                }
            }
            // A lost ack only means a redelivery, which is deduplicated above.
            let _ = m.ack().await;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn note(state: &Arc<Mutex<State>>, e: String) {
    if let Ok(mut s) = state.lock() {
        if s.errors.len() < 200 {
            s.errors.push(e);
        }
    }
}
