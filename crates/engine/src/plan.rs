//! Turning a migration file into steps: what `lull plan` prints and
//! `lull migrate` runs.
//!
//! Runs of statements that may run in a transaction become one
//! transactional step; every statement that cannot (CONCURRENTLY index
//! work, VACUUM, ...) becomes its own autocommit step. With the
//! safe-by-default rewrites on, a statement with a safe form is replaced by
//! it (`CREATE INDEX` → `CONCURRENTLY`, `ADD FOREIGN KEY` → `NOT VALID`
//! then `VALIDATE`, ...), and each statement after the first of a safe form
//! starts a new step, so a `VALIDATE` never holds the lock its `ADD` took.
//! An explicit `BEGIN ... COMMIT` in a file is kept as one step and is not
//! rewritten: whoever wrote it asked for those statements to commit
//! together.
//!
//! Two things a file may write are not run as written, and the plan says
//! so (they are refusals or notes, never silent):
//!
//! - `SET` / `RESET` of `lock_timeout` or `statement_timeout` (and `RESET
//!   ALL`): lull's policy sets both for every step and try (the short
//!   lock_timeout tried only in a gap is the point of running with lull),
//!   so a file's own setting is not run; it is listed in
//!   [`MigrationPlan::overridden`], `lull plan` prints it and `lull
//!   migrate` warns. Naive mode runs the file as written, setting included.
//! - `ROLLBACK` (or `ABORT`): it would discard the statements before it
//!   while the migration is recorded as applied, so the file is refused
//!   before anything runs. `ROLLBACK TO SAVEPOINT` is left alone.
//!
//! A single-table `UPDATE` or `DELETE` of a table that existed before the
//! migration becomes a `backfill` step of its own, run in keyset batches
//! by `lull_backfill` (`-- lull:no-batch` before it keeps it one statement;
//! `-- lull:backfill per=COLUMN` walks each tenant in its own batches). A
//! statement that cannot be batched safely stays as written, with a note
//! saying why; whether the table has a usable key is only known at run
//! time, and without one the step runs as written with a warning.
//!
//! A `CREATE INDEX` on a partitioned table cannot be built CONCURRENTLY
//! (PostgreSQL rejects it). When the table is known to be partitioned —
//! from the catalog ([`PlanContext::known`]) or the migrations planned
//! before — it runs as the per-partition form instead: the index `ON
//! ONLY` the parent, each partition's index built CONCURRENTLY in its own
//! index step (dropped and retried when INVALID, like any index build),
//! and attached; the names are the ones PostgreSQL gives the partitions'
//! indexes, so the catalog ends up as the plain statement leaves it. Where
//! that cannot be promised (a partition already has an index on the same
//! columns, which PostgreSQL would attach instead of building one; a
//! foreign partition; an expression whose name is uncertain) the
//! statement runs as written, in a transaction, with a note saying why.
//!
//! The plan depends only on the files, the options and what the catalog
//! says when the run starts (constraint names, partitions), never on what
//! changes while it runs; a resumed run plans with the same partitions and
//! without the name checks, so it gets the same steps. (The target major
//! in the options changes only the lock modes claimed, never the steps.)

use lull_analyzer::partition_index::{on_partitioned_table, partitioned_index_form};
use lull_analyzer::pg_ast::{TransactionStmtKind, VariableSetKind};
use lull_analyzer::{
    parse_for, safe_form, Class, IndexFacts, Known, LockMode, NewRelations, NodeEnum, RelLock,
    Statement,
};
use lull_migrations::{Migration, SqlFile};
use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::error::EngineError;

/// Which way a migration runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Apply it.
    Up,
    /// Revert it.
    Down,
}

impl Direction {
    /// `up` or `down`, as recorded in `lull.steps`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Up => "up",
            Direction::Down => "down",
        }
    }
}

/// How statements are run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// lull's way: steps, policies, retries, safe rewrites.
    Safe,
    /// What a plain runner does: each file as written in one transaction
    /// (or without one if the file asks), no timeouts, no retries, no
    /// rewrites. For comparisons such as `lull demo`.
    Naive,
}

/// Options that change the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanOptions {
    /// Safe or naive.
    pub mode: Mode,
    /// Apply the safe-by-default rewrites (safe mode only).
    pub rewrites: bool,
    /// The PostgreSQL major the plan is for (the server's when connected):
    /// lock modes that changed between majors are that major's. `None`:
    /// the newest lull knows.
    pub pg_version: Option<u32>,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            mode: Mode::Safe,
            rewrites: true,
            pg_version: None,
        }
    }
}

/// Whether a step runs in a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StepKind {
    /// `BEGIN; ...; COMMIT`, with the step's record in the same
    /// transaction.
    Transaction,
    /// One statement outside any transaction.
    Autocommit,
    /// One UPDATE/DELETE run in keyset batches, each batch its own
    /// transaction with its progress (see `lull_backfill`).
    Backfill,
}

impl StepKind {
    /// `transaction` or `autocommit`.
    pub fn as_str(self) -> &'static str {
        match self {
            StepKind::Transaction => "transaction",
            StepKind::Autocommit => "autocommit",
            StepKind::Backfill => "backfill",
        }
    }
}

/// Which policy of `lull.toml` runs a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicyClass {
    /// Short lock_timeout ramp with sleeps between tries.
    Ddl,
    /// Longer lock_timeout, retries on deadlock and serialization failure.
    Dml,
    /// Own autocommit connection, INVALID leftovers dropped, tries with
    /// backoff.
    Index,
    /// No policy: as written (naive mode).
    None,
}

impl PolicyClass {
    /// The name shown in plans.
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyClass::Ddl => "ddl",
            PolicyClass::Dml => "dml",
            PolicyClass::Index => "index",
            PolicyClass::None => "none",
        }
    }
}

/// How much a step can disturb the application.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Risk {
    /// Weak locks, or only objects created in this migration.
    Low,
    /// A strong lock held briefly (bounded by the lock_timeout ramp).
    Medium,
    /// A strong lock held while a table is rewritten or scanned.
    High,
}

/// One statement as it will run.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedStatement {
    /// The SQL to run (without a trailing `;`).
    pub sql: String,
    /// The statement as written, when a rewrite replaced it.
    pub original: Option<String>,
    /// The rewrite's name (`concurrently`, `not-valid-then-validate`, ...).
    pub rewrite: Option<&'static str>,
    /// What the rewrite changed and why.
    pub note: Option<String>,
    /// The analyzer's class.
    pub class: Class,
    /// Lock mode per relation.
    pub locks: Vec<RelLock>,
    /// Tables rewritten while locked.
    pub rewrites: Vec<String>,
    /// Tables scanned while locked.
    pub scans: Vec<String>,
    /// For index statements.
    pub index: Option<IndexFacts>,
    /// `-- lull:best-effort` was written before it: a failed index build
    /// is a warning and a pending-index row instead of a failure.
    pub best_effort: bool,
    /// 1-based line in the file.
    pub line: usize,
    /// Its risk.
    pub risk: Risk,
    /// For a `backfill` step: how it is batched.
    pub backfill: Option<BackfillPlan>,
}

/// How a backfill step walks its table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackfillPlan {
    /// `-- lull:backfill per=COLUMN`: each value in its own batches.
    pub per: Option<String>,
    /// The batched form, with placeholders for the key found at run time.
    pub batched: String,
}

/// A unit of work that commits (or not) as a whole.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// 1-based number within the migration.
    pub number: usize,
    /// Transaction or autocommit.
    pub kind: StepKind,
    /// The policy that runs it.
    pub policy: PolicyClass,
    /// Its statements, in order.
    pub statements: Vec<PlannedStatement>,
    /// The highest risk of its statements.
    pub risk: Risk,
}

impl Step {
    /// The step's SQL as one text, as recorded in `lull.steps`.
    pub fn sql(&self) -> String {
        self.statements
            .iter()
            .map(|s| s.sql.as_str())
            .collect::<Vec<_>>()
            .join(";\n")
    }

    /// A one-line summary for progress lines.
    pub fn summary(&self) -> String {
        let first = crate::error::excerpt(&self.statements[0].sql, 80);
        match self.statements.len() {
            1 => first,
            n => format!("{first} (+{} more)", n - 1),
        }
    }

    /// The strongest lock per relation over the whole step.
    pub fn locks(&self) -> Vec<RelLock> {
        let mut out: Vec<RelLock> = Vec::new();
        for l in self.statements.iter().flat_map(|s| &s.locks) {
            match out.iter_mut().find(|o| o.relation == l.relation) {
                Some(o) if l.mode > o.mode => o.mode = l.mode,
                Some(_) => {}
                None => out.push(l.clone()),
            }
        }
        out
    }
}

/// The steps of one migration in one direction.
#[derive(Debug, Clone, Serialize)]
pub struct MigrationPlan {
    /// The version.
    pub version: String,
    /// The name.
    pub name: String,
    /// SHA-256 of the up SQL.
    pub checksum: String,
    /// Up or down.
    pub direction: Direction,
    /// Safe or naive.
    pub mode: Mode,
    /// The steps.
    pub steps: Vec<Step>,
    /// Statements of the file that are not run because lull's policy
    /// governs what they set (see the module docs).
    pub overridden: Vec<Overridden>,
}

/// A statement of the file that lull does not run, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Overridden {
    /// The statement as written.
    pub sql: String,
    /// 1-based line in the file.
    pub line: usize,
    /// The setting it changes (`lock_timeout`, `statement_timeout`, or
    /// `all` for `RESET ALL`).
    pub setting: String,
    /// What runs instead.
    pub note: String,
}

/// The settings every safe step gets from lull's policy.
const POLICY_SETTINGS: [&str; 2] = ["lock_timeout", "statement_timeout"];

/// The setting a `SET` / `RESET` changes, when it is one lull's policy
/// sets (`all` for `RESET ALL`).
fn policy_setting(s: &Statement) -> Option<String> {
    let NodeEnum::VariableSetStmt(v) = s.ast() else {
        return None;
    };
    if VariableSetKind::try_from(v.kind) == Ok(VariableSetKind::VarResetAll) {
        return Some("all".into());
    }
    let name = v.name.to_ascii_lowercase();
    POLICY_SETTINGS.contains(&name.as_str()).then_some(name)
}

/// Whether the statement is `ROLLBACK` / `ABORT` (not `ROLLBACK TO`).
fn is_rollback(s: &Statement) -> bool {
    matches!(s.ast(), NodeEnum::TransactionStmt(t)
        if TransactionStmtKind::try_from(t.kind) == Ok(TransactionStmtKind::TransStmtRollback))
}

impl MigrationPlan {
    /// The highest risk of its steps.
    pub fn risk(&self) -> Risk {
        self.steps.iter().map(|s| s.risk).max().unwrap_or(Risk::Low)
    }
}

/// What the planner knows beyond the files, carried from one migration's
/// plan to the next in a run.
#[derive(Debug, Clone, Default)]
pub struct PlanContext {
    /// Constraint names (`schema.name`) used already: those of the
    /// database and of the migrations planned before.
    pub names: BTreeSet<String>,
    /// Partitioned tables and their partitions (the catalog's, then what
    /// the planned migrations did).
    pub known: Known,
    /// What the catalog says to check before an index build on a
    /// partitioned table is split per partition; `None` (resuming, or no
    /// database) splits without checking the catalog.
    pub checks: Option<PartitionChecks>,
    /// Relations the migrations planned so far create.
    pub created: NewRelations,
    /// Indexes the migrations planned so far create, as (table, key
    /// columns; `None` for an expression).
    pub planned_indexes: Vec<(String, Vec<Option<String>>)>,
}

/// Whether two relation names written in SQL or read from the catalog
/// can be the same relation (an unqualified name matches any schema).
fn same_relation(a: &str, b: &str) -> bool {
    let last = |n: &str| n.rsplit('.').next().unwrap_or(n).to_string();
    a == b || ((!a.contains('.') || !b.contains('.')) && last(a) == last(b))
}

/// Why the per-partition form of `stmt` on `table` would not leave the
/// catalog the plain statement leaves, from what the planned migrations
/// did: a partition got an index on the same columns, which PostgreSQL
/// would attach instead of building one.
fn refused_by_planned(
    stmt: &Statement,
    table: &str,
    known: &Known,
    planned: &[(String, Vec<Option<String>>)],
) -> Option<String> {
    let (_, columns) = lull_analyzer::known::index_columns(stmt)?;
    let mut stack = vec![table.to_string()];
    while let Some(t) = stack.pop() {
        for part in known
            .partitioned(&t)
            .map(|p| p.partitions.clone())
            .unwrap_or_default()
        {
            if planned
                .iter()
                .any(|(on, cols)| same_relation(on, &part) && *cols == columns)
            {
                return Some(format!(
                    "partition `{part}` has an index on the same columns, which PostgreSQL \
                     attaches instead of building a new one"
                ));
            }
            if known.is_partitioned(&part) {
                stack.push(part);
            }
        }
    }
    None
}

/// Catalog facts that decide whether the per-partition form leaves the
/// catalog the plain statement leaves.
#[derive(Debug, Clone, Default)]
pub struct PartitionChecks {
    /// Every relation of the user schemas, as `schema.name`.
    pub relations: BTreeSet<String>,
    /// Per partition (`schema.name`): the key columns of each of its
    /// indexes, `None` for an expression.
    pub partition_indexes: BTreeMap<String, Vec<Vec<Option<String>>>>,
    /// Partitions that are foreign tables (`schema.name`).
    pub foreign: BTreeSet<String>,
}

impl PartitionChecks {
    fn taken(&self, name: &str) -> bool {
        if name.contains('.') {
            self.relations.contains(name)
        } else {
            // Unqualified: what the usual search_path finds.
            self.relations.contains(&format!("public.{name}"))
        }
    }

    /// Why the per-partition form of `stmt` on `table` would not leave
    /// the plain statement's catalog, if it would not.
    fn refuses(&self, stmt: &Statement, table: &str, known: &Known) -> Option<String> {
        let NodeEnum::IndexStmt(s) = stmt.ast() else {
            return None;
        };
        if s.if_not_exists && !s.idxname.is_empty() {
            let schema = s
                .relation
                .as_ref()
                .map(|r| r.schemaname.as_str())
                .unwrap_or("");
            let name = if schema.is_empty() {
                s.idxname.clone()
            } else {
                format!("{schema}.{}", s.idxname)
            };
            if self.taken(&name) {
                return Some(format!(
                    "`{}` exists already, so the statement does nothing",
                    s.idxname
                ));
            }
        }
        let columns: Vec<Option<String>> = s
            .index_params
            .iter()
            .map(|p| match &p.node {
                Some(NodeEnum::IndexElem(e)) if !e.name.is_empty() => Some(e.name.clone()),
                _ => None,
            })
            .collect();
        let mut stack = vec![table.to_string()];
        while let Some(t) = stack.pop() {
            for part in known
                .partitioned(&t)
                .map(|p| p.partitions.clone())
                .unwrap_or_default()
            {
                let qualified = if part.contains('.') {
                    part.clone()
                } else {
                    format!("public.{part}")
                };
                if self.foreign.contains(&qualified) {
                    return Some(format!("partition `{part}` is a foreign table"));
                }
                let same = self
                    .partition_indexes
                    .get(&qualified)
                    .is_some_and(|ixs| ixs.contains(&columns));
                if same {
                    return Some(format!(
                        "partition `{part}` has an index on the same columns, which PostgreSQL \
                         attaches instead of building a new one"
                    ));
                }
                if known.is_partitioned(&part) {
                    stack.push(part);
                }
            }
        }
        None
    }
}

/// Plans one migration. Fails if the SQL does not parse (with the file
/// position) or, for `Down`, if there is no down SQL.
pub fn plan_migration(
    m: &Migration,
    direction: Direction,
    opts: &PlanOptions,
) -> Result<MigrationPlan, EngineError> {
    plan_migration_with_names(m, direction, opts, &mut BTreeSet::new())
}

/// [`plan_migration`] knowing which constraint names (`schema.name`) are
/// used already: those of the database and of the migrations planned
/// before this one in the same run. A rewrite that names an unnamed
/// constraint picks the name PostgreSQL would pick (`t_a_check1` when
/// `t_a_check` is used); the names this migration adds are added to
/// `names` for the next one.
pub fn plan_migration_with_names(
    m: &Migration,
    direction: Direction,
    opts: &PlanOptions,
    names: &mut BTreeSet<String>,
) -> Result<MigrationPlan, EngineError> {
    let mut ctx = PlanContext {
        names: std::mem::take(names),
        ..PlanContext::default()
    };
    let plan = plan_migration_in(m, direction, opts, &mut ctx);
    *names = ctx.names;
    plan
}

/// [`plan_migration_with_names`] with everything the run knows
/// ([`PlanContext`]); what this migration adds (constraint names,
/// partitions) is added to `ctx` for the next one.
pub fn plan_migration_in(
    m: &Migration,
    direction: Direction,
    opts: &PlanOptions,
    ctx: &mut PlanContext,
) -> Result<MigrationPlan, EngineError> {
    let file = match direction {
        Direction::Up => m.up.as_ref(),
        Direction::Down => m.down.as_ref(),
    };
    let Some(file) = file else {
        return Err(match direction {
            Direction::Down => EngineError::MissingDown {
                version: m.version.clone(),
                name: m.name.clone(),
            },
            Direction::Up => EngineError::Other {
                message: format!("migration {} has no up SQL", m.label()),
                hint: None,
                kind: crate::error::ErrorKind::Error,
            },
        });
    };
    let parsed = parse_for(&file.sql, opts.pg_version).map_err(|e| EngineError::Parse {
        migration: m.label(),
        path: file.path.clone(),
        line: e.line + file.line_offset,
        column: e.column,
        message: e.message.clone(),
    })?;
    if let Some(s) = parsed.iter().find(|s| is_rollback(s)) {
        return Err(EngineError::Other {
            message: format!(
                "migration {}: `{}` at {}:{} would discard the statements before it, yet the \
                 migration would be recorded as applied; lull does not run such a file",
                m.label(),
                s.text,
                file.path.display(),
                s.span.line + file.line_offset
            ),
            hint: Some(
                "remove the ROLLBACK (use COMMIT to end the block); to try a change without keeping \
                 it, run it outside the migrations"
                    .into(),
            ),
            kind: crate::error::ErrorKind::Refused,
        });
    }
    let mut overridden = Vec::new();
    let steps = match opts.mode {
        Mode::Naive => {
            ctx.known.absorb_all(&parsed);
            naive_steps(m, file, &parsed)
        }
        Mode::Safe => {
            let (kept, dropped): (Vec<Statement>, Vec<Statement>) = parsed
                .into_iter()
                .partition(|s| policy_setting(s).is_none());
            for s in dropped {
                let setting = policy_setting(&s).unwrap_or_default();
                overridden.push(Overridden {
                    line: s.span.line + file.line_offset,
                    note: format!(
                        "not run: lull sets {} for every step from its policy \
                         ([policy.ddl], [policy.dml], [policy.index] in lull.toml)",
                        if setting == "all" {
                            "lock_timeout and statement_timeout".to_string()
                        } else {
                            setting.clone()
                        }
                    ),
                    sql: s.text,
                    setting,
                });
            }
            safe_steps(m, file, &kept, opts, ctx)?
        }
    };
    Ok(MigrationPlan {
        version: m.version.clone(),
        name: m.name.clone(),
        checksum: m.checksum.clone(),
        direction,
        mode: opts.mode,
        steps,
        overridden,
    })
}

fn naive_steps(m: &Migration, file: &SqlFile, parsed: &[Statement]) -> Vec<Step> {
    if parsed.is_empty() {
        return Vec::new();
    }
    let mut new = NewRelations::new();
    let mut risks = Vec::new();
    for s in parsed {
        risks.push(statement_risk(s, &new));
        new.record(s);
    }
    if m.no_transaction {
        // Without a transaction a plain runner sends statement after
        // statement; each one is its own step.
        return parsed
            .iter()
            .zip(risks)
            .enumerate()
            .map(|(i, (s, risk))| Step {
                number: i + 1,
                kind: StepKind::Autocommit,
                policy: PolicyClass::None,
                statements: vec![planned(s, s.span.line + file.line_offset, false, risk)],
                risk,
            })
            .collect();
    }
    let risk = risks.into_iter().max().unwrap_or(Risk::Low);
    let stmt = PlannedStatement {
        sql: file.sql.trim().trim_end_matches(';').to_string(),
        original: None,
        rewrite: None,
        note: None,
        class: parsed[0].facts.class,
        locks: merge_locks(parsed.iter().flat_map(|s| s.facts.locks.iter())),
        rewrites: parsed
            .iter()
            .flat_map(|s| s.facts.rewrites.clone())
            .collect(),
        scans: parsed.iter().flat_map(|s| s.facts.scans.clone()).collect(),
        index: None,
        best_effort: false,
        line: 1 + file.line_offset,
        risk,
        backfill: None,
    };
    vec![Step {
        number: 1,
        kind: StepKind::Transaction,
        policy: PolicyClass::None,
        statements: vec![stmt],
        risk,
    }]
}

fn merge_locks<'a>(locks: impl Iterator<Item = &'a RelLock>) -> Vec<RelLock> {
    let mut out: Vec<RelLock> = Vec::new();
    for l in locks {
        match out.iter_mut().find(|o| o.relation == l.relation) {
            Some(o) if l.mode > o.mode => o.mode = l.mode,
            Some(_) => {}
            None => out.push(l.clone()),
        }
    }
    out
}

/// How much a statement can disturb the application, given the
/// relations created earlier in the migration.
fn statement_risk(s: &Statement, new: &NewRelations) -> Risk {
    let existing = |rel: &String| !new.contains(rel);
    if s.facts.rewrites.iter().any(existing) {
        return Risk::High;
    }
    let strong = s
        .facts
        .locks
        .iter()
        .filter(|l| existing(&l.relation))
        .filter(|l| l.mode >= LockMode::Share || l.mode.blocks_writes())
        .count();
    if strong > 0 && s.facts.scans.iter().any(existing) {
        Risk::High
    } else if strong > 0 {
        Risk::Medium
    } else {
        Risk::Low
    }
}

/// Whether `-- lull:best-effort` appears in the comments before a
/// statement.
fn best_effort_marker(gap: &str) -> bool {
    gap.lines()
        .any(|l| l.trim().eq_ignore_ascii_case("-- lull:best-effort"))
}

struct Builder {
    steps: Vec<Step>,
    run: Vec<PlannedStatement>,
}

impl Builder {
    fn flush(&mut self) {
        if self.run.is_empty() {
            return;
        }
        let statements = std::mem::take(&mut self.run);
        let policy = if statements.iter().all(|s| s.class == Class::Dml) {
            PolicyClass::Dml
        } else {
            PolicyClass::Ddl
        };
        self.push(StepKind::Transaction, policy, statements);
    }

    fn push(&mut self, kind: StepKind, policy: PolicyClass, statements: Vec<PlannedStatement>) {
        let risk = statements.iter().map(|s| s.risk).max().unwrap_or(Risk::Low);
        let number = self.steps.len() + 1;
        self.steps.push(Step {
            number,
            kind,
            policy,
            statements,
            risk,
        });
    }

    fn autocommit(&mut self, s: PlannedStatement) {
        self.flush();
        let policy = if s.class == Class::Index {
            PolicyClass::Index
        } else {
            PolicyClass::Ddl
        };
        self.push(StepKind::Autocommit, policy, vec![s]);
    }
}

fn planned(s: &Statement, line: usize, best_effort: bool, risk: Risk) -> PlannedStatement {
    PlannedStatement {
        sql: s.text.clone(),
        original: None,
        rewrite: None,
        note: None,
        class: s.facts.class,
        locks: s.facts.locks.clone(),
        rewrites: s.facts.rewrites.clone(),
        scans: s.facts.scans.clone(),
        index: s.facts.index.clone(),
        best_effort,
        line,
        risk,
        backfill: None,
    }
}

/// What the comments before a statement say about batching it.
#[derive(Debug, Default, PartialEq, Eq)]
struct BatchMarkers {
    /// `-- lull:no-batch`.
    no_batch: bool,
    /// `-- lull:backfill per=COLUMN`.
    per: Option<String>,
}

fn batch_markers(gap: &str) -> BatchMarkers {
    let mut m = BatchMarkers::default();
    for line in gap.lines() {
        let Some(rest) = line.trim().strip_prefix("--") else {
            continue;
        };
        let rest = rest.trim();
        // The marker is the first word; a reason may follow it.
        let first = rest
            .split_whitespace()
            .next()
            .unwrap_or("")
            .trim_end_matches(':');
        if first.eq_ignore_ascii_case("lull:no-batch") {
            m.no_batch = true;
        } else if let Some(args) = rest.strip_prefix("lull:backfill") {
            for arg in args.split_whitespace() {
                if let Some(col) = arg.strip_prefix("per=") {
                    m.per = Some(col.trim_matches('"').to_string());
                }
            }
        }
    }
    m
}

/// The backfill step for a statement, or why it stays as written
/// (`Err(None)`: not an UPDATE/DELETE of an existing table at all).
fn backfill_form(
    s: &Statement,
    new: &NewRelations,
    markers: &BatchMarkers,
) -> Result<BackfillPlan, Option<String>> {
    let table = match s.ast() {
        lull_analyzer::NodeEnum::UpdateStmt(u) => u.relation.as_ref(),
        lull_analyzer::NodeEnum::DeleteStmt(d) => d.relation.as_ref(),
        _ => return Err(None),
    };
    let Some(rel) = table else { return Err(None) };
    let name = if rel.schemaname.is_empty() {
        rel.relname.clone()
    } else {
        format!("{}.{}", rel.schemaname, rel.relname)
    };
    if new.contains(&name) || markers.no_batch {
        return Err(None);
    }
    match lull_backfill::analyze(&s.text) {
        Ok(b) => Ok(BackfillPlan {
            batched: lull_backfill::describe(&b, markers.per.as_deref()),
            per: markers.per.clone(),
        }),
        Err(e) => Err(Some(format!(
            "not batched, runs as one statement: {e} (`-- lull:no-batch` silences this)"
        ))),
    }
}

fn safe_steps(
    m: &Migration,
    file: &SqlFile,
    parsed: &[Statement],
    opts: &PlanOptions,
    ctx: &mut PlanContext,
) -> Result<Vec<Step>, EngineError> {
    let rewrites = opts.rewrites;
    let mut b = Builder {
        steps: Vec::new(),
        run: Vec::new(),
    };
    let mut new = NewRelations::new();
    new.take_constraint_names(std::mem::take(&mut ctx.names));
    let mut explicit_block = false;
    let mut prev_end = 0;
    for s in parsed {
        let gap = &file.sql[prev_end.min(s.span.start)..s.span.start];
        prev_end = s.span.end;
        let line = s.span.line + file.line_offset;
        if s.begins_transaction() {
            b.flush();
            explicit_block = true;
            continue;
        }
        if s.ends_transaction() {
            b.flush();
            explicit_block = false;
            continue;
        }
        let best_effort = best_effort_marker(gap);
        let mut not_batched = None;
        if rewrites && !explicit_block {
            match backfill_form(s, &new, &batch_markers(gap)) {
                Ok(plan) => {
                    let mut p = planned(s, line, false, statement_risk(s, &new));
                    p.original = Some(s.text.clone());
                    p.rewrite = Some("batched-backfill");
                    p.note = Some(format!(
                        "keyset batches over the table's key (primary key or unique NOT NULL \
                         column), one transaction each, progress recorded in it: {}",
                        plan.batched
                    ));
                    p.backfill = Some(plan);
                    b.flush();
                    b.push(StepKind::Backfill, PolicyClass::Dml, vec![p]);
                    new.record(s);
                    ctx.known.absorb(s);
                    ctx.created.record(s);
                    continue;
                }
                Err(reason) => not_batched = reason,
            }
        }
        let partitioned = on_partitioned_table(s, &ctx.known).filter(|t| !new.contains(t));
        let mut kept_note = None;
        let form = match &partitioned {
            Some(_) if !rewrites || explicit_block => None,
            Some(table) => {
                let refused = ctx
                    .checks
                    .as_ref()
                    .and_then(|c| c.refuses(s, table, &ctx.known))
                    .or_else(|| refused_by_planned(s, table, &ctx.known, &ctx.planned_indexes));
                let form = match &refused {
                    Some(_) => None,
                    None => {
                        let checks = ctx.checks.as_ref();
                        let created = &ctx.created;
                        let taken = |n: &str| {
                            new.contains(n)
                                || created.contains(n)
                                || checks.is_some_and(|c| c.taken(n))
                        };
                        partitioned_index_form(s, &ctx.known, &taken)
                    }
                };
                if form.is_none() {
                    let why = refused.unwrap_or_else(|| {
                        "the names PostgreSQL gives the partitions' indexes are not certain here"
                            .into()
                    });
                    kept_note = Some(format!(
                        "`{table}` is partitioned, where CONCURRENTLY is not allowed; runs as \
                         written (every partition's index built under a SHARE lock) because {why}"
                    ));
                }
                form
            }
            None if rewrites && !explicit_block => safe_form(s, &new),
            None => None,
        };
        match form {
            None => {
                let mut p = planned(s, line, best_effort, statement_risk(s, &new));
                p.note = kept_note.or(not_batched);
                if explicit_block {
                    b.run.push(p);
                } else if !s.facts.transactional || m.no_transaction {
                    b.autocommit(p);
                } else {
                    b.run.push(p);
                }
            }
            Some(form) => {
                for (i, text) in form.statements.iter().enumerate() {
                    let reparsed = parse_for(text, opts.pg_version).map_err(|e| EngineError::Other {
                        message: format!(
                            "the safe form of the statement at {}:{line} does not parse ({e}): {text}",
                            file.path.display()
                        ),
                        hint: Some("turn the rewrites off with --no-rewrites and report this".into()),
                        kind: crate::error::ErrorKind::Error,
                    })?;
                    for r in &reparsed {
                        // After the CHECK is validated, SET NOT NULL uses it
                        // instead of scanning the table (PostgreSQL 12+).
                        let proven = r.text.contains("SET NOT NULL")
                            && form.statements[..i]
                                .iter()
                                .any(|t| t.contains("VALIDATE CONSTRAINT"));
                        let risk = if proven {
                            let mut r = r.clone();
                            r.facts.scans.clear();
                            statement_risk(&r, &new)
                        } else {
                            statement_risk(r, &new)
                        };
                        let mut p = planned(r, line, best_effort, risk);
                        if proven {
                            p.scans.clear();
                        }
                        p.original = Some(s.text.clone());
                        p.rewrite = Some(form.rewrite);
                        p.note = Some(form.note.clone());
                        if !r.facts.transactional || m.no_transaction {
                            b.autocommit(p);
                        } else {
                            if i > 0 {
                                b.flush();
                            }
                            b.run.push(p);
                        }
                    }
                }
                // The last statement of a safe form stands alone too, so the
                // statements that follow it in the file do not hold its lock.
                b.flush();
            }
        }
        new.record(s);
        ctx.known.absorb(s);
        ctx.created.record(s);
        ctx.planned_indexes
            .extend(lull_analyzer::known::index_columns(s));
    }
    b.flush();
    ctx.names = new.constraint_names().clone();
    Ok(b.steps)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lull_migrations::{Layout, SqlFile};

    fn migration(sql: &str) -> Migration {
        Migration {
            version: "1".into(),
            name: "t".into(),
            up: Some(SqlFile {
                path: "1_t.sql".into(),
                sql: sql.into(),
                line_offset: 0,
            }),
            down: None,
            layout: Layout::Lull,
            no_transaction: false,
            checksum: String::new(),
        }
    }

    fn plan(sql: &str) -> MigrationPlan {
        plan_migration(&migration(sql), Direction::Up, &PlanOptions::default()).unwrap()
    }

    #[test]
    fn an_update_of_an_existing_table_is_its_own_backfill_step() {
        let p = plan(
            "ALTER TABLE t ADD COLUMN b int;\n\
             UPDATE t SET b = a * 2 WHERE b IS NULL;\n\
             ALTER TABLE t ALTER COLUMN b SET DEFAULT 0;",
        );
        let kinds: Vec<StepKind> = p.steps.iter().map(|s| s.kind).collect();
        assert_eq!(
            kinds,
            [
                StepKind::Transaction,
                StepKind::Backfill,
                StepKind::Transaction
            ]
        );
        let s = &p.steps[1].statements[0];
        assert_eq!(s.rewrite, Some("batched-backfill"));
        assert_eq!(s.sql, "UPDATE t SET b = a * 2 WHERE b IS NULL");
        let bf = s.backfill.as_ref().unwrap();
        assert_eq!(bf.per, None);
        assert!(
            bf.batched.contains("key > $last AND key <= $batch_end"),
            "{}",
            bf.batched
        );
    }

    #[test]
    fn markers_and_new_tables_and_refusals() {
        let p = plan(
            "-- lull:backfill per=tenant_id\nUPDATE a SET x = 1;\n\
             -- lull:no-batch: small table\nUPDATE b SET x = 1;\n\
             CREATE TABLE c (id int primary key, x int);\nUPDATE c SET x = 1;\n\
             DELETE FROM d RETURNING id;",
        );
        let first = &p.steps[0];
        assert_eq!(first.kind, StepKind::Backfill);
        assert_eq!(
            first.statements[0]
                .backfill
                .as_ref()
                .unwrap()
                .per
                .as_deref(),
            Some("tenant_id")
        );
        assert!(p.steps[1..].iter().all(|s| s.kind == StepKind::Transaction));
        let returning = p
            .steps
            .iter()
            .flat_map(|s| &s.statements)
            .find(|s| s.sql.starts_with("DELETE"))
            .unwrap();
        assert!(
            returning
                .note
                .as_deref()
                .unwrap_or("")
                .contains("RETURNING"),
            "{:?}",
            returning.note
        );
        // Naive mode and --no-rewrites never batch.
        let plain = plan_migration(
            &migration("UPDATE a SET x = 1;"),
            Direction::Up,
            &PlanOptions {
                rewrites: false,
                ..PlanOptions::default()
            },
        )
        .unwrap();
        assert_eq!(plain.steps[0].kind, StepKind::Transaction);
    }

    #[test]
    fn set_not_null_after_a_validated_check_is_not_rated_as_a_scan() {
        let plan = plan_migration(
            &migration("ALTER TABLE users ALTER COLUMN email SET NOT NULL;"),
            Direction::Up,
            &PlanOptions::default(),
        )
        .unwrap();
        let kinds: Vec<(String, Risk)> = plan.steps.iter().map(|s| (s.sql(), s.risk)).collect();
        assert_eq!(plan.steps.len(), 4, "{kinds:#?}");
        let set = &plan.steps[2];
        assert!(set.sql().contains("SET NOT NULL"), "{kinds:#?}");
        assert!(set.statements[0].scans.is_empty());
        assert_eq!(set.risk, Risk::Medium, "{kinds:#?}");
        // Written as is (no rewrites), the same statement scans under
        // ACCESS EXCLUSIVE: high.
        let plain = plan_migration(
            &migration("ALTER TABLE users ALTER COLUMN email SET NOT NULL;"),
            Direction::Up,
            &PlanOptions {
                rewrites: false,
                ..PlanOptions::default()
            },
        )
        .unwrap();
        assert_eq!(plain.risk(), Risk::High);
    }

    #[test]
    fn lock_claims_follow_the_target_major() {
        let locks_on = |pg_version| {
            let plan = plan_migration(
                &migration("GRANT SELECT ON users TO app;"),
                Direction::Up,
                &PlanOptions {
                    pg_version,
                    ..PlanOptions::default()
                },
            )
            .unwrap();
            plan.steps
                .iter()
                .flat_map(|s| s.locks())
                .collect::<Vec<_>>()
        };
        assert!(locks_on(Some(17)).is_empty());
        let on_18 = locks_on(Some(18));
        assert_eq!(on_18.len(), 1);
        assert_eq!(on_18[0].relation, "users");
        assert_eq!(on_18[0].mode, LockMode::AccessShare);
        assert_eq!(locks_on(None), on_18, "no major: the newest");
    }

    #[test]
    fn policy_settings_are_listed_not_run_and_rollback_is_refused() {
        let plan = plan_migration(
            &migration(
                "SET LOCAL lock_timeout TO '5s';\nRESET ALL;\nSET work_mem = '64MB';\n\
                 BEGIN;\nSAVEPOINT a;\nALTER TABLE t ADD COLUMN b int;\nROLLBACK TO SAVEPOINT a;\nCOMMIT;",
            ),
            Direction::Up,
            &PlanOptions::default(),
        )
        .unwrap();
        let settings: Vec<(&str, usize)> = plan
            .overridden
            .iter()
            .map(|o| (o.setting.as_str(), o.line))
            .collect();
        assert_eq!(settings, [("lock_timeout", 1), ("all", 2)]);
        let sql: Vec<String> = plan.steps.iter().map(|s| s.sql()).collect();
        assert!(sql[0].starts_with("SET work_mem"), "{sql:?}");
        assert!(
            sql.iter().any(|s| s.contains("ROLLBACK TO SAVEPOINT a")),
            "{sql:?}"
        );
        // As written, naive mode runs the file's settings.
        let naive = plan_migration(
            &migration("SET lock_timeout = 0;\nALTER TABLE t ADD COLUMN b int;"),
            Direction::Up,
            &PlanOptions {
                mode: Mode::Naive,
                rewrites: false,
                pg_version: None,
            },
        )
        .unwrap();
        assert!(naive.overridden.is_empty());
        for sql in [
            "BEGIN; UPDATE t SET a = 1; ROLLBACK;",
            "UPDATE t SET a = 1; ABORT;",
        ] {
            let err = plan_migration(&migration(sql), Direction::Up, &PlanOptions::default())
                .unwrap_err();
            assert!(err.to_string().contains("would discard"), "{err}");
            assert_eq!(err.kind(), crate::error::ErrorKind::Refused);
        }
    }
}
