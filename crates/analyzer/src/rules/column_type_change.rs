//! `column-type-change`

use pg_query::protobuf::AlterTableType;

use super::{alter_table, subtype, Category, Rule};
use crate::ast;
use crate::lint::{FileCtx, Hit, Severity};

pub(crate) static RULE: Rule = Rule {
    id: "column-type-change",
    summary: "ALTER COLUMN ... TYPE that rewrites the table",
    doc: DOC,
    default_severity: Severity::Error,
    opt_in: false,
    size_sensitive: true,
    category: Category::Locking,
    check,
};

const DOC: &str = "\
column-type-change: ALTER COLUMN ... TYPE that rewrites the table

What it flags
  ALTER TABLE ... ALTER COLUMN ... TYPE on an existing table, except
  changes PostgreSQL makes without a rewrite: to text, to varchar (any
  length), to citext, or to an unconstrained numeric, with no USING clause.
  (The old type is not in the statement; these targets are the usual
  binary-coercible widenings such as varchar(50) -> varchar(100) or
  varchar -> text.)

Why it hurts
  Any other type change rewrites the whole table and rebuilds every index
  on it under ACCESS EXCLUSIVE: no reads, no writes, for as long as that
  takes. It also breaks the running application if it still writes the
  old type.

Safe alternative
  Add a new column of the new type, write both from the application,
  backfill in batches, switch reads, then drop the old column:

    ALTER TABLE orders ADD COLUMN amount_big bigint;
    -- backfill: UPDATE orders SET amount_big = amount WHERE id BETWEEN ... (lull backfill)
    -- later migration: swap names or drop the old column
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
            .filter(|c| subtype(c) == AlterTableType::AtAlterColumnType)
        {
            if !ast::column_type_change_rewrites(cmd) {
                continue;
            }
            hits.push(
                Hit::new(
                    i,
                    format!(
                        "changing the type of `{table}`.`{}` rewrites the table and its indexes under \
                         ACCESS EXCLUSIVE, blocking reads and writes",
                        cmd.name
                    ),
                )
                .table(&table)
                .help(Some(
                    "add a new column of the new type, backfill it in batches, switch the application, drop the old one"
                        .into(),
                )),
            );
        }
    }
    hits
}

#[cfg(test)]
mod tests {
    use crate::rules::testing::*;

    const ID: &str = "column-type-change";

    #[test]
    fn flags_rewriting_type_changes() {
        assert_eq!(
            hits(ID, "ALTER TABLE o ALTER COLUMN amount TYPE bigint").len(),
            1
        );
        assert_eq!(
            hits(
                ID,
                "ALTER TABLE o ALTER COLUMN note TYPE text USING note::text"
            )
            .len(),
            1
        );
        assert_eq!(
            hits(ID, "ALTER TABLE o ALTER COLUMN n TYPE numeric(10, 2)").len(),
            1
        );
    }

    #[test]
    fn allows_binary_coercible_widening() {
        assert!(hits(ID, "ALTER TABLE o ALTER COLUMN note TYPE text").is_empty());
        assert!(hits(ID, "ALTER TABLE o ALTER COLUMN note TYPE varchar(200)").is_empty());
        assert!(hits(
            ID,
            "CREATE TABLE o (a int); ALTER TABLE o ALTER COLUMN a TYPE bigint"
        )
        .is_empty());
    }

    #[test]
    fn documented() {
        assert_documented(ID);
    }
}
