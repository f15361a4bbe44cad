//! `drop-not-null`

use pg_query::protobuf::AlterTableType;

use super::{alter_table, subtype, Category, Rule};
use crate::ast;
use crate::lint::{FileCtx, Hit, Severity};

pub(crate) static RULE: Rule = Rule {
    id: "drop-not-null",
    summary: "DROP NOT NULL on a column the running application reads",
    doc: DOC,
    default_severity: Severity::Warning,
    opt_in: false,
    size_sensitive: false,
    category: Category::Compatibility,
    check,
};

const DOC: &str = "\
drop-not-null: DROP NOT NULL on a column the running application reads

What it flags
  ALTER TABLE ... ALTER COLUMN ... DROP NOT NULL on a table that existed
  before the migration file ran.

Why it hurts
  The lock is brief, but readers were written for a column that is never
  NULL: as soon as a NULL is written, code that assumes a value (a
  non-optional field in an ORM model, an aggregate, a join) fails or
  silently computes the wrong thing.

Safe alternative
  Make every reader cope with NULL in a release first (optional fields,
  COALESCE), then drop the constraint:

    -- release N: the model treats orders.note as optional
    ALTER TABLE orders ALTER COLUMN note DROP NOT NULL;
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
            .filter(|c| subtype(c) == AlterTableType::AtDropNotNull)
        {
            hits.push(
                Hit::new(
                    i,
                    format!("`{table}`.`{}` may now hold NULL, which readers written for NOT NULL do not expect", cmd.name),
                )
                .table(&table)
                .help(Some("make every reader cope with NULL in a release first".into())),
            );
        }
    }
    hits
}

#[cfg(test)]
mod tests {
    use crate::rules::testing::*;

    const ID: &str = "drop-not-null";

    #[test]
    fn flags_drop_not_null_on_existing_tables() {
        assert_eq!(
            hits(ID, "ALTER TABLE t ALTER COLUMN a DROP NOT NULL").len(),
            1
        );
    }

    #[test]
    fn allows_new_tables_and_set_not_null() {
        assert!(hits(
            ID,
            "CREATE TABLE t (a int NOT NULL); ALTER TABLE t ALTER COLUMN a DROP NOT NULL"
        )
        .is_empty());
        assert!(hits(ID, "ALTER TABLE t ALTER COLUMN a SET NOT NULL").is_empty());
    }

    #[test]
    fn documented() {
        assert_documented(ID);
    }
}
