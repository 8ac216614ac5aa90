//! `consumers`: every durable on the events stream — Lifeline's own and other teams' — with how
//! far behind it is, so an operator sees a subscriber that stopped reading before the stream's
//! 14-day limit drops events it has not read.

use async_nats::jetstream::consumer::Info;
use chrono::{DateTime, SecondsFormat, Utc};
use futures::StreamExt;
use lifeline_kit::bus::is_lifeline_durable;
use serde_json::{json, Value};

use crate::{
    cli::{ConsumersArgs, GlobalArgs},
    output::{self, Table},
    CtlError,
};

/// One durable as the command shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub name: String,
    pub lifeline: bool,
    pub pending: u64,
    pub ack_pending: usize,
    pub redelivered: usize,
    /// The later of its last delivery and its last ack, when it had one.
    pub last_active: Option<DateTime<Utc>>,
    pub filter_subject: String,
    pub ack_floor: u64,
}

fn chrono_time(t: Option<async_nats::jetstream::consumer::SequenceInfo>) -> Option<DateTime<Utc>> {
    let t = t?.last_active?;
    DateTime::from_timestamp(t.unix_timestamp(), t.nanosecond())
}

impl Row {
    pub fn from_info(info: &Info) -> Row {
        Row {
            name: info.name.clone(),
            lifeline: is_lifeline_durable(&info.name),
            pending: info.num_pending,
            ack_pending: info.num_ack_pending,
            redelivered: info.num_redelivered,
            last_active: chrono_time(Some(info.delivered)).max(chrono_time(Some(info.ack_floor))),
            filter_subject: info.config.filter_subject.clone(),
            ack_floor: info.ack_floor.stream_sequence,
        }
    }

    pub fn to_json(&self, now: DateTime<Utc>) -> Value {
        json!({
            "name": self.name,
            "owner": if self.lifeline { "lifeline" } else { "external" },
            "pending": self.pending,
            "ack_pending": self.ack_pending,
            "redelivered": self.redelivered,
            "last_active": self.last_active.map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true)),
            "last_active_age_seconds": self.last_active.map(|t| (now - t).num_seconds().max(0)),
            "filter_subject": self.filter_subject,
            "ack_floor_stream_sequence": self.ack_floor,
        })
    }
}

/// `3d4h`, `2h5m`, `4m10s`, `12s`: the two largest units are enough to read a lag.
pub fn age(seconds: i64) -> String {
    let s = seconds.max(0);
    let (d, h, m, sec) = (s / 86_400, s / 3_600 % 24, s / 60 % 60, s % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{sec}s"),
        (0, 0, _) => format!("{m}m{sec}s"),
        (0, _, _) => format!("{h}h{m}m"),
        _ => format!("{d}d{h}h"),
    }
}

/// Other teams first (they are who the command is for), then by name.
pub fn table(rows: &[Row], now: DateTime<Utc>) -> Table {
    let mut t = Table::new(&[
        "CONSUMER",
        "OWNER",
        "PENDING",
        "ACK_PENDING",
        "REDELIVERED",
        "LAST_ACTIVE",
        "FILTER",
    ]);
    for r in rows {
        t.row(vec![
            r.name.clone(),
            if r.lifeline { "lifeline" } else { "external" }.to_owned(),
            r.pending.to_string(),
            r.ack_pending.to_string(),
            r.redelivered.to_string(),
            r.last_active
                .map(|t| format!("{} ago", age((now - t).num_seconds())))
                .unwrap_or_default(),
            r.filter_subject.clone(),
        ]);
    }
    t
}

/// `consumers`.
pub async fn run(global: &GlobalArgs, args: &ConsumersArgs) -> Result<(), CtlError> {
    let js = crate::nats::jetstream(global).await?;
    let stream_name = format!("{}_EVENTS", global.stream_prefix);
    let stream = js.get_stream(&stream_name).await.map_err(|e| {
        CtlError::JetStream(format!(
            "cannot open stream {stream_name}: {e} (check --stream-prefix or LIFELINE_STREAM_PREFIX)"
        ))
    })?;
    let mut infos = stream.consumers();
    let mut rows = Vec::new();
    while let Some(info) = infos.next().await {
        let info = info.map_err(|e| CtlError::JetStream(format!("cannot list consumers: {e}")))?;
        // Ephemeral consumers (`events tail`, ordered readers) come and go: only durables.
        if info.config.durable_name.is_some() {
            rows.push(Row::from_info(&info));
        }
    }
    rows.sort_by(|a, b| (a.lifeline, &a.name).cmp(&(b.lifeline, &b.name)));
    let now = Utc::now();
    if args.json {
        let all: Vec<Value> = rows.iter().map(|r| r.to_json(now)).collect();
        output::line(&json!({ "stream": stream_name, "consumers": all }).to_string())
    } else {
        output::line(&table(&rows, now).render())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_show_the_two_largest_units() {
        assert_eq!(age(12), "12s");
        assert_eq!(age(250), "4m10s");
        assert_eq!(age(7_500), "2h5m");
        assert_eq!(age(3 * 86_400 + 4 * 3_600 + 59), "3d4h");
        assert_eq!(age(-5), "0s");
    }

    #[test]
    fn the_table_marks_external_durables() {
        let now = Utc::now();
        let row = |name: &str, pending| Row {
            name: name.to_owned(),
            lifeline: is_lifeline_durable(name),
            pending,
            ack_pending: 0,
            redelivered: 0,
            last_active: Some(now - chrono::Duration::seconds(90)),
            filter_subject: "lifeline.events.v1.auth_failed.>".to_owned(),
            ack_floor: 0,
        };
        let text =
            table(&[row("analytics-auth", 42), row("notifier-auth_failed", 0)], now).render();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[1].starts_with("analytics-auth") && lines[1].contains("external"), "{text}");
        assert!(lines[1].contains(" 42 ") && lines[1].contains("1m30s ago"), "{text}");
        assert!(lines[2].contains("lifeline"), "{text}");
    }
}
