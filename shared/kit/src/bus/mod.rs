//! The event bus: JetStream streams, publishing with `event_id` as `Nats-Msg-Id`, and durable
//! pull consumers that ack after the effect is committed, nak with a delay on transient errors,
//! and terminate plus copy to the DLQ stream what cannot be processed.

use std::{future::Future, sync::Arc, time::Duration};

use async_nats::{
    jetstream::{
        self,
        consumer::{pull, AckPolicy, DeliverPolicy},
        stream::{self, RetentionPolicy, StorageType},
        AckKind,
    },
    HeaderMap,
};
use futures::StreamExt;
use lifeline_events::{subject_of, Event, Subjects};
use tokio::{sync::Semaphore, task::JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use secrecy::ExposeSecret;

use crate::{
    config::{CommonConfig, NatsAuth, NatsConfig},
    telemetry,
};

/// JetStream's key-value API, for services that keep a bucket beside the streams.
pub use async_nats::jetstream::kv;

mod ordered;
pub use ordered::{is_lifeline_durable, RawDelivery, CONSUMING_SERVICES};

/// Header names Lifeline adds to dead-lettered copies.
pub mod headers {
    pub const DLQ_REASON: &str = "Lifeline-Dlq-Reason";
    pub const DLQ_ORIGINAL_SUBJECT: &str = "Lifeline-Dlq-Original-Subject";
    pub const DLQ_CONSUMER: &str = "Lifeline-Dlq-Consumer";
    pub const DLQ_STREAM_SEQUENCE: &str = "Lifeline-Dlq-Stream-Sequence";
    pub const MSG_ID: &str = "Nats-Msg-Id";
}

/// How many times a message is delivered before the consumer gives up on it (and the
/// MAX_DELIVERIES advisory copies it to the DLQ).
pub const MAX_DELIVER: i64 = 10;
/// How long a consumer set-up request may wait for its answer before it is retried.
const SETUP_TIMEOUT: Duration = Duration::from_secs(2);
/// Redelivery delays after an ack timeout (a crashed or stuck handler).
const BACKOFF: [u64; 5] = [1, 5, 15, 60, 300];

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("cannot connect to NATS: {0}")]
    Connect(String),
    #[error("JetStream: {0}")]
    JetStream(String),
    #[error("event has no valid envelope: {0}")]
    Envelope(#[from] lifeline_events::EnvelopeError),
}

fn js_err(e: impl std::fmt::Display) -> BusError {
    BusError::JetStream(e.to_string())
}

#[derive(Debug, Clone)]
pub struct StreamNames {
    pub events: String,
    pub dlq: String,
}

/// A connection to NATS with the JetStream context and the subject layout.
#[derive(Clone)]
pub struct Bus {
    client: async_nats::Client,
    js: jetstream::Context,
    /// The same, with a short request timeout, for looking up the stream and creating consumers
    /// (see [`Bus::ensure_streams`] for why; a consumer that fails to start is retried).
    setup: jetstream::Context,
    subjects: Subjects,
    streams: StreamNames,
    service: &'static str,
}

impl Bus {
    /// Connects once (the caller retries: see [`crate::service`]); [`Bus::ensure_streams`] comes
    /// next. Once connected, the client reconnects by itself, to any server of the cluster.
    pub async fn connect(config: &CommonConfig) -> Result<Bus, BusError> {
        let client = connect_client(config.service, &config.nats).await?;
        let bus = Bus {
            js: jetstream::new(client.clone()),
            setup: jetstream::ContextBuilder::new().timeout(SETUP_TIMEOUT).build(client.clone()),
            client,
            subjects: Subjects::new(config.subject_root.clone()),
            streams: StreamNames {
                events: format!("{}_EVENTS", config.stream_prefix),
                dlq: format!("{}_DLQ", config.stream_prefix),
            },
            service: config.service,
        };
        Ok(bus)
    }

    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }
    pub fn jetstream(&self) -> &jetstream::Context {
        &self.js
    }
    pub fn subjects(&self) -> &Subjects {
        &self.subjects
    }
    pub fn streams(&self) -> &StreamNames {
        &self.streams
    }

    /// Creates the events and DLQ streams, or updates them to this configuration, waiting at
    /// most `timeout` for each answer. On a fresh cluster a request that loses the race with
    /// another replica's create, or comes before the stream's leader is elected, may get no
    /// answer at all: waiting the default 10 s for it made start-up take 20 s, so the caller
    /// starts short and retries (the stream exists by then, and the update is answered).
    pub async fn ensure_streams(&self, replicas: usize, timeout: Duration) -> Result<(), BusError> {
        let js = jetstream::ContextBuilder::new().timeout(timeout).build(self.client.clone());
        let events = stream::Config {
            name: self.streams.events.clone(),
            subjects: vec![self.subjects.all_events()],
            retention: RetentionPolicy::Limits,
            max_age: Duration::from_secs(14 * 86_400),
            duplicate_window: Duration::from_secs(120),
            storage: StorageType::File,
            num_replicas: replicas,
            description: Some("Lifeline connection and post events".into()),
            ..Default::default()
        };
        let dlq = stream::Config {
            name: self.streams.dlq.clone(),
            subjects: vec![self.subjects.all_dlq()],
            retention: RetentionPolicy::Limits,
            max_age: Duration::from_secs(30 * 86_400),
            duplicate_window: Duration::from_secs(120),
            storage: StorageType::File,
            num_replicas: replicas,
            description: Some("Messages Lifeline consumers could not process".into()),
            ..Default::default()
        };
        for config in [events, dlq] {
            js.create_or_update_stream(config).await.map_err(js_err)?;
        }
        Ok(())
    }

    /// Publishes an event on its subject and waits for JetStream's ack. The event id is the
    /// `Nats-Msg-Id`, so publishing the same event twice within the duplicate window stores it once.
    pub async fn publish<E: Event>(&self, event: &E) -> Result<(), BusError> {
        let about = subject_of(event)?;
        let event_id = event.envelope().map(|e| e.event_id.clone()).unwrap_or_default();
        let subject = self.subjects.event(E::NAME, about.platform, about.account_id);
        let mut headers = HeaderMap::new();
        telemetry::inject_current(&mut headers);
        self.publish_raw(subject, &event_id, headers, event.encode_to_vec().into()).await
    }

    pub async fn publish_raw(
        &self,
        subject: String,
        msg_id: &str,
        headers: HeaderMap,
        payload: bytes::Bytes,
    ) -> Result<(), BusError> {
        self.send_raw(subject, msg_id, headers, payload).await?.await
    }

    /// Sends a message without waiting for JetStream's ack; the returned future waits for it.
    /// Sending many and then awaiting their acks in order takes one round trip for all of them
    /// (the outbox relay does this).
    pub async fn send_raw(
        &self,
        subject: String,
        msg_id: &str,
        mut headers: HeaderMap,
        payload: bytes::Bytes,
    ) -> Result<impl Future<Output = Result<(), BusError>> + Send, BusError> {
        headers.insert(headers::MSG_ID, msg_id);
        let ack = self.js.publish_with_headers(subject, headers, payload).await.map_err(js_err)?;
        Ok(async move { ack.await.map(|_| ()).map_err(js_err) })
    }

    /// Runs a durable pull consumer for one event kind until `shutdown`, calling `handler` for
    /// each decoded event with up to `concurrency` in flight. The durable is named
    /// `<service>-<event>`; replicas of a service share it, which is how work spreads.
    pub async fn consume<E, H, Fut>(
        &self,
        concurrency: usize,
        handler: H,
        shutdown: CancellationToken,
    ) -> Result<(), BusError>
    where
        E: Event + Send + 'static,
        H: Fn(E, Delivery) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        let durable = format!("{}-{}", self.service, E::NAME);
        let stream = self.setup.get_stream(&self.streams.events).await.map_err(js_err)?;
        let consumer: jetstream::consumer::PullConsumer = stream
            .get_or_create_consumer(
                &durable,
                pull::Config {
                    durable_name: Some(durable.clone()),
                    filter_subject: self.subjects.event_filter(E::NAME),
                    deliver_policy: DeliverPolicy::All,
                    ack_policy: AckPolicy::Explicit,
                    ack_wait: Duration::from_secs(30),
                    max_deliver: MAX_DELIVER,
                    backoff: BACKOFF.iter().map(|s| Duration::from_secs(*s)).collect(),
                    max_ack_pending: 1_000,
                    ..Default::default()
                },
            )
            .await
            .map_err(js_err)?;

        let advisories = self.spawn_max_deliveries_watch(&durable, shutdown.clone()).await?;
        let mut messages = consumer.messages().await.map_err(js_err)?;
        let handler = Arc::new(handler);
        let permits = Arc::new(Semaphore::new(concurrency.max(1)));
        let mut in_flight = JoinSet::new();
        tracing::info!(consumer = %durable, "consuming");
        loop {
            let permit = tokio::select! {
                _ = shutdown.cancelled() => break,
                p = permits.clone().acquire_owned() => p.map_err(js_err)?,
            };
            let next = tokio::select! {
                _ = shutdown.cancelled() => break,
                m = messages.next() => m,
            };
            let msg = match next {
                Some(Ok(m)) => m,
                Some(Err(e)) => {
                    tracing::warn!(consumer = %durable, error = %e, "consumer stream error; continuing");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
                None => break,
            };
            let bus = self.clone();
            let handler = handler.clone();
            let durable = durable.clone();
            in_flight.spawn(async move {
                bus.handle_one::<E, _, _>(&durable, msg, handler.as_ref()).await;
                drop(permit);
            });
            while in_flight.try_join_next().is_some() {}
        }
        // Drain: let in-flight handlers finish and ack.
        while in_flight.join_next().await.is_some() {}
        advisories.abort();
        tracing::info!(consumer = %durable, "consumer stopped");
        Ok(())
    }

    async fn handle_one<E, H, Fut>(&self, durable: &str, msg: jetstream::Message, handler: &H)
    where
        E: Event,
        H: Fn(E, Delivery) -> Fut,
        Fut: Future<Output = Result<(), HandlerError>>,
    {
        let (delivered, stream_sequence) =
            msg.info().map(|i| (i.delivered, i.stream_sequence)).unwrap_or((1, 0));
        let span =
            tracing::info_span!("consume", consumer = %durable, subject = %msg.subject, delivered);
        telemetry::set_parent_from(&span, msg.headers.as_ref());
        async {
            let outcome = match E::decode(msg.payload.as_ref()) {
                Err(e) => Err(HandlerError::Poison(format!("undecodable {}: {e}", E::NAME))),
                Ok(event) => match subject_of(&event) {
                    Err(e) => Err(HandlerError::Poison(format!("invalid {}: {e}", E::NAME))),
                    Ok(about) => {
                        let delivery = Delivery {
                            about,
                            subject: msg.subject.to_string(),
                            delivered,
                            stream_sequence,
                        };
                        handler(event, delivery).await
                    }
                },
            };
            self.settle(durable, &msg, delivered, stream_sequence, outcome).await;
        }
        .instrument(span)
        .await
    }

    /// Acknowledges a handled message by its outcome: ack; nak with a growing delay (transient);
    /// or, for a poison message, a copy to the DLQ and then term (a nak when the copy fails, so
    /// it comes back rather than being lost). Both consumer kinds settle through here.
    pub(super) async fn settle(
        &self,
        durable: &str,
        msg: &jetstream::Message,
        delivered: i64,
        stream_sequence: u64,
        outcome: Result<(), HandlerError>,
    ) {
        let ack = match outcome {
            Ok(()) => msg.ack().await,
            Err(HandlerError::Transient(reason)) => {
                let delay = nak_delay(delivered);
                tracing::warn!(consumer = %durable, %reason, delay_ms = delay.as_millis() as u64, "transient failure; will redeliver");
                msg.ack_with(AckKind::Nak(Some(delay))).await
            }
            Err(HandlerError::Poison(reason)) => {
                tracing::error!(consumer = %durable, %reason, "poison message; terminating and copying to the DLQ");
                metrics::counter!("lifeline_dead_lettered_messages_total", "consumer" => durable.to_owned())
                    .increment(1);
                let copied = self
                    .dead_letter(
                        durable,
                        &msg.subject,
                        stream_sequence,
                        msg.headers.clone(),
                        msg.payload.clone(),
                        &reason,
                    )
                    .await;
                match copied {
                    // Only terminate once the copy is safe; otherwise let it come back.
                    Ok(()) => msg.ack_with(AckKind::Term).await,
                    Err(e) => {
                        tracing::error!(consumer = %durable, error = %e, "cannot copy to the DLQ; will redeliver");
                        msg.ack_with(AckKind::Nak(Some(Duration::from_secs(5)))).await
                    }
                }
            }
        };
        if let Err(e) = ack {
            tracing::warn!(consumer = %durable, error = %e, "ack failed; the message will be redelivered");
        }
    }

    /// Copies a message to `<root>.dlq.<consumer>` with the reason and where it came from.
    pub async fn dead_letter(
        &self,
        consumer: &str,
        original_subject: &str,
        stream_sequence: u64,
        original_headers: Option<HeaderMap>,
        payload: bytes::Bytes,
        reason: &str,
    ) -> Result<(), BusError> {
        let mut headers = original_headers.unwrap_or_default();
        headers.insert(headers::DLQ_REASON, sanitize_header(reason).as_str());
        headers.insert(headers::DLQ_ORIGINAL_SUBJECT, original_subject);
        headers.insert(headers::DLQ_CONSUMER, consumer);
        headers.insert(headers::DLQ_STREAM_SEQUENCE, stream_sequence.to_string().as_str());
        let msg_id = format!("dlq-{consumer}-{stream_sequence}");
        self.publish_raw(self.subjects.dlq(consumer), &msg_id, headers, payload).await
    }

    /// When a message runs out of deliveries, JetStream only emits an advisory; this copies the
    /// message it names to the DLQ so nothing is lost silently.
    async fn spawn_max_deliveries_watch(
        &self,
        durable: &str,
        shutdown: CancellationToken,
    ) -> Result<tokio::task::JoinHandle<()>, BusError> {
        let subject = format!(
            "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{}.{}",
            self.streams.events, durable
        );
        let mut sub = self.client.subscribe(subject).await.map_err(js_err)?;
        let bus = self.clone();
        let durable = durable.to_owned();
        Ok(tokio::spawn(async move {
            #[derive(serde::Deserialize)]
            struct Advisory {
                stream_seq: u64,
                deliveries: u64,
            }
            loop {
                let msg = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    m = sub.next() => match m { Some(m) => m, None => return },
                };
                let Ok(adv) = serde_json::from_slice::<Advisory>(&msg.payload) else { continue };
                let copied = async {
                    let stream = bus.js.get_stream(&bus.streams.events).await.map_err(js_err)?;
                    let original = stream.get_raw_message(adv.stream_seq).await.map_err(js_err)?;
                    let reason = format!("gave up after {} deliveries", adv.deliveries);
                    bus.dead_letter(
                        &durable,
                        &original.subject,
                        adv.stream_seq,
                        Some(original.headers),
                        original.payload,
                        &reason,
                    )
                    .await
                }
                .await;
                match copied {
                    Ok(()) => {
                        tracing::error!(consumer = %durable, seq = adv.stream_seq, "message exhausted its deliveries; copied to the DLQ")
                    }
                    Err(e) => {
                        tracing::error!(consumer = %durable, seq = adv.stream_seq, error = %e, "message exhausted its deliveries and could not be copied to the DLQ")
                    }
                }
            }
        }))
    }
}

/// A NATS client for `nats` (servers, authentication, TLS), named after the service. Errors
/// never carry a credential: the servers are named as [`NatsConfig::servers_for_display`].
pub async fn connect_client(name: &str, nats: &NatsConfig) -> Result<async_nats::Client, BusError> {
    let servers = nats.servers_for_display();
    let fail = |what: String| BusError::Connect(format!("{servers}: {what}"));
    let mut options = match &nats.auth {
        NatsAuth::None => async_nats::ConnectOptions::new(),
        NatsAuth::UserPassword { user, password } => {
            async_nats::ConnectOptions::with_user_and_password(
                user.clone(),
                password.expose_secret().to_owned(),
            )
        }
        NatsAuth::Token(token) => {
            async_nats::ConnectOptions::with_token(token.expose_secret().to_owned())
        }
        NatsAuth::NKey(seed) => {
            async_nats::ConnectOptions::with_nkey(seed.expose_secret().to_owned())
        }
        NatsAuth::CredsFile(path) => {
            async_nats::ConnectOptions::with_credentials_file(path).await.map_err(|e| {
                fail(format!("cannot use the credentials file {}: {e}", path.display()))
            })?
        }
    };
    options = options
        .name(name)
        .connection_timeout(Duration::from_secs(3))
        .require_tls(nats.tls.required)
        // Keep reconnecting for as long as the service runs: a cluster loses nodes and comes back.
        .max_reconnects(None)
        .event_callback(|event| async move {
            match event {
                async_nats::Event::Connected => tracing::info!("NATS connected"),
                async_nats::Event::Disconnected => {
                    tracing::warn!("NATS disconnected; reconnecting")
                }
                other => tracing::debug!(event = %other, "NATS event"),
            }
        });
    if let Some(ca) = &nats.tls.ca_file {
        options = options.add_root_certificates(ca.clone());
    }
    if let Some((cert, key)) = &nats.tls.client_cert {
        options = options.add_client_certificate(cert.clone(), key.clone());
    }
    let addrs: Vec<async_nats::ServerAddr> = nats
        .servers
        .iter()
        .map(|s| s.parse().map_err(|_| fail("not a server address".into())))
        .collect::<Result<_, _>>()?;
    match tokio::time::timeout(Duration::from_secs(5), options.connect(addrs)).await {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(e)) => Err(fail(redact_error(&e.to_string(), nats))),
        Err(_) => Err(fail("no answer within 5s".into())),
    }
}

/// An error message with anything that could be a credential of `nats` masked.
fn redact_error(message: &str, nats: &NatsConfig) -> String {
    let mut message = message.to_owned();
    for server in &nats.servers {
        message = message.replace(server.as_str(), &crate::config::redact_url(server));
    }
    let secrets: Vec<String> = match &nats.auth {
        NatsAuth::UserPassword { password, .. } => vec![password.expose_secret().to_owned()],
        NatsAuth::Token(t) | NatsAuth::NKey(t) => vec![t.expose_secret().to_owned()],
        NatsAuth::None | NatsAuth::CredsFile(_) => Vec::new(),
    };
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        message = message.replace(secret.as_str(), "***");
    }
    message
}

fn sanitize_header(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).take(500).collect()
}

/// Delay before a nak'd message comes back: grows with each delivery, capped at one minute.
fn nak_delay(delivered: i64) -> Duration {
    let exp = u32::try_from(delivered.clamp(1, 7) - 1).unwrap_or(0);
    Duration::from_millis(500 * 2u64.pow(exp)).min(Duration::from_secs(60))
}

/// What an event is about (its parsed envelope) and where the message came from.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Workspace, account and platform, parsed and validated before the handler runs.
    pub about: lifeline_events::Subject,
    pub subject: String,
    pub delivered: i64,
    pub stream_sequence: u64,
}

/// How a handler failed.
#[derive(Debug)]
pub enum HandlerError {
    /// Retry later (database or platform unavailable): nak with a delay.
    Transient(String),
    /// The message can never be processed: terminate and copy to the DLQ.
    Poison(String),
}

impl From<sqlx::Error> for HandlerError {
    fn from(e: sqlx::Error) -> Self {
        HandlerError::Transient(format!("database: {e}"))
    }
}

impl From<BusError> for HandlerError {
    fn from(e: BusError) -> Self {
        HandlerError::Transient(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nak_delay_grows_and_caps() {
        assert_eq!(nak_delay(1), Duration::from_millis(500));
        assert_eq!(nak_delay(2), Duration::from_millis(1000));
        assert!(nak_delay(100) <= Duration::from_secs(60));
    }
}
