//! `drop-column`

use pg_query::protobuf::AlterTableType;

use super::{alter_table, subtype, Category, Rule};
use crate::ast;
use crate::lint::{FileCtx, Hit, Severity};

pub(crate) static RULE: Rule = Rule {
    id: "drop-column",
    summary: "dropping a column the running application may use",
    doc: DOC,
    default_severity: Severity::Warning,
    opt_in: false,
    size_sensitive: false,
    category: Category::Compatibility,
    check,
};

const DOC: &str = "\
drop-column: dropping a column the running application may use

What it flags
  ALTER TABLE ... DROP COLUMN on a table that existed before the run.

Why it hurts
  The running application version may still select or insert the column;
  its queries fail the moment the column is gone (ORMs that list every
  column fail on every query of the table). It also takes ACCESS
  EXCLUSIVE, briefly.

Safe alternative
  First deploy code that no longer uses the column (tell the ORM to ignore
  it), then drop it in a later migration:

    -- release N: stop reading and writing users.legacy_flag
    -- release N+1:
    ALTER TABLE users DROP COLUMN IF EXISTS legacy_flag;
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
            .filter(|c| subtype(c) == AlterTableType::AtDropColumn)
        {
            hits.push(
                Hit::new(
                    i,
                    format!(
                        "dropping `{table}`.`{}` breaks any running application code that still uses it",
                        cmd.name
                    ),
                )
                .table(&table)
                .help(Some("deploy code that ignores the column first, then drop it in a later release".into())),
            );
        }
    }
    hits
}

#[cfg(test)]
mod tests {
    use crate::rules::testing::*;

    const ID: &str = "drop-column";

    #[test]
    fn flags_dropped_columns() {
        assert_eq!(
            hits(ID, "ALTER TABLE u DROP COLUMN a, DROP COLUMN b").len(),
            2
        );
    }

    #[test]
    fn allows_other_alters_and_new_tables() {
        assert!(hits(ID, "ALTER TABLE u DROP CONSTRAINT c").is_empty());
        assert!(hits(
            ID,
            "CREATE TABLE u (a int, b int); ALTER TABLE u DROP COLUMN b"
        )
        .is_empty());
    }

    #[test]
    fn documented() {
        assert_documented(ID);
    }
}
