//! `truncate`

use pg_query::NodeEnum;

use super::{Category, Rule};
use crate::lint::{FileCtx, Hit, Severity};

pub(crate) static RULE: Rule = Rule {
    id: "truncate",
    summary: "TRUNCATE of an existing table",
    doc: DOC,
    default_severity: Severity::Warning,
    opt_in: false,
    size_sensitive: false,
    category: Category::Compatibility,
    check,
};

const DOC: &str = "\
truncate: TRUNCATE of an existing table

What it flags
  TRUNCATE of a table that existed before the run.

Why it hurts
  It deletes every row the running application relies on, with no WHERE
  and no undo after COMMIT, and it takes ACCESS EXCLUSIVE: every query on
  the table waits for it (and it waits for every running query).

Safe alternative
  If the data really must go, delete it in batches so the application keeps
  working, or swap in a new empty table:

    DELETE FROM events WHERE id IN (SELECT id FROM events ORDER BY id LIMIT 10000);
";

fn check(ctx: &FileCtx) -> Vec<Hit> {
    let mut hits = Vec::new();
    for (i, stmt) in ctx.stmts.iter().enumerate() {
        if !matches!(stmt.ast(), NodeEnum::TruncateStmt(_)) {
            continue;
        }
        for lock in stmt
            .facts
            .locks
            .iter()
            .filter(|l| ctx.existing(i, &l.relation))
        {
            hits.push(
                Hit::new(
                    i,
                    format!(
                        "TRUNCATE deletes every row of `{}` under ACCESS EXCLUSIVE",
                        lock.relation
                    ),
                )
                .table(&lock.relation),
            );
        }
    }
    hits
}

#[cfg(test)]
mod tests {
    use crate::rules::testing::*;

    const ID: &str = "truncate";

    #[test]
    fn flags_truncate() {
        assert_eq!(hits(ID, "TRUNCATE events").len(), 1);
    }

    #[test]
    fn allows_new_tables() {
        assert!(hits(ID, "CREATE TABLE e (a int); TRUNCATE e").is_empty());
        assert!(hits(ID, "DELETE FROM e WHERE id = 1").is_empty());
    }

    #[test]
    fn documented() {
        assert_documented(ID);
    }
}
