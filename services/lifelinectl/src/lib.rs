//! `lifelinectl`, the operator CLI: mints API tokens, tails the event stream, lists its durable
//! consumers, reads, replays and purges its dead letters (`dlq`) and reads the account-state
//! bucket (NATS), drives the services' HTTP APIs (accounts,
//! posts, dead letters, notifications) and rotates the vault key (against Postgres directly). The binary only parses arguments and maps errors to exit codes;
//! everything else lives here so it can be tested.

pub mod account_state;
pub mod api;
pub mod cli;
pub mod consumers;
pub mod dead_letters;
pub mod dlq;
pub mod events;
pub mod nats;
pub mod output;
pub mod replays;
pub mod token;
pub mod vault;

use lifeline_kit::config::{ConfigError, Env};

use crate::cli::{AccountsCommand, Cli, Command, TokenCommand};

/// Everything that can stop a command. Each variant's message is what the operator reads after
/// `error: `, so it names the flag, variable or service to look at.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// The arguments are inconsistent in a way clap cannot express.
    #[error("{0}")]
    Usage(String),
    /// A required environment variable is missing or invalid (e.g. `LIFELINE_JWT_SECRET`).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A service answered with an error document (`{"error","message"}`).
    #[error("{message} ({status})")]
    Api { service: &'static str, status: u16, code: String, message: String },
    /// Nothing listens at the service URL (connection refused, DNS failure, timeout).
    #[error("cannot reach the {service} at {url}: {reason} (is it running? check {hint})")]
    Unreachable { service: &'static str, url: String, reason: String, hint: &'static str },
    /// The service answered 2xx but not with the JSON this CLI understands.
    #[error("unexpected answer from the {service} at {url}: {reason}")]
    BadResponse { service: &'static str, url: String, reason: String },
    #[error("cannot connect to NATS at {url}: {reason} (check --nats-url or NATS_URL)")]
    NatsConnect { url: String, reason: String },
    /// `DATABASE_URL` cannot be reached or a query failed (the URL itself is never printed).
    #[error("Postgres (DATABASE_URL): {0}")]
    Postgres(String),
    /// The vault refused or could not finish; the message says why and what to do.
    #[error("{0}")]
    Vault(String),
    #[error("JetStream: {0}")]
    JetStream(String),
    /// A dead-letter command refused or could not finish; the message says why and what to do.
    #[error("{0}")]
    Dlq(String),
    /// The reader of stdout went away (`lifelinectl events tail | head`): not a failure.
    #[error("stdout was closed")]
    StdoutClosed,
    #[error("cannot write to stdout: {0}")]
    Stdout(std::io::Error),
}

impl CtlError {
    /// 2 for usage mistakes (like clap's own), 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            CtlError::Usage(_) => 2,
            _ => 1,
        }
    }
}

/// Runs one parsed command line against the process environment.
pub async fn run(cli: Cli) -> Result<(), CtlError> {
    let env = Env::process();
    let result = match &cli.command {
        Command::Token(TokenCommand::Mint(args)) => token::mint_command(&cli.global, args, &env),
        Command::Events(cli::EventsCommand::Tail(args)) => events::tail(&cli.global, args).await,
        Command::Accounts(AccountsCommand::State(args)) => {
            account_state::run(&cli.global, args).await
        }
        Command::Accounts(cmd) => api::accounts(&cli.global, &env, cmd).await,
        Command::Consumers(args) => consumers::run(&cli.global, args).await,
        Command::Dlq(cmd) => dlq::run(&cli.global, cmd).await,
        Command::Posts(cmd) => api::posts(&cli.global, &env, cmd).await,
        Command::DeadLetters(cmd) => dead_letters::run(&cli.global, &env, cmd).await,
        Command::Replays(cmd) => replays::run(&cli.global, &env, cmd).await,
        Command::Notifications(cmd) => api::notifications(&cli.global, &env, cmd).await,
        Command::PageLink(args) => api::page_link(&cli.global, &env, args).await,
        Command::Vault(cmd) => vault::run(&env, cmd).await,
    };
    match result {
        Err(CtlError::StdoutClosed) => Ok(()),
        other => other,
    }
}
