//! `lull rollback`: revert applied migrations with their down SQL.

use std::process::ExitCode;

use clap::Args as ClapArgs;
use lull_engine::{RollbackTarget, Runner};

use crate::cmd::migrate::json_error;
use crate::cmd::run_shared::{event_sink, plural, runtime, DirArgs, Format, RunArgs, Setup};
use crate::context::GlobalArgs;
use crate::error::CliResult;

/// Revert applied migrations, newest first, with their down SQL.
///
/// The down SQL runs under the same lock policies, steps and records as
/// `lull migrate`. Every down is read and parsed before anything runs, so
/// a missing or malformed down stops the rollback before the first change.
/// Where the down SQL lives depends on the layout: lull's own files after a
/// `-- lull:down` line; `<version>_<name>.down.sql` (sqlx, golang-migrate);
/// the `-- migrate:down` section (dbmate); `down.sql` (diesel);
/// `U<version>__<name>.sql` (Flyway). Prisma and Drizzle have none.
///
/// Exit codes: 0 rolled back; 1 a step failed (state consistent); 2 a down
/// is missing or malformed, bad usage or no connection; 3 refused (lock
/// held, applied file changed).
///
/// Examples:
///   lull rollback                 # the last applied migration
///   lull rollback --steps 3
///   lull rollback --to 20240101120000   # keeps 20240101120000 applied
#[derive(ClapArgs, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    #[command(flatten)]
    dir: DirArgs,

    #[command(flatten)]
    run: RunArgs,

    /// How many applied migrations to revert [default: 1].
    #[arg(long, value_name = "N", conflicts_with = "to")]
    steps: Option<usize>,

    /// Revert every migration applied after this version.
    #[arg(long, value_name = "VERSION")]
    to: Option<String>,

    /// Output: human lines on stderr, or JSON events on stdout.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

/// Runs `lull rollback`.
pub fn run(global: &GlobalArgs, args: Args) -> CliResult {
    let setup = Setup::load(global, &args.dir)?;
    let opts = setup.options(global, &args.run)?;
    let target = match args.to {
        Some(v) => RollbackTarget::To(v),
        None => RollbackTarget::Steps(args.steps.unwrap_or(1)),
    };
    let runner = Runner::new(opts).with_events(event_sink(args.format, args.run.verbose));
    match runtime()?.block_on(runner.rollback(&setup.migrations, target)) {
        Ok(summary) => {
            if args.format == Format::Json {
                println!(
                    "{}",
                    serde_json::json!({ "event": "done", "rolled_back": summary.versions })
                );
            } else if summary.versions.is_empty() {
                eprintln!("nothing to roll back");
            } else {
                let n = summary.versions.len();
                eprintln!("rolled back {n} migration{}", plural(n));
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Err(json_error(args.format, e)),
    }
}
