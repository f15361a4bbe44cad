//! `drop-table`

use pg_query::protobuf::ObjectType;
use pg_query::NodeEnum;

use super::{Category, Rule};
use crate::ast;
use crate::lint::{FileCtx, Hit, Severity};

pub(crate) static RULE: Rule = Rule {
    id: "drop-table",
    summary: "dropping a table the running application may use",
    doc: DOC,
    default_severity: Severity::Warning,
    opt_in: false,
    size_sensitive: false,
    category: Category::Compatibility,
    check,
};

const DOC: &str = "\
drop-table: dropping a table the running application may use

What it flags
  DROP TABLE of a table that existed before the run.

Why it hurts
  Any running code that still uses the table fails at once, and the data
  is gone with no undo short of a restore. DROP TABLE also takes ACCESS
  EXCLUSIVE on the table and on tables whose foreign keys reference it.

Safe alternative
  Stop using the table in a release first; then rename it aside for a
  while before dropping it for good:

    ALTER TABLE old_events RENAME TO old_events_deprecated;
    -- a release or two later:
    DROP TABLE IF EXISTS old_events_deprecated;
";

fn check(ctx: &FileCtx) -> Vec<Hit> {
    let mut hits = Vec::new();
    for (i, stmt) in ctx.stmts.iter().enumerate() {
        let NodeEnum::DropStmt(s) = stmt.ast() else {
            continue;
        };
        if s.remove_type != ObjectType::ObjectTable as i32 {
            continue;
        }
        for table in s
            .objects
            .iter()
            .filter_map(ast::dotted_name)
            .filter(|t| ctx.existing(i, t))
        {
            hits.push(
                Hit::new(
                    i,
                    format!(
                        "dropping `{table}` breaks running code that uses it and cannot be undone"
                    ),
                )
                .table(&table)
                .help(Some(
                    "stop using the table in a release first; rename it aside before dropping"
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

    const ID: &str = "drop-table";

    #[test]
    fn flags_dropped_tables() {
        assert_eq!(hits(ID, "DROP TABLE IF EXISTS a, b").len(), 2);
    }

    #[test]
    fn allows_new_tables_and_other_objects() {
        assert!(hits(ID, "CREATE TABLE a (id int); DROP TABLE a").is_empty());
        assert!(hits(ID, "DROP VIEW v").is_empty());
    }

    #[test]
    fn documented() {
        assert_documented(ID);
    }
}
