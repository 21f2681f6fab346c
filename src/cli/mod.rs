//! The `refusal-guard` command line.
//!
//! One subcommand per job, each in its own module with its own clap `Args`: `eval` today;
//! `audit`, `classify`, `serve` and `models` join the [`Command`] enum as they land. The
//! command line lives in the library (not in `main.rs`) so integration tests can run a
//! subcommand's logic without spawning a process.

pub mod audit;
pub mod eval;
pub mod models;
pub mod serve;
pub mod train;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Detect, classify and re-route LLM refusals.
#[derive(Debug, Parser)]
#[command(name = "refusal-guard", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Accuracy of the detectors against labeled JSON Lines files.
    Eval(eval::EvalArgs),
    /// Run the OpenAI-compatible gateway.
    Serve(serve::ServeArgs),
    /// Runs the verdict pipeline over logged traffic and reports rates, plots and records.
    Audit(audit::AuditArgs),
    /// Local models: list, fetch, import, evaluate, classify.
    Models(models::ModelsArgs),
    /// Retrain the embedded n-gram model (and the encoder heads) on labelled JSON Lines.
    // Boxed: its many options would make every other command as large.
    Train(Box<train::TrainArgs>),
}

/// Parses the command line and runs it.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Serve(_)) {
        end_quietly_when_the_reader_goes();
    }
    let result = match cli.command {
        Command::Eval(args) => eval::run(&args),
        Command::Serve(args) => serve::run(&args),
        Command::Audit(args) => audit::run(&args),
        Command::Models(args) => models::run(args).map_err(|e| e.to_string()),
        Command::Train(args) => train::run(*args).map_err(|e| e.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("refusal-guard: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Lets a command piped into `head` end quietly when the reader goes, as `cat` and `grep`
/// do. The Rust runtime ignores SIGPIPE, so a write to a closed pipe is an error, and
/// `println!` panics on it (a panic message and exit 101 after `audit … | head -1`). The
/// one-shot commands take the default action back (ended by the signal, status 141 in a
/// shell); `serve` keeps ignoring it, so a closed log pipe cannot end a gateway. Sockets are
/// unaffected either way: Rust's socket writes pass `MSG_NOSIGNAL`.
fn end_quietly_when_the_reader_goes() {
    #[cfg(unix)]
    // SAFETY: `signal` with a valid signal number and `SIG_DFL` only changes this process's
    // disposition; it runs before any thread is started.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
