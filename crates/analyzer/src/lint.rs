//! The lint engine: runs every enabled rule over a list of migration files
//! in run order, applies suppressions, rule levels and table sizes, and
//! computes a risk level per file.
//!
//! Files are linted in the order given, sharing one set of "new"
//! relations: a table created by an earlier file of the same run is as
//! new as one created earlier in the same file, and locking rules leave it
//! alone. The engine knows nothing of directories, config files or output
//! formats; the CLI turns those into [`SourceFile`]s and [`LintOptions`].

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::parse::{parse, ParseError, Span, Statement};
use crate::risk::{self, Risk};
use crate::rules::{self, Rule};
use crate::safe::NewRelations;
use crate::stats::{TableSize, TableStats};
use crate::suppress::{self, Suppressions};

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
        }
    }
}

impl LintOptions {
    /// Whether a table with these sizes is large.
    pub fn is_large(&self, size: &TableSize) -> bool {
        size.rows >= self.large_table_rows || size.bytes >= self.large_table_bytes
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

/// What earlier files of the run left behind that later files' rules need.
#[derive(Debug, Clone, Default)]
pub(crate) struct RunState {
    /// Relations created so far.
    pub new: NewRelations,
    /// (table, column) pairs proven NOT NULL by a validated CHECK.
    pub not_null_checks: BTreeSet<(String, String)>,
    /// Indexes created so far, by relation name: (table, columns).
    pub indexes: BTreeMap<String, Vec<(String, Vec<String>)>>,
}

impl RunState {
    fn absorb(&mut self, stmts: &[Statement]) {
        for stmt in stmts {
            self.new.record(stmt);
        }
        self.not_null_checks
            .extend(rules::set_not_null::proven_columns(stmts));
        for (table, cols) in rules::unindexed_foreign_key::created_indexes(stmts) {
            let relname = table.rsplit('.').next().unwrap_or(&table).to_string();
            self.indexes.entry(relname).or_default().push((table, cols));
        }
    }
}

/// What a rule sees: one parsed file plus its run context.
pub(crate) struct FileCtx<'a> {
    pub file: &'a SourceFile,
    pub stmts: &'a [Statement],
    pub info: Vec<StmtInfo>,
    pub opts: &'a LintOptions,
    /// Whether the runner wraps the whole file in one transaction.
    pub wrapped: bool,
    pub run: &'a RunState,
    /// Per statement: relations created by the statements before it in
    /// this file (shared between statements that create nothing).
    new_before: Vec<std::rc::Rc<NewRelations>>,
}

impl<'a> FileCtx<'a> {
    pub(crate) fn new(
        file: &'a SourceFile,
        stmts: &'a [Statement],
        opts: &'a LintOptions,
        run: &'a RunState,
    ) -> Self {
        let wrapped = opts.runner == Runner::Transactional && !file.no_transaction;
        let info = transaction_info(stmts, opts.runner, wrapped);
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
        FileCtx {
            file,
            stmts,
            info,
            opts,
            wrapped,
            run,
            new_before,
        }
    }

    /// Whether `relation` was created before statement `idx` (earlier in
    /// this file or by an earlier file of the run).
    pub(crate) fn is_new(&self, idx: usize, relation: &str) -> bool {
        self.run.new.contains(relation)
            || self
                .new_before
                .get(idx)
                .is_some_and(|new| new.contains(relation))
    }

    /// Whether `relation` existed before this run.
    pub(crate) fn existing(&self, idx: usize, relation: &str) -> bool {
        !self.is_new(idx, relation)
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

    /// The safe form of statement `idx` as SQL text, for help.
    pub(crate) fn safe_sql(&self, idx: usize) -> Option<String> {
        crate::safe::safe_form_with(&self.stmts[idx], &|name| self.is_new(idx, name))
            .map(|f| f.statements.join(";\n") + ";")
    }
}

/// Which transaction each statement runs in.
fn transaction_info(stmts: &[Statement], runner: Runner, wrapped: bool) -> Vec<StmtInfo> {
    let mut out = Vec::with_capacity(stmts.len());
    let mut in_block = false;
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
                in_transaction: in_block || wrapped,
                explicit_block: in_block,
                group,
            });
            in_block = false;
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
        let info = if wrapped {
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

/// A rule's raw result before levels, sizes and suppressions.
#[derive(Debug, Clone)]
pub(crate) struct Hit {
    pub stmt: usize,
    pub message: String,
    pub help: Option<String>,
    pub table: Option<String>,
}

impl Hit {
    pub(crate) fn new(stmt: usize, message: impl Into<String>) -> Self {
        Hit {
            stmt,
            message: message.into(),
            help: None,
            table: None,
        }
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

/// Lints `files` in run order.
pub fn lint(files: &[SourceFile], opts: &LintOptions) -> LintReport {
    let mut report = LintReport {
        findings: Vec::new(),
        files: Vec::new(),
    };
    let mut run = RunState::default();
    let active: Vec<(&Rule, Severity)> = rules::all()
        .iter()
        .filter_map(|r| effective_level(r, opts).map(|s| (*r, s)))
        .collect();
    for file in files {
        let stmts = match parse(&file.sql) {
            Ok(stmts) => stmts,
            Err(err) => {
                let level = rules::get(rules::PARSE_ERROR).and_then(|r| effective_level(r, opts));
                let mut span = Span {
                    start: err.offset,
                    end: err.offset,
                    line: err.line,
                    column: err.column,
                };
                span.line += file.line_offset;
                report.findings.extend(level.map(|severity| Finding {
                    rule: rules::PARSE_ERROR,
                    severity,
                    message: err.message.clone(),
                    file: file.path.clone(),
                    span,
                    help: Some("fix the syntax error; PostgreSQL would reject this file".into()),
                    table: None,
                }));
                report.files.push(FileReport {
                    path: file.path.clone(),
                    statements: 0,
                    risk: Risk::low(),
                    parse_error: Some(err),
                });
                continue;
            }
        };
        let ctx = FileCtx::new(file, &stmts, opts, &run);
        let mut suppressions = suppress::collect(&file.sql, &stmts);
        let mut findings = Vec::new();
        for (rule, severity) in &active {
            for hit in (rule.check)(&ctx) {
                let Some(stmt) = stmts.get(hit.stmt) else {
                    continue;
                };
                if suppressions.suppress(rule.id, hit.stmt) {
                    continue;
                }
                let severity = match (&hit.table, rule.size_sensitive) {
                    (Some(table), true) if !opts.levels.contains_key(rule.id) => {
                        match ctx.is_large(table) {
                            Some(true) => severity.raise(),
                            Some(false) => severity.lower(),
                            None => *severity,
                        }
                    }
                    _ => *severity,
                };
                findings.push(finding(file, stmt.span, rule.id, severity, hit));
            }
        }
        let is_active = |id: &str| active.iter().any(|(r, _)| r.id == id);
        findings.extend(suppression_findings(file, &suppressions, is_active, opts));
        findings.sort_by_key(|f| (f.span.start, f.rule));
        report.findings.extend(findings);
        let risk = risk::assess(&ctx);
        report.files.push(FileReport {
            path: file.path.clone(),
            statements: stmts.len(),
            risk,
            parse_error: None,
        });
        run.absorb(&stmts);
    }
    report
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
            },
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn tables_created_by_earlier_files_count_as_new() {
        let files = [
            file("CREATE TABLE t (id int);"),
            file("CREATE INDEX IF NOT EXISTS t_id ON t (id);"),
        ];
        let report = lint(&files, &LintOptions::default());
        assert!(
            !ids(&report).contains(&"create-index-not-concurrently"),
            "{:?}",
            report.findings
        );
        let report = lint(&files[1..], &LintOptions::default());
        assert!(ids(&report).contains(&"create-index-not-concurrently"));
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
        let lull = transaction_info(&stmts, Runner::Lull, false);
        assert!(lull[0].in_transaction && !lull[1].in_transaction && lull[2].in_transaction);
        assert_ne!(lull[0].group, lull[2].group);
        assert!(lull[4].explicit_block);
        let wrapped = transaction_info(&stmts, Runner::Transactional, true);
        assert!(wrapped.iter().all(|i| i.in_transaction));
        assert_eq!(wrapped[0].group, wrapped[2].group);
        let auto = transaction_info(&stmts, Runner::Autocommit, false);
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
