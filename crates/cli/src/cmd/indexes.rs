//! `lull indexes …`: check declared against actual indexes, queue and
//! build missing ones in a safe window under guards, watch and cancel
//! builds, report unused and duplicate indexes. The work is done by
//! `lull_indexes`; this module parses flags and renders results.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args as ClapArgs, Subcommand, ValueEnum};
use lull_config::Config;
use lull_indexes::build::{BuildEvent, Outcome};
use lull_indexes::check::{self, FindingKind};
use lull_indexes::estimate::{self, human_bytes, Estimate};
use lull_indexes::expected::ExpectedSet;
use lull_indexes::guards::Guards;
use lull_indexes::pass::{self, Decision, PassEvent, PassOptions};
use lull_indexes::progress::{self, BuildProgress};
use lull_indexes::queue::Queue;
use lull_indexes::{cancel, db, report, IndexDef};
use owo_colors::OwoColorize;

use crate::context::GlobalArgs;
use crate::error::{exit, CliError, CliResult};

/// Index operations: check, queue, build in a safe window, monitor, report.
///
/// The schema declares indexes (a pg_dump file, Rails structure.sql or the
/// migrations); the database may lack some or hold INVALID leftovers of
/// failed concurrent builds. `check` finds them, the pending queue
/// (lull.pending_indexes) holds what should be built, and `build` / `auto`
/// build it CONCURRENTLY inside the [indexes] window of lull.toml while
/// the guards allow it.
///
/// Example:
///   lull indexes check --expected db/structure.sql --enqueue
///   lull indexes pending
///   lull indexes auto            # from cron, in the window
///   lull indexes monitor
#[derive(ClapArgs, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

/// Output formats.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
enum Format {
    /// For people.
    #[default]
    Human,
    /// For machines.
    Json,
}

#[derive(Subcommand, Debug)]
enum Action {
    /// Compare the indexes the schema declares with the database.
    ///
    /// Reports missing, INVALID, different (same name, other definition),
    /// renamed and unexpected (present, not declared) indexes. Definitions
    /// are compared parsed and normalized: table, method, columns and
    /// expressions, opclasses, collations, order, predicate, INCLUDE and
    /// uniqueness. Indexes that back constraints (primary keys, unique
    /// constraints) are left out on both sides. Only schemas that declare
    /// indexes are compared, plus those given with --schema.
    /// Exit 1 when anything differs.
    ///
    /// Example:
    ///   lull indexes check --expected schema.sql
    ///   lull indexes check --expected migrations/ --enqueue --format json
    #[command(verbatim_doc_comment)]
    Check {
        /// SQL files (pg_dump --schema-only, structure.sql) or migration
        /// directories; read in order, CREATE INDEX minus later DROP INDEX.
        #[arg(long, required = true, num_args = 1.., value_name = "PATH")]
        expected: Vec<PathBuf>,
        /// Also compare this schema (repeatable).
        #[arg(long = "schema", value_name = "NAME")]
        schemas: Vec<String>,
        /// Queue missing and INVALID indexes for `lull indexes build`.
        #[arg(long)]
        enqueue: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Queue an index to be built in the next window.
    ///
    /// The statement is parsed and must name the index; it is run later
    /// CONCURRENTLY whatever is written.
    ///
    /// Example:
    ///   lull indexes add "CREATE INDEX orders_customer ON orders (customer_id)" \
    ///     --example-query "SELECT * FROM orders WHERE customer_id = 42"
    #[command(verbatim_doc_comment)]
    Add {
        /// The CREATE INDEX statement.
        sql: String,
        /// Why it is needed (shown by `pending`).
        #[arg(long, default_value = "added by `lull indexes add`")]
        reason: String,
        /// A query whose plan should use the index; checked with EXPLAIN after the build.
        #[arg(long, value_name = "SQL")]
        example_query: Option<String>,
    },
    /// List the pending queue with size and duration estimates.
    Pending {
        /// Free disk space (e.g. 20GB), to warn when an index would take
        /// too much of it.
        #[arg(long, value_name = "SIZE")]
        free_space: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Build pending indexes now, one at a time, under the guards.
    ///
    /// Each build runs CONCURRENTLY on its own connection with the
    /// [policy.index] settings, shows live progress (phase, blocks,
    /// tuples, ETA of the phase, the session it waits for) and is
    /// verified (valid, ready, ANALYZE, the example query's plan). The
    /// guards of [indexes] apply; --ignore-window lifts only the window.
    /// Exit 0 when every requested index was built.
    ///
    /// Example:
    ///   lull indexes build                      # all pending
    ///   lull indexes build orders_customer --ignore-window
    #[command(verbatim_doc_comment)]
    Build {
        /// Indexes to build [default: all pending].
        names: Vec<String>,
        /// Build outside the [indexes] window (other guards still apply).
        #[arg(long)]
        ignore_window: bool,
        /// Free disk space (e.g. 20GB), for the estimate's warning.
        #[arg(long, value_name = "SIZE")]
        free_space: Option<String>,
        /// Output format (json prints the decisions at the end).
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// One guarded pass over the queue, for cron: logs every decision.
    ///
    /// Builds what the window and guards allow, skips the rest with the
    /// reason (kept on the queue row), cancels a build when a guard trips
    /// during it and drops its INVALID leftover. Exit 0 unless a build
    /// failed (skips and guard cancellations are normal).
    ///
    /// Example crontab line (the [indexes] window decides what runs):
    ///   30 2 * * *  cd /srv/app && lull --env production indexes auto >> /var/log/lull.log 2>&1
    #[command(verbatim_doc_comment)]
    Auto {
        /// Free disk space (e.g. 20GB), for the estimate's warning.
        #[arg(long, value_name = "SIZE")]
        free_space: Option<String>,
        /// Output format (json prints the decisions at the end).
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Watch every index build in the cluster, also other tools' builds.
    ///
    /// Shows phase, percent of the phase, elapsed time and the session a
    /// build waits for; refreshes until no build is left.
    #[command(verbatim_doc_comment)]
    Monitor {
        /// Print one snapshot and exit.
        #[arg(long)]
        once: bool,
        /// Refresh interval.
        #[arg(long, default_value = "2s", value_name = "DURATION")]
        interval: lull_config::Duration,
        /// Output format (json: one snapshot array per refresh).
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Remove indexes from the pending queue without building them.
    ///
    /// For a queue row that should never be built (a bad definition fails
    /// every night). Nothing is dropped: an index already built stays, and
    /// a build running now goes on (`lull indexes cancel NAME` stops it).
    ///
    /// Example:
    ///   lull indexes remove orders_customer_idx
    #[command(verbatim_doc_comment)]
    Remove {
        /// Index names as `lull indexes pending` lists them.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Cancel an index build by index name or backend pid, and drop the
    /// INVALID leftover.
    Cancel {
        /// Index name or pid (see `lull indexes monitor --once`).
        target: String,
    },
    /// Size and usage of every index; unused, duplicate, redundant and
    /// INVALID ones with a DROP INDEX CONCURRENTLY statement each.
    ///
    /// "Unused" counts scans since the statistics reset (shown), on this
    /// server only: check replicas before dropping. The only index a
    /// foreign key can use is never called unused, nor one younger than
    /// --min-age (the age is known when track_commit_timestamp is on).
    #[command(verbatim_doc_comment)]
    Report {
        /// Unused indexes younger than this are not suggested.
        #[arg(long, default_value = "7d", value_name = "DURATION")]
        min_age: lull_config::Duration,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}

/// Runs `lull indexes …`.
pub fn run(global: &GlobalArgs, args: Args) -> CliResult {
    let config = global.config()?;
    let url = global.database_url(&config)?;
    let rt = runtime()?;
    rt.block_on(async move {
        match args.action {
            Action::Check {
                expected,
                schemas,
                enqueue,
                format,
            } => check(&config, &url, &expected, &schemas, enqueue, format).await,
            Action::Add {
                sql,
                reason,
                example_query,
            } => add(&config, &url, &sql, &reason, example_query).await,
            Action::Pending { free_space, format } => {
                pending(&config, &url, free_space, format).await
            }
            Action::Build {
                names,
                ignore_window,
                free_space,
                format,
            } => {
                let opts = pass_options(&config, names, ignore_window, free_space)?;
                run_pass(&config, &url, opts, format, true).await
            }
            Action::Auto { free_space, format } => {
                let opts = pass_options(&config, Vec::new(), false, free_space)?;
                run_pass(&config, &url, opts, format, false).await
            }
            Action::Monitor {
                once,
                interval,
                format,
            } => monitor(&url, once, interval.std(), format).await,
            Action::Cancel { target } => cancel_build(&config, &url, &target).await,
            Action::Remove { names } => remove(&config, &url, &names).await,
            Action::Report { min_age, format } => {
                usage_report(&config, &url, min_age.std(), format).await
            }
        }
    })
}

/// A small runtime: the work is I/O bound and the machine may be busy.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::new(format!("cannot start the async runtime: {e}")))
}

pub(crate) fn lib_error(e: lull_indexes::Error) -> CliError {
    use lull_indexes::Error as E;
    let hint = match &e {
        E::Engine(engine) => engine.hint(),
        E::Window(_) | E::Schedule(_) => Some("fix the [indexes] section of lull.toml".to_string()),
        _ => None,
    };
    let refused =
        matches!(&e, E::Engine(engine) if engine.kind() == lull_engine::ErrorKind::Refused);
    let mut err = CliError::new(&e);
    if refused {
        err = err.code(exit::REFUSED);
    }
    match hint {
        Some(h) => err.hint(h),
        None => err,
    }
}

pub(crate) fn guards(config: &Config) -> Result<Guards, CliError> {
    Guards::from_config(&config.settings.indexes).map_err(lib_error)
}

/// lull's own schema, left out of comparisons and reports; nothing is
/// left out when it is a schema the application uses too.
fn own_schema(config: &Config) -> &str {
    match config.schema() {
        "public" => "",
        s => s,
    }
}

fn pass_options(
    config: &Config,
    names: Vec<String>,
    ignore_window: bool,
    free_space: Option<String>,
) -> Result<PassOptions, CliError> {
    Ok(PassOptions {
        names,
        ignore_window,
        free_space: free_space.as_deref().map(parse_size).transpose()?,
        size_share: config.settings.indexes.size_warning_share,
    })
}

fn parse_size(s: &str) -> Result<u64, CliError> {
    estimate::parse_bytes(s).ok_or_else(|| {
        CliError::new(format!("`{s}` is not a size")).hint("write e.g. 20GB, 512MB or 1.5TB")
    })
}

fn json<T: serde::Serialize>(value: &T) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value).map_err(CliError::new)?;
    println!("{text}");
    Ok(())
}

async fn check(
    config: &Config,
    url: &str,
    paths: &[PathBuf],
    schemas: &[String],
    enqueue: bool,
    format: Format,
) -> CliResult {
    let mut expected = ExpectedSet::default();
    for p in paths {
        expected.add_path(p).map_err(|e| {
            CliError::new(e).hint("--expected takes SQL files and migration directories")
        })?;
    }
    let client = if enqueue {
        db::connect_primary(url).await
    } else {
        db::connect(url).await
    }
    .map_err(lib_error)?;
    let report = check::check(&client, &expected, schemas, own_schema(config))
        .await
        .map_err(lib_error)?;
    let mut queued = Vec::new();
    if enqueue {
        let queue = Queue::new(config.schema());
        for f in report
            .findings
            .iter()
            .filter(|f| matches!(f.kind, FindingKind::Missing | FindingKind::Invalid))
        {
            let Some(e) = expected.indexes.get(&(f.schema.clone(), f.name.clone())) else {
                continue;
            };
            let reason = format!("{} (indexes check, declared at {})", f.kind, e.source);
            queue
                .add(&client, &e.def, &reason, None)
                .await
                .map_err(lib_error)?;
            queued.push(f.name.clone());
        }
    }
    if format == Format::Json {
        json(&serde_json::json!({ "report": report, "queued": queued }))?;
    } else {
        for w in &report.warnings {
            anstream::eprintln!("{} {w}", "warning:".yellow().bold());
        }
        for f in &report.findings {
            let label = format!("{:<10}", f.kind.to_string());
            let label = match f.kind {
                FindingKind::Missing | FindingKind::Invalid => label.red().bold().to_string(),
                _ => label.yellow().bold().to_string(),
            };
            anstream::println!("{label} {}.{} on {}", f.schema, f.name, f.table);
            if let Some(src) = &f.source {
                anstream::println!("           declared at {src}");
            }
            if f.kind == FindingKind::Unexpected || f.kind == FindingKind::Renamed {
                if let Some(a) = &f.actual {
                    anstream::println!("           in the database: {a}");
                }
            }
            for d in &f.details {
                anstream::println!("           {d}");
            }
        }
        println!(
            "{} declared, {} in the database (schemas: {}): {}",
            report.declared,
            report.present,
            report.schemas.join(", "),
            if report.ok() {
                "all match".to_string()
            } else {
                format!("{} finding(s)", report.findings.len())
            }
        );
        if !queued.is_empty() {
            println!(
                "queued {} index(es) for `lull indexes build`: {}",
                queued.len(),
                queued.join(", ")
            );
        } else if !report.ok() && !enqueue {
            println!(
                "hint: --enqueue queues the missing and INVALID ones for `lull indexes build`"
            );
        }
    }
    Ok(ExitCode::from(if report.ok() {
        exit::OK
    } else {
        exit::FAILED
    }))
}

async fn add(
    config: &Config,
    url: &str,
    sql: &str,
    reason: &str,
    example_query: Option<String>,
) -> CliResult {
    let def = IndexDef::parse(sql)
        .map_err(|e| CliError::new(e).hint("give one CREATE INDEX statement with an index name"))?;
    let client = db::connect_primary(url).await.map_err(lib_error)?;
    let queue = Queue::new(config.schema());
    let new = queue
        .add(&client, &def, reason, example_query.as_deref())
        .await
        .map_err(lib_error)?;
    let table_exists: bool = client
        .query_one(
            "SELECT to_regclass($1) IS NOT NULL",
            &[&def.qualified_table()],
        )
        .await
        .map(|r| r.get(0))
        .unwrap_or(true);
    if !table_exists {
        anstream::eprintln!(
            "{} table {} does not exist yet; the build fails until it does",
            "warning:".yellow().bold(),
            def.qualified_table()
        );
    }
    println!(
        "{} {} on {}; it is built by `lull indexes build` or in the next window by `lull indexes auto`",
        if new { "queued" } else { "updated" },
        def.name,
        def.qualified_table()
    );
    Ok(ExitCode::SUCCESS)
}

fn estimate_line(e: &Estimate) -> String {
    let mut s = format!(
        "estimate: ~{} index, ~{} (table {} rows, {})",
        human_bytes(e.index_bytes),
        human_secs(e.seconds),
        human_count(e.rows),
        human_bytes(e.table_bytes)
    );
    for n in &e.notes {
        s.push_str(&format!("; {n}"));
    }
    s
}

fn human_count(n: f64) -> String {
    match n {
        n if n >= 1e9 => format!("{:.1}G", n / 1e9),
        n if n >= 1e6 => format!("{:.1}M", n / 1e6),
        n if n >= 1e3 => format!("{:.1}k", n / 1e3),
        n => format!("{n:.0}"),
    }
}

fn human_secs(s: f64) -> String {
    match s {
        s if s >= 3600.0 => format!("{:.1}h", s / 3600.0),
        s if s >= 60.0 => format!("{:.0}m{:02.0}s", (s / 60.0).floor(), s % 60.0),
        s => format!("{s:.1}s"),
    }
}

async fn pending(
    config: &Config,
    url: &str,
    free_space: Option<String>,
    format: Format,
) -> CliResult {
    let free = free_space.as_deref().map(parse_size).transpose()?;
    let share = config.settings.indexes.size_warning_share;
    let client = db::connect(url).await.map_err(lib_error)?;
    let rows = Queue::new(config.schema())
        .list(&client)
        .await
        .map_err(lib_error)?;
    let mut out = Vec::new();
    for row in &rows {
        let est = match IndexDef::parse(&row.definition) {
            Ok(def) => estimate::estimate(&client, &def, free, share).await.ok(),
            Err(_) => None,
        };
        out.push((row, est));
    }
    if format == Format::Json {
        let items: Vec<_> = out
            .iter()
            .map(|(row, est)| serde_json::json!({ "index": row, "estimate": est }))
            .collect();
        json(&items)?;
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        println!(
            "no pending index (queue {}.pending_indexes)",
            config.schema()
        );
        return Ok(ExitCode::SUCCESS);
    }
    for (row, est) in &out {
        anstream::println!(
            "{} on {}  (attempts {}, queued {})",
            row.name.bold(),
            row.table_name,
            row.attempts,
            row.created_at.format("%Y-%m-%d %H:%M UTC")
        );
        println!("  {}", row.definition);
        if let Some(r) = &row.reason {
            println!("  reason: {r}");
        }
        if let Some(e) = &row.last_error {
            anstream::println!("  last: {}", e.yellow());
        }
        if let Some(e) = est {
            println!("  {}", estimate_line(e));
            if let Some(w) = &e.warning {
                anstream::println!("  {} {w}", "warning:".yellow().bold());
            }
        }
    }
    println!("{} pending", rows.len());
    Ok(ExitCode::SUCCESS)
}

/// Renders build progress: a live bar (percent of the current phase,
/// with blocks, tuples, ETA and who it waits for) on a terminal, a line
/// per phase change (or every 30 s) otherwise, so cron logs stay readable.
pub(crate) struct ProgressView {
    bar: Option<indicatif::ProgressBar>,
    tty: bool,
    last_phase: String,
    last_line: std::time::Instant,
}

impl ProgressView {
    pub(crate) fn new() -> ProgressView {
        ProgressView {
            bar: None,
            tty: std::io::stderr().is_terminal(),
            last_phase: String::new(),
            last_line: std::time::Instant::now(),
        }
    }

    pub(crate) fn show(&mut self, name: &str, p: &BuildProgress) {
        let line = progress_line(name, p);
        if self.tty {
            let bar = self.bar.get_or_insert_with(|| {
                let bar = indicatif::ProgressBar::new(100);
                bar.set_style(
                    indicatif::ProgressStyle::with_template("{bar:30} {pos:>3}% {msg}")
                        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                );
                bar.enable_steady_tick(Duration::from_millis(250));
                bar
            });
            bar.set_position(p.percent.unwrap_or(0.0) as u64);
            bar.set_message(line);
        } else if p.phase != self.last_phase || self.last_line.elapsed() > Duration::from_secs(30) {
            eprintln!("{line}");
            self.last_line = std::time::Instant::now();
        }
        self.last_phase = p.phase.clone();
    }

    pub(crate) fn clear(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        self.last_phase.clear();
    }
}

fn progress_line(name: &str, p: &BuildProgress) -> String {
    let mut s = format!("{name}: {} ", p.phase);
    if let Some(pct) = p.percent {
        s.push_str(&format!("{pct:.0}% "));
    }
    if p.blocks_total > 0 {
        s.push_str(&format!("blocks {}/{} ", p.blocks_done, p.blocks_total));
    }
    if p.tuples_total > 0 {
        s.push_str(&format!("tuples {}/{} ", p.tuples_done, p.tuples_total));
    }
    s.push_str(&format!("elapsed {}", human_secs(p.elapsed_secs)));
    if let Some(eta) = p.phase_eta_secs {
        s.push_str(&format!(", phase ETA {}", human_secs(eta)));
    }
    if let Some(w) = &p.waiting_for {
        s.push_str(&format!(", waiting for pid {}", w.pid));
        if let Some(state) = &w.state {
            s.push_str(&format!(" ({state}"));
            if let Some(age) = w.xact_age_secs {
                s.push_str(&format!(", transaction {}", human_secs(age)));
            }
            s.push(')');
        }
        if let Some(q) = &w.query {
            s.push_str(&format!(": {}", q.replace('\n', " ")));
        }
    }
    s
}

/// One line per decision, for people and cron logs.
pub(crate) fn decision_line(d: &Decision) -> String {
    let now = chrono::Utc::now().format("%Y-%m-%d %H:%M:%S");
    match &d.outcome {
        Outcome::Built {
            seconds,
            tries,
            verification,
        } => {
            let mut s = format!(
                "{now} {} {} on {} in {}{}: valid, ready, analyzed",
                "built".green().bold(),
                d.name,
                d.table,
                human_secs(*seconds),
                if *tries > 1 {
                    format!(" (try {tries})")
                } else {
                    String::new()
                }
            );
            match verification.plan_uses_index {
                Some(true) => s.push_str("; the example query uses it"),
                Some(false) | None => {
                    if let Some(n) = &verification.plan_note {
                        s.push_str(&format!("; {n}"));
                    }
                }
            }
            s
        }
        Outcome::AlreadyPresent { .. } => format!(
            "{now} {} {} is already built and valid; removed from the queue",
            "present".green().bold(),
            d.name
        ),
        Outcome::Skipped { trip } => {
            format!("{now} {} {}: {trip}", "skipped".yellow().bold(), d.name)
        }
        Outcome::Cancelled {
            trip,
            leftover_dropped,
        } => format!(
            "{now} {} {}: {trip}; {}; still pending",
            "cancelled".yellow().bold(),
            d.name,
            if *leftover_dropped {
                "INVALID leftover dropped"
            } else {
                "INVALID leftover left for the next try (a lock wait ran out)"
            }
        ),
        Outcome::Failed { error, .. } => format!(
            "{now} {} {}: {error}; still pending",
            "failed".red().bold(),
            d.name
        ),
    }
}

/// Prints pass events: estimates, starts, progress, decisions.
pub(crate) fn print_pass_event(view: &mut ProgressView, event: PassEvent<'_>) {
    match event {
        PassEvent::Considering { pending, estimate } => {
            if let Some(e) = estimate {
                anstream::println!("{} {}", pending.name.bold(), estimate_line(e));
                if let Some(w) = &e.warning {
                    anstream::println!("  {} {w}", "warning:".yellow().bold());
                }
            }
        }
        PassEvent::Build(name, BuildEvent::Started { try_no, sql, pid }) => {
            println!("{name}: try {try_no} on pid {pid}: {sql}");
        }
        PassEvent::Build(name, BuildEvent::Progress(p)) => view.show(name, p),
        PassEvent::Build(name, BuildEvent::Retrying { error, sleep }) => {
            view.clear();
            println!(
                "{name}: {error}; retrying in {}",
                human_secs(sleep.as_secs_f64())
            );
        }
        PassEvent::Build(name, BuildEvent::DroppedInvalid(index)) => {
            view.clear();
            println!("{name}: dropped the INVALID leftover {index}");
        }
        PassEvent::Build(name, BuildEvent::WaitingForBuilder { pid }) => {
            view.clear();
            match pid {
                Some(pid) => println!(
                    "{name}: another session (pid {pid}) is building this index; waiting for it to end"
                ),
                None => println!("{name}: another session is building this index; waiting for it to end"),
            }
        }
        PassEvent::Build(name, BuildEvent::Cancelling(trip)) => {
            view.clear();
            println!("{name}: cancelling: {trip}");
        }
        PassEvent::Decided(d) => {
            view.clear();
            anstream::println!("{}", decision_line(d));
        }
    }
}

/// A stop flag that turns true on SIGTERM or Ctrl-C.
pub(crate) fn stop_on_signals() -> Result<tokio::sync::watch::Receiver<bool>, CliError> {
    use tokio::signal::unix::{signal, SignalKind};
    let (tx, rx) = tokio::sync::watch::channel(false);
    let mut term = signal(SignalKind::terminate())
        .map_err(|e| CliError::new(format!("cannot watch SIGTERM: {e}")))?;
    let mut int = signal(SignalKind::interrupt())
        .map_err(|e| CliError::new(format!("cannot watch SIGINT: {e}")))?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        let _ = tx.send(true);
        // Keep the sender alive so receivers see a stop, not a hang-up.
        std::future::pending::<()>().await;
    });
    Ok(rx)
}

async fn run_pass(
    config: &Config,
    url: &str,
    opts: PassOptions,
    format: Format,
    strict: bool,
) -> CliResult {
    let guards = guards(config)?;
    let policy = config.policies().index;
    let queue = Queue::new(config.schema());
    let stop = stop_on_signals()?;
    let mut view = ProgressView::new();
    let human = format == Format::Human;
    let decisions = pass::run_pass(url, &queue, &policy, &guards, &opts, stop, &mut |e| {
        if human {
            print_pass_event(&mut view, e)
        }
    })
    .await
    .map_err(lib_error)?;
    if format == Format::Json {
        json(&decisions)?;
    } else if decisions.is_empty() {
        println!("no pending index");
    }
    let built = |d: &Decision| {
        matches!(
            d.outcome,
            Outcome::Built { .. } | Outcome::AlreadyPresent { .. }
        )
    };
    let failed = |d: &Decision| matches!(d.outcome, Outcome::Failed { .. });
    let ok = if strict {
        decisions.iter().all(built)
    } else {
        !decisions.iter().any(failed)
    };
    Ok(ExitCode::from(if ok { exit::OK } else { exit::FAILED }))
}

async fn monitor(url: &str, once: bool, interval: Duration, format: Format) -> CliResult {
    let client = db::connect(url).await.map_err(lib_error)?;
    let mut seen_any = false;
    let mut clocks: std::collections::HashMap<i32, progress::PhaseClock> = Default::default();
    loop {
        let mut builds = progress::snapshot(&client, None).await.map_err(lib_error)?;
        for b in &mut builds {
            clocks.entry(b.pid).or_default().update(b);
        }
        if format == Format::Json {
            json(&builds)?;
        } else if builds.is_empty() {
            println!(
                "{}",
                if seen_any {
                    "no index build left"
                } else {
                    "no index build running"
                }
            );
        } else {
            let now = chrono::Utc::now().format("%H:%M:%S");
            println!("{now}  {} build(s)", builds.len());
            for b in &builds {
                println!(
                    "  pid {} db {} {} on {}: {}",
                    b.pid,
                    b.database,
                    b.command,
                    b.table,
                    progress_line(&b.index, b)
                );
            }
        }
        if once || builds.is_empty() {
            return Ok(ExitCode::SUCCESS);
        }
        seen_any = true;
        tokio::time::sleep(interval).await;
    }
}

async fn cancel_build(config: &Config, url: &str, target: &str) -> CliResult {
    let client = db::connect(url).await.map_err(lib_error)?;
    let report = cancel::cancel(&client, &Queue::new(config.schema()), target)
        .await
        .map_err(lib_error)?;
    if let Some(pid) = report.pid {
        println!(
            "cancelled the build of {} on pid {pid}{}",
            report.index.as_deref().unwrap_or("?"),
            if report.stopped {
                ""
            } else {
                " (it has not stopped yet)"
            }
        );
    }
    for d in &report.dropped {
        println!("dropped the INVALID index {d}");
    }
    for d in &report.not_dropped {
        println!("could not drop the INVALID index {d} now (a lock wait ran out); the next build drops it");
    }
    Ok(ExitCode::from(if report.stopped || report.pid.is_none() {
        exit::OK
    } else {
        exit::FAILED
    }))
}

async fn remove(config: &Config, url: &str, names: &[String]) -> CliResult {
    let client = db::connect_primary(url).await.map_err(lib_error)?;
    let queue = Queue::new(config.schema());
    queue.ensure(&client).await.map_err(lib_error)?;
    let mut missing = Vec::new();
    for name in names {
        if queue.remove(&client, name).await.map_err(lib_error)? {
            println!("removed {name} from the pending queue (nothing was dropped)");
        } else {
            missing.push(name.as_str());
        }
    }
    if missing.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    Err(
        CliError::new(format!("not in the pending queue: {}", missing.join(", ")))
            .hint("`lull indexes pending` lists the queued names"),
    )
}

async fn usage_report(
    config: &Config,
    url: &str,
    min_age: std::time::Duration,
    format: Format,
) -> CliResult {
    let client = db::connect(url).await.map_err(lib_error)?;
    let r = report::report(&client, own_schema(config), min_age)
        .await
        .map_err(lib_error)?;
    if format == Format::Json {
        json(&r)?;
        return Ok(ExitCode::SUCCESS);
    }
    match r.stats_reset {
        Some(t) => println!(
            "statistics since {} (last reset)",
            t.format("%Y-%m-%d %H:%M UTC")
        ),
        None => println!("statistics since the server's statistics began (never reset)"),
    }
    println!(
        "{:<40} {:>10} {:>10} {:>12} {:>12}",
        "index", "size", "scans", "tup read", "tup fetched"
    );
    for i in &r.indexes {
        println!(
            "{:<40} {:>10} {:>10} {:>12} {:>12}{}",
            format!("{}.{}", i.schema, i.name),
            human_bytes(i.size_bytes),
            i.scans,
            i.tuples_read,
            i.tuples_fetched,
            if i.valid { "" } else { "  INVALID" }
        );
    }
    if r.suggestions.is_empty() {
        println!("no unused, duplicate, redundant or INVALID index");
    } else {
        println!();
        for s in &r.suggestions {
            let kind = format!("{:?}", s.kind).to_lowercase();
            anstream::println!("{} {}: {}", kind.yellow().bold(), s.index, s.reason);
            println!("  {}", s.drop_sql);
        }
    }
    Ok(ExitCode::SUCCESS)
}
