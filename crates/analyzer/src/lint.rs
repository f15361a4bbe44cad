//! The lint engine: runs every enabled rule over a list of migration files
//! in run order, applies suppressions, rule levels and table sizes, and
//! computes a risk level per file.
//!
//! Files are linted in the order given. A relation created earlier in
//! the same *unit* — the statements that run together — is new, and
//! locking rules leave it alone; a relation created by an earlier,
//! separately applied file is an existing table with rows and traffic.
//! By default each file is its own unit; a file marked
//! [`SourceFile::runs_with_previous`] (migrations still pending on the
//! target database, which one deploy applies together) joins the unit of
//! the file before it. What persists in the database (indexes, validated
//! CHECKs) is carried across the whole history.
//!
//! Files are parsed in parallel, then linted in order. The engine knows
//! nothing of directories, config files or output formats; the CLI turns
//! those into [`SourceFile`]s and [`LintOptions`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::parse::{parse_for, ParseError, Span, Statement};
use crate::risk::{self, Risk};
use crate::rules::{self, Rule};
use crate::safe::NewRelations;
use crate::stats::{TableSize, TableStats};
use crate::suppress::{self, Suppressions};
use crate::tool::Tool;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; never fails a build by default.
    Info,
    /// Likely to hurt; fails with `--fail-on warning`.
    Warning,
    /// Will hurt production as written; fails by default.
    Error,
}

impl Severity {
    /// The lowercase name used in config and output.
    pub fn as_str(&self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }

    fn lower(self) -> Severity {
        match self {
            Severity::Error => Severity::Warning,
            _ => Severity::Info,
        }
    }

    fn raise(self) -> Severity {
        match self {
            Severity::Info => Severity::Warning,
            _ => Severity::Error,
        }
    }
}

/// A rule level from `[lint.rules]` in lull.toml.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Report as an error.
    Error,
    /// Report as a warning.
    Warning,
    /// Report as info.
    Info,
    /// Do not run the rule.
    Off,
}

impl Level {
    /// Parses `error`, `warning`, `info` or `off`.
    pub fn parse(s: &str) -> Option<Level> {
        match s {
            "error" => Some(Level::Error),
            "warning" | "warn" => Some(Level::Warning),
            "info" => Some(Level::Info),
            "off" => Some(Level::Off),
            _ => None,
        }
    }
}

/// Who will run the files, which decides the transactions they run in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Runner {
    /// lull: runs of transactional statements share a transaction, every
    /// statement that cannot run in one gets its own autocommit step, and
    /// lock/statement timeouts are set by lull.
    #[default]
    Lull,
    /// Another tool wraps each file in one transaction (unless the file
    /// says otherwise, e.g. sqlx `-- no-transaction`).
    Transactional,
    /// Another tool runs each statement on its own.
    Autocommit,
}

/// One migration file (or its "up" part) to lint.
#[derive(Debug, Clone, Default)]
pub struct SourceFile {
    /// Path as shown in findings.
    pub path: String,
    /// The SQL to lint.
    pub sql: String,
    /// Lines of the real file before `sql` (dbmate's up section), added to
    /// every reported line.
    pub line_offset: usize,
    /// The file opts out of the runner's transaction (sqlx
    /// `-- no-transaction`, dbmate `transaction:false`).
    pub no_transaction: bool,
    /// Whether a down migration exists for this file; `None` when unknown
    /// (a loose file), which keeps `risky-without-down` quiet.
    pub has_down: Option<bool>,
    /// This file is applied in the same run as the file before it (both
    /// still pending on the target database), so the relations that file
    /// created are new here too. `false`: the file is applied on its own,
    /// after every earlier file, whose tables are live by then.
    pub runs_with_previous: bool,
    /// The tool that applies this file (from its directory's layout or
    /// lull.toml); `None` when unknown, e.g. a loose file.
    pub tool: Option<Tool>,
    /// How this file is run, when it differs from [`LintOptions::runner`]
    /// (the layout says so); `None` follows the options.
    pub runner: Option<Runner>,
    /// Already applied on the target database: its statements have run,
    /// so today's data says nothing about them.
    pub applied: bool,
}

/// Everything that tunes a lint run.
#[derive(Debug, Clone)]
pub struct LintOptions {
    /// Who runs the files.
    pub runner: Runner,
    /// Levels by rule id; a level for an opt-in rule turns it on.
    pub levels: BTreeMap<String, Level>,
    /// Opt-in rules to turn on at their default severity.
    pub enable: Vec<String>,
    /// Known table sizes (from a database or a stats file).
    pub stats: TableStats,
    /// A table with at least this many rows is large.
    pub large_table_rows: u64,
    /// A table of at least this many bytes is large.
    pub large_table_bytes: u64,
    /// More index builds than this in one file is a finding.
    pub max_index_builds: usize,
    /// The PostgreSQL major version the files will run on (e.g. 15), from
    /// lull.toml, `--pg-version` or the server; `None` when unknown, which
    /// assumes a current server.
    pub pg_version: Option<u32>,
    /// Indexes that exist on the target database, as (table, leading
    /// columns), read from its catalog; `None` when there is no database.
    pub catalog_indexes: Option<Vec<(String, Vec<String>)>>,
    /// The files given are a whole migration history (a directory), so an
    /// index missing from all of them is really missing.
    pub whole_history: bool,
    /// Values of the placeholders in templated SQL (`[placeholders]` in
    /// lull.toml), substituted before parsing; findings still point into
    /// the file as written (see [`crate::placeholders`]).
    pub placeholders: BTreeMap<String, String>,
    /// Answers questions about today's rows on the target database (see
    /// [`crate::data`]); `None` offline.
    pub data: Option<std::sync::Arc<dyn crate::data::DataSource>>,
    /// Partitioned tables of the target database (`relkind = 'p'`) with
    /// their partitions, read from its catalog; `None` when there is no
    /// database.
    pub catalog_partitions: Option<Vec<(String, Vec<String>)>>,
}

impl Default for LintOptions {
    fn default() -> Self {
        LintOptions {
            runner: Runner::Lull,
            levels: BTreeMap::new(),
            enable: Vec::new(),
            stats: TableStats::default(),
            large_table_rows: 1_000_000,
            large_table_bytes: 1 << 30,
            max_index_builds: 3,
            pg_version: None,
            catalog_indexes: None,
            whole_history: false,
            placeholders: BTreeMap::new(),
            data: None,
            catalog_partitions: None,
        }
    }
}

impl LintOptions {
    /// Whether a table with these sizes is large.
    pub fn is_large(&self, size: &TableSize) -> bool {
        size.rows >= self.large_table_rows || size.bytes >= self.large_table_bytes
    }

    /// Whether the target server is at least this major version (an
    /// unknown version counts as current).
    pub fn pg_at_least(&self, major: u32) -> bool {
        self.pg_version.is_none_or(|v| v >= major)
    }
}

/// One problem found in one statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The rule id, e.g. `create-index-not-concurrently`.
    pub rule: &'static str,
    /// Severity after rule levels and table sizes.
    pub severity: Severity,
    /// What is wrong, in one sentence naming the table and the lock.
    pub message: String,
    /// The file path as given in [`SourceFile::path`].
    pub file: String,
    /// The statement (or, for parse errors, the offending token): byte
    /// offsets into [`SourceFile::sql`], line/column in the file on disk.
    pub span: Span,
    /// The safe alternative, as SQL when there is a mechanical one.
    pub help: Option<String>,
    /// The table the finding is about, when there is one.
    pub table: Option<String>,
}

/// What one file looked like to the linter.
#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    /// The file path as given.
    pub path: String,
    /// Number of statements parsed.
    pub statements: usize,
    /// The file's risk level and why.
    pub risk: Risk,
    /// Why the file could not be parsed, if it could not.
    pub parse_error: Option<ParseError>,
}

/// The result of a lint run.
#[derive(Debug, Clone, Serialize)]
pub struct LintReport {
    /// All findings, in file order then statement order.
    pub findings: Vec<Finding>,
    /// One entry per file, in the order given.
    pub files: Vec<FileReport>,
}

impl LintReport {
    /// Number of findings at or above `severity`.
    pub fn count_at_least(&self, severity: Severity) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity >= severity)
            .count()
    }

    /// Total statements parsed.
    pub fn statements(&self) -> usize {
        self.files.iter().map(|f| f.statements).sum()
    }
}

/// Per-statement context the rules read: which transaction it runs in.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct StmtInfo {
    /// Runs inside a transaction block (explicit, or the runner's).
    pub in_transaction: bool,
    /// Inside an explicit BEGIN ... COMMIT written in the file.
    pub explicit_block: bool,
    /// Statements with the same number run in the same transaction.
    pub group: usize,
}

/// Indexes by relation name: (table, columns).
pub(crate) type IndexesByRelation = BTreeMap<String, Vec<(String, Vec<String>)>>;

/// What earlier files of the run left behind that later files' rules need.
#[derive(Debug, Clone, Default)]
pub(crate) struct RunState {
    /// Relations created so far.
    pub new: Arc<NewRelations>,
    /// (table, column) pairs proven NOT NULL by a validated CHECK.
    pub not_null_checks: Arc<BTreeSet<(String, String)>>,
    /// Indexes created anywhere in the files given or found in the
    /// catalog, by relation name: (table, columns).
    pub indexes: Arc<IndexesByRelation>,
    /// Whether `indexes` knows the whole history (a directory, or the
    /// catalog), so a missing index is really missing.
    pub indexes_complete: bool,
    /// Partitions, NOT NULL columns, index columns and CHECKs the earlier
    /// files (and the catalog) say exist; only the partitions for a file
    /// whose statements ask nothing more.
    pub known: crate::known::Known,
}

impl RunState {
    /// Starts a new unit: what earlier files created is live from now on.
    fn start_unit(&mut self) {
        self.new = Arc::default();
    }

    /// Takes in what a file leaves behind; the relations it creates only
    /// when the next file joins its unit (`next_joins`).
    fn absorb(&mut self, stmts: &[Statement], next_joins: bool) {
        if next_joins {
            let new = Arc::make_mut(&mut self.new);
            for stmt in stmts {
                new.record(stmt);
            }
        }
        let proven = rules::set_not_null::proven_columns(stmts);
        if !proven.is_empty() {
            Arc::make_mut(&mut self.not_null_checks).extend(proven);
        }
    }

    fn add_indexes(&mut self, indexes: impl IntoIterator<Item = (String, Vec<String>)>) {
        let map = Arc::make_mut(&mut self.indexes);
        for (table, cols) in indexes {
            let relname = table.rsplit('.').next().unwrap_or(&table).to_string();
            map.entry(relname).or_default().push((table, cols));
        }
    }
}

/// The runner and tool a file is applied with.
pub(crate) fn file_runner(file: &SourceFile, opts: &LintOptions) -> (Runner, Option<Tool>) {
    (file.runner.unwrap_or(opts.runner), file.tool)
}

/// Whether the runner wraps this whole file in one transaction.
pub(crate) fn file_wrapped(file: &SourceFile, stmts: &[Statement], opts: &LintOptions) -> bool {
    let (runner, tool) = file_runner(file, opts);
    if runner != Runner::Transactional || file.no_transaction {
        return false;
    }
    let transactional: Vec<bool> = stmts
        .iter()
        .filter(|s| s.facts.class != crate::facts::Class::Transaction)
        .map(|s| s.facts.transactional)
        .collect();
    !tool.is_some_and(|t| t.unwraps(&transactional))
}

/// What a rule sees: one parsed file plus its run context.
pub(crate) struct FileCtx<'a> {
    pub file: &'a SourceFile,
    pub stmts: &'a [Statement],
    pub info: Vec<StmtInfo>,
    pub opts: &'a LintOptions,
    /// How this file is run.
    pub runner: Runner,
    /// The tool that applies it, when known.
    pub tool: Option<Tool>,
    pub run: &'a RunState,
    /// Per statement: relations created by the statements before it in
    /// this file (shared between statements that create nothing).
    new_before: Vec<std::rc::Rc<NewRelations>>,
    /// The file creates, attaches or detaches a partition or a
    /// partitioned table.
    partitions_in_file: bool,
}

impl<'a> FileCtx<'a> {
    pub(crate) fn new(
        file: &'a SourceFile,
        stmts: &'a [Statement],
        opts: &'a LintOptions,
        run: &'a RunState,
    ) -> Self {
        let (runner, tool) = file_runner(file, opts);
        let wrapped = file_wrapped(file, stmts, opts);
        let reopens = wrapped && !tool.is_some_and(Tool::implicit_transaction);
        let info = transaction_info(stmts, runner, wrapped, reopens);
        let mut new_before = Vec::with_capacity(stmts.len());
        let mut current = std::rc::Rc::new(NewRelations::new());
        for stmt in stmts {
            new_before.push(current.clone());
            if !stmt.facts.creates.is_empty()
                || matches!(stmt.ast(), pg_query::NodeEnum::RenameStmt(_))
            {
                let mut next = (*current).clone();
                next.record(stmt);
                current = std::rc::Rc::new(next);
            }
        }
        let partitions_in_file = stmts.iter().any(crate::known::partitions_something);
        FileCtx {
            file,
            stmts,
            info,
            opts,
            runner,
            tool,
            run,
            new_before,
            partitions_in_file,
        }
    }

    /// Whether `relation` was created before statement `idx` (earlier in
    /// this file or by an earlier file of the same unit).
    pub(crate) fn is_new(&self, idx: usize, relation: &str) -> bool {
        self.run.new.contains(relation)
            || self
                .new_before
                .get(idx)
                .is_some_and(|new| new.contains(relation))
    }

    /// Whether `relation` existed before this unit ran.
    pub(crate) fn existing(&self, idx: usize, relation: &str) -> bool {
        !self.is_new(idx, relation)
    }

    /// Asks the database about today's rows of `relation` for statement
    /// `idx`; `None` without a database, for an applied file, or when the
    /// relation is new in this unit (it holds no rows of today).
    pub(crate) fn ask(
        &self,
        idx: usize,
        relation: &str,
        probe: &crate::data::Probe,
    ) -> Option<crate::data::Outcome> {
        let source = self.opts.data.as_ref()?;
        if self.file.applied || self.is_new(idx, relation) {
            return None;
        }
        Some(source.answer(probe))
    }

    /// The known size of a table.
    pub(crate) fn size(&self, relation: &str) -> Option<TableSize> {
        self.opts.stats.get(relation)
    }

    /// `Some(true)` for a known large table, `Some(false)` for a known
    /// small one, `None` when its size is unknown.
    pub(crate) fn is_large(&self, relation: &str) -> Option<bool> {
        self.size(relation).map(|s| self.opts.is_large(&s))
    }

    /// What the history, the catalog and this file before statement
    /// `idx` say about the schema.
    pub(crate) fn known_at(&self, idx: usize) -> crate::known::Known {
        let mut known = self.run.known.clone();
        known.absorb_all(&self.stmts[..idx.min(self.stmts.len())]);
        known
    }

    /// Whether statement `idx` is an index build on a table known to be
    /// partitioned, and that table's name.
    pub(crate) fn index_on_partitioned(&self, idx: usize) -> Option<String> {
        let pg_query::NodeEnum::IndexStmt(s) = self.stmts[idx].ast() else {
            return None;
        };
        // Cheap test first: only a history or file that partitions
        // anything needs the full picture.
        if self.run.known.knows_no_partitions() && !self.partitions_in_file {
            return None;
        }
        s.relation.as_ref()?;
        crate::partition_index::on_partitioned_table(&self.stmts[idx], &self.known_at(idx))
    }

    /// The safe form of statement `idx`.
    pub(crate) fn safe_form(&self, idx: usize) -> Option<crate::safe::SafeForm> {
        if let Some(table) = self.index_on_partitioned(idx) {
            if self.is_new(idx, &table) {
                return None;
            }
            let known = self.known_at(idx);
            return crate::partition_index::partitioned_index_form(
                &self.stmts[idx],
                &known,
                &|name| self.is_new(idx, name),
            );
        }
        crate::safe::safe_form_with(&self.stmts[idx], &|name| self.is_new(idx, name), &|_| false)
    }

    /// The safe form of statement `idx` as SQL text, for help.
    pub(crate) fn safe_sql(&self, idx: usize) -> Option<String> {
        self.safe_form(idx).map(|f| f.statements.join(";\n") + ";")
    }
}

/// Which transaction each statement runs in. `reopens`: a COMMIT written
/// in a wrapped file ends the runner's transaction for good (sqlx, dbmate,
/// diesel, Flyway open it with BEGIN), so what follows runs on its own.
fn transaction_info(
    stmts: &[Statement],
    runner: Runner,
    wrapped: bool,
    reopens: bool,
) -> Vec<StmtInfo> {
    let mut out = Vec::with_capacity(stmts.len());
    let mut in_block = false;
    let mut wrapper = wrapped;
    let mut group = 0usize;
    let mut lull_run_open = false;
    for stmt in stmts {
        if stmt.begins_transaction() {
            group += 1;
            in_block = true;
            out.push(StmtInfo {
                in_transaction: true,
                explicit_block: true,
                group,
            });
            continue;
        }
        if stmt.ends_transaction() {
            out.push(StmtInfo {
                in_transaction: in_block || wrapper,
                explicit_block: in_block,
                group,
            });
            in_block = false;
            if reopens {
                wrapper = false;
            }
            lull_run_open = false;
            group += 1;
            continue;
        }
        if in_block {
            out.push(StmtInfo {
                in_transaction: true,
                explicit_block: true,
                group,
            });
            continue;
        }
        let info = if wrapper {
            StmtInfo {
                in_transaction: true,
                explicit_block: false,
                group,
            }
        } else if runner == Runner::Lull && stmt.facts.transactional {
            if !lull_run_open {
                group += 1;
                lull_run_open = true;
            }
            StmtInfo {
                in_transaction: true,
                explicit_block: false,
                group,
            }
        } else {
            group += 1;
            lull_run_open = false;
            StmtInfo {
                in_transaction: false,
                explicit_block: false,
                group,
            }
        };
        out.push(info);
    }
    out
}

/// A file that does not parse (or has a placeholder without a value): a
/// `parse-error` finding at the position in the file.
fn parse_error(
    file: &SourceFile,
    err: ParseError,
    opts: &LintOptions,
) -> (Vec<Finding>, FileReport) {
    let level = rules::get(rules::PARSE_ERROR).and_then(|r| effective_level(r, opts));
    let span = Span {
        start: err.offset,
        end: err.offset,
        line: err.line + file.line_offset,
        column: err.column,
    };
    let findings = level
        .map(|severity| Finding {
            rule: rules::PARSE_ERROR,
            severity,
            message: err.message.clone(),
            file: file.path.clone(),
            span,
            help: Some("fix the syntax error; PostgreSQL would reject this file".into()),
            table: None,
        })
        .into_iter()
        .collect();
    let report = FileReport {
        path: file.path.clone(),
        statements: 0,
        risk: Risk::low(),
        parse_error: Some(err),
    };
    (findings, report)
}

/// A rule's raw result before levels, sizes and suppressions.
#[derive(Debug, Clone)]
pub(crate) struct Hit {
    pub stmt: usize,
    pub message: String,
    pub help: Option<String>,
    pub table: Option<String>,
    /// At most this severity (unless a level is configured): the rule
    /// is less sure of this hit than of its usual ones.
    pub severity: Option<Severity>,
}

impl Hit {
    pub(crate) fn new(stmt: usize, message: impl Into<String>) -> Self {
        Hit {
            stmt,
            message: message.into(),
            help: None,
            table: None,
            severity: None,
        }
    }

    pub(crate) fn at_most(mut self, severity: Severity) -> Self {
        self.severity = Some(severity);
        self
    }

    pub(crate) fn help(mut self, help: Option<String>) -> Self {
        self.help = help;
        self
    }

    pub(crate) fn table(mut self, table: &str) -> Self {
        self.table = Some(table.to_string());
        self
    }
}

/// The severity a rule runs at, or `None` when it is off.
pub(crate) fn effective_level(rule: &Rule, opts: &LintOptions) -> Option<Severity> {
    match opts.levels.get(rule.id) {
        Some(Level::Off) => None,
        Some(Level::Error) => Some(Severity::Error),
        Some(Level::Warning) => Some(Severity::Warning),
        Some(Level::Info) => Some(Severity::Info),
        None if rule.opt_in && !opts.enable.iter().any(|e| e == rule.id) => None,
        None => Some(rule.default_severity),
    }
}

/// Rules whose statement `lull migrate` replaces by its safe form; with
/// lull as the runner their findings are information.
const REWRITTEN_BY_LULL: &[&str] = &[
    "create-index-not-concurrently",
    "concurrent-index-on-partitioned-table",
    "drop-index-not-concurrently",
    "reindex-not-concurrently",
    "constraint-not-valid",
    "unique-constraint-without-index",
    "set-not-null",
];

/// Runs `work` on every item, on all cores for more than a handful of
/// items; the results are in the order given.
fn par_map<T: Sync, R: Send>(items: &[T], work: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(items.len() / 8)
        .max(1);
    if threads == 1 {
        return items.iter().map(&work).collect();
    }
    let chunk = items.len().div_ceil(threads);
    let work = &work;
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(work).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| match h.join() {
                Ok(done) => done,
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    })
}

/// A file with its placeholders substituted, parsed for the target major.
struct Parsed {
    substituted: Result<crate::placeholders::Substituted, ParseError>,
    stmts: Result<Vec<Statement>, ParseError>,
}

fn substitute_and_parse(file: &SourceFile, opts: &LintOptions) -> Parsed {
    // Templated SQL first gets its placeholders' values; positions are
    // mapped back into the file as written.
    let substituted =
        crate::placeholders::substitute(&file.sql, &opts.placeholders).map_err(|unknown| {
            ParseError {
                message: unknown.to_string(),
                offset: unknown.offset,
                line: unknown.line,
                column: unknown.column,
            }
        });
    let stmts = match &substituted {
        Ok(s) if s.changed() => parse_for(&s.sql, opts.pg_version),
        Ok(_) => parse_for(&file.sql, opts.pg_version),
        Err(e) => Err(e.clone()),
    };
    Parsed { substituted, stmts }
}

/// Lints `files` in run order.
///
/// Parsing and the rules run on all cores, file by file; the only part in
/// order is the run state each file starts from (what earlier files of
/// its unit created, the NOT NULL checks proven so far), which is cheap
/// and shared between files until one changes it.
pub fn lint(files: &[SourceFile], opts: &LintOptions) -> LintReport {
    let parsed = par_map(files, |f| substitute_and_parse(f, opts));
    let mut run = RunState::default();
    // Indexes persist: whatever file of the history creates one, and the
    // catalog, count for every foreign key.
    let mut indexes = RunState::default();
    for p in &parsed {
        if let Ok(stmts) = &p.stmts {
            indexes.add_indexes(rules::unindexed_foreign_key::created_indexes(stmts));
        }
    }
    if let Some(catalog) = &opts.catalog_indexes {
        indexes.add_indexes(catalog.iter().cloned());
    }
    run.indexes = indexes.indexes;
    run.indexes_complete = opts.whole_history || opts.catalog_indexes.is_some();
    // What the history says beyond the relations (partitions, NOT NULL
    // columns, index columns, CHECKs), in order; a file gets all of it only
    // when one of its statements asks more than the partitions.
    let mut history = crate::known::Known::new();
    for (table, partitions) in opts.catalog_partitions.iter().flatten() {
        history.add_partitioned(table, partitions.iter().cloned());
    }
    let mut starts = Vec::with_capacity(files.len());
    for (i, (file, p)) in files.iter().zip(&parsed).enumerate() {
        if !file.runs_with_previous {
            run.start_unit();
        }
        let mut start = run.clone();
        if let Ok(stmts) = &p.stmts {
            start.known = if stmts.iter().any(crate::known::asks_more_than_partitions) {
                history.clone()
            } else {
                history.partitions_only()
            };
            history.absorb_all(stmts);
            let next_joins = files.get(i + 1).is_some_and(|f| f.runs_with_previous);
            run.absorb(stmts, next_joins);
        } else {
            start.known = history.partitions_only();
        }
        starts.push(start);
    }
    let active: Vec<(&Rule, Severity)> = rules::all()
        .iter()
        .filter_map(|r| effective_level(r, opts).map(|s| (*r, s)))
        .collect();
    let jobs: Vec<(usize, RunState)> = starts.into_iter().enumerate().collect();
    let done = par_map(&jobs, |(i, start)| {
        lint_file(&files[*i], &parsed[*i], start, opts, &active)
    });
    let mut report = LintReport {
        findings: Vec::new(),
        files: Vec::with_capacity(files.len()),
    };
    for (findings, file) in done {
        report.findings.extend(findings);
        report.files.push(file);
    }
    report
}

/// The findings and the report of one file.
fn lint_file(
    original: &SourceFile,
    parsed: &Parsed,
    run: &RunState,
    opts: &LintOptions,
    active: &[(&Rule, Severity)],
) -> (Vec<Finding>, FileReport) {
    let substituted = match &parsed.substituted {
        Ok(s) => s,
        Err(err) => return parse_error(original, err.clone(), opts),
    };
    let owned;
    let file: &SourceFile = if substituted.changed() {
        owned = SourceFile {
            sql: substituted.sql.clone(),
            ..original.clone()
        };
        &owned
    } else {
        original
    };
    let back = |span: Span| -> Span {
        if !substituted.changed() {
            return span;
        }
        let start = substituted.original_offset(span.start);
        let end = substituted.original_offset(span.end).max(start);
        let (line, column) =
            crate::parse::LineIndex::new(&original.sql).position(&original.sql, start);
        Span {
            start,
            end,
            line: line + file.line_offset,
            column,
        }
    };
    let stmts = match &parsed.stmts {
        Ok(stmts) => stmts,
        Err(err) => {
            let mut err = err.clone();
            if substituted.changed() {
                err.offset = substituted.original_offset(err.offset);
                let (line, column) =
                    crate::parse::LineIndex::new(&original.sql).position(&original.sql, err.offset);
                err.line = line;
                err.column = column;
            }
            return parse_error(original, err, opts);
        }
    };
    let ctx = FileCtx::new(file, stmts, opts, run);
    let mut suppressions = suppress::collect(&file.sql, stmts);
    let mut findings = Vec::new();
    for (rule, severity) in active {
        for mut hit in (rule.check)(&ctx) {
            let Some(stmt) = stmts.get(hit.stmt) else {
                continue;
            };
            if suppressions.suppress(rule.id, hit.stmt) {
                continue;
            }
            let mut severity = match (&hit.table, rule.size_sensitive) {
                (Some(table), true) if !opts.levels.contains_key(rule.id) => {
                    match ctx.is_large(table) {
                        Some(true) => severity.raise(),
                        Some(false) => severity.lower(),
                        None => *severity,
                    }
                }
                _ => *severity,
            };
            if let Some(s) = hit.severity {
                if !opts.levels.contains_key(rule.id) {
                    severity = severity.min(s);
                }
            }
            if ctx.tool == Some(Tool::Lull)
                && REWRITTEN_BY_LULL.contains(&rule.id)
                && !ctx.info[hit.stmt].explicit_block
            {
                if let Some(form) = ctx.safe_form(hit.stmt) {
                    severity = Severity::Info;
                    hit.message = format!(
                        "lull migrate runs this as {}: {} ({})",
                        form.rewrite_phrase(),
                        form.note,
                        hit.message
                    );
                }
            }
            findings.push(finding(file, stmt.span, rule.id, severity, hit));
        }
    }
    let is_active = |id: &str| active.iter().any(|(r, _)| r.id == id);
    findings.extend(suppression_findings(file, &suppressions, is_active, opts));
    // Positions in the substituted text point back into the file.
    for f in &mut findings {
        f.span = back(f.span);
    }
    findings.sort_by_key(|f| (f.span.start, f.rule));
    let risk = risk::assess(&ctx);
    let report = FileReport {
        path: file.path.clone(),
        statements: stmts.len(),
        risk,
        parse_error: None,
    };
    (findings, report)
}

fn finding(
    file: &SourceFile,
    mut span: Span,
    rule: &'static str,
    severity: Severity,
    hit: Hit,
) -> Finding {
    span.line += file.line_offset;
    Finding {
        rule,
        severity,
        message: hit.message,
        file: file.path.clone(),
        span,
        help: hit.help,
        table: hit.table,
    }
}

/// Unknown rule names and suppressions that suppressed nothing.
fn suppression_findings(
    file: &SourceFile,
    sup: &Suppressions,
    active: impl Fn(&str) -> bool,
    opts: &LintOptions,
) -> Vec<Finding> {
    let lines = crate::parse::LineIndex::new(&file.sql);
    let mut out = Vec::new();
    for s in sup.problems(|id| rules::get(id).is_some(), active) {
        let (line, column) = lines.position(&file.sql, s.offset);
        let span = Span {
            start: s.offset,
            end: s.end,
            line,
            column,
        };
        let message = if s.unknown {
            format!("`lull:ignore` names an unknown rule `{}`", s.rule)
        } else {
            format!("`lull:ignore {}` suppresses nothing here", s.rule)
        };
        let rule = if s.unknown {
            rules::UNKNOWN_RULE
        } else {
            rules::UNUSED_SUPPRESSION
        };
        let Some(severity) = rules::get(rule).and_then(|r| effective_level(r, opts)) else {
            continue;
        };
        let help = if s.unknown {
            Some("`lull explain` lists the rule ids".to_string())
        } else {
            Some(
                "remove the comment, or move it on or above the statement it is meant for"
                    .to_string(),
            )
        };
        out.push(finding(
            file,
            span,
            rule,
            severity,
            Hit {
                stmt: 0,
                message,
                help,
                table: None,
                severity: None,
            },
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse;

    fn file(sql: &str) -> SourceFile {
        SourceFile {
            path: "m.sql".into(),
            sql: sql.into(),
            ..SourceFile::default()
        }
    }

    fn ids(report: &LintReport) -> Vec<&'static str> {
        report.findings.iter().map(|f| f.rule).collect()
    }

    #[test]
    fn placeholders_are_substituted_and_findings_point_into_the_file() {
        let sql = "CREATE TABLE {{ index .Options \"Namespace\" }}.t (id int);\n\
                   ALTER TABLE {{ index .Options \"Namespace\" }}.users ADD COLUMN n int NOT NULL DEFAULT nextval('s');\n";
        let file = SourceFile {
            path: "m.sql".into(),
            sql: sql.into(),
            ..SourceFile::default()
        };
        let mut opts = LintOptions::default();
        let report = lint(std::slice::from_ref(&file), &opts);
        assert!(
            report.files[0].parse_error.is_some(),
            "without a value: a parse error"
        );
        opts.placeholders.insert("Namespace".into(), "auth".into());
        let report = lint(std::slice::from_ref(&file), &opts);
        assert!(
            report.files[0].parse_error.is_none(),
            "{:?}",
            report.files[0]
        );
        assert_eq!(report.files[0].statements, 2);
        assert!(!report.findings.is_empty());
        for f in &report.findings {
            let text = &sql[f.span.start..f.span.end];
            let first = ["CREATE TABLE {{", "ALTER TABLE {{"][f.span.line - 1];
            assert!(text.starts_with(first) && text.ends_with(')'), "{f:?}");
        }
        opts.placeholders.clear();
        opts.placeholders.insert("Other".into(), "x".into());
        let report = lint(std::slice::from_ref(&file), &opts);
        let f = &report.findings[0];
        assert!(f.message.contains("`Namespace`"), "{}", f.message);
        assert_eq!((f.span.line, f.span.column), (1, 14));
    }

    #[test]
    fn a_table_created_by_an_earlier_file_is_live() {
        let files = [
            file("CREATE TABLE t (id int);"),
            file("CREATE INDEX IF NOT EXISTS t_id ON t (id);"),
        ];
        let report = lint(&files, &LintOptions::default());
        assert!(
            ids(&report).contains(&"create-index-not-concurrently"),
            "{:?}",
            report.findings
        );
        // The same table created earlier in the same file is new.
        let one = [file(
            "CREATE TABLE t (id int); CREATE INDEX IF NOT EXISTS t_id ON t (id);",
        )];
        assert!(
            !ids(&lint(&one, &LintOptions::default())).contains(&"create-index-not-concurrently")
        );
    }

    #[test]
    fn pending_files_that_run_together_share_new_tables() {
        let mut second = file("CREATE INDEX IF NOT EXISTS t_id ON t (id);");
        second.runs_with_previous = true;
        let files = [file("CREATE TABLE t (id int);"), second];
        let report = lint(&files, &LintOptions::default());
        assert!(
            !ids(&report).contains(&"create-index-not-concurrently"),
            "{:?}",
            report.findings
        );
        // A third file on its own again sees a live table.
        let files = [
            files[0].clone(),
            files[1].clone(),
            file("ALTER TABLE t ADD CONSTRAINT f FOREIGN KEY (id) REFERENCES u (id);"),
        ];
        assert!(ids(&lint(&files, &LintOptions::default())).contains(&"constraint-not-valid"));
    }

    #[test]
    fn foreign_key_indexes_count_from_the_whole_history() {
        let files = [
            file("ALTER TABLE o ADD CONSTRAINT f FOREIGN KEY (u) REFERENCES u (id) NOT VALID;"),
            file("CREATE INDEX CONCURRENTLY IF NOT EXISTS o_u ON o (u);"),
        ];
        let opts = LintOptions {
            whole_history: true,
            ..LintOptions::default()
        };
        assert!(!ids(&lint(&files, &opts)).contains(&"unindexed-foreign-key"));
        let alone = lint(&files[..1], &opts);
        let f = alone
            .findings
            .iter()
            .find(|f| f.rule == "unindexed-foreign-key")
            .expect("flagged in a history without the index");
        assert_eq!(f.severity, Severity::Warning);
        // Neither a whole history nor a catalog: only information.
        let guess = lint(&files[..1], &LintOptions::default());
        let f = guess
            .findings
            .iter()
            .find(|f| f.rule == "unindexed-foreign-key")
            .unwrap();
        assert_eq!(f.severity, Severity::Info);
        // The catalog knows the index.
        let opts = LintOptions {
            catalog_indexes: Some(vec![("public.o".into(), vec!["u".into(), "x".into()])]),
            ..LintOptions::default()
        };
        assert!(!ids(&lint(&files[..1], &opts)).contains(&"unindexed-foreign-key"));
    }

    #[test]
    fn lull_as_runner_reports_what_it_rewrites_as_information() {
        let mut f = file("CREATE INDEX IF NOT EXISTS i ON t (a);");
        f.tool = Some(Tool::Lull);
        let report = lint(std::slice::from_ref(&f), &LintOptions::default());
        let finding = report
            .findings
            .iter()
            .find(|f| f.rule == "create-index-not-concurrently")
            .unwrap();
        assert_eq!(finding.severity, Severity::Info);
        assert!(
            finding
                .message
                .starts_with("lull migrate runs this as CONCURRENTLY"),
            "{}",
            finding.message
        );
        // Another runner: an error.
        f.tool = Some(Tool::Prisma);
        f.runner = Some(Runner::Transactional);
        let report = lint(std::slice::from_ref(&f), &LintOptions::default());
        let finding = report
            .findings
            .iter()
            .find(|f| f.rule == "create-index-not-concurrently")
            .unwrap();
        assert_eq!(finding.severity, Severity::Error);
    }

    #[test]
    fn parallel_parsing_keeps_file_order() {
        let files: Vec<SourceFile> = (0..40)
            .map(|i| SourceFile {
                path: format!("{i}.sql"),
                sql: format!("CREATE INDEX IF NOT EXISTS i{i} ON t{i} (a);"),
                ..SourceFile::default()
            })
            .collect();
        let report = lint(&files, &LintOptions::default());
        let paths: Vec<&str> = report.files.iter().map(|f| f.path.as_str()).collect();
        let expected: Vec<String> = (0..40).map(|i| format!("{i}.sql")).collect();
        assert_eq!(paths, expected);
        let tables: Vec<String> = report
            .findings
            .iter()
            .filter(|f| f.rule == "create-index-not-concurrently")
            .map(|f| f.table.clone().unwrap_or_default())
            .collect();
        let expected: Vec<String> = (0..40).map(|i| format!("t{i}")).collect();
        assert_eq!(tables, expected);
    }

    #[test]
    fn renamed_new_tables_stay_new() {
        let files = [file("CREATE TABLE a (x int); ALTER TABLE a RENAME TO b; CREATE INDEX IF NOT EXISTS i ON b (x);")];
        let report = lint(&files, &LintOptions::default());
        assert!(
            !ids(&report).contains(&"create-index-not-concurrently"),
            "{:?}",
            report.findings
        );
    }

    #[test]
    fn a_broken_file_is_reported_and_others_still_linted() {
        let files = [
            file("SELECT 1;\nCREATE TABEL x ();"),
            file("CREATE INDEX IF NOT EXISTS i ON t (a);"),
        ];
        let report = lint(&files, &LintOptions::default());
        let parse = &report.findings[0];
        assert_eq!(parse.rule, "parse-error");
        assert_eq!((parse.span.line, parse.span.column), (2, 8));
        assert!(ids(&report).contains(&"create-index-not-concurrently"));
        assert!(report.files[0].parse_error.is_some());
    }

    #[test]
    fn levels_turn_rules_off_and_change_severity() {
        let files = [file("CREATE INDEX IF NOT EXISTS i ON t (a);")];
        let mut opts = LintOptions::default();
        opts.levels
            .insert("create-index-not-concurrently".into(), Level::Off);
        assert!(!ids(&lint(&files, &opts)).contains(&"create-index-not-concurrently"));
        opts.levels
            .insert("create-index-not-concurrently".into(), Level::Info);
        let report = lint(&files, &opts);
        let f = report
            .findings
            .iter()
            .find(|f| f.rule == "create-index-not-concurrently")
            .unwrap();
        assert_eq!(f.severity, Severity::Info);
    }

    #[test]
    fn table_sizes_raise_and_lower_locking_findings() {
        let files = [file(
            "ALTER TABLE t ADD COLUMN IF NOT EXISTS d int DEFAULT random()::int;",
        )];
        let sev = |rows: Option<u64>| {
            let mut opts = LintOptions::default();
            if let Some(rows) = rows {
                opts.stats.insert("t", TableSize { rows, bytes: 0 });
            }
            let report = lint(&files, &opts);
            report
                .findings
                .iter()
                .find(|f| f.rule == "add-column-volatile-default")
                .unwrap()
                .severity
        };
        assert_eq!(sev(None), Severity::Error);
        assert_eq!(sev(Some(10)), Severity::Warning);
        assert_eq!(sev(Some(50_000_000)), Severity::Error);
    }

    #[test]
    fn line_offset_is_added() {
        let mut f = file("\nCREATE INDEX IF NOT EXISTS i ON t (a);");
        f.line_offset = 10;
        let report = lint(&[f], &LintOptions::default());
        assert_eq!(report.findings[0].span.line, 12);
    }

    #[test]
    fn transaction_groups_follow_the_runner() {
        let stmts = parse("CREATE TABLE a (id int); CREATE INDEX CONCURRENTLY i ON t (a); ALTER TABLE t ADD COLUMN b int; BEGIN; SELECT 1; COMMIT; SELECT 2").unwrap();
        let lull = transaction_info(&stmts, Runner::Lull, false, false);
        assert!(lull[0].in_transaction && !lull[1].in_transaction && lull[2].in_transaction);
        assert_ne!(lull[0].group, lull[2].group);
        assert!(lull[4].explicit_block);
        let wrapped = transaction_info(&stmts, Runner::Transactional, true, false);
        assert!(wrapped.iter().all(|i| i.in_transaction));
        assert_eq!(wrapped[0].group, wrapped[2].group);
        // sqlx-like: the file's COMMIT ends the runner's transaction too.
        let reopened = transaction_info(&stmts, Runner::Transactional, true, true);
        assert!(reopened[..6].iter().all(|i| i.in_transaction));
        assert!(!reopened[6].in_transaction);
        let auto = transaction_info(&stmts, Runner::Autocommit, false, false);
        assert!(!auto[0].in_transaction && auto[4].in_transaction && !auto[6].in_transaction);
    }
}

#[cfg(test)]
mod robustness {
    //! Deterministic mutations of real migrations through the whole
    //! pipeline: whatever the input, lint reports, it never panics. (The
    //! sustained fuzz target lives with the benchmarks; this is the quick
    //! guard that runs with every `cargo test`.)

    use super::*;
    use crate::parse;

    const SEEDS: &[&str] = &[
        "CREATE TABLE IF NOT EXISTS t (id bigserial PRIMARY KEY, e text NOT NULL DEFAULT 'x');",
        "ALTER TABLE o ADD CONSTRAINT f FOREIGN KEY (u) REFERENCES u (id); ALTER TABLE o VALIDATE CONSTRAINT f;",
        "BEGIN; CREATE INDEX CONCURRENTLY i ON t (a) WHERE b > 0; COMMIT; -- lull:ignore x, y why\nDROP INDEX i;",
        "ALTER TABLE u ALTER COLUMN e SET NOT NULL, ADD UNIQUE (e), ADD CHECK (e <> ''); UPDATE u SET e = 'é';",
        "/* c */ ALTER TABLE \"Odd\"\"Name\" RENAME COLUMN a TO b; VACUUM FULL t; LOCK t; SET lock_timeout = '1s';",
    ];

    #[test]
    fn mutated_input_never_panics() {
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let alphabet: Vec<char> = " ;'\"()-/*,.\n\0éxaN$".chars().collect();
        for round in 0..4000 {
            let mut text: Vec<char> = SEEDS[round % SEEDS.len()].chars().collect();
            for _ in 0..(next() % 6 + 1) {
                let pos = (next() as usize) % (text.len() + 1);
                match next() % 3 {
                    0 if pos < text.len() => {
                        text.remove(pos);
                    }
                    1 => text.insert(pos, alphabet[(next() as usize) % alphabet.len()]),
                    _ => {
                        let cut = (next() as usize) % (text.len() + 1);
                        text.truncate(cut.max(pos.min(text.len())));
                    }
                }
            }
            let sql: String = text.into_iter().collect();
            let file = SourceFile {
                path: "f.sql".into(),
                sql: sql.clone(),
                has_down: Some(false),
                ..Default::default()
            };
            let opts = LintOptions {
                runner: Runner::Transactional,
                enable: vec!["prefer-text".into()],
                ..Default::default()
            };
            let report = lint(&[file], &opts);
            for f in &report.findings {
                assert!(
                    f.span.start <= f.span.end && f.span.end <= sql.len(),
                    "bad span for {sql:?}: {f:?}"
                );
                assert!(
                    sql.is_char_boundary(f.span.start),
                    "span not on a char boundary for {sql:?}"
                );
            }
            if let Ok(stmts) = parse(&sql) {
                for stmt in &stmts {
                    let _ = crate::safe_form(stmt, &NewRelations::new());
                }
            }
        }
    }
}
