//! `add-column-rewrite`

use super::{added_column, alter_table, Category, Rule};
use crate::ast::{self, ColumnInfo};
use crate::lint::{FileCtx, Hit, Severity};

pub(crate) static RULE: Rule = Rule {
    id: "add-column-rewrite",
    summary: "ADD COLUMN of a serial, identity or stored generated column rewrites the table",
    doc: DOC,
    default_severity: Severity::Error,
    opt_in: false,
    size_sensitive: true,
    category: Category::Locking,
    check,
};

const DOC: &str = "\
add-column-rewrite: ADD COLUMN of a serial, identity or stored generated column rewrites the table

What it flags
  ALTER TABLE ... ADD COLUMN on an existing table with a serial /
  bigserial / smallserial type, GENERATED ... AS IDENTITY, or
  GENERATED ALWAYS AS (...) STORED.

Why it hurts
  Every existing row needs its own value, so PostgreSQL rewrites the whole
  table (and rebuilds its indexes) under ACCESS EXCLUSIVE: no reads, no
  writes, for as long as the copy takes.

Safe alternative
  Add a plain nullable column, attach the sequence as a default for new
  rows, backfill existing rows in batches, then add constraints the safe
  way:

    CREATE SEQUENCE orders_seq_no_seq;
    ALTER TABLE orders ADD COLUMN seq_no bigint;
    ALTER TABLE orders ALTER COLUMN seq_no SET DEFAULT nextval('orders_seq_no_seq');
    -- backfill existing rows in batches (lull backfill)

  For a generated column, compute it in the application or a trigger and
  backfill.
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
            let what = if info.serial {
                "a serial column"
            } else if info.identity {
                "an identity column"
            } else if info.generated_stored {
                "a stored generated column"
            } else {
                continue;
            };
            hits.push(
                Hit::new(
                    i,
                    format!(
                        "ADD COLUMN {} ({what}) rewrites `{table}` under ACCESS EXCLUSIVE, blocking reads and writes",
                        col.colname
                    ),
                )
                .table(&table)
                .help(Some(
                    "add a plain nullable column, set a default for new rows, backfill in batches".into(),
                )),
            );
        }
    }
    hits
}

#[cfg(test)]
mod tests {
    use crate::rules::testing::*;

    const ID: &str = "add-column-rewrite";

    #[test]
    fn flags_columns_that_rewrite() {
        assert_eq!(hits(ID, "ALTER TABLE o ADD COLUMN n bigserial").len(), 1);
        assert_eq!(
            hits(
                ID,
                "ALTER TABLE o ADD COLUMN n int GENERATED ALWAYS AS IDENTITY"
            )
            .len(),
            1
        );
        assert_eq!(
            hits(
                ID,
                "ALTER TABLE o ADD COLUMN d int GENERATED ALWAYS AS (a * 2) STORED"
            )
            .len(),
            1
        );
    }

    #[test]
    fn allows_plain_columns_and_new_tables() {
        assert!(hits(ID, "ALTER TABLE o ADD COLUMN n bigint").is_empty());
        assert!(hits(
            ID,
            "CREATE TABLE o (id int); ALTER TABLE o ADD COLUMN n bigserial"
        )
        .is_empty());
    }

    #[test]
    fn documented() {
        assert_documented(ID);
    }
}
