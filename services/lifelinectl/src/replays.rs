//! `replays list|show`: the history of dead-letter replays (who, when, filter, note, how many)
//! and one replay's progress; [`follow`] draws a replay's progress until every post is
//! published, failed again or cancelled.

use std::{io::IsTerminal as _, time::Duration};

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use lifeline_kit::{config::Env, ids::WorkspaceId};
use serde::Deserialize;
use serde_json::Value;

use crate::{
    api::{self, ApiClient, Service},
    cli::GlobalArgs,
    output::{self, cell, Table},
    CtlError,
};

/// How often a followed replay is polled.
const POLL: Duration = Duration::from_millis(500);

#[derive(Debug, Subcommand)]
pub enum ReplaysCommand {
    /// Replays of dead letters, newest first: who, when, the filter, the note, how many posts.
    List(ReplaysListArgs),
    /// One replay and how its posts stand: published, failed again, cancelled, pending.
    Show(ReplayShowArgs),
}

#[derive(Debug, Args)]
pub struct ReplaysListArgs {
    /// Only this workspace's (operator tokens; a member token sees only its own).
    #[arg(long, value_name = "UUID")]
    pub workspace: Option<WorkspaceId>,
    /// The `next` cursor printed under the previous page.
    #[arg(long, value_name = "CURSOR")]
    pub cursor: Option<String>,
    /// Replays per page (1 to 500; the publisher's default is 50).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=500))]
    pub limit: Option<u16>,
    /// Print the service's JSON answer as is.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ReplayShowArgs {
    /// The replay.
    #[arg(value_name = "ID")]
    pub id: uuid::Uuid,
    /// Follow it to the end with a progress bar.
    #[arg(long)]
    pub follow: bool,
    /// Print the service's JSON answer as is.
    #[arg(long)]
    pub json: bool,
}

/// A recorded replay, as the publisher answers it.
#[derive(Debug, Deserialize)]
pub struct ReplayRow {
    pub id: uuid::Uuid,
    #[serde(default)]
    pub requested_by: String,
    #[serde(default)]
    pub requested_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub workspace_id: Option<WorkspaceId>,
    #[serde(default)]
    pub filter: Value,
    #[serde(default)]
    pub note: Option<String>,
    #[serde(default)]
    pub post_count: i64,
}

#[derive(Debug, Deserialize)]
struct ReplayPage {
    replays: Vec<ReplayRow>,
    #[serde(default)]
    next: Option<String>,
}

/// A replay's progress.
#[derive(Debug, Deserialize)]
pub struct Progress {
    #[serde(flatten)]
    pub replay: ReplayRow,
    pub published: u64,
    pub failed_again: u64,
    pub cancelled: u64,
    pub pending: u64,
    #[serde(default)]
    pub waiting: u64,
    pub done: bool,
}

impl Progress {
    fn finished(&self) -> u64 {
        self.published + self.failed_again + self.cancelled
    }

    /// `published 3, failed again 0, pending 2 (1 waiting for its platform's rate)`.
    pub fn summary(&self) -> String {
        let mut s = format!("published {}, failed again {}", self.published, self.failed_again);
        if self.cancelled > 0 {
            s.push_str(&format!(", cancelled {}", self.cancelled));
        }
        if self.pending > 0 {
            s.push_str(&format!(", pending {}", self.pending));
            if self.waiting > 0 {
                s.push_str(&format!(" ({} paced)", self.waiting));
            }
        }
        s
    }
}

fn table(rows: &[ReplayRow]) -> Table {
    let mut t =
        Table::new(&["REPLAY", "REQUESTED_AT", "BY", "WORKSPACE", "POSTS", "FILTER", "NOTE"]);
    for r in rows {
        t.row(vec![
            r.id.to_string(),
            api::time(r.requested_at),
            cell(&r.requested_by, 32),
            r.workspace_id.map(|w| w.to_string()).unwrap_or_else(|| "(all)".into()),
            r.post_count.to_string(),
            cell(&r.filter.to_string(), 80),
            cell(r.note.as_deref().unwrap_or_default(), 48),
        ]);
    }
    t
}

async fn progress(
    client: &ApiClient,
    service: &Service,
    id: uuid::Uuid,
) -> Result<(Progress, String), CtlError> {
    let path = format!("v1/replays/{id}");
    let raw = client.get(service, &path, &[]).await?;
    Ok((api::parse(service, &path, &raw)?, raw))
}

pub async fn run(global: &GlobalArgs, env: &Env, cmd: &ReplaysCommand) -> Result<(), CtlError> {
    let client = ApiClient::new(global, env)?;
    let service = Service::publisher(global);
    match cmd {
        ReplaysCommand::List(args) => {
            let mut q: Vec<(&str, String)> = Vec::new();
            if let Some(w) = args.workspace {
                q.push(("workspace", w.to_string()));
            }
            if let Some(c) = &args.cursor {
                q.push(("after", c.clone()));
            }
            if let Some(l) = args.limit {
                q.push(("limit", l.to_string()));
            }
            let raw = client.get(&service, "v1/replays", &q).await?;
            if args.json {
                return output::line(raw.trim_end());
            }
            let page: ReplayPage = api::parse(&service, "v1/replays", &raw)?;
            output::line(&table(&page.replays).render())?;
            match page.next {
                Some(next) => output::line(&format!("more: --cursor {next}")),
                None => Ok(()),
            }
        }
        ReplaysCommand::Show(args) => {
            let (p, raw) = progress(&client, &service, args.id).await?;
            if args.follow && !p.done {
                return follow(&client, &service, args.id, p.replay.post_count as u64).await;
            }
            if args.json {
                return output::line(raw.trim_end());
            }
            output::line(&table(std::slice::from_ref(&p.replay)).render())?;
            let state = if p.done { "done" } else { "in progress" };
            output::line(&format!("{state}: {}", p.summary()))
        }
    }
}

/// Polls the replay until every post is published, failed again or cancelled, drawing done/total,
/// the rate and the ETA: a bar on a terminal, a line per change otherwise (logs, CI).
pub async fn follow(
    client: &ApiClient,
    service: &Service,
    id: uuid::Uuid,
    total: u64,
) -> Result<(), CtlError> {
    let terminal = std::io::stderr().is_terminal();
    let bar = ProgressBar::with_draw_target(
        Some(total),
        if terminal { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() },
    );
    let style = ProgressStyle::with_template(
        "{elapsed_precise} [{bar:30}] {pos}/{len} done, {per_sec}, ETA {eta} ({msg})",
    )
    .map_err(|e| CtlError::Usage(format!("progress template: {e}")))?
    .progress_chars("=> ");
    bar.set_style(style);
    let mut last = None;
    loop {
        let (p, _) = progress(client, service, id).await?;
        bar.set_position(p.finished());
        bar.set_message(p.summary());
        if !terminal && last != Some(p.finished()) {
            output::line(&line(&bar, &p, total))?;
            last = Some(p.finished());
        }
        if p.done {
            bar.finish();
            return output::line(&format!(
                "replay {id} done in {:.1}s: {}",
                bar.elapsed().as_secs_f64(),
                p.summary()
            ));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The bar as one plain line, for output that is not a terminal.
fn line(bar: &ProgressBar, p: &Progress, total: u64) -> String {
    let rate = bar.per_sec();
    let eta = if p.done { "0s".to_owned() } else { format!("{:.1}s", bar.eta().as_secs_f64()) };
    format!("{}/{total} done, {rate:.1} posts/s, ETA {eta} ({})", p.finished(), p.summary())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_reads_the_publishers_answer_and_sums_up() {
        let p: Progress = serde_json::from_str(
            r#"{"id":"0190a5c8-0000-7000-8000-000000000001","requested_by":"ops","post_count":5,
                "requested_at":"2026-01-01T00:00:00Z","workspace_id":null,"filter":{"platform":"x"},
                "note":null,"idempotency_key":null,"published":2,"failed_again":1,"cancelled":0,
                "pending":2,"waiting":1,"done":false}"#,
        )
        .expect("parses");
        assert_eq!(p.finished(), 3);
        assert_eq!(p.summary(), "published 2, failed again 1, pending 2 (1 paced)");
        let rendered = table(std::slice::from_ref(&p.replay)).render();
        assert!(
            rendered.contains("(all)") && rendered.contains(r#"{"platform":"x"}"#),
            "{rendered}"
        );
    }
}
