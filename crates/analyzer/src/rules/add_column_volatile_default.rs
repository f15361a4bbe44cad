//! `add-column-volatile-default`

use super::{added_column, alter_table, Category, Rule};
use crate::ast::{self, ColumnInfo};
use crate::lint::{FileCtx, Hit, Severity};

pub(crate) static RULE: Rule = Rule {
    id: "add-column-volatile-default",
    summary: "ADD COLUMN with a volatile DEFAULT rewrites the table",
    doc: DOC,
    default_severity: Severity::Error,
    opt_in: false,
    size_sensitive: true,
    category: Category::Locking,
    check,
};

const DOC: &str = "\
add-column-volatile-default: ADD COLUMN with a volatile DEFAULT rewrites the table

What it flags
  ALTER TABLE ... ADD COLUMN ... DEFAULT <expr> on an existing table where
  the default may differ per row: random(), gen_random_uuid(),
  clock_timestamp(), nextval(), any user-defined function (VOLATILE unless
  declared otherwise) or a subquery. Constant defaults and now() are fine.

Why it hurts
  Since PostgreSQL 11 a constant default is stored once in the catalog, but
  a volatile default must be computed for every existing row: the whole
  table is rewritten under ACCESS EXCLUSIVE - no reads, no writes, for as
  long as copying the table takes.

Safe alternative
  Add the column without a default (or with a constant one), set the
  default for new rows, and backfill existing rows in batches:

    ALTER TABLE orders ADD COLUMN token uuid;
    ALTER TABLE orders ALTER COLUMN token SET DEFAULT gen_random_uuid();
    -- backfill in batches, e.g. with `lull backfill`:
    UPDATE orders SET token = gen_random_uuid() WHERE id BETWEEN 1 AND 10000 AND token IS NULL;
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
        for col in cmds.iter().filter_map(|c| added_column(c)) {
            let info = ColumnInfo::of(col);
            if info.volatile_default() && !info.serial && !info.identity {
                hits.push(
                    Hit::new(
                        i,
                        format!(
                            "ADD COLUMN {} with a volatile DEFAULT rewrites `{table}` under ACCESS EXCLUSIVE, \
                             blocking reads and writes",
                            col.colname
                        ),
                    )
                    .table(&table)
                    .help(Some(format!(
                        "add `{}` without the default, SET DEFAULT for new rows, then backfill existing rows in batches",
                        col.colname
                    ))),
                );
            }
        }
    }
    hits
}

#[cfg(test)]
mod tests {
    use crate::rules::testing::*;

    const ID: &str = "add-column-volatile-default";

    #[test]
    fn flags_volatile_defaults() {
        assert_eq!(
            hits(
                ID,
                "ALTER TABLE o ADD COLUMN t uuid DEFAULT gen_random_uuid()"
            )
            .len(),
            1
        );
        assert_eq!(
            hits(ID, "ALTER TABLE o ADD COLUMN r float DEFAULT random() * 2").len(),
            1
        );
        assert_eq!(
            hits(ID, "ALTER TABLE o ADD COLUMN x int DEFAULT my_func()").len(),
            1
        );
    }

    #[test]
    fn allows_constant_and_stable_defaults() {
        assert!(hits(ID, "ALTER TABLE o ADD COLUMN s text DEFAULT 'new'").is_empty());
        assert!(hits(ID, "ALTER TABLE o ADD COLUMN c timestamptz DEFAULT now()").is_empty());
        assert!(hits(
            ID,
            "ALTER TABLE o ADD COLUMN c timestamptz DEFAULT CURRENT_TIMESTAMP"
        )
        .is_empty());
        assert!(hits(
            ID,
            "CREATE TABLE o (id int); ALTER TABLE o ADD COLUMN t uuid DEFAULT gen_random_uuid()"
        )
        .is_empty());
    }

    #[test]
    fn documented() {
        assert_documented(ID);
    }
}
