//! What a consumer that keeps state needs beyond `Bus::consume`: one durable applied in stream
//! order (`consume_in_order`), a key-value bucket created the same way on NATS 2.9 and current
//! releases (`ensure_bucket`), and the durables of the events stream, Lifeline's and other
//! teams' (`events_consumers`, `is_lifeline_durable`).

use super::*;

impl Bus {
    /// Runs the durable `<service>-<name>` over `filter` until `shutdown`, one message at a time
    /// in stream order: `max_ack_pending` 1, so the next message is delivered only once this one
    /// is acked, and a handler can apply the messages as a sequence. A transient failure is
    /// retried with a growing delay and no limit (skipping a message would break the order); a
    /// poison one is terminated and copied to the DLQ. The handler gets the raw message. An
    /// error of the message stream (the durable deleted, heartbeats missed) ends it with `Err`.
    pub async fn consume_in_order<H, Fut>(
        &self,
        name: &str,
        filter: String,
        handler: H,
        shutdown: CancellationToken,
    ) -> Result<(), BusError>
    where
        H: Fn(RawDelivery) -> Fut,
        Fut: Future<Output = Result<(), HandlerError>>,
    {
        let durable = format!("{}-{name}", self.service);
        let stream = self.setup.get_stream(&self.streams.events).await.map_err(js_err)?;
        let consumer: jetstream::consumer::PullConsumer = stream
            .get_or_create_consumer(
                &durable,
                pull::Config {
                    durable_name: Some(durable.clone()),
                    filter_subject: filter,
                    deliver_policy: DeliverPolicy::All,
                    ack_policy: AckPolicy::Explicit,
                    ack_wait: Duration::from_secs(30),
                    max_deliver: -1,
                    max_ack_pending: 1,
                    ..Default::default()
                },
            )
            .await
            .map_err(js_err)?;
        let mut messages = consumer.messages().await.map_err(js_err)?;
        tracing::info!(consumer = %durable, "consuming in stream order");
        loop {
            let next = tokio::select! {
                _ = shutdown.cancelled() => break,
                m = messages.next() => m,
            };
            let msg = match next {
                Some(Ok(m)) => m,
                // The caller starts again (a deleted durable is then recreated and replays
                // from the stream's start; NATS away, it resumes where the durable stands).
                Some(Err(e)) => return Err(js_err(format!("{durable}: {e}"))),
                None => break,
            };
            let (delivered, stream_sequence) =
                msg.info().map(|i| (i.delivered, i.stream_sequence)).unwrap_or((1, 0));
            let delivery = RawDelivery {
                subject: msg.subject.to_string(),
                payload: msg.payload.clone(),
                stream_sequence,
                delivered,
            };
            let outcome = handler(delivery).await;
            self.settle(&durable, &msg, delivered, stream_sequence, outcome).await;
        }
        tracing::info!(consumer = %durable, "consumer stopped");
        Ok(())
    }

    /// Creates the key-value bucket `bucket` (history 1, file storage, `replicas`), or updates
    /// it to this configuration, and opens it. The bucket's stream is written here rather than
    /// with `create_or_update_key_value`, whose account-info request NATS 2.9 answers in a shape
    /// the client cannot read; the configuration is the one the client would make.
    pub async fn ensure_bucket(
        &self,
        bucket: &str,
        description: &str,
        replicas: usize,
    ) -> Result<kv::Store, BusError> {
        let config = stream::Config {
            name: format!("KV_{bucket}"),
            subjects: vec![format!("$KV.{bucket}.>")],
            description: Some(description.to_owned()),
            max_messages_per_subject: 1,
            storage: StorageType::File,
            num_replicas: replicas,
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            discard: stream::DiscardPolicy::New,
            ..Default::default()
        };
        self.setup.create_or_update_stream(config).await.map_err(js_err)?;
        self.js.get_key_value(bucket).await.map_err(js_err)
    }

    /// What JetStream reports about every consumer of the events stream (Lifeline's and other
    /// teams'), for lag metrics.
    pub async fn events_consumers(&self) -> Result<Vec<jetstream::consumer::Info>, BusError> {
        let stream = self.setup.get_stream(&self.streams.events).await.map_err(js_err)?;
        let mut consumers = stream.consumers();
        let mut infos = Vec::new();
        while let Some(info) = consumers.next().await {
            infos.push(info.map_err(js_err)?);
        }
        Ok(infos)
    }
}

/// The services that run durable consumers on the events stream.
pub const CONSUMING_SERVICES: &[&str] =
    &["auth-gateway", "publisher", "notifier", "token-refresher"];

/// Whether a durable on the events stream is one of Lifeline's own: `<service>-<event>` as
/// [`Bus::consume`] names them, or `<service>-account_state` ([`Bus::consume_in_order`] in the
/// gateway). Anything else belongs to another team.
pub fn is_lifeline_durable(name: &str) -> bool {
    CONSUMING_SERVICES.iter().any(|service| {
        name.strip_prefix(service).and_then(|rest| rest.strip_prefix('-')).is_some_and(|rest| {
            lifeline_events::EVENT_NAMES.contains(&rest) || rest == "account_state"
        })
    })
}

/// A message of [`Bus::consume_in_order`], undecoded: the handler knows what it holds.
#[derive(Debug, Clone)]
pub struct RawDelivery {
    pub subject: String,
    pub payload: bytes::Bytes,
    pub stream_sequence: u64,
    pub delivered: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifeline_durables_are_told_from_other_teams() {
        assert!(is_lifeline_durable("publisher-account_reconnected"));
        assert!(is_lifeline_durable("auth-gateway-account_state"));
        assert!(!is_lifeline_durable("analytics-account_reconnected"));
        assert!(!is_lifeline_durable("publisher-analytics"));
        assert!(!is_lifeline_durable("publisher"));
    }
}
