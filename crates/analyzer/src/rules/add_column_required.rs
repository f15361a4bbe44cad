//! `add-column-required`

use super::{added_column, alter_table, Category, Rule};
use crate::ast::{self, ColumnInfo};
use crate::lint::{FileCtx, Hit, Severity};

pub(crate) static RULE: Rule = Rule {
    id: "add-column-required",
    summary: "ADD COLUMN ... NOT NULL without a DEFAULT",
    doc: DOC,
    default_severity: Severity::Error,
    opt_in: false,
    size_sensitive: false,
    category: Category::Compatibility,
    check,
};

const DOC: &str = "\
add-column-required: ADD COLUMN ... NOT NULL without a DEFAULT

What it flags
  ALTER TABLE ... ADD COLUMN ... NOT NULL (or PRIMARY KEY) without a
  DEFAULT on an existing table.

Why it hurts
  Existing rows would get NULL, so the statement fails on any table that
  has rows - usually in production only, after it passed on an empty
  development database. Even when it works, the running application's
  INSERTs, which do not know the column yet, start failing.

Safe alternative
  Add the column nullable (or with a constant DEFAULT), backfill it, then
  enforce NOT NULL the safe way (see `lull explain set-not-null`):

    ALTER TABLE users ADD COLUMN plan text DEFAULT 'free' NOT NULL;
    -- or
    ALTER TABLE users ADD COLUMN plan text;
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
            if info.not_null
                && info.default.is_none()
                && !info.serial
                && !info.identity
                && !info.generated_stored
            {
                hits.push(
                    Hit::new(
                        i,
                        format!(
                            "ADD COLUMN {} NOT NULL without a DEFAULT fails if `{table}` has rows, and breaks \
                             INSERTs of the running application",
                            col.colname
                        ),
                    )
                    .table(&table)
                    .help(Some(format!(
                        "add `{}` with a constant DEFAULT, or nullable and backfill before enforcing NOT NULL",
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

    const ID: &str = "add-column-required";

    #[test]
    fn flags_required_columns_without_default() {
        assert_eq!(
            hits(ID, "ALTER TABLE u ADD COLUMN plan text NOT NULL").len(),
            1
        );
        assert_eq!(
            hits(ID, "ALTER TABLE u ADD COLUMN k int PRIMARY KEY").len(),
            1
        );
    }

    #[test]
    fn allows_defaults_nullable_and_new_tables() {
        assert!(hits(
            ID,
            "ALTER TABLE u ADD COLUMN plan text NOT NULL DEFAULT 'free'"
        )
        .is_empty());
        assert!(hits(ID, "ALTER TABLE u ADD COLUMN plan text").is_empty());
        assert!(hits(ID, "ALTER TABLE u ADD COLUMN n bigserial NOT NULL").is_empty());
        assert!(hits(
            ID,
            "CREATE TABLE u (id int); ALTER TABLE u ADD COLUMN plan text NOT NULL"
        )
        .is_empty());
    }

    #[test]
    fn documented() {
        assert_documented(ID);
    }
}
