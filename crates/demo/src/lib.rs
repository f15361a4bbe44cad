//! `lull demo`: the difference lull makes, measured on this machine.
//!
//! The demo starts a throwaway PostgreSQL, loads a big `orders` table and
//! copies it three times. On each copy it runs the same thing: a steady write
//! load from inside this process ([`workload`]), the example migrations
//! (an index on the big table, an added column, a foreign key), and, just
//! before the first migration that needs an ACCESS EXCLUSIVE lock on the
//! table, a long read transaction ([`blocker`]) — the report that happens
//! to be running when the deploy starts. The first copy gets the
//! migrations the way a plain runner applies them (as written, one
//! transaction per file, no timeouts); the second the guides' recipe
//! (safe rewrites, and each DDL try queueing with `lock_timeout = 5s`,
//! retried with backoff); the third lull (safe rewrites, tries only in
//! the gap between conflicting transactions). All go through the
//! engine's [`Runner`], in [`Mode::Naive`] and [`Mode::Safe`].
//!
//! Every write's latency is recorded and attributed to the migration step
//! it waited in ([`report`]), so the result says not only how bad the
//! worst write was but which step caused it.
//!
//! What this crate is not for: rendering. It returns a [`DemoReport`] and
//! sends [`Progress`] to a callback; the CLI prints both.

pub mod blocker;
pub mod report;
mod setup;
pub mod workload;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lull_analyzer::LockMode;
use lull_config::Policies;
use lull_engine::db::connect;
use lull_engine::{
    Direction, EngineError, Event, EventSink, MigrationPlan, Mode, Runner, RunnerOptions,
};
use lull_migrations::{discover, DiscoverError, Migration};
use lull_sandbox::{Sandbox, SandboxError};
use serde::Serialize;

use crate::blocker::Blocker;
use crate::report::{RunReport, Span, StepSpan};
use crate::workload::{Workload, WorkloadOptions};

/// The big table the workload writes to and the migrations change.
pub const TABLE: &str = "orders";

/// Rows of the small `customers` table the foreign key points to.
pub const CUSTOMERS: i64 = 1000;

/// The example migrations (`examples/demo-migrations` in the repository),
/// carried in the binary so that `lull demo` works from any directory.
pub const EXAMPLE_MIGRATIONS: [(&str, &str); 3] = [
    (
        "001_index_orders_customer_id.sql",
        include_str!("../../../examples/demo-migrations/001_index_orders_customer_id.sql"),
    ),
    (
        "002_add_orders_status.sql",
        include_str!("../../../examples/demo-migrations/002_add_orders_status.sql"),
    ),
    (
        "003_orders_customer_fk.sql",
        include_str!("../../../examples/demo-migrations/003_orders_customer_fk.sql"),
    ),
];

/// What the demo does.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Rows in `orders`.
    pub rows: u64,
    /// How long the read transaction stays open.
    pub blocker: Duration,
    /// Writes per second.
    pub rate: u32,
    /// Connections of the write workload.
    pub connections: usize,
    /// Quiet time with only the workload before the first migration and
    /// after the last, so the normal latency is in the figures too.
    pub settle: Duration,
    /// Migrations to apply instead of the built-in examples; they run
    /// against the demo's `orders` and `customers` tables.
    pub dir: Option<PathBuf>,
    /// The policies of the lull run.
    pub policies: Policies,
}

impl Default for DemoOptions {
    /// 2M rows, a 7 s read transaction, 200 writes/s over 16 connections:
    /// the whole demo takes about a minute on two busy cores.
    fn default() -> Self {
        DemoOptions {
            rows: 2_000_000,
            blocker: Duration::from_secs(7),
            rate: 200,
            connections: 16,
            settle: Duration::from_secs(1),
            dir: None,
            policies: Policies::default(),
        }
    }
}

/// Which of the three runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunKind {
    /// Statements as written, no policies: what a plain runner does.
    Naive,
    /// What the guides tell people to do by hand: lull's safe plan
    /// (CONCURRENTLY, NOT VALID then VALIDATE), but each DDL try queues
    /// for its lock with `lock_timeout = 5s`, and a failed try sleeps
    /// with exponential backoff before the next.
    Recipe,
    /// lull's way.
    Lull,
}

impl RunKind {
    /// All runs, in the order they run and are shown.
    pub const ALL: [RunKind; 3] = [RunKind::Naive, RunKind::Recipe, RunKind::Lull];

    /// `naive`, `recipe` or `lull`.
    pub fn label(self) -> &'static str {
        match self {
            RunKind::Naive => "naive",
            RunKind::Recipe => "recipe",
            RunKind::Lull => "lull",
        }
    }

    fn mode(self) -> Mode {
        match self {
            RunKind::Naive => Mode::Naive,
            RunKind::Recipe | RunKind::Lull => Mode::Safe,
        }
    }

    /// The policies of this run: the demo's (lull.toml's) for lull, the
    /// guides' recipe for `Recipe`.
    fn policies(self, lull: &Policies) -> Policies {
        let mut p = lull.clone();
        if self == RunKind::Recipe {
            p.ddl.lock_timeout = lull_config::Duration::from_secs(5);
            p.ddl.acquisition = lull_config::Acquisition::Queue {
                backoff_base: lull_config::Duration::from_secs(1),
                backoff_max: lull_config::Duration::from_secs(8),
            };
        }
        p
    }
}

/// What the demo is doing, for progress lines.
#[derive(Debug, Clone)]
pub enum Progress {
    /// A phase starts (`loading 2,000,000 rows into orders`).
    Doing(String),
    /// The engine reported something during a run; `at` is from the
    /// start of that run.
    Engine {
        /// Which run.
        run: RunKind,
        /// When, from the start of the run.
        at: Duration,
        /// What.
        event: Box<Event>,
    },
    /// The long read transaction was opened.
    BlockerOpened {
        /// Which run.
        run: RunKind,
        /// When, from the start of the run.
        at: Duration,
        /// How long it stays open.
        hold: Duration,
    },
    /// Writes are stalled right now (sent once a second while the oldest
    /// waiting write has waited over a second).
    WritesStalled {
        /// Which run.
        run: RunKind,
        /// Writes due and not done.
        waiting: usize,
        /// How long the oldest of them has waited.
        oldest: Duration,
    },
    /// A run is over.
    RunFinished(Box<RunReport>),
}

/// Where progress goes. Called from the demo's tasks; keep it quick.
pub type ProgressSink = Arc<dyn Fn(&Progress) + Send + Sync>;

/// Everything the demo measured.
#[derive(Debug, Clone, Serialize)]
pub struct DemoReport {
    /// Rows in `orders`.
    pub rows: u64,
    /// Writes per second.
    pub rate: u32,
    /// How long the read transaction was held.
    #[serde(rename = "blocker_ms", serialize_with = "ser_ms")]
    pub blocker: Duration,
    /// The migration the read transaction was opened before.
    pub blocker_before: Option<String>,
    /// Time to load and copy the data.
    #[serde(rename = "setup_ms", serialize_with = "ser_ms")]
    pub setup: Duration,
    /// The naive run.
    pub naive: RunReport,
    /// The guides' recipe.
    pub recipe: RunReport,
    /// The lull run.
    pub lull: RunReport,
}

impl DemoReport {
    /// The runs in the order they are shown: naive, recipe, lull.
    pub fn runs(&self) -> [&RunReport; 3] {
        [&self.naive, &self.recipe, &self.lull]
    }
}

/// What can stop the demo.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The sandbox did not start.
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    /// The engine failed outside a measured run (connecting, planning).
    #[error("{0}")]
    Engine(#[from] EngineError),
    /// The migrations directory could not be read.
    #[error("reading the demo migrations: {0}")]
    Migrations(#[from] DiscoverError),
    /// A statement of the demo's own failed.
    #[error("{what}: {message}")]
    Db {
        /// What the demo was doing.
        what: String,
        /// What the server said.
        message: String,
    },
    /// Anything else.
    #[error("{message}")]
    Other {
        /// What went wrong.
        message: String,
    },
}

impl DemoError {
    fn db(what: &str, e: tokio_postgres::Error) -> Self {
        DemoError::Db {
            what: what.to_string(),
            message: lull_engine::pg_message(&e),
        }
    }

    /// What to do about it, when there is something to say.
    pub fn hint(&self) -> Option<String> {
        match self {
            DemoError::Engine(e) => e.hint(),
            DemoError::Sandbox(_) => None,
            DemoError::Migrations(_) => Some(
                "--dir must hold migrations in a layout lull reads (see `lull plan --help`)".into(),
            ),
            DemoError::Db { .. } | DemoError::Other { .. } => None,
        }
    }
}

/// Runs the whole demo on a fresh sandbox: starts it, runs [`run_on`],
/// stops it. Blocks; builds its own tokio runtime.
pub fn run(opts: &DemoOptions, progress: ProgressSink) -> Result<DemoReport, DemoError> {
    progress(&Progress::Doing(
        "starting a throwaway PostgreSQL (fsync off: it is deleted afterwards)".into(),
    ));
    let sandbox = Sandbox::start_with(lull_sandbox::Options {
        settings: server_settings(),
        ..Default::default()
    })?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| DemoError::Other {
            message: format!("starting the async runtime: {e}"),
        })?;
    let url = sandbox.url("postgres");
    let result = runtime.block_on(run_on(&url, opts, false, progress.clone()));
    drop(runtime);
    progress(&Progress::Doing("stopping the sandbox".into()));
    drop(sandbox);
    result
}

/// Settings for the demo's sandbox: nothing survives it, so durability is
/// off, and checkpoints are pushed out of the measured minute so that
/// neither run pays for one the other did not.
pub fn server_settings() -> Vec<(String, String)> {
    [
        ("fsync", "off"),
        ("full_page_writes", "off"),
        ("max_wal_size", "4GB"),
        ("checkpoint_timeout", "30min"),
        ("shared_buffers", "256MB"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Runs the demo on the server of `server_url` (any database of it; the
/// demo creates its own). With `cleanup`, drops its databases at the end.
pub async fn run_on(
    server_url: &str,
    opts: &DemoOptions,
    cleanup: bool,
    progress: ProgressSink,
) -> Result<DemoReport, DemoError> {
    let migrations = load_migrations(opts.dir.as_deref())?;
    if migrations.is_empty() {
        return Err(DemoError::Other {
            message: "the demo's migrations directory holds no migrations".into(),
        });
    }
    let blocker_before = blocker_position(&migrations)?;

    static RUN: AtomicU32 = AtomicU32::new(0);
    let prefix = format!(
        "lull_demo_{}_{}",
        std::process::id(),
        RUN.fetch_add(1, Ordering::SeqCst)
    );
    let names = [
        format!("{prefix}_template"),
        format!("{prefix}_naive"),
        format!("{prefix}_recipe"),
        format!("{prefix}_lull"),
    ];
    let admin = connect(server_url, "lull demo").await?;
    let result = async {
        let started = Instant::now();
        progress(&Progress::Doing(format!(
            "loading {} rows into {TABLE} and {CUSTOMERS} into customers",
            thousands(opts.rows)
        )));
        setup::create_template(
            &admin,
            &names[0],
            &database_url(server_url, &names[0])?,
            opts.rows,
        )
        .await?;
        progress(&Progress::Doing(
            "copying the database: one fresh copy per run".into(),
        ));
        for copy in &names[1..] {
            setup::copy_database(&admin, &names[0], copy).await?;
        }
        let setup = started.elapsed();
        let mut runs = Vec::new();
        for (kind, db) in RunKind::ALL.into_iter().zip(&names[1..]) {
            let report = run_once(
                kind,
                &database_url(server_url, db)?,
                &migrations,
                blocker_before,
                opts,
                progress.clone(),
            )
            .await?;
            progress(&Progress::RunFinished(Box::new(report.clone())));
            runs.push(report);
        }
        let lull = runs.pop().expect("three runs");
        let recipe = runs.pop().expect("three runs");
        let naive = runs.pop().expect("three runs");
        Ok(DemoReport {
            rows: opts.rows,
            rate: opts.rate,
            blocker: opts.blocker,
            blocker_before: blocker_before.map(|i| migrations[i].label()),
            setup,
            naive,
            recipe,
            lull,
        })
    }
    .await;
    if cleanup {
        setup::drop_databases(&admin, &names).await;
    }
    result
}

/// The built-in examples (written to a temporary directory so discovery
/// reads them like any other) or the given directory.
fn load_migrations(dir: Option<&std::path::Path>) -> Result<Vec<Migration>, DemoError> {
    if let Some(dir) = dir {
        return Ok(discover(dir)?);
    }
    let tmp = tempfile::tempdir().map_err(|e| DemoError::Other {
        message: format!("creating a temporary directory for the example migrations: {e}"),
    })?;
    for (name, sql) in EXAMPLE_MIGRATIONS {
        std::fs::write(tmp.path().join(name), sql).map_err(|e| DemoError::Other {
            message: format!("writing the example migration {name}: {e}"),
        })?;
    }
    Ok(discover(tmp.path())?)
}

/// The read transaction opens just before the first migration that, as
/// written, needs an ACCESS EXCLUSIVE lock on the table: the moment a long
/// transaction does the most harm. `None` when no migration does.
fn blocker_position(migrations: &[Migration]) -> Result<Option<usize>, DemoError> {
    let naive = lull_engine::PlanOptions {
        mode: Mode::Naive,
        rewrites: false,
        pg_version: None,
    };
    for (i, m) in migrations.iter().enumerate() {
        let plan = lull_engine::plan_migration(m, Direction::Up, &naive)?;
        let exclusive = plan
            .steps
            .iter()
            .flat_map(|s| s.locks())
            .any(|l| is_table(&l.relation) && l.mode == LockMode::AccessExclusive);
        if exclusive {
            return Ok(Some(i));
        }
    }
    Ok(None)
}

fn is_table(relation: &str) -> bool {
    relation == TABLE || relation.rsplit('.').next() == Some(TABLE)
}

/// One run: workload on, quiet, migrations (with the read transaction at
/// its moment), quiet, workload off.
async fn run_once(
    kind: RunKind,
    url: &str,
    migrations: &[Migration],
    blocker_before: Option<usize>,
    opts: &DemoOptions,
    progress: ProgressSink,
) -> Result<RunReport, DemoError> {
    let mut runner_opts = RunnerOptions::new(url);
    runner_opts.mode = kind.mode();
    runner_opts.policies = kind.policies(&opts.policies);
    let plans: Vec<MigrationPlan> = {
        let planner = Runner::new(runner_opts.clone());
        migrations
            .iter()
            .map(|m| planner.plan(m, Direction::Up))
            .collect::<Result<_, _>>()?
    };

    progress(&Progress::Doing(format!(
        "{} run: {} writes/s from {} connections; {} quiet first",
        kind.label(),
        opts.rate,
        opts.connections,
        lull_engine::events::human(opts.settle)
    )));
    let origin = Instant::now();
    let events: Arc<Mutex<Vec<(Duration, Event)>>> = Arc::default();
    let sink: EventSink = {
        let events = events.clone();
        let progress = progress.clone();
        let plans = plans.clone();
        Arc::new(move |e: &Event| {
            let at = origin.elapsed();
            events.lock().unwrap().push((at, e.clone()));
            let mut event = e.clone();
            // A naive step is the whole file, comments first; show its SQL.
            if let Event::StepStarted {
                version,
                step,
                summary,
                ..
            } = &mut event
            {
                if let Some(s) = plans
                    .iter()
                    .filter(|p| &p.version == version)
                    .flat_map(|p| &p.steps)
                    .find(|s| s.number == *step)
                {
                    *summary = one_line(&s.sql(), 120);
                }
            }
            progress(&Progress::Engine {
                run: kind,
                at,
                event: Box::new(event),
            });
        })
    };
    let runner = Runner::new(runner_opts).with_events(sink);
    let workload = Workload::start(
        url,
        origin,
        &WorkloadOptions {
            rate: opts.rate,
            connections: opts.connections,
            rows: opts.rows,
        },
    )
    .await?;
    let watch = {
        let probe = workload.probe();
        let progress = progress.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let (waiting, oldest) = probe.waiting();
                if oldest > report::STALL {
                    progress(&Progress::WritesStalled {
                        run: kind,
                        waiting,
                        oldest,
                    });
                }
            }
        })
    };
    tokio::time::sleep(opts.settle).await;

    let start = origin.elapsed();
    let mut blocker = None;
    let mut error = None;
    for (i, m) in migrations.iter().enumerate() {
        if Some(i) == blocker_before {
            let b = Blocker::open(url, opts.blocker).await?;
            progress(&Progress::BlockerOpened {
                run: kind,
                at: b.opened.saturating_duration_since(origin),
                hold: opts.blocker,
            });
            blocker = Some(b);
        }
        if let Err(e) = runner.migrate(migrations, Some(&m.version)).await {
            error = Some(match e.hint() {
                Some(h) => format!("{e} ({h})"),
                None => e.to_string(),
            });
            break;
        }
    }
    let end = origin.elapsed();
    let blocker = match blocker {
        Some(b) => {
            let opened = b.opened.saturating_duration_since(origin);
            let ended = b.ended().await?.saturating_duration_since(origin);
            Some(Span {
                start: opened,
                end: ended,
            })
        }
        None => None,
    };
    tokio::time::sleep(opts.settle).await;
    watch.abort();
    let (samples, write_error) = workload.stop().await;
    let steps = step_spans(&events.lock().unwrap(), &plans, end);
    let mut report = RunReport::build(
        kind.label(),
        &samples,
        steps,
        Span { start, end },
        blocker,
        error,
    );
    report.write_error = write_error;
    Ok(report)
}

/// Turns the engine's step events into spans, with the locks each step
/// takes according to its plan. A step still open when the run stopped
/// failed; it ends at `end`.
fn step_spans(
    events: &[(Duration, Event)],
    plans: &[MigrationPlan],
    end: Duration,
) -> Vec<StepSpan> {
    let mut spans: Vec<(StepSpan, bool)> = Vec::new();
    for (at, e) in events {
        match e {
            Event::StepStarted {
                version,
                step,
                policy,
                summary,
                ..
            } => {
                let plan = plans.iter().find(|p| &p.version == version);
                let planned = plan.and_then(|p| p.steps.iter().find(|s| s.number == *step));
                let locks = planned.map(|s| s.locks()).unwrap_or_default();
                spans.push((
                    StepSpan {
                        version: version.clone(),
                        name: plan.map(|p| p.name.clone()).unwrap_or_default(),
                        step: *step,
                        summary: planned
                            .map(|s| one_line(&s.sql(), 120))
                            .unwrap_or_else(|| summary.clone()),
                        policy: policy.to_string(),
                        locks: locks
                            .iter()
                            .map(|l| format!("{} on {}", l.mode.sql_name(), l.relation))
                            .collect(),
                        blocks_writes: locks
                            .iter()
                            .any(|l| is_table(&l.relation) && l.mode.blocks_writes()),
                        span: Span {
                            start: *at,
                            end: *at,
                        },
                        tries: 1,
                        lock_timeouts: Vec::new(),
                        watched: Duration::ZERO,
                        failed: false,
                    },
                    false,
                ));
            }
            Event::LockRetry {
                version,
                step,
                attempt,
                lock_timeout,
                ..
            } => {
                if let Some((s, _)) = open_span(&mut spans, version, *step) {
                    s.tries = attempt + 1;
                    s.lock_timeouts.push(*lock_timeout);
                }
            }
            Event::LockWaiting {
                version,
                step,
                waited,
                ..
            } => {
                if let Some((s, _)) = open_span(&mut spans, version, *step) {
                    // `waited` counts tries too; watching is what is left.
                    let tried: Duration = s.lock_timeouts.iter().sum();
                    s.watched = s.watched.max(waited.saturating_sub(tried));
                }
            }
            Event::Retry {
                version,
                step,
                attempt,
                ..
            } => {
                if let Some((s, _)) = open_span(&mut spans, version, *step) {
                    s.tries = attempt + 1;
                }
            }
            Event::StepFinished {
                version,
                step,
                tries,
                ..
            } => {
                if let Some((s, done)) = open_span(&mut spans, version, *step) {
                    s.span.end = *at;
                    s.tries = *tries;
                    *done = true;
                }
            }
            _ => {}
        }
    }
    spans
        .into_iter()
        .map(|(mut s, done)| {
            if !done {
                s.span.end = end;
                s.failed = true;
            }
            s
        })
        .collect()
}

fn open_span<'a>(
    spans: &'a mut [(StepSpan, bool)],
    version: &str,
    step: usize,
) -> Option<(&'a mut StepSpan, &'a mut bool)> {
    spans
        .iter_mut()
        .rev()
        .find(|(s, done)| !*done && s.version == version && s.step == step)
        .map(|(s, done)| (s, done))
}

/// `url` with its database replaced by `db`.
fn database_url(url: &str, db: &str) -> Result<String, DemoError> {
    let mut u = url::Url::parse(url).map_err(|e| DemoError::Other {
        message: format!(
            "the demo needs a postgres:// URL to create its databases ({e}): {}",
            lull_config::redact_url(url)
        ),
    })?;
    u.set_path(&format!("/{db}"));
    Ok(u.to_string())
}

/// SQL on one line for progress and tables: comment lines dropped,
/// whitespace collapsed, cut to `max` characters.
pub fn one_line(sql: &str, max: usize) -> String {
    let text = sql
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("--"))
        .collect::<Vec<_>>()
        .join(" ");
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.chars().count() <= max {
        text
    } else {
        let cut: String = text.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

/// `2000000` as `2,000,000`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn ser_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(50_000), "50,000");
        assert_eq!(thousands(2_000_000), "2,000,000");
    }

    #[test]
    fn one_line_drops_comments_and_cuts() {
        let sql = "-- why\n-- more why\nALTER TABLE orders\n    ADD COLUMN status text;\n";
        assert_eq!(
            one_line(sql, 80),
            "ALTER TABLE orders ADD COLUMN status text;"
        );
        assert_eq!(one_line(sql, 12), "ALTER TABLE…");
    }

    #[test]
    fn database_is_swapped_in_the_url() {
        assert_eq!(
            database_url("postgres://postgres@127.0.0.1:5433/postgres", "x_naive").unwrap(),
            "postgres://postgres@127.0.0.1:5433/x_naive"
        );
        assert!(database_url("host=/tmp dbname=x", "y").is_err());
    }

    #[test]
    fn examples_are_read_and_the_blocker_comes_before_the_alter() {
        let migrations = load_migrations(None).unwrap();
        let names: Vec<String> = migrations.iter().map(|m| m.label()).collect();
        assert_eq!(
            names,
            [
                "001_index_orders_customer_id",
                "002_add_orders_status",
                "003_orders_customer_fk"
            ]
        );
        assert!(migrations.iter().all(|m| m.down.is_some()));
        assert_eq!(blocker_position(&migrations).unwrap(), Some(1));
    }

    #[test]
    fn lull_plans_the_examples_safely() {
        let migrations = load_migrations(None).unwrap();
        let safe = lull_engine::PlanOptions::default();
        let sql: Vec<String> = migrations
            .iter()
            .flat_map(|m| {
                lull_engine::plan_migration(m, Direction::Up, &safe)
                    .unwrap()
                    .steps
                    .into_iter()
                    .map(|s| s.sql())
            })
            .collect();
        assert!(sql[0].contains("CONCURRENTLY"), "{sql:?}");
        assert!(sql.iter().any(|s| s.contains("NOT VALID")), "{sql:?}");
        assert!(
            sql.iter().any(|s| s.contains("VALIDATE CONSTRAINT")),
            "{sql:?}"
        );
    }
}
