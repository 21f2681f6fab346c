//! The command line: `refusal-guard <command>`.
//!
//! Each command lives in its own module with a clap `Args` struct and a `run` function, so
//! that commands can be added without touching the others.

pub mod models;
pub mod train;

use clap::{Parser, Subcommand};

/// refusal-guard: detect, classify and re-route LLM refusals.
#[derive(Debug, Parser)]
#[command(name = "refusal-guard", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Local models: list, fetch, import, evaluate, classify.
    Models(models::ModelsArgs),
    /// Retrain the embedded n-gram model (and the encoder heads) on labelled JSON Lines.
    Train(train::TrainArgs),
}

/// Parses the command line and runs the command; returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Models(a) => models::run(a),
        Command::Train(a) => train::run(a),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}
