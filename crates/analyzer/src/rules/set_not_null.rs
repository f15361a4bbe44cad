//! `set-not-null`

use pg_query::protobuf::{AlterTableType, ConstrType, NullTestType};
use pg_query::NodeEnum;

use super::{added_constraint, alter_table, contype, subtype, Category, Rule};
use crate::ast;
use crate::lint::{FileCtx, Hit, Severity};
use crate::parse::Statement;

pub(crate) static RULE: Rule = Rule {
    id: "set-not-null",
    summary: "SET NOT NULL without a validated CHECK (col IS NOT NULL) first",
    doc: DOC,
    default_severity: Severity::Error,
    opt_in: false,
    size_sensitive: true,
    category: Category::Locking,
    check,
};

const DOC: &str = "\
set-not-null: SET NOT NULL without a validated CHECK (col IS NOT NULL) first

What it flags
  ALTER TABLE ... ALTER COLUMN ... SET NOT NULL on an existing table when
  no validated CHECK (col IS NOT NULL) on that column comes before it (in
  this file or an earlier migration of the run).

Why it hurts
  SET NOT NULL takes ACCESS EXCLUSIVE and scans the whole table to prove
  there are no NULLs: no reads and no writes for the length of the scan.

Safe alternative
  Prove it first with a CHECK validated under SHARE UPDATE EXCLUSIVE
  (reads and writes continue); PostgreSQL 12+ then skips the scan:

    ALTER TABLE users ADD CONSTRAINT users_email_lull_nn CHECK (email IS NOT NULL) NOT VALID;
    ALTER TABLE users VALIDATE CONSTRAINT users_email_lull_nn;
    ALTER TABLE users ALTER COLUMN email SET NOT NULL;
    ALTER TABLE users DROP CONSTRAINT users_email_lull_nn;
";

fn check(ctx: &FileCtx) -> Vec<Hit> {
    let mut hits = Vec::new();
    for (i, stmt) in ctx.stmts.iter().enumerate() {
        let Some((rel, cmds)) = alter_table(stmt) else {
            continue;
        };
        let table = ast::rel_name(rel);
        if !ctx.existing(i, &table) {
            continue;
        }
        for cmd in cmds
            .iter()
            .filter(|c| subtype(c) == AlterTableType::AtSetNotNull)
        {
            let key = (table.clone(), cmd.name.clone());
            if ctx.run.not_null_checks.contains(&key)
                || proven_columns(&ctx.stmts[..i]).contains(&key)
            {
                continue;
            }
            hits.push(
                Hit::new(
                    i,
                    format!(
                        "SET NOT NULL on `{table}`.`{}` scans the whole table under ACCESS EXCLUSIVE, \
                         blocking reads and writes",
                        cmd.name
                    ),
                )
                .table(&table)
                .help(ctx.safe_sql(i)),
            );
        }
    }
    hits
}

/// (table, column) pairs with a validated `CHECK (column IS NOT NULL)`
/// among `stmts`: added without NOT VALID, or validated later.
pub(crate) fn proven_columns(stmts: &[Statement]) -> Vec<(String, String)> {
    // (table, constraint, column, validated)
    let mut checks: Vec<(String, String, String, bool)> = Vec::new();
    for stmt in stmts {
        let Some((rel, cmds)) = alter_table(stmt) else {
            continue;
        };
        let table = ast::rel_name(rel);
        for cmd in cmds {
            if let Some(c) = added_constraint(cmd) {
                if contype(c) == ConstrType::ConstrCheck {
                    if let Some(column) = c.raw_expr.as_deref().and_then(not_null_column) {
                        checks.push((table.clone(), c.conname.clone(), column, !c.skip_validation));
                    }
                }
            } else if subtype(cmd) == AlterTableType::AtValidateConstraint {
                for check in checks
                    .iter_mut()
                    .filter(|c| c.0 == table && c.1 == cmd.name)
                {
                    check.3 = true;
                }
            }
        }
    }
    checks
        .into_iter()
        .filter(|c| c.3)
        .map(|c| (c.0, c.2))
        .collect()
}

/// `col IS NOT NULL` → `col`.
pub(crate) fn not_null_column(expr: &pg_query::Node) -> Option<String> {
    let Some(NodeEnum::NullTest(t)) = &expr.node else {
        return None;
    };
    if t.nulltesttype != NullTestType::IsNotNull as i32 {
        return None;
    }
    match t.arg.as_deref().and_then(|a| a.node.as_ref()) {
        Some(NodeEnum::ColumnRef(c)) => c
            .fields
            .iter()
            .rev()
            .find_map(ast::string_value)
            .map(str::to_string),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use crate::rules::testing::*;

    const ID: &str = "set-not-null";

    #[test]
    fn flags_set_not_null_without_a_check() {
        assert_eq!(
            hits(ID, "ALTER TABLE u ALTER COLUMN email SET NOT NULL").len(),
            1
        );
        let unvalidated = "ALTER TABLE u ADD CONSTRAINT c CHECK (email IS NOT NULL) NOT VALID; \
                           ALTER TABLE u ALTER COLUMN email SET NOT NULL";
        assert_eq!(hits(ID, unvalidated).len(), 1);
        let other_column = "ALTER TABLE u ADD CONSTRAINT c CHECK (name IS NOT NULL); \
                            ALTER TABLE u ALTER COLUMN email SET NOT NULL";
        assert_eq!(hits(ID, other_column).len(), 1);
    }

    #[test]
    fn allows_set_not_null_after_a_validated_check() {
        let sql = "ALTER TABLE u ADD CONSTRAINT c CHECK (email IS NOT NULL) NOT VALID; \
                   ALTER TABLE u VALIDATE CONSTRAINT c; ALTER TABLE u ALTER COLUMN email SET NOT NULL";
        assert!(hits(ID, sql).is_empty());
        assert!(hits(
            ID,
            "CREATE TABLE u (email text); ALTER TABLE u ALTER COLUMN email SET NOT NULL"
        )
        .is_empty());
    }

    #[test]
    fn documented() {
        assert_documented(ID);
    }
}
