//! `rename-column`

use pg_query::protobuf::ObjectType;
use pg_query::NodeEnum;

use super::{Category, Rule};
use crate::ast;
use crate::lint::{FileCtx, Hit, Severity};

pub(crate) static RULE: Rule = Rule {
    id: "rename-column",
    summary: "renaming a column the running application uses",
    doc: DOC,
    default_severity: Severity::Warning,
    opt_in: false,
    size_sensitive: false,
    category: Category::Compatibility,
    check,
};

const DOC: &str = "\
rename-column: renaming a column the running application uses

What it flags
  ALTER TABLE ... RENAME COLUMN on a table that existed before the run.

Why it hurts
  The rename is instant, but the application version that is running
  during and after the deploy still uses the old name: its queries fail
  until every instance runs the new code. (It also takes ACCESS EXCLUSIVE
  briefly.)

Safe alternative
  Expand and contract: add the new column, write both, backfill, switch
  reads, and drop the old column in a later release - or keep the old name
  visible through a view during the transition:

    ALTER TABLE users ADD COLUMN full_name text;
    -- backfill, deploy code that uses full_name, then later:
    ALTER TABLE users DROP COLUMN name;
";

fn check(ctx: &FileCtx) -> Vec<Hit> {
    let mut hits = Vec::new();
    for (i, stmt) in ctx.stmts.iter().enumerate() {
        let NodeEnum::RenameStmt(s) = stmt.ast() else {
            continue;
        };
        if s.rename_type != ObjectType::ObjectColumn as i32 {
            continue;
        }
        let Some(rel) = &s.relation else { continue };
        let table = ast::rel_name(rel);
        if !ctx.existing(i, &table) {
            continue;
        }
        hits.push(
            Hit::new(
                i,
                format!(
                    "renaming `{table}`.`{}` to `{}` breaks the running application's queries that use the old name",
                    s.subname, s.newname
                ),
            )
            .table(&table)
            .help(Some("add the new column, backfill, switch the code, drop the old column later".into())),
        );
    }
    hits
}

#[cfg(test)]
mod tests {
    use crate::rules::testing::*;

    const ID: &str = "rename-column";

    #[test]
    fn flags_column_renames() {
        assert_eq!(
            hits(ID, "ALTER TABLE users RENAME COLUMN name TO full_name").len(),
            1
        );
    }

    #[test]
    fn allows_other_renames_and_new_tables() {
        assert!(hits(ID, "ALTER TABLE users RENAME TO people").is_empty());
        assert!(hits(
            ID,
            "CREATE TABLE users (name text); ALTER TABLE users RENAME COLUMN name TO n"
        )
        .is_empty());
    }

    #[test]
    fn documented() {
        assert_documented(ID);
    }
}
