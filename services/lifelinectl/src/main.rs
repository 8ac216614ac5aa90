//! `lifelinectl`: parses the command line, runs it, and turns an error into one `error: …` line
//! on stderr plus a non-zero exit code.

use std::process::ExitCode;

use clap::Parser;
use lifelinectl::cli::Cli;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match lifelinectl::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
