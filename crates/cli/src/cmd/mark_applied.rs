//! `lull mark-applied`: record a migration (or one uncertain step of it)
//! as applied without running it.

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
/// When another tool's history table is kept (`history` in lull.toml),
/// its row is written too, exactly as that tool writes it.
///
/// `--through VERSION` records every migration up to VERSION in one
/// transaction (the same as `lull baseline VERSION`).
///
/// With --step, settles one step whose outcome lull could not know: a
/// statement outside a transaction that a killed run had started (lull
/// stops instead of running it twice and names this command). Check the
/// database, then record the step as done (--step N), or as not applied
/// (--step N --not-applied) so that the next `lull migrate` runs it again.
///
/// Exit codes: 0 recorded (or already applied); 2 unknown version or no
/// connection; 3 another runner holds the lock, or the step cannot be
/// settled (never started, already done).
///
/// Examples:
///   lull mark-applied 20240101120000
///   lull mark-applied 20240101120000 --step 2
///   lull mark-applied 20240101120000 --step 2 --not-applied
///   lull mark-applied --through 20240101120000
#[derive(ClapArgs, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The version to record.
    #[arg(
        value_name = "VERSION",
        required_unless_present = "through",
        conflicts_with = "through"
    )]
    migration: Option<String>,

    /// Record every migration up to and including this version.
    /// (--step settles one step of one migration, so the two do not mix.)
    #[arg(long, value_name = "VERSION", conflicts_with = "step")]
    through: Option<String>,

    /// Settle only this step (1-based, as `lull status` numbers them).
    #[arg(long, value_name = "N")]
    step: Option<usize>,

    /// With --step: the step did not take effect; the next `lull migrate`
    /// runs it again.
    #[arg(long, requires = "step")]
    not_applied: bool,

    #[command(flatten)]
    dir: DirArgs,

    #[command(flatten)]
    run: RunArgs,
}

/// Runs `lull mark-applied`.
pub fn run(global: &GlobalArgs, args: Args) -> CliResult {
    match (args.migration, args.through) {
        (_, Some(through)) => through_version(global, &args.dir, &args.run, &through),
        (Some(version), None) => {
            let setup = Setup::load(global, &args.dir)?;
            let opts = setup.options(global, &args.run)?;
            let runner = Runner::new(opts);
            if let Some(step) = args.step {
                runtime()?
                    .block_on(runner.resolve_step(
                        &setup.migrations,
                        &version,
                        step,
                        !args.not_applied,
                    ))
                    .map_err(engine_error)?;
                if args.not_applied {
                    eprintln!(
                        "recorded {} step {step} as not applied; `lull migrate` runs it again",
                        version
                    );
                } else {
                    eprintln!("recorded {} step {step} as done (nothing was run)", version);
                }
                return Ok(ExitCode::SUCCESS);
            }
            let recorded = runtime()?
                .block_on(runner.mark_applied(&setup.migrations, &version))
                .map_err(engine_error)?;
            if recorded {
                eprintln!("recorded {version} as applied (nothing was run)");
            } else {
                eprintln!("{version} is already applied; nothing changed");
            }
            Ok(ExitCode::SUCCESS)
        }
        (None, None) => unreachable!("clap requires VERSION or --through"),
    }
}

/// Records every migration up to `version` (`mark-applied --through`,
/// `baseline`).
pub fn through_version(
    global: &GlobalArgs,
    dir: &DirArgs,
    run: &RunArgs,
    version: &str,
) -> CliResult {
    let setup = Setup::load(global, dir)?;
    let opts = setup.options(global, run)?;
    let runner = Runner::new(opts);
    let recorded = runtime()?
        .block_on(runner.mark_applied_through(&setup.migrations, version))
        .map_err(engine_error)?;
    if recorded.is_empty() {
        eprintln!("every migration up to {version} is already applied; nothing changed");
    } else {
        eprintln!(
            "recorded {} migration{} as applied up to {version} (nothing was run): {}",
            recorded.len(),
            if recorded.len() == 1 { "" } else { "s" },
            recorded.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}
