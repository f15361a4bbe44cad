//! `lull fix`: rewrites the mechanically fixable findings of a migration
//! into their safe form, editing only the text of the statements it
//! changes.
//!
//! The fixer runs the linter first and fixes exactly what it reports (so
//! suppressions, rule levels and "this table is new" are honoured), one
//! statement at a time:
//!
//! - `CREATE INDEX`, `DROP INDEX`, `REINDEX` get `CONCURRENTLY`; on a
//!   table the history partitions, `CREATE INDEX [CONCURRENTLY]` becomes
//!   the index `ON ONLY` the parent, each partition's index built
//!   `CONCURRENTLY` and attached (see [`crate::partition_index`]);
//! - a FOREIGN KEY or CHECK is added `NOT VALID` and validated in a
//!   separate transaction;
//! - UNIQUE / PRIMARY KEY are built as a unique index `CONCURRENTLY` and
//!   attached with `USING INDEX`;
//! - `SET NOT NULL` is proven by a validated `CHECK (col IS NOT NULL)` first;
//! - `CREATE` / `DROP` get `IF [NOT] EXISTS`;
//! - files run by another tool get `SET lock_timeout` / `SET
//!   statement_timeout` at the top;
//! - a statement that cannot run in a transaction block is moved out of
//!   the file's `BEGIN ... COMMIT` (the block is split around it).
//!
//! Everything else in the file — comments, blank lines, the formatting of
//! untouched statements — is kept byte for byte. Where a rewrite needs a
//! new transaction (a `VALIDATE` after its `NOT VALID` add), the fixer
//! writes a `COMMIT` (and a `BEGIN` again inside a transaction the file or
//! its runner opened), which lull's runner and the linter both read as a
//! transaction boundary.
//!
//! A fix that cannot be made safely is skipped with a reason instead of
//! guessed: an ALTER TABLE with several actions, a CONCURRENTLY rewrite in a
//! file the runner wraps in one transaction (it would fail there), and the
//! like. The fixer never writes text that does not parse; the result is
//! re-parsed and the file is left unchanged if it would not.

use std::collections::BTreeSet;

use pg_query::protobuf::Token;
use pg_query::NodeEnum;
use serde::Serialize;

use crate::known::Known;
use crate::lint::{effective_level, lint, LintOptions, Runner, SourceFile};
use crate::parse::{is_comment, parse, parse_for, Statement};
use crate::partition_index::{on_partitioned_table, partitioned_index_form};
use crate::rules;
use crate::safe::{safe_form, NewRelations, SafeForm};

/// The rules `lull fix` can fix, in the order they are documented.
pub const FIXABLE_RULES: &[&str] = &[
    "create-index-not-concurrently",
    "concurrent-index-on-partitioned-table",
    "drop-index-not-concurrently",
    "reindex-not-concurrently",
    "concurrently-in-transaction",
    "constraint-not-valid",
    "unique-constraint-without-index",
    "set-not-null",
    "missing-if-not-exists",
    "missing-lock-timeout",
    "missing-statement-timeout",
];

/// Rules fixed by replacing the statement with its [`safe_form`].
const SAFE_FORM_RULES: &[&str] = &[
    "create-index-not-concurrently",
    "concurrent-index-on-partitioned-table",
    "drop-index-not-concurrently",
    "reindex-not-concurrently",
    "constraint-not-valid",
    "unique-constraint-without-index",
    "set-not-null",
];

const IF_NOT_EXISTS: &str = "missing-if-not-exists";
const IN_TRANSACTION: &str = "concurrently-in-transaction";
const LOCK_TIMEOUT: &str = "missing-lock-timeout";
const STATEMENT_TIMEOUT: &str = "missing-statement-timeout";

/// What to fix and how.
#[derive(Debug, Clone)]
pub struct FixOptions {
    /// The lint options (runner, levels, sizes) that decide what is a
    /// finding; only findings are fixed.
    pub lint: LintOptions,
    /// Fix only these rules (ids); empty means every fixable rule.
    pub only: Vec<String>,
    /// The `lock_timeout` written for files another tool runs.
    pub lock_timeout: String,
    /// The `statement_timeout` written for files another tool runs.
    pub statement_timeout: String,
}

impl Default for FixOptions {
    fn default() -> Self {
        FixOptions {
            lint: LintOptions::default(),
            only: Vec::new(),
            lock_timeout: "2s".into(),
            statement_timeout: "5min".into(),
        }
    }
}

impl FixOptions {
    fn wants(&self, rule: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|r| r == rule)
    }
}

/// One change the fixer made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Applied {
    /// The rule whose finding this fixes.
    pub rule: &'static str,
    /// 1-based line of the statement in the original file.
    pub line: usize,
    /// What was done, in one sentence.
    pub note: String,
}

/// A finding the fixer left alone, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// The rule of the finding.
    pub rule: &'static str,
    /// 1-based line of the statement in the original file.
    pub line: usize,
    /// Why it was not fixed and what to do instead.
    pub reason: String,
}

/// The fix of one file.
#[derive(Debug, Clone, Serialize)]
pub struct FileFix {
    /// The path as given in [`SourceFile::path`].
    pub path: String,
    /// The SQL before.
    pub original: String,
    /// The SQL after; equal to `original` when nothing was fixed.
    pub fixed: String,
    /// The changes made.
    pub applied: Vec<Applied>,
    /// Findings of fixable rules that were not fixed.
    pub skipped: Vec<Skipped>,
}

impl FileFix {
    /// Whether the fixer changed the file.
    pub fn changed(&self) -> bool {
        self.original != self.fixed
    }

    /// The rules this fix removed findings of.
    pub fn fixed_rules(&self) -> BTreeSet<&'static str> {
        self.applied.iter().map(|a| a.rule).collect()
    }
}

/// Fixes `files` (in run order, as [`lint`] takes them). Returns one
/// [`FileFix`] per file, in the same order. Files that do not parse are
/// returned unchanged.
pub fn fix(files: &[SourceFile], opts: &FixOptions) -> Vec<FileFix> {
    let report = lint(files, &opts.lint);
    let mut out = Vec::with_capacity(files.len());
    let mut run_new = NewRelations::new();
    let mut known = Known::new();
    for (table, partitions) in opts.lint.catalog_partitions.iter().flatten() {
        known.add_partitioned(table, partitions.iter().cloned());
    }
    for file in files {
        if !file.runs_with_previous {
            run_new = NewRelations::new();
        }
        let findings: Vec<(usize, &'static str)> = report
            .findings
            .iter()
            .filter(|f| f.file == file.path && FIXABLE_RULES.contains(&f.rule))
            .filter(|f| opts.wants(f.rule))
            .map(|f| (f.span.start, f.rule))
            .collect();
        let mut result = FileFix {
            path: file.path.clone(),
            original: file.sql.clone(),
            fixed: file.sql.clone(),
            applied: Vec::new(),
            skipped: Vec::new(),
        };
        let Ok(stmts) = parse_for(&file.sql, opts.lint.pg_version) else {
            out.push(result);
            continue;
        };
        if !findings.is_empty() {
            fix_file(file, &stmts, &findings, &run_new, &known, opts, &mut result);
        }
        for stmt in &stmts {
            run_new.record(stmt);
        }
        known.absorb_all(&stmts);
        out.push(result);
    }
    out
}

/// What a statement of the output is, for deciding transaction boundaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Begin,
    Commit,
    /// Anything else; `false` when it cannot run in a transaction block.
    Plain {
        transactional: bool,
    },
}

impl Kind {
    fn of(stmt: &Statement) -> Kind {
        if stmt.begins_transaction() {
            Kind::Begin
        } else if stmt.ends_transaction() {
            Kind::Commit
        } else {
            Kind::Plain {
                transactional: stmt.facts.transactional,
            }
        }
    }
}

/// One statement of the output, attached to the original statement whose
/// text it replaces (or is written next to).
#[derive(Debug, Clone)]
struct Item {
    owner: usize,
    text: String,
    kind: Kind,
    synthetic: bool,
}

/// How a file's transactions work, for placing boundaries.
#[derive(Debug, Clone, Copy)]
struct TxContext {
    runner: Runner,
    /// The tool that applies the file, when known: its hints are given.
    tool: Option<crate::Tool>,
    /// The runner wraps the whole file in one transaction.
    wrapped: bool,
}

impl TxContext {
    /// Whether statement boundaries need writing at all outside an explicit
    /// block: not when every statement commits on its own.
    fn separates(&self) -> bool {
        self.wrapped || self.runner == Runner::Lull
    }

    /// How to run a statement outside the runner's transaction, in the
    /// words of the tool that applies the file.
    fn outside_hint(&self) -> String {
        match self.tool {
            Some(tool) => format!("to run it outside a transaction, {}", tool.no_transaction_hint()),
            None => "move the statement to its own migration marked non-transactional \
                     (sqlx `-- no-transaction`, dbmate `transaction:false`), or let lull run the file"
                .into(),
        }
    }
}

fn fix_file(
    file: &SourceFile,
    stmts: &[Statement],
    findings: &[(usize, &'static str)],
    run_new: &NewRelations,
    run_known: &Known,
    opts: &FixOptions,
    result: &mut FileFix,
) {
    let tx = TxContext {
        runner: crate::lint::file_runner(file, &opts.lint).0,
        tool: crate::lint::file_runner(file, &opts.lint).1,
        wrapped: crate::lint::file_wrapped(file, stmts, &opts.lint),
    };
    let in_block = explicit_blocks(stmts);
    let guard_generated = rules::get(IF_NOT_EXISTS)
        .and_then(|r| effective_level(r, &opts.lint))
        .is_some();
    let mut items: Vec<Item> = Vec::new();
    let mut new = run_new.clone();
    let mut known = run_known.clone();
    for (i, stmt) in stmts.iter().enumerate() {
        let line = stmt.span.line + file.line_offset;
        let here: BTreeSet<&'static str> = findings
            .iter()
            .filter(|(start, _)| *start == stmt.span.start)
            .map(|(_, rule)| *rule)
            .collect();
        if i == 0 {
            timeouts(&here_any(findings), opts, line, &mut items, result);
        }
        let ctx = StmtCtx {
            index: i,
            line,
            in_block: in_block[i],
            tx,
            guard_generated,
        };
        match rewrite(stmt, &here, &new, &known, &ctx, result) {
            Some(units) => place(&units, &ctx, &mut items),
            None => items.push(Item {
                owner: i,
                text: stmt.text.clone(),
                kind: Kind::of(stmt),
                synthetic: false,
            }),
        }
        new.record(stmt);
        known.absorb(stmt);
    }
    if result.applied.is_empty() {
        return;
    }
    let items = drop_empty_blocks(items);
    let fixed = render(&file.sql, stmts, &items);
    if parse(&fixed).is_err() {
        // A bug in a rewrite; never hand back SQL that does not parse.
        let rules: BTreeSet<&'static str> = result.applied.iter().map(|a| a.rule).collect();
        result.applied.clear();
        result.skipped.extend(rules.into_iter().map(|rule| Skipped {
            rule,
            line: 1 + file.line_offset,
            reason:
                "the rewritten file would not parse; left unchanged (please report this)".into(),
        }));
        return;
    }
    result.fixed = fixed;
}

/// Every rule with a finding anywhere in the file.
fn here_any(findings: &[(usize, &'static str)]) -> BTreeSet<&'static str> {
    findings.iter().map(|(_, r)| *r).collect()
}

/// `SET lock_timeout` / `SET statement_timeout` before the first statement.
fn timeouts(
    rules_in_file: &BTreeSet<&'static str>,
    opts: &FixOptions,
    line: usize,
    items: &mut Vec<Item>,
    result: &mut FileFix,
) {
    for (rule, setting, value) in [
        (LOCK_TIMEOUT, "lock_timeout", &opts.lock_timeout),
        (
            STATEMENT_TIMEOUT,
            "statement_timeout",
            &opts.statement_timeout,
        ),
    ] {
        if !rules_in_file.contains(rule) {
            continue;
        }
        let text = format!("SET {setting} = {}", crate::sql::quote_literal(value));
        items.push(Item {
            owner: 0,
            text,
            kind: Kind::Plain {
                transactional: true,
            },
            synthetic: true,
        });
        result.applied.push(Applied {
            rule,
            line,
            note: format!("sets {setting} to {value} at the top of the file"),
        });
    }
}

/// For each statement, whether it sits between an explicit BEGIN and its
/// COMMIT (the BEGIN and COMMIT themselves count as inside).
fn explicit_blocks(stmts: &[Statement]) -> Vec<bool> {
    let mut open = false;
    stmts
        .iter()
        .map(|s| {
            if s.begins_transaction() {
                open = true;
                true
            } else if s.ends_transaction() {
                let was = open;
                open = false;
                was
            } else {
                open
            }
        })
        .collect()
}

struct StmtCtx {
    index: usize,
    line: usize,
    in_block: bool,
    tx: TxContext,
    guard_generated: bool,
}

/// One statement of a rewrite, before transaction boundaries are placed.
#[derive(Debug, Clone)]
struct Unit {
    text: String,
    transactional: bool,
    /// Must not share a transaction with the statement before it.
    new_transaction: bool,
}

/// The statements that replace `stmt`, or `None` to keep it as written.
fn rewrite(
    stmt: &Statement,
    here: &BTreeSet<&'static str>,
    new: &NewRelations,
    known: &Known,
    ctx: &StmtCtx,
    result: &mut FileFix,
) -> Option<Vec<Unit>> {
    if here.is_empty() {
        return None;
    }
    let skip = |result: &mut FileFix, rule: &'static str, reason: &str| {
        result.skipped.push(Skipped {
            rule,
            line: ctx.line,
            reason: reason.to_string(),
        })
    };
    let mut applied: Vec<Applied> = Vec::new();
    let mut current = stmt.clone();

    if here.contains(IF_NOT_EXISTS) {
        match add_guard(&current.text).and_then(|t| reparse_one(&t)) {
            Some(guarded) => {
                current = guarded;
                applied.push(Applied {
                    rule: IF_NOT_EXISTS,
                    line: ctx.line,
                    note: "adds IF [NOT] EXISTS so a re-run does not fail".into(),
                });
            }
            None => skip(
                result,
                IF_NOT_EXISTS,
                "no place for IF [NOT] EXISTS was found in this statement; add it by hand",
            ),
        }
    }

    let mut units = vec![Unit {
        text: current.text.clone(),
        transactional: current.facts.transactional,
        new_transaction: false,
    }];
    let safe_rules: Vec<&'static str> = here
        .iter()
        .copied()
        .filter(|r| SAFE_FORM_RULES.contains(r))
        .collect();
    let validates_in_same_tx = safe_rules.contains(&"constraint-not-valid") && is_validate(stmt);
    if validates_in_same_tx {
        // The statement is already safe; it only needs its own transaction.
        if ctx.in_block || ctx.tx.separates() {
            units[0].new_transaction = true;
            applied.push(Applied {
                rule: "constraint-not-valid",
                line: ctx.line,
                note: "commits the NOT VALID add before VALIDATE, so the validation scan does not \
                       hold the add's lock"
                    .into(),
            });
        }
    } else if !safe_rules.is_empty() {
        match statement_safe_form(&current, new, known) {
            Some(form) => {
                let mut generated = Vec::new();
                for (n, text) in form.statements.iter().enumerate() {
                    let text = if ctx.guard_generated && needs_guard(text) {
                        add_guard(text).unwrap_or_else(|| text.clone())
                    } else {
                        text.clone()
                    };
                    let Some(parsed) = reparse_one(&text) else {
                        generated.clear();
                        break;
                    };
                    generated.push(Unit {
                        text,
                        transactional: parsed.facts.transactional,
                        new_transaction: n > 0,
                    });
                }
                let leaves_tx = generated.iter().any(|u| !u.transactional);
                if generated.is_empty() {
                    for rule in &safe_rules {
                        skip(result, rule, "the safe form did not parse; fix it by hand");
                    }
                } else if leaves_tx && ctx.tx.wrapped {
                    for rule in &safe_rules {
                        skip(
                            result,
                            rule,
                            &format!(
                                "the runner wraps this file in a transaction, where CONCURRENTLY fails: {}",
                                ctx.tx.outside_hint()
                            ),
                        );
                    }
                } else {
                    units = generated;
                    for rule in &safe_rules {
                        applied.push(Applied {
                            rule,
                            line: ctx.line,
                            note: form.note.clone(),
                        });
                    }
                }
            }
            None => {
                for rule in &safe_rules {
                    skip(
                        result,
                        rule,
                        "no mechanical safe form for this statement (e.g. several ALTER TABLE \
                         actions in one statement, or CASCADE); split it and run `lull fix` again",
                    );
                }
            }
        }
    }

    if here.contains(IN_TRANSACTION) {
        if ctx.in_block && !ctx.tx.wrapped {
            applied.push(Applied {
                rule: IN_TRANSACTION,
                line: ctx.line,
                note: "moves the statement out of the BEGIN ... COMMIT block, which cannot hold it"
                    .into(),
            });
        } else {
            skip(
                result,
                IN_TRANSACTION,
                &format!(
                    "the runner wraps this file in a transaction: {}",
                    ctx.tx.outside_hint()
                ),
            );
        }
    }

    if applied.is_empty() {
        return None;
    }
    result.applied.extend(applied);
    Some(units)
}

/// The safe form of a statement: the per-partition form for an index
/// build on a partitioned table, else [`safe_form`].
fn statement_safe_form(stmt: &Statement, new: &NewRelations, known: &Known) -> Option<SafeForm> {
    if on_partitioned_table(stmt, known).is_some() {
        return partitioned_index_form(stmt, known, &|n| new.contains(n));
    }
    safe_form(stmt, new)
}

/// Writes the units of statement `ctx.index` with the transaction
/// boundaries they need.
fn place(units: &[Unit], ctx: &StmtCtx, items: &mut Vec<Item>) {
    let owner = ctx.index;
    let synthetic = |text: &str, kind: Kind| Item {
        owner,
        text: text.to_string(),
        kind,
        synthetic: true,
    };
    // Inside a transaction (explicit, or the runner's) a boundary is
    // COMMIT then BEGIN again, so the COMMIT that closes the transaction
    // still has one to close.
    let reopen = ctx.in_block || ctx.tx.wrapped;
    for unit in units {
        if !unit.transactional && ctx.in_block && !ctx.tx.wrapped {
            items.push(synthetic("COMMIT", Kind::Commit));
            items.push(Item {
                owner,
                text: unit.text.clone(),
                kind: Kind::Plain {
                    transactional: false,
                },
                synthetic: false,
            });
            items.push(synthetic("BEGIN", Kind::Begin));
            continue;
        }
        if unit.new_transaction && unit.transactional {
            if reopen {
                items.push(synthetic("COMMIT", Kind::Commit));
                items.push(synthetic("BEGIN", Kind::Begin));
            } else if ctx.tx.separates() && previous_is_transactional(items) {
                items.push(synthetic("COMMIT", Kind::Commit));
            }
        }
        items.push(Item {
            owner,
            text: unit.text.clone(),
            kind: Kind::Plain {
                transactional: unit.transactional,
            },
            synthetic: false,
        });
    }
}

/// Whether the last statement written so far runs in a transaction that a
/// new statement would join (lull's runner groups consecutive
/// transactional statements).
fn previous_is_transactional(items: &[Item]) -> bool {
    matches!(
        items.last().map(|i| i.kind),
        Some(Kind::Plain {
            transactional: true
        })
    )
}

/// Removes `BEGIN` immediately followed by `COMMIT` when the fixer wrote
/// at least one of them: an empty transaction left by moving statements
/// out of a block.
fn drop_empty_blocks(mut items: Vec<Item>) -> Vec<Item> {
    loop {
        let pair = items.windows(2).position(|w| {
            w[0].kind == Kind::Begin
                && w[1].kind == Kind::Commit
                && (w[0].synthetic || w[1].synthetic)
        });
        match pair {
            Some(at) => {
                items.drain(at..at + 2);
            }
            None => return items,
        }
    }
}

/// Writes the output: the original text with each statement's span
/// replaced by the items it owns (deleted with its `;` when it owns none).
fn render(sql: &str, stmts: &[Statement], items: &[Item]) -> String {
    let mut out = String::with_capacity(sql.len() + 256);
    let mut cursor = 0;
    for (i, stmt) in stmts.iter().enumerate() {
        let owned: Vec<&str> = items
            .iter()
            .filter(|it| it.owner == i)
            .map(|it| it.text.as_str())
            .collect();
        let (start, end) = (stmt.span.start, stmt.span.end);
        out.push_str(&sql[cursor..start]);
        let original: Vec<&str> = vec![stmt.text.as_str()];
        if owned == original {
            out.push_str(&stmt.text);
            cursor = end;
            continue;
        }
        if owned.is_empty() {
            // Drop the statement, its `;` and the rest of its line when
            // nothing else is on it.
            let line_start = out.rfind('\n').map_or(0, |p| p + 1);
            let only_indent = out[line_start..].trim().is_empty();
            let mut after = end;
            let rest = &sql[end..];
            let trimmed = rest.trim_start_matches([' ', '\t']);
            after += rest.len() - trimmed.len();
            if trimmed.starts_with(';') {
                after += 1;
            }
            let tail = &sql[after..];
            let tail_trimmed = tail.trim_start_matches([' ', '\t']);
            if only_indent && (tail_trimmed.starts_with('\n') || tail_trimmed.is_empty()) {
                out.truncate(line_start);
                after += tail.len() - tail_trimmed.len();
                if tail_trimmed.starts_with('\n') {
                    after += 1;
                }
            }
            cursor = after;
            continue;
        }
        let indent = indentation(sql, start);
        out.push_str(&owned.join(&format!(";\n{indent}")));
        cursor = end;
    }
    out.push_str(&sql[cursor..]);
    out
}

/// The whitespace before `at` on its line, when only whitespace is there.
fn indentation(sql: &str, at: usize) -> &str {
    let line_start = sql[..at].rfind('\n').map_or(0, |p| p + 1);
    let prefix = &sql[line_start..at];
    if prefix.chars().all(|c| c == ' ' || c == '\t') {
        prefix
    } else {
        ""
    }
}

/// Parses text that must be exactly one statement.
fn reparse_one(text: &str) -> Option<Statement> {
    let mut stmts = parse(text).ok()?;
    (stmts.len() == 1).then(|| stmts.remove(0))
}

fn is_validate(stmt: &Statement) -> bool {
    rules::alter_table(stmt).is_some_and(|(_, cmds)| {
        cmds.iter()
            .any(|c| rules::subtype(c) == pg_query::protobuf::AlterTableType::AtValidateConstraint)
    })
}

/// Whether a generated statement lacks the IF [NOT] EXISTS that
/// `missing-if-not-exists` asks for.
fn needs_guard(text: &str) -> bool {
    match reparse_one(text).as_ref().map(Statement::ast) {
        Some(NodeEnum::IndexStmt(s)) => !s.if_not_exists,
        Some(NodeEnum::CreateStmt(s)) => !s.if_not_exists,
        Some(NodeEnum::DropStmt(s)) => !s.missing_ok,
        _ => false,
    }
}

/// `text` with `IF NOT EXISTS` (CREATE) or `IF EXISTS` (DROP) after its
/// object keyword (and after CONCURRENTLY, which comes first), or `None`
/// when there is no such keyword.
fn add_guard(text: &str) -> Option<String> {
    let scan = pg_query::scan(text).ok()?;
    let tokens: Vec<_> = scan.tokens.iter().filter(|t| !is_comment(t)).collect();
    let first = tokens.first()?;
    let guard = if first.token == Token::Drop as i32 {
        " IF EXISTS"
    } else if first.token == Token::Create as i32 {
        " IF NOT EXISTS"
    } else {
        return None;
    };
    let objects = [Token::Table, Token::Index, Token::View, Token::Sequence];
    let object = tokens
        .iter()
        .position(|t| objects.iter().any(|o| *o as i32 == t.token))?;
    let mut at = object;
    if tokens
        .get(object + 1)
        .is_some_and(|t| t.token == Token::Concurrently as i32)
    {
        at = object + 1;
    }
    let pos = usize::try_from(tokens[at].end).ok()?;
    if tokens
        .get(at + 1)
        .is_some_and(|t| t.token == Token::IfP as i32)
    {
        return None;
    }
    Some(format!("{}{guard}{}", &text[..pos], &text[pos..]))
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

    fn fixed_with(sql: &str, runner: Runner) -> FileFix {
        let mut opts = FixOptions::default();
        opts.lint.runner = runner;
        fix(&[file(sql)], &opts).remove(0)
    }

    fn fixed(sql: &str) -> String {
        fixed_with(sql, Runner::Lull).fixed
    }

    #[test]
    fn create_index_gets_concurrently_and_a_guard_keeping_comments() {
        let sql = "-- add an index\nCREATE INDEX orders_user_idx ON orders (user_id); -- why\n";
        assert_eq!(
            fixed(sql),
            "-- add an index\nCREATE INDEX CONCURRENTLY IF NOT EXISTS orders_user_idx ON orders (user_id); -- why\n"
        );
    }

    #[test]
    fn index_inside_a_block_is_moved_out() {
        let sql = "BEGIN;\nALTER TABLE t ADD COLUMN IF NOT EXISTS b int;\nCREATE INDEX IF NOT EXISTS t_b ON t (b);\nCOMMIT;\n";
        assert_eq!(
            fixed(sql),
            "BEGIN;\nALTER TABLE t ADD COLUMN IF NOT EXISTS b int;\nCOMMIT;\nCREATE INDEX CONCURRENTLY IF NOT EXISTS t_b ON t (b);\n"
        );
        let sql = "BEGIN;\nCREATE INDEX CONCURRENTLY IF NOT EXISTS t_b ON t (b);\nCOMMIT;\n";
        assert_eq!(
            fixed(sql),
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS t_b ON t (b);\n"
        );
    }

    #[test]
    fn foreign_key_is_added_not_valid_and_validated_after_a_commit() {
        let sql = "ALTER TABLE orders ADD CONSTRAINT fk FOREIGN KEY (u) REFERENCES users (id);\n";
        assert_eq!(
            fixed(sql),
            "ALTER TABLE orders ADD CONSTRAINT fk FOREIGN KEY (u) REFERENCES users (id) NOT VALID;\n\
             COMMIT;\nALTER TABLE orders VALIDATE CONSTRAINT fk;\n"
        );
        let auto = fixed_with(sql, Runner::Autocommit).fixed;
        assert!(!auto.contains("COMMIT"), "{auto}");
    }

    #[test]
    fn a_wrapped_file_gets_commit_and_begin_and_timeouts() {
        let sql = "ALTER TABLE orders ADD CONSTRAINT c CHECK (q > 0);\n";
        let result = fixed_with(sql, Runner::Transactional);
        assert_eq!(
            result.fixed,
            "SET lock_timeout = '2s';\nSET statement_timeout = '5min';\n\
             ALTER TABLE orders ADD CONSTRAINT c CHECK (q > 0) NOT VALID;\nCOMMIT;\nBEGIN;\n\
             ALTER TABLE orders VALIDATE CONSTRAINT c;\n"
        );
    }

    #[test]
    fn concurrently_in_a_wrapped_file_is_skipped_with_a_reason() {
        let result = fixed_with(
            "CREATE INDEX IF NOT EXISTS i ON t (a);",
            Runner::Transactional,
        );
        assert!(result.skipped.iter().any(
            |s| s.rule == "create-index-not-concurrently" && s.reason.contains("own migration")
        ));
        assert!(!result.fixed.contains("CONCURRENTLY"));
    }

    #[test]
    fn tables_created_in_the_file_are_left_alone() {
        let sql = "CREATE TABLE IF NOT EXISTS t (a int);\nCREATE INDEX IF NOT EXISTS i ON t (a);\n";
        let result = fixed_with(sql, Runner::Lull);
        assert!(!result.changed());
    }

    #[test]
    fn suppressed_findings_are_not_fixed() {
        let sql = "-- lull:ignore create-index-not-concurrently small table\nCREATE INDEX IF NOT EXISTS i ON t (a);\n";
        assert_eq!(fixed(sql), sql);
    }

    #[test]
    fn guards_go_after_concurrently() {
        assert_eq!(
            add_guard("DROP INDEX CONCURRENTLY i").unwrap(),
            "DROP INDEX CONCURRENTLY IF EXISTS i"
        );
        assert_eq!(
            add_guard("create unique index concurrently i on t (a)").unwrap(),
            "create unique index concurrently IF NOT EXISTS i on t (a)"
        );
        assert_eq!(
            add_guard("DROP MATERIALIZED VIEW v").unwrap(),
            "DROP MATERIALIZED VIEW IF EXISTS v"
        );
        assert!(add_guard("ALTER TABLE t ADD COLUMN a int").is_none());
        assert!(add_guard("DROP TABLE IF EXISTS t").is_none());
    }

    #[test]
    fn only_limits_the_rules_fixed() {
        let mut opts = FixOptions {
            only: vec!["missing-if-not-exists".into()],
            ..FixOptions::default()
        };
        // Idempotency guards matter where nothing tracks the steps.
        opts.lint.runner = Runner::Autocommit;
        let result = fix(&[file("CREATE INDEX i ON t (a);\nSELECT 1;")], &opts).remove(0);
        assert_eq!(
            result.fixed,
            "CREATE INDEX IF NOT EXISTS i ON t (a);\nSELECT 1;"
        );
    }

    #[test]
    fn unparsable_files_are_returned_unchanged() {
        let result = fixed_with("CREATE TABEL x ();", Runner::Lull);
        assert!(!result.changed());
        assert!(result.applied.is_empty());
    }
}
