//! `lull status`: which migrations are applied, pending, failed or running.

use std::process::ExitCode;

use clap::Args as ClapArgs;
use lull_engine::Runner;

use crate::cmd::plan::server_version;
use crate::cmd::run_shared::{engine_error, runtime, DirArgs, Format, RunArgs, Setup};
use crate::context::GlobalArgs;
use crate::error::CliResult;

/// Show which migrations are applied, pending, failed or running, per step.
///
/// Reads lull's state tables (schema `lull` unless `schema` is set in
/// lull.toml) and the migrations directory; changes nothing. The first
/// line names the server's PostgreSQL version, which pending steps are
/// planned for. `running`
/// means a run is applying it now or was killed while doing so (the next
/// `lull migrate` resumes it). Applied files that changed since, and
/// applied migrations whose file is gone, are flagged.
///
/// `--format json` prints one object per migration with `version`, `name`,
/// `status` (applied|pending|failed|running), `changed`, `missing_file`,
/// the recorded row, `source` (where the record came from: `lull`, the
/// kept tool's name such as `prisma`, or both as `lull+prisma`) and
/// `steps`. Migrations another tool applied (its history table, see
/// `history` in lull.toml) show as applied, recorded by that tool.
///
/// Exit code: 0 when it could read the state, 2 otherwise.
///
/// Example:
///   lull status --format json
#[derive(ClapArgs, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    #[command(flatten)]
    dir: DirArgs,

    /// Output: a table, or JSON.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

/// Runs `lull status`.
pub fn run(global: &GlobalArgs, args: Args) -> CliResult {
    let setup = Setup::load(global, &args.dir)?;
    let opts = setup.options(global, &RunArgs::default())?;
    let runner = Runner::new(opts);
    let (server, statuses) = runtime()?
        .block_on(async {
            let server = server_version(&runner.options().url).await?;
            Ok::<_, lull_engine::EngineError>((server, runner.status(&setup.migrations).await?))
        })
        .map_err(engine_error)?;
    if args.format == Format::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(&statuses).unwrap_or_default()
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!("server: {server}");
    if statuses.is_empty() {
        println!("no migrations in {}", setup.dir.display());
        return Ok(ExitCode::SUCCESS);
    }
    let vw = statuses
        .iter()
        .map(|s| s.version.len())
        .max()
        .unwrap_or(7)
        .max(7);
    let nw = statuses
        .iter()
        .map(|s| s.name.len())
        .max()
        .unwrap_or(4)
        .clamp(4, 40);
    println!("{:vw$}  {:nw$}  {:8}  STEPS", "VERSION", "NAME", "STATUS");
    for s in &statuses {
        let done = s.steps.iter().filter(|st| st.status == "done").count();
        let steps = if s.status == "pending" {
            format!("{} planned", s.steps.len())
        } else if s.steps.is_empty() {
            "-".to_string()
        } else {
            format!("{done}/{} done", s.steps.len())
        };
        let mut notes = Vec::new();
        if s.changed {
            notes.push("file changed since applied".to_string());
        }
        if s.missing_file {
            notes.push("file missing".to_string());
        }
        if !s.source.is_empty() && s.source != "lull" {
            notes.push(format!("recorded by {}", s.source));
        }
        if let Some(mode) = s
            .record
            .as_ref()
            .map(|r| r.mode.as_str())
            .filter(|m| *m != "lull")
        {
            notes.push(format!("by {mode}"));
        }
        if let Some(err) = s
            .record
            .as_ref()
            .and_then(|r| r.error.as_deref())
            .filter(|_| s.status != "applied")
        {
            notes.push(format!("error: {}", lull_engine::excerpt(err, 100)));
        }
        let notes = if notes.is_empty() {
            String::new()
        } else {
            format!("  ({})", notes.join("; "))
        };
        println!(
            "{:vw$}  {:nw$}  {:8}  {steps}{notes}",
            s.version, s.name, s.status
        );
    }
    Ok(ExitCode::SUCCESS)
}
