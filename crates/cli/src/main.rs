//! The `lull` command line: parses flags, calls the library crates and
//! renders what they return. Nothing here decides policy; it only wires
//! configuration, connection strings and output formats to the engine.

mod cmd;
mod context;
mod error;
mod render;

use std::process::ExitCode;

/// lint allocates and frees a parse tree per file on every core; mimalloc's
/// per-thread heaps keep that from contending on glibc's arenas.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{CommandFactory, Parser, Subcommand};

use crate::context::GlobalArgs;

/// Safe PostgreSQL schema changes for busy production databases.
///
/// lull checks, plans, runs, schedules and verifies schema changes so that
/// the application never waits for them: short lock timeouts with retries,
/// indexes built CONCURRENTLY outside transactions, INVALID leftovers
/// cleaned, and a report of who blocks when a lock is not available.
#[derive(Parser, Debug)]
#[command(name = "lull", version, about, long_about, propagate_version = true)]
#[command(
    after_help = "Exit codes: 0 success, 1 findings or a failed run (state consistent), \
2 usage, configuration, I/O or connection error, 3 refused (lock held, changed applied file).\n\
Configuration: lull.toml in the current directory or a parent (or --config); DATABASE_URL or --database-url."
)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
/// Each command's help is the doc comment of its `Args` (a doc comment on
/// a variant here would replace that long help with one line).
enum Command {
    Sandbox(cmd::sandbox::Args),
    Config(cmd::config::Args),
    Indexes(cmd::indexes::Args),
    Backfill(cmd::backfill::Args),
    Daemon(cmd::daemon::Args),
    Plan(cmd::plan::Args),
    Migrate(cmd::migrate::Args),
    Status(cmd::status::Args),
    Rollback(cmd::rollback::Args),
    MarkApplied(cmd::mark_applied::Args),
    Baseline(cmd::baseline::Args),
    Repair(cmd::repair::Args),
    Lint(cmd::lint::Args),
    Explain(cmd::explain::Args),
    Fix(cmd::fix::Args),
    /// Export table sizes for offline linting (`lull lint --stats FILE`).
    Stats(cmd::stats::Args),
    Demo(cmd::demo::Args),
    Lsp(cmd::lsp::Args),
    Completions(cmd::completions::Args),
    Man(cmd::man::Args),
}

/// Exit status of a process whose reader went away (128 + SIGPIPE), what
/// a shell reports for other programs in `… | head -1`.
const CLOSED_PIPE_EXIT: i32 = 141;

/// `lull plan | head -1`: once the reader of stdout has gone, writing
/// panics inside `println!`. Other command line tools end quietly then;
/// so does lull (a migration it was running rolls back with the
/// connection, as on any interruption). Every other panic keeps the
/// default report.
fn exit_quietly_on_closed_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if payload.starts_with("failed printing to std") && payload.contains("Broken pipe") {
            std::process::exit(CLOSED_PIPE_EXIT);
        }
        default(info);
    }));
}

fn main() -> ExitCode {
    exit_quietly_on_closed_pipe();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Sandbox(args) => cmd::sandbox::run(&cli.global, args),
        Command::Config(args) => cmd::config::run(&cli.global, args),
        Command::Indexes(args) => cmd::indexes::run(&cli.global, args),
        Command::Backfill(args) => cmd::backfill::run(&cli.global, args),
        Command::Daemon(args) => cmd::daemon::run(&cli.global, args),
        Command::Plan(args) => cmd::plan::run(&cli.global, args),
        Command::Migrate(args) => cmd::migrate::run(&cli.global, args),
        Command::Status(args) => cmd::status::run(&cli.global, args),
        Command::Rollback(args) => cmd::rollback::run(&cli.global, args),
        Command::MarkApplied(args) => cmd::mark_applied::run(&cli.global, args),
        Command::Baseline(args) => cmd::baseline::run(&cli.global, args),
        Command::Repair(args) => cmd::repair::run(&cli.global, args),
        Command::Lint(args) => cmd::lint::run(&cli.global, args),
        Command::Explain(args) => cmd::explain::run(&cli.global, args),
        Command::Fix(args) => cmd::fix::run(&cli.global, args),
        Command::Stats(args) => cmd::stats::run(&cli.global, args),
        Command::Demo(args) => cmd::demo::run(&cli.global, args),
        Command::Lsp(args) => cmd::lsp::run(&cli.global, args),
        Command::Completions(args) => cmd::completions::run(Cli::command(), args),
        Command::Man(args) => cmd::man::run(Cli::command(), args),
    };
    match result {
        Ok(code) => code,
        Err(err) => err.report(),
    }
}
