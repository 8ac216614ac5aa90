//! The transactional outbox: a service writes its state change and the events it implies in one
//! Postgres transaction; a relay publishes them to JetStream afterwards. A crash between commit
//! and publish delays an event but never loses it, and the `Nats-Msg-Id` dedupe makes the
//! relay's own retries harmless.
//!
//! Each service owns a `<schema>.outbox` table, created by [`Outbox::migrate`].

use std::{sync::Arc, time::Duration};

use async_nats::HeaderMap;
use lifeline_events::{subject_of, Event};
use sqlx::{PgConnection, PgPool};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::{
    bus::{Bus, BusError},
    telemetry,
};

/// Writes events into a service's outbox and relays them to the bus.
#[derive(Clone)]
pub struct Outbox {
    schema: &'static str,
    subjects: lifeline_events::Subjects,
    wake: Arc<Notify>,
}

const BATCH: i64 = 200;

impl Outbox {
    pub fn new(schema: &'static str, bus: &Bus) -> Self {
        Outbox { schema, subjects: bus.subjects().clone(), wake: Arc::new(Notify::new()) }
    }

    /// Adds an event to the outbox inside the caller's transaction. Call [`Outbox::wake`] after
    /// the commit so the relay publishes it at once instead of at its next poll.
    pub async fn enqueue<E: Event>(
        &self,
        tx: &mut PgConnection,
        event: &E,
    ) -> Result<(), sqlx::Error> {
        let row = self.row_of(event)?;
        sqlx::query(&format!(
            "INSERT INTO {}.outbox (subject, event_id, payload, traceparent) VALUES ($1, $2, $3, $4)",
            self.schema
        ))
        .bind(row.subject)
        .bind(row.event_id)
        .bind(row.payload)
        .bind(row.traceparent)
        .execute(tx)
        .await?;
        Ok(())
    }

    /// An event as an outbox row: its subject, id, encoded payload and the current trace.
    fn row_of<E: Event>(&self, event: &E) -> Result<NewRow, sqlx::Error> {
        let about = subject_of(event).map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
        let mut headers = HeaderMap::new();
        telemetry::inject_current(&mut headers);
        Ok(NewRow {
            subject: self.subjects.event(E::NAME, about.platform, about.account_id),
            event_id: event.envelope().map(|e| e.event_id.clone()).unwrap_or_default(),
            payload: event.encode_to_vec(),
            traceparent: headers.get("traceparent").map(|v| v.as_str().to_owned()),
        })
    }

    /// Events to add to the outbox together: [`Staged::insert`] writes them in one statement,
    /// in the order they were added (a writer settling many outcomes in one transaction).
    pub fn stage(&self) -> Staged<'_> {
        Staged {
            outbox: self,
            subject: Vec::new(),
            event_id: Vec::new(),
            payload: Vec::new(),
            traceparent: Vec::new(),
        }
    }

    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Publishes outbox rows in order until `shutdown`; rows are deleted once JetStream acked them.
    /// Replicas may run relays side by side: `SKIP LOCKED` gives each its own rows.
    pub async fn relay(self, pool: PgPool, bus: Bus, shutdown: CancellationToken) {
        let mut failures = 0u32;
        loop {
            match self.relay_batch(&pool, &bus).await {
                Ok(n) if n > 0 => {
                    failures = 0;
                    continue;
                }
                Ok(_) => failures = 0,
                Err(e) => {
                    failures += 1;
                    tracing::warn!(error = %e, failures, "outbox relay failed; retrying");
                }
            }
            let pause = if failures == 0 {
                Duration::from_millis(250)
            } else {
                Duration::from_millis(250 * 2u64.pow(failures.min(5)))
            };
            tokio::select! {
                _ = shutdown.cancelled() => {
                    // One last pass so what was committed before shutdown goes out now.
                    let _ = self.relay_batch(&pool, &bus).await;
                    return;
                }
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }

    async fn relay_batch(&self, pool: &PgPool, bus: &Bus) -> Result<usize, RelayError> {
        let mut tx = pool.begin().await?;
        let rows: Vec<OutboxRow> = sqlx::query_as(&format!(
            "SELECT id, subject, event_id, payload, traceparent FROM {}.outbox
             ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
            self.schema
        ))
        .bind(BATCH)
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        // The whole batch is sent before any ack is awaited: one round trip per batch instead of
        // one per event (a fan-out relays two events per post). JetStream stores one
        // connection's messages in the order they arrive, so events keep their order while NATS
        // answers. Rows are deleted only up to the first failed ack and the rest go again on the
        // next pass, where the `Nats-Msg-Id` dedupe drops those that were stored after all; the
        // one cost (docs/architecture.md): after such a failure, a later event of the batch may
        // already be stored ahead of the one sent again.
        let mut acks = Vec::with_capacity(rows.len());
        let mut failure = None;
        for OutboxRow { id, subject, event_id, payload, traceparent } in rows {
            let mut headers = HeaderMap::new();
            if let Some(tp) = traceparent {
                headers.insert("traceparent", tp.as_str());
            }
            match bus.send_raw(subject, &event_id, headers, payload.into()).await {
                Ok(ack) => acks.push((id, ack)),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        let mut sent = Vec::with_capacity(acks.len());
        for (id, ack) in acks {
            if failure.is_some() {
                // Not counted as sent; awaited only so no ack is left pending.
                let _ = ack.await;
                continue;
            }
            match ack.await {
                Ok(()) => sent.push(id),
                Err(e) => failure = Some(e),
            }
        }
        if let Some(e) = failure {
            if sent.is_empty() {
                return Err(e.into());
            }
            tracing::warn!(error = %e, "outbox relay stopped mid-batch");
        }
        sqlx::query(&format!("DELETE FROM {}.outbox WHERE id = ANY($1)", self.schema))
            .bind(&sent)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        metrics::counter!("lifeline_outbox_published_total", "schema" => self.schema)
            .increment(sent.len() as u64);
        Ok(sent.len())
    }
}

/// Events waiting to be inserted into the outbox in one statement (see [`Outbox::stage`]).
pub struct Staged<'a> {
    outbox: &'a Outbox,
    subject: Vec<String>,
    event_id: Vec<String>,
    payload: Vec<Vec<u8>>,
    traceparent: Vec<Option<String>>,
}

impl Staged<'_> {
    pub fn add<E: Event>(&mut self, event: &E) -> Result<(), sqlx::Error> {
        let row = self.outbox.row_of(event)?;
        self.subject.push(row.subject);
        self.event_id.push(row.event_id);
        self.payload.push(row.payload);
        self.traceparent.push(row.traceparent);
        Ok(())
    }

    /// Inserts everything staged inside the caller's transaction, in order.
    pub async fn insert(self, tx: &mut PgConnection) -> Result<(), sqlx::Error> {
        if self.subject.is_empty() {
            return Ok(());
        }
        sqlx::query(&format!(
            "INSERT INTO {}.outbox (subject, event_id, payload, traceparent)
             SELECT subject, event_id, payload, traceparent
             FROM unnest($1::text[], $2::text[], $3::bytea[], $4::text[])
                  WITH ORDINALITY AS e(subject, event_id, payload, traceparent, n)
             ORDER BY n",
            self.outbox.schema
        ))
        .bind(&self.subject)
        .bind(&self.event_id)
        .bind(&self.payload)
        .bind(&self.traceparent)
        .execute(tx)
        .await?;
        Ok(())
    }
}

struct NewRow {
    subject: String,
    event_id: String,
    payload: Vec<u8>,
    traceparent: Option<String>,
}

#[derive(sqlx::FromRow)]
struct OutboxRow {
    id: i64,
    subject: String,
    event_id: String,
    payload: Vec<u8>,
    traceparent: Option<String>,
}

#[derive(Debug, thiserror::Error)]
enum RelayError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Bus(#[from] BusError),
}

/// The outbox table of a schema; `IF NOT EXISTS`, because the services' first migrations
/// created it before [`Outbox::migrate`] existed (an applied migration never changes).
fn table_sql(schema: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {schema}.outbox (
            id bigserial PRIMARY KEY,
            subject text NOT NULL,
            event_id text NOT NULL,
            payload bytea NOT NULL,
            traceparent text,
            created_at timestamptz NOT NULL DEFAULT now()
        )"
    )
}

impl Outbox {
    /// Creates `<schema>.outbox` if it does not exist: every service with an outbox calls this
    /// at start (through [`crate::service::Spec::outbox`]) instead of copying the DDL.
    pub async fn migrate(pool: &PgPool, schema: &str) -> Result<(), sqlx::Error> {
        sqlx::query(&table_sql(schema)).execute(pool).await.map(|_| ())
    }
}
