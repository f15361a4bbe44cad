//! `lull lint`: check migrations for statements that would stall
//! production, before they merge.
//!
//! This module turns flags, lull.toml and the paths given into the
//! analyzer's [`SourceFile`]s and [`LintOptions`], runs the analyzer, and
//! hands the report to a renderer (`human`, `json`). The rules themselves
//! live in the `lull-analyzer` crate.

mod changed;
mod database;
mod human;
pub(crate) mod inputs;
mod json;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args as ClapArgs, ValueEnum};
use lull_analyzer::{
    lint, rules, Level, LintOptions, LintReport, Runner, Severity, SourceFile, TableStats, Tool,
};
use lull_config::{Config, RunnerKind};

use crate::context::GlobalArgs;
use crate::error::{exit, CliError, CliResult};

/// Check migrations for statements that would stall production.
///
/// Parses each file with the real PostgreSQL parser and reports locking
/// hazards (a plain CREATE INDEX on an existing table, a FOREIGN KEY
/// without NOT VALID, a column type change that rewrites the table, ...),
/// changes the running application cannot cope with (renames, drops) and
/// process problems (missing IF NOT EXISTS, unbatched backfills), each
/// with the safe alternative. Tables created earlier in the same
/// migration file are exempt from locking rules; a table an earlier file
/// created is live by the time a later file runs. With a database URL
/// the migrations still pending there run together, so tables created by
/// one pending migration are new for the next.
///
/// Who applies the files decides their transactions: lint reads it from
/// the layout (Prisma, Drizzle, Flyway, diesel, dbmate, sqlx,
/// golang-migrate, lull) unless --runner or `runner` in lull.toml says
/// otherwise. With lull as the runner, hazards `lull migrate` rewrites
/// itself are information. `--pg-version` (or `pg_version`, or the
/// server's version with a URL) makes rules follow the target version.
///
/// PATHS are migration directories (any layout lull reads: sqlx,
/// golang-migrate, dbmate, diesel, Prisma, Drizzle, Flyway, lull), single
/// .sql files, or `-` for stdin. Without PATHS the migrations directory of
/// lull.toml (default `migrations`) is linted. Only "up" migrations are
/// linted, in version order.
///
/// Table sizes make findings honest: with --database-url (or DATABASE_URL)
/// lull reads each table's row estimate and size; offline, --stats FILE
/// (or `[lint] stats_file`) reads a file written by `lull stats export`.
/// Findings on small tables are lowered a level, on large ones raised.
///
/// With a database lint also asks today's rows, one bounded read-only
/// count each (5 s): a UNIQUE index or PRIMARY KEY over values that
/// already repeat, SET NOT NULL over NULLs, and CREATE INDEX IF NOT
/// EXISTS over an INVALID index of that name fail or mislead on today's
/// data. --no-data-checks skips them.
///
/// Suppress a finding with `-- lull:ignore RULE reason` on or above the
/// statement, or `-- lull:ignore-file RULE` at the top of a file; set rule
/// levels under `[lint.rules]` in lull.toml. `lull explain RULE` shows
/// what a rule flags, why, and the safe alternative.
///
/// Exit code: 0 clean, 1 findings at or above --fail-on, 2 usage or I/O
/// errors.
///
/// Examples:
///   lull lint migrations/
///   lull lint --format json --fail-on warning db/migrate/20240101_add_index.sql
///   git show HEAD:migrations/0042.sql | lull lint -
///   lull lint --changed-since origin/main migrations/
#[derive(ClapArgs, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Files, migration directories, or `-` for stdin [default: the
    /// migrations directory of lull.toml].
    #[arg(value_name = "PATHS")]
    pub paths: Vec<PathBuf>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,

    /// Exit 1 when a finding is at or above this severity [default: error,
    /// or `[lint] fail_on`].
    #[arg(long, value_enum)]
    pub fail_on: Option<FailOn>,

    /// Who will run these files, which decides their transactions
    /// [default: `runner` in lull.toml, else the directory's layout
    /// (Prisma, sqlx, dbmate, …), else lull].
    #[arg(long, value_enum)]
    pub runner: Option<RunnerArg>,

    /// Table sizes from `lull stats export`, instead of a database.
    #[arg(long, value_name = "FILE")]
    pub stats: Option<PathBuf>,

    /// Turn on an opt-in rule (repeatable), e.g. prefer-bigint.
    #[arg(long, value_name = "RULE")]
    pub enable: Vec<String>,

    /// Do not read table sizes from the database even when a URL is set.
    #[arg(long)]
    pub offline: bool,

    /// Report only on migrations added or edited since this git revision
    /// (e.g. origin/main), linted against the rest of the history.
    #[arg(long, value_name = "REF")]
    pub changed_since: Option<String>,

    /// The PostgreSQL major version the migrations will run on, e.g. 15
    /// [default: `pg_version` in lull.toml, else the server's with a URL,
    /// else current].
    #[arg(long, value_name = "MAJOR")]
    pub pg_version: Option<u32>,

    /// With a database, do not count today's duplicates and NULLs (or look
    /// for INVALID indexes) for the statements that would fail on them.
    #[arg(long)]
    pub no_data_checks: bool,
}

/// How findings are printed.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Code frames with file:line:col, the rule, and the safe alternative.
    Human,
    /// One JSON document with every finding and each file's risk.
    Json,
    /// SARIF 2.1.0, for code scanning dashboards (GitHub, GitLab, ...).
    Sarif,
    /// GitHub Actions annotations (`::error file=...,line=...::message`).
    Github,
}

/// The `--fail-on` threshold.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailOn {
    /// Fail on errors.
    Error,
    /// Fail on warnings and errors.
    Warning,
    /// Never fail because of findings.
    Never,
}

/// The `--runner` choice.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunnerArg {
    /// lull runs the files (splits transactions, sets timeouts).
    Lull,
    /// Another tool wraps each file in one transaction.
    Transactional,
    /// Another tool runs each statement on its own.
    Autocommit,
    /// Prisma Migrate.
    Prisma,
    /// Drizzle.
    Drizzle,
    /// Flyway.
    Flyway,
    /// diesel.
    Diesel,
    /// dbmate.
    Dbmate,
    /// sqlx.
    Sqlx,
    /// golang-migrate.
    GolangMigrate,
}

impl RunnerArg {
    fn choice(self) -> (Runner, Option<Tool>) {
        let tool = |t: Tool| (t.runner(), Some(t));
        match self {
            RunnerArg::Lull => tool(Tool::Lull),
            RunnerArg::Transactional => (Runner::Transactional, None),
            RunnerArg::Autocommit => (Runner::Autocommit, None),
            RunnerArg::Prisma => tool(Tool::Prisma),
            RunnerArg::Drizzle => tool(Tool::Drizzle),
            RunnerArg::Flyway => tool(Tool::Flyway),
            RunnerArg::Diesel => tool(Tool::Diesel),
            RunnerArg::Dbmate => tool(Tool::Dbmate),
            RunnerArg::Sqlx => tool(Tool::Sqlx),
            RunnerArg::GolangMigrate => tool(Tool::GolangMigrate),
        }
    }
}

/// The runner `--runner` or lull.toml names, if any (else the layout
/// decides, per directory).
pub(crate) fn runner_choice(
    config: &Config,
    flag: Option<RunnerArg>,
) -> Option<(Runner, Option<Tool>)> {
    if let Some(flag) = flag {
        return Some(flag.choice());
    }
    let arg = match config.settings.runner? {
        RunnerKind::Lull => RunnerArg::Lull,
        RunnerKind::Transactional => RunnerArg::Transactional,
        RunnerKind::Autocommit => RunnerArg::Autocommit,
        RunnerKind::Prisma => RunnerArg::Prisma,
        RunnerKind::Drizzle => RunnerArg::Drizzle,
        RunnerKind::Flyway => RunnerArg::Flyway,
        RunnerKind::Diesel => RunnerArg::Diesel,
        RunnerKind::Dbmate => RunnerArg::Dbmate,
        RunnerKind::Sqlx => RunnerArg::Sqlx,
        RunnerKind::GolangMigrate => RunnerArg::GolangMigrate,
    };
    Some(arg.choice())
}

/// Applies a configured runner to every file (it wins over the layout).
pub(crate) fn stamp_runner(files: &mut [SourceFile], choice: Option<(Runner, Option<Tool>)>) {
    if let Some((runner, tool)) = choice {
        for file in files {
            file.runner = Some(runner);
            file.tool = tool;
        }
    }
}

/// Runs `lull lint`.
pub fn run(global: &GlobalArgs, args: Args) -> CliResult {
    let config = global.config()?;
    let mut opts = options(global, &config, &args)?;
    let fail_on = match args.fail_on {
        Some(f) => f,
        None => match config.settings.lint.fail_on.as_deref() {
            None | Some("error") => FailOn::Error,
            Some("warning") => FailOn::Warning,
            Some("never") => FailOn::Never,
            Some(other) => {
                return Err(CliError::new(format!(
                    "[lint] fail_on = \"{other}\" is not a threshold"
                ))
                .hint("use \"error\", \"warning\" or \"never\""))
            }
        },
    };
    let excludes = inputs::excludes(&config)?;
    let collected = inputs::collect(&args.paths, &config, &excludes)?;
    let mut files = collected.files;
    stamp_runner(&mut files, runner_choice(&config, args.runner));
    opts.whole_history = inputs::whole_history(&args.paths);
    if let Some(url) = (!args.offline)
        .then(|| global.database_url(&config).ok())
        .flatten()
    {
        let db = database::read(&url, config.schema())?;
        if opts.pg_version.is_none() {
            opts.pg_version = db.major;
        }
        mark_pending(&mut files, &collected.ids, &db);
        opts.catalog_indexes = Some(db.indexes);
        if !args.no_data_checks {
            opts.data = Some(std::sync::Arc::new(database::Rows::connect(&url)?));
        }
        opts.catalog_partitions = Some(db.partitions);
    }
    let mut report = lint(&files, &opts);
    if let Some(reference) = &args.changed_since {
        let changed = changed::changed_since(reference)?;
        let keep: std::collections::BTreeSet<String> = files
            .iter()
            .filter(|f| changed::is_changed(&f.path, &changed))
            .map(|f| f.path.clone())
            .collect();
        report.findings.retain(|f| keep.contains(&f.file));
        report.files.retain(|f| keep.contains(&f.path));
        files.retain(|f| keep.contains(&f.path));
    }
    match args.format {
        Format::Human => human::print(&report, &files, &opts),
        Format::Json => json::print(&report),
        Format::Sarif => crate::render::emit(&crate::render::sarif::render(&report, &files)),
        Format::Github => crate::render::emit(&crate::render::github::render(&report, &files)),
    }
    let failed = match fail_on {
        FailOn::Error => report.count_at_least(Severity::Error) > 0,
        FailOn::Warning => report.count_at_least(Severity::Warning) > 0,
        FailOn::Never => false,
    };
    Ok(ExitCode::from(if failed { exit::FAILED } else { exit::OK }))
}

/// Marks the migrations applied on the database, and runs of consecutive
/// pending ones: one deploy applies them together, so each joins the one
/// before it.
fn mark_pending(
    files: &mut [SourceFile],
    ids: &[Option<(String, String)>],
    db: &database::DatabaseFacts,
) {
    let mut previous_pending = false;
    for (file, id) in files.iter_mut().zip(ids) {
        let applied = id
            .as_ref()
            .is_some_and(|(version, label)| db.is_applied(version, label));
        let pending = id.is_some() && !applied;
        file.runs_with_previous = pending && previous_pending;
        file.applied = applied;
        previous_pending = pending;
    }
}

/// Builds the analyzer's options from lull.toml, flags and table sizes.
pub fn options(global: &GlobalArgs, config: &Config, args: &Args) -> Result<LintOptions, CliError> {
    let mut opts = config_options(config, args.runner, &args.enable)?;
    opts.stats = table_stats(global, config, args)?;
    opts.pg_version = args.pg_version.or(config.pg_version());
    if let Some(v) = opts.pg_version {
        if !(9..=99).contains(&v) {
            return Err(CliError::new(format!(
                "--pg-version {v} is not a PostgreSQL major version"
            ))
            .hint("write the major version, e.g. --pg-version 15"));
        }
    }
    Ok(opts)
}

/// What decides a finding apart from table sizes, shared by `lint` and
/// `fix`: the runner (flag, else lull.toml), rule levels, opt-in rules
/// (lull.toml plus `enable`) and the size thresholds.
pub(crate) fn config_options(
    config: &Config,
    runner: Option<RunnerArg>,
    enable: &[String],
) -> Result<LintOptions, CliError> {
    let lint_cfg = &config.settings.lint;
    let runner = runner_choice(config, runner).map_or(Runner::Lull, |(r, _)| r);
    let mut opts = LintOptions {
        runner,
        placeholders: config.placeholders().clone(),
        ..LintOptions::default()
    };
    let mut levels = BTreeMap::new();
    for (id, level) in lint_cfg.rules.iter().flatten() {
        known_rule(id, "[lint.rules]")?;
        let level = Level::parse(level).ok_or_else(|| {
            CliError::new(format!("[lint.rules] {id} = \"{level}\" is not a level"))
                .hint("use \"error\", \"warning\", \"info\" or \"off\"")
        })?;
        levels.insert(id.clone(), level);
    }
    opts.levels = levels;
    for id in lint_cfg.enable.iter().flatten().chain(enable) {
        known_rule(id, "enable")?;
        opts.enable.push(id.clone());
    }
    if let Some(rows) = lint_cfg.large_table_rows {
        opts.large_table_rows = rows;
    }
    if let Some(bytes) = lint_cfg.large_table_bytes {
        opts.large_table_bytes = bytes;
    }
    if let Some(n) = lint_cfg.max_index_builds {
        opts.max_index_builds = n as usize;
    }
    Ok(opts)
}

fn known_rule(id: &str, where_: &str) -> Result<(), CliError> {
    if rules::get(id).is_some() {
        return Ok(());
    }
    Err(
        CliError::new(format!("{where_} names an unknown rule `{id}`"))
            .hint("`lull explain` lists the rule ids"),
    )
}

/// Table sizes: `--stats` / `[lint] stats_file`, else the database when a
/// URL is configured (and not `--offline`), else none.
fn table_stats(global: &GlobalArgs, config: &Config, args: &Args) -> Result<TableStats, CliError> {
    let file = args
        .stats
        .clone()
        .or_else(|| config.settings.lint.stats_file.as_ref().map(PathBuf::from));
    if let Some(path) = file {
        let text = std::fs::read_to_string(&path).map_err(|e| {
            CliError::new(format!("cannot read stats file {}: {e}", path.display()))
                .hint("write one with `lull stats export > stats.json`, or drop --stats")
        })?;
        return TableStats::from_json(&text).map_err(|e| {
            CliError::new(format!("stats file {} is not valid: {e}", path.display())).hint(
                "expected {\"tables\": {\"public.users\": {\"rows\": 1000, \"bytes\": 65536}}}",
            )
        });
    }
    if args.offline {
        return Ok(TableStats::default());
    }
    match global.database_url(config) {
        Ok(url) => inputs::stats_from_database(&url),
        Err(_) => Ok(TableStats::default()),
    }
}

/// The report's totals, shared by the renderers.
pub(crate) fn totals(report: &LintReport) -> (usize, usize, usize) {
    let count = |s: Severity| report.findings.iter().filter(|f| f.severity == s).count();
    (
        count(Severity::Error),
        count(Severity::Warning),
        count(Severity::Info),
    )
}
