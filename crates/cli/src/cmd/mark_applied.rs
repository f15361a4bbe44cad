//! `lull mark-applied`: record a migration as applied without running it.

use std::process::ExitCode;

use clap::Args as ClapArgs;
use lull_engine::Runner;

use crate::cmd::run_shared::{engine_error, runtime, DirArgs, RunArgs, Setup};
use crate::context::GlobalArgs;
use crate::error::CliResult;

/// Record a migration as applied without running it.
///
/// For "skip now, build later": e.g. an index that will be built by
/// `lull indexes build` in tonight's window, or a change already made by
/// hand. The file's checksum is recorded, so later edits are still caught.
///
/// Exit codes: 0 recorded (or already applied); 2 unknown version or no
/// connection; 3 another runner holds the lock.
///
/// Example:
///   lull mark-applied 20240101120000
#[derive(ClapArgs, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The version to record.
    #[arg(value_name = "VERSION")]
    migration: String,

    #[command(flatten)]
    dir: DirArgs,

    #[command(flatten)]
    run: RunArgs,
}

/// Runs `lull mark-applied`.
pub fn run(global: &GlobalArgs, args: Args) -> CliResult {
    let setup = Setup::load(global, &args.dir)?;
    let opts = setup.options(global, &args.run)?;
    let runner = Runner::new(opts);
    let recorded = runtime()?
        .block_on(runner.mark_applied(&setup.migrations, &args.migration))
        .map_err(engine_error)?;
    if recorded {
        eprintln!("recorded {} as applied (nothing was run)", args.migration);
    } else {
        eprintln!("{} is already applied; nothing changed", args.migration);
    }
    Ok(ExitCode::SUCCESS)
}
