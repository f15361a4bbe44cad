//! `lull daemon`: runs `indexes auto` on the cron schedule of
//! `[indexes] schedule` until SIGTERM.

use std::process::ExitCode;

use clap::Args as ClapArgs;
use lull_indexes::daemon::{Daemon, DaemonEvent};
use lull_indexes::pass::PassOptions;
use lull_indexes::queue::Queue;
use lull_indexes::schedule::Schedule;

use crate::cmd::indexes::{
    guards, lib_error, print_pass_event, runtime, stop_on_signals, ProgressView,
};
use crate::context::GlobalArgs;
use crate::error::{CliError, CliResult};

/// Build pending indexes on a schedule: `lull indexes auto` at every tick.
///
/// Runs a guarded pass over the pending queue at each tick of the cron
/// expression (`[indexes] schedule` in lull.toml, or --schedule), in the
/// [indexes] time zone. Every pass reconnects, so a database restart costs
/// one logged failed pass. SIGTERM (or Ctrl-C) stops it; a build in
/// progress is cancelled and its INVALID leftover dropped first.
///
/// Example lull.toml:
///   [env.production.indexes]
///   window = "02:00-05:00"
///   timezone = "Europe/Berlin"
///   schedule = "*/15 2-4 * * *"   # every 15 min inside the window
///
///   lull --env production daemon
#[derive(ClapArgs, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Cron expression (5 fields, or 6 with seconds first); overrides
    /// `[indexes] schedule`.
    #[arg(long, value_name = "CRON")]
    schedule: Option<String>,
}

/// Runs `lull daemon`.
pub fn run(global: &GlobalArgs, args: Args) -> CliResult {
    let config = global.config()?;
    let url = global.database_url(&config)?;
    let guards = guards(&config)?;
    let spec = args
        .schedule
        .or_else(|| config.settings.indexes.schedule.clone())
        .ok_or_else(|| {
            CliError::new("no schedule for the daemon").hint(
                "set `schedule = \"30 2 * * *\"` in [indexes] of lull.toml, or pass --schedule",
            )
        })?;
    let tz = config
        .settings
        .indexes
        .timezone
        .as_deref()
        .unwrap_or("UTC")
        .parse()
        .map_err(|_| {
            CliError::new("[indexes] timezone is not a known IANA time zone")
                .hint("e.g. UTC or Europe/Berlin")
        })?;
    let schedule = Schedule::parse(&spec, tz).map_err(|e| lib_error(e.into()))?;
    let policy = config.policies().index;
    let queue = Queue::new(config.schema());
    let rt = runtime()?;
    rt.block_on(async {
        let stop = stop_on_signals()?;
        let daemon = Daemon {
            url: &url,
            queue: &queue,
            policy: &policy,
            guards: &guards,
            schedule: &schedule,
            pass: PassOptions {
                size_share: config.settings.indexes.size_warning_share,
                ..Default::default()
            },
        };
        println!(
            "lull daemon: passes at {schedule} on {}{}",
            lull_config::redact_url(&url),
            guards
                .window
                .as_ref()
                .map(|w| format!(", window {w}"))
                .unwrap_or_default()
        );
        let mut view = ProgressView::new();
        daemon
            .run(stop, &mut |event| match event {
                DaemonEvent::Waiting { next } => {
                    println!("next pass at {}", next.format("%Y-%m-%d %H:%M:%S UTC"))
                }
                DaemonEvent::Pass(e) => print_pass_event(&mut view, e),
                DaemonEvent::PassDone(decisions) => {
                    println!("pass done: {} decision(s)", decisions.len())
                }
                DaemonEvent::PassFailed(e) => {
                    eprintln!("pass failed: {e}; retrying at the next tick")
                }
                DaemonEvent::Stopping => println!("stopping"),
            })
            .await
            .map_err(lib_error)?;
        println!("lull daemon stopped");
        Ok(ExitCode::SUCCESS)
    })
}
