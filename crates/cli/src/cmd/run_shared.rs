//! What the runner commands (plan, migrate, status, rollback,
//! mark-applied) share: the flags for the migrations directory and output
//! format, turning configuration into [`RunnerOptions`], engine errors into
//! exit codes, and progress events into lines (or a live bar for index
//! builds on a terminal).

use std::io::IsTerminal;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Args as ClapArgs, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use lull_config::Config;
use lull_engine::events::human;
use lull_engine::{EngineError, ErrorKind, Event, EventSink, RunnerOptions};
use lull_migrations::{Layout, Migration};

use crate::context::GlobalArgs;
use crate::error::{exit, CliError};

/// Output format of the runner commands.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// Lines for people.
    #[default]
    Human,
    /// JSON for machines.
    Json,
}

/// Where the migrations are and how to read them.
#[derive(ClapArgs, Debug, Clone, Default)]
pub struct DirArgs {
    /// Migrations directory [default: `dir` in lull.toml, else ./migrations].
    #[arg(long, value_name = "PATH")]
    pub dir: Option<PathBuf>,

    /// Read the directory as this layout instead of detecting it
    /// (lull, sqlx, golang-migrate, dbmate, diesel, prisma, drizzle, flyway).
    #[arg(long, value_name = "LAYOUT", value_parser = parse_layout)]
    pub layout: Option<Layout>,

    /// Which other tool's history table to keep beside lull's: auto (the
    /// layout's tool, when its table exists), lull (none), or sqlx,
    /// diesel, golang-migrate, dbmate, flyway, prisma, drizzle, refinery,
    /// knex, rails, alembic [default: `history` in lull.toml, else auto].
    #[arg(long, value_name = "TOOL")]
    pub history: Option<String>,
}

fn parse_layout(s: &str) -> Result<Layout, String> {
    s.parse()
}

/// Replaces the `[placeholders]` of templated SQL in every up and down
/// file (the recorded checksum stays the one of the file as written). A
/// placeholder without a value is an error naming the file, line and
/// column.
fn substitute_placeholders(
    migrations: &mut [Migration],
    values: &std::collections::BTreeMap<String, String>,
) -> Result<(), CliError> {
    if values.is_empty() {
        return Ok(());
    }
    for m in migrations {
        for file in [m.up.as_mut(), m.down.as_mut()].into_iter().flatten() {
            match lull_analyzer::placeholders::substitute(&file.sql, values) {
                Ok(s) => file.sql = s.sql,
                Err(e) => return Err(CliError::new(format!(
                    "{}:{}:{}: {e}",
                    file.path.display(),
                    e.line + file.line_offset,
                    e.column
                ))
                .hint(
                    "add the value under [placeholders] in lull.toml (or [env.NAME.placeholders])",
                )),
            }
        }
    }
    Ok(())
}

/// Flags of the commands that change the database.
#[derive(ClapArgs, Debug, Clone, Default)]
pub struct RunArgs {
    /// How long to wait for another lull runner to finish before giving up
    /// (exit 3), e.g. `30s`, `10m`. Default: do not wait.
    #[arg(long, value_name = "DURATION", default_value = "0")]
    pub lock_wait: lull_config::Duration,

    /// Run applied-but-edited files anyway instead of refusing them.
    #[arg(long)]
    pub allow_changed: bool,

    /// Run statements as written: no safe-by-default rewrites
    /// (CONCURRENTLY, NOT VALID + VALIDATE, ...). Lock policies still apply.
    #[arg(long)]
    pub no_rewrites: bool,

    /// Show the blocker report on every failed lock try, not only when
    /// the tries run out.
    #[arg(long, short)]
    pub verbose: bool,
}

/// The configuration, URL and migrations a runner command works on.
pub struct Setup {
    /// The loaded configuration.
    pub config: Config,
    /// The migrations on disk.
    pub migrations: Vec<Migration>,
    /// The migrations directory.
    pub dir: PathBuf,
    /// `--history`, when given (it wins over lull.toml).
    pub history: Option<String>,
}

impl Setup {
    /// Loads the config and reads the migrations directory.
    pub fn load(global: &GlobalArgs, dir: &DirArgs) -> Result<Setup, CliError> {
        let config = global.config()?;
        let path = dir.dir.clone().unwrap_or_else(|| config.migrations_dir());
        let found = match dir.layout {
            Some(layout) => lull_migrations::discover_as(&path, layout),
            None => lull_migrations::discover(&path),
        };
        let migrations = found.map_err(|e| {
            let hint = match &e {
                lull_migrations::DiscoverError::NotADirectory { .. } => {
                    Some("pass --dir PATH or set `dir` in lull.toml")
                }
                lull_migrations::DiscoverError::MixedLayouts { .. } => {
                    Some("pass --layout to say which one to read")
                }
                _ => None,
            };
            let err = CliError::new(e);
            match hint {
                Some(h) => err.hint(h),
                None => err,
            }
        })?;
        let mut migrations = migrations;
        substitute_placeholders(&mut migrations, config.placeholders())?;
        Ok(Setup {
            config,
            migrations,
            dir: path,
            history: dir.history.clone(),
        })
    }

    /// Runner options from the config and flags.
    pub fn options(&self, global: &GlobalArgs, run: &RunArgs) -> Result<RunnerOptions, CliError> {
        let url = global.database_url(&self.config)?;
        let mut opts = RunnerOptions::new(url);
        opts.schema = self.config.schema().to_string();
        opts.policies = self.config.policies();
        opts.backfill = self.config.backfill();
        opts.rewrites = !run.no_rewrites;
        opts.lock_wait = run.lock_wait.std();
        opts.allow_changed = run.allow_changed;
        opts.pg_version = self.config.pg_version();
        let history = self
            .history
            .as_deref()
            .unwrap_or_else(|| self.config.history());
        opts.history = history.parse().map_err(|e: String| {
            CliError::new(e).hint("set `history` in lull.toml or pass --history")
        })?;
        Ok(opts)
    }
}

/// An engine error on its way out, with the exit code of its kind.
pub fn engine_error(e: EngineError) -> CliError {
    let code = match e.kind() {
        ErrorKind::Failed => exit::FAILED,
        ErrorKind::Refused => exit::REFUSED,
        ErrorKind::Error => exit::ERROR,
    };
    let hint = e.hint();
    let err = CliError::new(e).code(code);
    match hint {
        Some(h) => err.hint(h),
        None => err,
    }
}

/// A current-thread runtime is enough: the engine's concurrency is a few
/// connections and timers.
pub fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CliError::new(format!("cannot start the async runtime: {e}")))
}

/// Renders events as they come: human lines on stderr (with a live bar
/// for index builds when stderr is a terminal), or one JSON object per
/// line on stdout.
pub fn event_sink(format: Format, verbose: bool) -> EventSink {
    let state = Mutex::new(RenderState {
        bar: None,
        last_phase: String::new(),
        waiting_pids: Vec::new(),
        waiting_line_at: None,
    });
    let tty = std::io::stderr().is_terminal();
    Arc::new(move |event: &Event| {
        if format == Format::Json {
            if let Ok(line) = serde_json::to_string(event) {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{line}");
            }
            return;
        }
        let mut st = state.lock().unwrap();
        st.render(event, tty, verbose);
    })
}

struct RenderState {
    bar: Option<ProgressBar>,
    last_phase: String,
    /// Who the last waiting line named, so a new line is printed only
    /// when that changes (or every few seconds).
    waiting_pids: Vec<i32>,
    waiting_line_at: Option<Instant>,
}

impl RenderState {
    fn line(&self, text: String) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None => {
                let mut err = anstream::stderr();
                let _ = writeln!(err, "{text}");
            }
        }
    }

    fn finish_bar(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        self.last_phase.clear();
        self.waiting_pids.clear();
        self.waiting_line_at = None;
    }

    fn render(&mut self, event: &Event, tty: bool, verbose: bool) {
        use owo_colors::OwoColorize;
        match event {
            Event::RunnerLockWaiting { pid, application } => {
                let who = match (pid, application) {
                    (Some(p), Some(a)) if !a.is_empty() => format!(" (pid {p}, application {a})"),
                    (Some(p), _) => format!(" (pid {p})"),
                    _ => String::new(),
                };
                self.line(format!("waiting for another lull runner{who} to finish"));
            }
            Event::MigrationStarted {
                version,
                name,
                direction,
                steps,
                resumed_after,
            } => {
                let verb = if *direction == "down" {
                    "rolling back"
                } else {
                    "applying"
                };
                let resumed = if *resumed_after > 0 {
                    format!(", resuming after step {resumed_after}")
                } else {
                    String::new()
                };
                self.line(format!(
                    "{} {verb} {version}_{name} ({steps} step{}{resumed})",
                    "→".cyan(),
                    plural(*steps)
                ));
            }
            Event::StepStarted {
                step,
                total,
                kind,
                policy,
                summary,
                ..
            } => {
                self.line(format!("  step {step}/{total} {kind} [{policy}] {summary}"));
            }
            Event::StepSkipped { step, reason, .. } => {
                self.line(format!("  step {step} skipped: {reason}"));
            }
            Event::LockWaiting {
                step,
                waited,
                budget,
                holders,
                ..
            } => {
                let pids: Vec<i32> = holders.iter().map(|h| h.pid).collect();
                let head = format!(
                    "  step {step}: waiting for a gap ({} of {}) behind",
                    human(*waited),
                    human(*budget)
                );
                let who: Vec<String> = holders.iter().map(|h| h.human()).collect();
                if tty {
                    let bar = self.bar.get_or_insert_with(|| {
                        let bar = ProgressBar::new_spinner();
                        bar.set_style(
                            ProgressStyle::with_template("{spinner} {msg}")
                                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                        );
                        bar.enable_steady_tick(Duration::from_millis(250));
                        bar
                    });
                    bar.set_message(format!("{head} {}", who.join("; ")));
                } else {
                    let changed = self.waiting_pids != pids;
                    let stale = self
                        .waiting_line_at
                        .is_none_or(|at| at.elapsed() >= Duration::from_secs(10));
                    if changed || stale {
                        self.line(format!("{head}:\n    {}", who.join("\n    ")));
                        self.waiting_line_at = Some(Instant::now());
                    }
                }
                self.waiting_pids = pids;
            }
            Event::BlockerAction { step, action, .. } => {
                self.finish_bar();
                let h = &action.session;
                let outcome = match (&action.ok, &action.error) {
                    (true, _) => String::new(),
                    (false, Some(e)) => format!(" — failed: {e}"),
                    (false, None) => " — failed".to_string(),
                };
                self.line(format!(
                    "  step {step}: {} pid {} (user {}, application {}, {} for {}) as [policy.blockers] says: {}{outcome}",
                    action.action.past(),
                    h.pid,
                    h.user,
                    h.application,
                    h.state,
                    human(Duration::from_secs_f64(h.state_age_secs.max(0.0))),
                    h.query
                ));
            }
            Event::LockRetry {
                step,
                attempt,
                lock_timeout,
                next_lock_timeout,
                blockers,
                ..
            } => {
                self.finish_bar();
                let next = if next_lock_timeout > lock_timeout {
                    format!(
                        " (next try gets {}: the table is hot)",
                        human(*next_lock_timeout)
                    )
                } else {
                    String::new()
                };
                self.line(format!(
                    "  step {step}: try {attempt} in a gap did not get the lock within {}; watching again{next}",
                    human(*lock_timeout),
                ));
                if verbose && !blockers.is_empty() {
                    let tree: Vec<String> = blockers
                        .human()
                        .lines()
                        .map(|l| format!("    {l}"))
                        .collect();
                    self.line(format!("    blocked by:\n{}", tree.join("\n")));
                }
            }
            Event::Retry {
                step,
                attempt,
                error,
                sleep,
                ..
            } => {
                self.finish_bar();
                self.line(format!(
                    "  step {step}: try {attempt} failed ({error}); retrying in {}",
                    human(*sleep)
                ));
            }
            Event::IndexProgress {
                index, progress, ..
            } => {
                // Totals are only meaningful while blocks or tuples are
                // being worked through, not in the waiting phases.
                let pct = progress
                    .percent()
                    .filter(|_| !progress.phase.starts_with("waiting"));
                let waiting = if progress.waiting_for.is_empty() {
                    String::new()
                } else {
                    format!(
                        " — waiting for pid {}",
                        progress
                            .waiting_for
                            .iter()
                            .map(|p| p.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                };
                let msg = format!("{index}: {}{waiting}", progress.phase);
                if tty {
                    let bar = self.bar.get_or_insert_with(|| {
                        let bar = ProgressBar::new(100);
                        bar.set_style(
                            ProgressStyle::with_template("  {bar:30} {pos:>3}% {elapsed} {msg}")
                                .unwrap_or_else(|_| ProgressStyle::default_bar()),
                        );
                        bar.enable_steady_tick(Duration::from_millis(250));
                        bar
                    });
                    bar.set_position(pct.unwrap_or(0.0) as u64);
                    bar.set_message(msg);
                } else if progress.phase != self.last_phase {
                    self.last_phase = progress.phase.clone();
                    let pct = pct.map(|p| format!(" {p:.0}%")).unwrap_or_default();
                    self.line(format!("    {msg}{pct}"));
                }
            }
            Event::InvalidIndexDropped { index } => {
                self.line(format!(
                    "  dropped INVALID index {index} left by an earlier failed build"
                ));
            }
            Event::StepFinished {
                step,
                elapsed,
                tries,
                ..
            } => {
                self.finish_bar();
                let tries = if *tries > 1 {
                    format!(" after {tries} tries")
                } else {
                    String::new()
                };
                self.line(format!("  step {step} done in {}{tries}", human(*elapsed)));
            }
            Event::MigrationFinished {
                version,
                direction,
                elapsed,
            } => {
                self.finish_bar();
                let verb = if *direction == "down" {
                    "rolled back"
                } else {
                    "applied"
                };
                self.line(format!(
                    "{} {version} {verb} in {}",
                    "✓".green(),
                    human(*elapsed)
                ));
            }
            Event::Backfill { step, progress, .. } => self.backfill(*step, progress, tty),
            Event::Warning { message } => {
                self.finish_bar();
                self.line(format!("{} {message}", "warning:".yellow().bold()));
            }
        }
    }
}

impl RenderState {
    /// A backfill step: a bar of rows walked on terminals, lines for
    /// starts, holds, tenants and the end.
    fn backfill(&mut self, step: usize, e: &lull_backfill::BackfillEvent, tty: bool) {
        use lull_backfill::BackfillEvent as B;
        match e {
            B::Started {
                key,
                per,
                estimate,
                rows_done,
                rows_scanned,
                resumed,
                batch_size,
                ..
            } => {
                let per = per
                    .as_ref()
                    .map(|p| format!(", per {p}"))
                    .unwrap_or_default();
                let resumed = if *resumed {
                    format!(", resuming after {rows_done} rows")
                } else {
                    String::new()
                };
                self.line(format!(
                    "  step {step}: backfill by ({}){per}, batches of {batch_size}{resumed}",
                    key.join(", ")
                ));
                if tty {
                    let bar = match estimate {
                        Some(n) if *n > 0 => ProgressBar::new(*n as u64),
                        _ => ProgressBar::new_spinner(),
                    };
                    bar.set_style(
                        ProgressStyle::with_template(
                            "  {bar:30} {pos}/~{len} rows walked, {per_sec}, ETA {eta} {msg}",
                        )
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                    );
                    bar.set_position(*rows_scanned as u64);
                    bar.enable_steady_tick(Duration::from_millis(250));
                    self.bar = Some(bar);
                }
            }
            B::Batch {
                total_rows,
                total_scanned,
                ..
            } => {
                if let Some(bar) = &self.bar {
                    bar.set_position(*total_scanned as u64);
                    bar.set_message(format!("{total_rows} changed"));
                }
            }
            B::Held { reasons } => {
                self.line(format!("  step {step}: holding: {}", reasons.join("; ")))
            }
            B::Released { held } => {
                self.line(format!("  step {step}: released after {}", human(*held)))
            }
            B::Split { from, to } => self.line(format!(
                "  step {step}: a batch of {from} hit [backfill] batch_timeout; retrying with {to}"
            )),
            B::Retry {
                attempt,
                error,
                sleep,
            } => self.line(format!(
                "  step {step}: batch try {attempt} failed ({error}); retrying in {}",
                human(*sleep)
            )),
            B::PartDone {
                tenant: Some(t),
                rows,
                ..
            } => self.line(format!("  step {step}: tenant {t} done, {rows} rows")),
            B::PartDone { .. } => {}
            B::Finished {
                rows,
                batches,
                remaining,
                ..
            } => {
                self.finish_bar();
                let remaining = remaining
                    .map(|n| format!(", {n} rows still match its WHERE"))
                    .unwrap_or_default();
                self.line(format!(
                    "  step {step}: backfill changed {rows} rows in {batches} batches{remaining}"
                ));
            }
        }
    }
}

/// `s` when `n` is not one.
pub fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}
