//! `rename-table`

use pg_query::protobuf::ObjectType;
use pg_query::NodeEnum;

use super::{Category, Rule};
use crate::ast;
use crate::lint::{FileCtx, Hit, Severity};

pub(crate) static RULE: Rule = Rule {
    id: "rename-table",
    summary: "renaming a table the running application uses",
    doc: DOC,
    default_severity: Severity::Warning,
    opt_in: false,
    size_sensitive: false,
    category: Category::Compatibility,
    check,
};

const DOC: &str = "\
rename-table: renaming a table the running application uses

What it flags
  ALTER TABLE ... RENAME TO on a table that existed before the run.

Why it hurts
  The running application still queries the old name and fails until
  every instance runs the new code. The rename also takes ACCESS
  EXCLUSIVE, briefly.

Safe alternative
  Rename, then leave an updatable view under the old name until no code
  uses it, and drop the view in a later release:

    BEGIN;
    ALTER TABLE users RENAME TO accounts;
    CREATE VIEW users AS SELECT * FROM accounts;
    COMMIT;
";

fn check(ctx: &FileCtx) -> Vec<Hit> {
    let mut hits = Vec::new();
    for (i, stmt) in ctx.stmts.iter().enumerate() {
        let NodeEnum::RenameStmt(s) = stmt.ast() else {
            continue;
        };
        if s.rename_type != ObjectType::ObjectTable as i32 {
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
                format!("renaming `{table}` to `{}` breaks the running application's queries on the old name", s.newname),
            )
            .table(&table)
            .help(Some(format!(
                "keep a view named {} over the renamed table until no code uses the old name",
                crate::sql::quote_ident(&rel.relname)
            ))),
        );
    }
    hits
}

#[cfg(test)]
mod tests {
    use crate::rules::testing::*;

    const ID: &str = "rename-table";

    #[test]
    fn flags_table_renames() {
        assert_eq!(hits(ID, "ALTER TABLE users RENAME TO accounts").len(), 1);
    }

    #[test]
    fn allows_new_tables_and_index_renames() {
        assert!(hits(ID, "CREATE TABLE t (a int); ALTER TABLE t RENAME TO u").is_empty());
        assert!(hits(ID, "ALTER INDEX i RENAME TO j").is_empty());
    }

    #[test]
    fn documented() {
        assert_documented(ID);
    }
}
