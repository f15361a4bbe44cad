//! `lull baseline`: record every migration up to a version as applied.

use clap::Args as ClapArgs;

use crate::cmd::mark_applied::through_version;
use crate::cmd::run_shared::{DirArgs, RunArgs};
use crate::context::GlobalArgs;
use crate::error::CliResult;

/// Record every migration up to VERSION as applied without running them.
///
/// For adopting a database whose schema is already there (restored from a
/// dump, built by hand, or migrated by a tool whose table lull does not
/// keep): Flyway's `baseline`, golang-migrate's `force`, Alembic's `stamp`.
/// One transaction; the kept tool's rows are written too. The same as
/// `lull mark-applied --through VERSION`.
///
/// Exit codes: 0 recorded (or already applied); 2 unknown version or no
/// connection; 3 another runner holds the lock.
///
/// Example:
///   lull baseline 20240101120000
#[derive(ClapArgs, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The last version to record.
    #[arg(value_name = "VERSION")]
    target: String,

    #[command(flatten)]
    dir: DirArgs,

    #[command(flatten)]
    run: RunArgs,
}

/// Runs `lull baseline`.
pub fn run(global: &GlobalArgs, args: Args) -> CliResult {
    through_version(global, &args.dir, &args.run, &args.target)
}
