//! `lull migrate`: apply pending migrations safely.

use std::process::ExitCode;

use clap::Args as ClapArgs;
use lull_engine::Runner;

use crate::cmd::run_shared::{
    engine_error, event_sink, plural, runtime, DirArgs, Format, RunArgs, Setup,
};
use crate::context::GlobalArgs;
use crate::error::{CliError, CliResult};

/// Apply pending migrations without stalling the application.
///
/// Each migration is split into steps: runs of statements that can share a
/// transaction become one transaction, and each statement that cannot
/// (CREATE INDEX CONCURRENTLY, ...) runs on its own. Safe-by-default
/// rewrites are applied (see `lull plan`). DDL runs with a short
/// lock_timeout that is retried on a ramp (100ms, 100ms, 200ms, ... 5s,
/// with sleeps between), so a long transaction on the table makes lull
/// wait, not the application; when the tries run out lull stops with a
/// report of the blocking sessions. Indexes are built CONCURRENTLY on their
/// own connection, with INVALID leftovers dropped and rebuilt and live
/// progress. Every step is recorded in the `lull` schema (`lull.migrations`,
/// `lull.steps`), so a killed run resumes after the last finished step and
/// never applies a step twice. Only one runner works at a time.
///
/// Migration layouts read (detected per directory): lull's own
/// `<version>_<name>.sql` (up SQL first; an optional line `-- lull:down`
/// starts the down SQL; `-- lull:best-effort` before a CREATE INDEX turns
/// its final failure into a warning and a row in lull.pending_indexes),
/// sqlx, golang-migrate, dbmate, diesel, Prisma, Drizzle and Flyway.
///
/// Exit codes: 0 applied (or nothing to do); 1 a step failed, the state
/// recorded matches the database and a re-run resumes; 2 bad usage,
/// configuration, SQL that does not parse (nothing ran) or no connection;
/// 3 refused: another runner holds the lock, an applied file changed, a
/// pending file sorts before an applied one (see --allow-out-of-order), or
/// a file ends its block with ROLLBACK.
///
/// A file's own `SET lock_timeout` / `SET statement_timeout` is not run:
/// lull's policy sets both for every step (`lull plan` lists such
/// statements, `lull migrate` warns about them).
///
/// Examples:
///   lull migrate --database-url postgres://app@db/app
///   lull migrate --to 20240101120000 --lock-wait 5m
///   lull migrate --env production --format json
#[derive(ClapArgs, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    #[command(flatten)]
    dir: DirArgs,

    #[command(flatten)]
    run: RunArgs,

    /// Apply up to and including this version.
    #[arg(long, value_name = "VERSION")]
    to: Option<String>,

    /// Apply pending migrations whose version sorts before one that is
    /// already applied (a branch merged late: 015 while 040 is applied).
    /// Without it such a migration is refused (exit 3) before anything
    /// runs, because it would run after changes its author never saw; with
    /// it, each one is applied with a warning.
    #[arg(long)]
    allow_out_of_order: bool,

    /// Output: human lines on stderr, or JSON events (one per line) on
    /// stdout.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

/// Runs `lull migrate`.
pub fn run(global: &GlobalArgs, args: Args) -> CliResult {
    let setup = Setup::load(global, &args.dir)?;
    let mut opts = setup.options(global, &args.run)?;
    opts.allow_out_of_order = args.allow_out_of_order;
    let runner = Runner::new(opts).with_events(event_sink(args.format, args.run.verbose));
    let result = runtime()?.block_on(runner.migrate(&setup.migrations, args.to.as_deref()));
    match result {
        Ok(summary) => {
            if args.format == Format::Json {
                let line = serde_json::json!({ "event": "done", "applied": summary.versions, "warnings": summary.warnings, "elapsed": summary.elapsed.as_millis() as u64, "lock_wait": summary.lock_wait.as_millis() as u64 });
                println!("{line}");
            } else if summary.versions.is_empty() {
                eprintln!(
                    "nothing to apply: every migration in {} is applied",
                    setup.dir.display()
                );
            } else {
                let n = summary.versions.len();
                eprintln!(
                    "applied {n} migration{} in {}",
                    plural(n),
                    lull_engine::events::human(summary.elapsed)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Err(json_error(args.format, e)),
    }
}

/// In JSON mode the error (with its blocker report) is also written as a
/// final JSON line, so a pipeline reading stdout sees why the run stopped.
pub fn json_error(format: Format, e: lull_engine::EngineError) -> CliError {
    if format == Format::Json {
        let line = serde_json::json!({
            "event": "error",
            "message": e.to_string(),
            "hint": e.hint(),
            "blockers": e.blockers(),
        });
        println!("{line}");
    }
    engine_error(e)
}
