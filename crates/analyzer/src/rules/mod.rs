//! The lint rules. Each rule is one file in this directory with its id, its
//! documentation (what it flags, why it hurts, the safe alternative as
//! SQL — printed by `lull explain ID`), its check and its tests; adding a
//! rule is one new file plus one line in [`ALL`].

use pg_query::protobuf::{self, AlterTableType, ConstrType, ObjectType};
use pg_query::NodeEnum;

use crate::ast;
use crate::lint::{FileCtx, Hit, Severity};
use crate::parse::Statement;

mod add_column_required;
mod add_column_rewrite;
mod add_column_volatile_default;
mod attach_partition_scan;
mod column_type_change;
mod concurrent_index_on_partitioned_table;
mod concurrently_in_transaction;
mod constraint_not_valid;
mod create_index_not_concurrently;
mod detach_partition_not_concurrently;
mod domain_constraint;
mod drop_column;
mod drop_index_not_concurrently;
mod drop_not_null;
mod drop_object;
mod drop_table;
mod duplicates_block_unique;
mod enum_value_used_in_transaction;
mod exclusion_constraint;
mod hidden_ddl;
mod identifier_too_long;
mod invalid_index_kept;
mod lock_table;
mod meta;
mod missing_if_not_exists;
mod missing_lock_timeout;
mod missing_statement_timeout;
mod nulls_block_not_null;
mod one_large_table_per_migration;
mod prefer_bigint;
mod prefer_jsonb;
mod prefer_text;
mod prefer_timestamptz;
mod primary_key_using_index;
mod refresh_matview_not_concurrently;
mod reindex_not_concurrently;
mod rename_column;
mod rename_object;
mod rename_table;
mod requires_newer_postgres;
mod risky_without_down;
pub(crate) mod set_not_null;
mod statements_after_exclusive_lock;
mod table_rewrite;
mod timeout_disabled;
mod too_many_index_builds;
mod transaction_shape;
mod truncate;
mod unbatched_backfill;
pub(crate) mod unindexed_foreign_key;
mod unique_constraint_without_index;
mod unnamed_index;

pub(crate) use meta::{PARSE_ERROR, UNKNOWN_RULE, UNUSED_SUPPRESSION};

/// What kind of problem a rule finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    /// A lock that blocks the application for too long.
    Locking,
    /// A change the running application version cannot cope with.
    Compatibility,
    /// Idempotency and process guidance from production guides.
    Process,
    /// Opt-in type hygiene.
    Hygiene,
    /// About the linting itself (parse errors, suppressions).
    Meta,
}

/// One lint rule.
pub struct Rule {
    /// The fixed id, e.g. `create-index-not-concurrently`.
    pub id: &'static str,
    /// One line: what it flags.
    pub summary: &'static str,
    /// The full documentation printed by `lull explain ID`.
    pub doc: &'static str,
    /// Severity when no level is configured.
    pub default_severity: Severity,
    /// Off unless enabled in `[lint] enable` or given a level.
    pub opt_in: bool,
    /// Known table sizes raise (large) or lower (small) its severity.
    pub size_sensitive: bool,
    /// What kind of problem it finds.
    pub category: Category,
    pub(crate) check: fn(&FileCtx) -> Vec<Hit>,
}

impl std::fmt::Debug for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rule")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Every rule, in the order `lull explain` lists them.
static ALL: &[&Rule] = &[
    &create_index_not_concurrently::RULE,
    &concurrent_index_on_partitioned_table::RULE,
    &drop_index_not_concurrently::RULE,
    &reindex_not_concurrently::RULE,
    &concurrently_in_transaction::RULE,
    &constraint_not_valid::RULE,
    &unique_constraint_without_index::RULE,
    &set_not_null::RULE,
    &duplicates_block_unique::RULE,
    &nulls_block_not_null::RULE,
    &invalid_index_kept::RULE,
    &primary_key_using_index::RULE,
    &add_column_volatile_default::RULE,
    &add_column_required::RULE,
    &add_column_rewrite::RULE,
    &column_type_change::RULE,
    &table_rewrite::RULE,
    &lock_table::RULE,
    &refresh_matview_not_concurrently::RULE,
    &detach_partition_not_concurrently::RULE,
    &attach_partition_scan::RULE,
    &exclusion_constraint::RULE,
    &domain_constraint::RULE,
    &requires_newer_postgres::RULE,
    &statements_after_exclusive_lock::RULE,
    &missing_lock_timeout::RULE,
    &missing_statement_timeout::RULE,
    &timeout_disabled::RULE,
    &transaction_shape::RULE,
    &enum_value_used_in_transaction::RULE,
    &rename_column::RULE,
    &rename_table::RULE,
    &rename_object::RULE,
    &drop_column::RULE,
    &drop_table::RULE,
    &drop_object::RULE,
    &drop_not_null::RULE,
    &truncate::RULE,
    &missing_if_not_exists::RULE,
    &unnamed_index::RULE,
    &too_many_index_builds::RULE,
    &one_large_table_per_migration::RULE,
    &unbatched_backfill::RULE,
    &risky_without_down::RULE,
    &unindexed_foreign_key::RULE,
    &identifier_too_long::RULE,
    &hidden_ddl::RULE,
    &prefer_bigint::RULE,
    &prefer_timestamptz::RULE,
    &prefer_text::RULE,
    &prefer_jsonb::RULE,
    &meta::PARSE_ERROR_RULE,
    &meta::UNKNOWN_RULE_RULE,
    &meta::UNUSED_SUPPRESSION_RULE,
];

/// Every rule, in documentation order.
pub fn all() -> &'static [&'static Rule] {
    ALL
}

/// The rule with this id.
pub fn get(id: &str) -> Option<&'static Rule> {
    ALL.iter().copied().find(|r| r.id == id)
}

/// The table and actions of an `ALTER TABLE` (not ALTER INDEX/VIEW/...).
pub(crate) fn alter_table(
    stmt: &Statement,
) -> Option<(&protobuf::RangeVar, Vec<&protobuf::AlterTableCmd>)> {
    match stmt.ast() {
        NodeEnum::AlterTableStmt(s) if s.objtype == ObjectType::ObjectTable as i32 => {
            let cmds = s
                .cmds
                .iter()
                .filter_map(|n| match &n.node {
                    Some(NodeEnum::AlterTableCmd(c)) => Some(c.as_ref()),
                    _ => None,
                })
                .collect();
            Some((s.relation.as_ref()?, cmds))
        }
        _ => None,
    }
}

/// The action kind of an `ALTER TABLE` command.
pub(crate) fn subtype(cmd: &protobuf::AlterTableCmd) -> AlterTableType {
    AlterTableType::try_from(cmd.subtype).unwrap_or(AlterTableType::Undefined)
}

/// The constraint of `ADD CONSTRAINT`.
pub(crate) fn added_constraint(cmd: &protobuf::AlterTableCmd) -> Option<&protobuf::Constraint> {
    (subtype(cmd) == AlterTableType::AtAddConstraint)
        .then(|| cmd.def.as_deref().and_then(ast::as_constraint))?
}

/// The column definition of `ADD COLUMN`.
pub(crate) fn added_column(cmd: &protobuf::AlterTableCmd) -> Option<&protobuf::ColumnDef> {
    (subtype(cmd) == AlterTableType::AtAddColumn)
        .then(|| cmd.def.as_deref().and_then(ast::as_column_def))?
}

/// The kind of a constraint.
pub(crate) fn contype(c: &protobuf::Constraint) -> ConstrType {
    ConstrType::try_from(c.contype).unwrap_or(ConstrType::Undefined)
}

/// Whether an UPDATE / DELETE has a WHERE clause.
pub(crate) fn has_where(stmt: &Statement) -> bool {
    match stmt.ast() {
        NodeEnum::UpdateStmt(s) => s.where_clause.is_some(),
        NodeEnum::DeleteStmt(s) => s.where_clause.is_some(),
        _ => false,
    }
}

/// Every column definition a statement declares (CREATE TABLE columns and
/// ADD COLUMN), with the table name.
pub(crate) fn column_defs(stmt: &Statement) -> Vec<(String, &protobuf::ColumnDef)> {
    match stmt.ast() {
        NodeEnum::CreateStmt(s) => {
            let table = s.relation.as_ref().map(ast::rel_name).unwrap_or_default();
            s.table_elts
                .iter()
                .filter_map(ast::as_column_def)
                .map(|c| (table.clone(), c))
                .collect()
        }
        _ => match alter_table(stmt) {
            Some((rel, cmds)) => {
                let table = ast::rel_name(rel);
                cmds.into_iter()
                    .filter_map(added_column)
                    .map(|c| (table.clone(), c))
                    .collect()
            }
            None => Vec::new(),
        },
    }
}

/// Column types a statement declares or changes to: CREATE TABLE columns,
/// ADD COLUMN and ALTER COLUMN ... TYPE, as (column, type).
pub(crate) fn declared_types(stmt: &Statement) -> Vec<(String, &protobuf::TypeName)> {
    let mut out: Vec<(String, &protobuf::TypeName)> = column_defs(stmt)
        .into_iter()
        .filter_map(|(_, c)| Some((c.colname.clone(), c.type_name.as_ref()?)))
        .collect();
    if let Some((_, cmds)) = alter_table(stmt) {
        for cmd in cmds
            .into_iter()
            .filter(|c| subtype(c) == AlterTableType::AtAlterColumnType)
        {
            if let Some(t) = cmd
                .def
                .as_deref()
                .and_then(ast::as_column_def)
                .and_then(|c| c.type_name.as_ref())
            {
                out.push((cmd.name.clone(), t));
            }
        }
    }
    out
}

/// Hits for every declared column whose type `bad` flags.
pub(crate) fn type_hits(
    ctx: &FileCtx,
    bad: impl Fn(&protobuf::TypeName) -> Option<String>,
) -> Vec<Hit> {
    let mut hits = Vec::new();
    for (i, stmt) in ctx.stmts.iter().enumerate() {
        for (column, t) in declared_types(stmt) {
            if let Some(message) = bad(t) {
                hits.push(Hit::new(i, format!("column `{column}`: {message}")));
            }
        }
    }
    hits
}

#[cfg(test)]
pub(crate) mod testing {
    //! Runs one rule over SQL text, for the rules' own tests.

    use crate::lint::{FileCtx, LintOptions, Runner, SourceFile};
    use crate::stats::TableSize;
    use crate::tool::Tool;

    /// What a rule test sets up besides the SQL.
    #[derive(Default)]
    pub(crate) struct Setup {
        pub runner: Runner,
        pub tool: Option<Tool>,
        pub no_transaction: bool,
        pub has_down: Option<bool>,
        pub sizes: Vec<(&'static str, u64)>,
        pub pg_version: Option<u32>,
    }

    /// The messages `rule` reports for `sql` with default options.
    pub(crate) fn hits(rule: &str, sql: &str) -> Vec<String> {
        hits_with(rule, sql, Setup::default())
    }

    /// The messages `rule` reports for `sql` under `setup`.
    pub(crate) fn hits_with(rule: &str, sql: &str, setup: Setup) -> Vec<String> {
        let rule = super::get(rule).expect("rule exists");
        let stmts = crate::parse_for(sql, setup.pg_version).expect("test SQL parses");
        let file = SourceFile {
            path: "test.sql".into(),
            sql: sql.into(),
            no_transaction: setup.no_transaction,
            has_down: setup.has_down,
            tool: setup.tool,
            runner: setup.tool.map(Tool::runner),
            ..SourceFile::default()
        };
        let mut opts = LintOptions {
            runner: setup.runner,
            pg_version: setup.pg_version,
            ..LintOptions::default()
        };
        for (table, rows) in setup.sizes {
            opts.stats.insert(table, TableSize { rows, bytes: 0 });
        }
        let run = crate::lint::RunState::default();
        let ctx = FileCtx::new(&file, &stmts, &opts, &run);
        (rule.check)(&ctx).into_iter().map(|h| h.message).collect()
    }

    /// Asserts the doc text has the three sections every rule documents.
    pub(crate) fn assert_documented(rule: &str) {
        let rule = super::get(rule).expect("rule exists");
        for section in ["What it flags", "Why it hurts", "Safe alternative"] {
            assert!(
                rule.doc.contains(section),
                "{} doc lacks {section}",
                rule.id
            );
        }
        assert!(
            rule.doc.starts_with(rule.id),
            "{} doc starts with its id",
            rule.id
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_every_rule_is_documented() {
        for (i, rule) in ALL.iter().enumerate() {
            assert!(
                ALL[..i].iter().all(|r| r.id != rule.id),
                "duplicate id {}",
                rule.id
            );
            testing::assert_documented(rule.id);
            assert_eq!(get(rule.id).map(|r| r.id), Some(rule.id));
        }
        assert!(get("no-such-rule").is_none());
    }
}
