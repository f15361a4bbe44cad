//! `lock-table`

use pg_query::NodeEnum;

use super::{Category, Rule};
use crate::lint::{FileCtx, Hit, Severity};

pub(crate) static RULE: Rule = Rule {
    id: "lock-table",
    summary: "explicit LOCK TABLE",
    doc: DOC,
    default_severity: Severity::Warning,
    opt_in: false,
    size_sensitive: true,
    category: Category::Locking,
    check,
};

const DOC: &str = "\
lock-table: explicit LOCK TABLE

What it flags
  LOCK TABLE in a migration (the mode defaults to ACCESS EXCLUSIVE).

Why it hurts
  The lock is held until the transaction ends, so everything after it in
  the same transaction runs while the table is blocked; and while LOCK
  waits for running queries, every later query on the table queues behind
  it.

Safe alternative
  Usually none is needed: each statement takes the lock it needs. If you
  must serialize with the application, take the weakest mode that works,
  keep the transaction short and bound the wait:

    SET LOCAL lock_timeout = '2s';
    LOCK TABLE orders IN SHARE ROW EXCLUSIVE MODE;
";

fn check(ctx: &FileCtx) -> Vec<Hit> {
    let mut hits = Vec::new();
    for (i, stmt) in ctx.stmts.iter().enumerate() {
        if !matches!(stmt.ast(), NodeEnum::LockStmt(_)) {
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
                        "LOCK TABLE `{}` holds {} until the transaction ends",
                        lock.relation,
                        lock.mode.sql_name()
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

    const ID: &str = "lock-table";

    #[test]
    fn flags_lock_table() {
        assert_eq!(hits(ID, "LOCK TABLE a, b IN SHARE MODE").len(), 2);
    }

    #[test]
    fn allows_other_statements() {
        assert!(hits(ID, "SELECT * FROM a FOR UPDATE").is_empty());
        assert!(hits(ID, "CREATE TABLE a (id int); LOCK a").is_empty());
    }

    #[test]
    fn documented() {
        assert_documented(ID);
    }
}
