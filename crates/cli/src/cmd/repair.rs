//! `lull repair`: accept edited files of applied migrations.

use std::process::ExitCode;

use clap::Args as ClapArgs;
use lull_engine::Runner;

use crate::cmd::run_shared::{engine_error, runtime, DirArgs, RunArgs, Setup};
use crate::context::GlobalArgs;
use crate::error::CliResult;

/// Accept edited files of applied migrations by recording their new checksums.
///
/// lull refuses to run when an applied migration's file changed since it was
/// applied (exit 3), because the database no longer matches the file. When
/// the edit needs no re-run (a comment, formatting, or a change already made
/// by hand), `lull repair` records the current checksums; nothing is run.
/// Each accepted change is listed with both checksums.
///
/// Exit codes: 0 done (also when nothing changed); 2 no connection or bad
/// directory; 3 another runner holds the lock.
///
/// Example:
///   lull repair
#[derive(ClapArgs, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    #[command(flatten)]
    dir: DirArgs,

    #[command(flatten)]
    run: RunArgs,
}

/// Runs `lull repair`.
pub fn run(global: &GlobalArgs, args: Args) -> CliResult {
    let setup = Setup::load(global, &args.dir)?;
    let opts = setup.options(global, &args.run)?;
    let runner = Runner::new(opts);
    let changed = runtime()?
        .block_on(runner.repair(&setup.migrations))
        .map_err(engine_error)?;
    if changed.is_empty() {
        eprintln!("every applied migration matches its file; nothing changed");
    }
    for (version, old, new) in changed {
        eprintln!("{version}: recorded checksum {old} replaced by {new}");
    }
    Ok(ExitCode::SUCCESS)
}
