//! `transaction-shape`

use super::{Category, Rule};
use crate::lint::{FileCtx, Hit, Severity};

pub(crate) static RULE: Rule = Rule {
    id: "transaction-shape",
    summary: "BEGIN never committed, BEGIN inside a transaction, or ROLLBACK in a migration",
    doc: DOC,
    default_severity: Severity::Error,
    opt_in: false,
    size_sensitive: false,
    category: Category::Process,
    check,
};

const DOC: &str = "\
transaction-shape: BEGIN never committed, BEGIN inside a transaction, or ROLLBACK in a migration

What it flags
  - a BEGIN that no COMMIT closes before the end of the file;
  - a BEGIN while a transaction block of the file is already open
    (PostgreSQL only warns and keeps the outer transaction);
  - a ROLLBACK (ROLLBACK TO SAVEPOINT is left alone).
  A file that a tool wraps in a transaction may end with BEGIN after a
  COMMIT (`COMMIT; CREATE INDEX CONCURRENTLY ...; BEGIN;`): the tool's
  own COMMIT closes it, so that is not flagged.

Why it hurts
  An unclosed BEGIN leaves the session in a transaction: some tools
  commit it, some roll it back silently, and lull would hold its locks
  until the connection ends. A nested BEGIN makes the author believe the
  inner part commits on its own; it does not. A ROLLBACK throws away the
  migration's own work (or, in a file a tool wraps, the tool's
  transaction), yet the migration is recorded as applied.

Safe alternative
  One BEGIN ... COMMIT pair per block, or none and let the runner decide:

    BEGIN;
    ALTER TABLE orders ADD COLUMN note text;
    COMMIT;
";

fn check(ctx: &FileCtx) -> Vec<Hit> {
    use pg_query::protobuf::TransactionStmtKind as K;
    let mut hits = Vec::new();
    let mut open: Option<usize> = None;
    for (i, stmt) in ctx.stmts.iter().enumerate() {
        let pg_query::NodeEnum::TransactionStmt(t) = stmt.ast() else {
            continue;
        };
        match K::try_from(t.kind) {
            Ok(K::TransStmtBegin | K::TransStmtStart) => {
                if open.is_some() {
                    hits.push(
                        Hit::new(i, "BEGIN inside an open transaction block does nothing: the outer transaction continues")
                            .help(Some("remove the inner BEGIN, or COMMIT the first block before it".into())),
                    );
                } else {
                    open = Some(i);
                }
            }
            Ok(K::TransStmtCommit | K::TransStmtPrepare | K::TransStmtCommitPrepared) => {
                open = None
            }
            Ok(K::TransStmtRollback) => {
                open = None;
                hits.push(
                    Hit::new(i, "ROLLBACK in a migration discards its own work, yet the migration is recorded as applied")
                        .help(Some("remove the ROLLBACK; to try a change, run it outside the migration".into())),
                );
            }
            _ => {}
        }
    }
    let wrapped = crate::lint::file_wrapped(ctx.file, ctx.stmts, ctx.opts);
    if let Some(i) = open.filter(|_| !wrapped) {
        hits.push(
            Hit::new(
                i,
                "this BEGIN is never committed: the file ends inside a transaction block",
            )
            .help(Some("add COMMIT; after the block's last statement".into())),
        );
    }
    hits
}

#[cfg(test)]
mod tests {
    use crate::rules::testing::*;

    const ID: &str = "transaction-shape";

    #[test]
    fn flags_unclosed_nested_and_rolled_back_blocks() {
        assert_eq!(hits(ID, "BEGIN; ALTER TABLE t ADD COLUMN a int;").len(), 1);
        assert!(hits(ID, "BEGIN; BEGIN; SELECT 1; COMMIT;")[0].contains("inside an open"));
        assert!(hits(ID, "BEGIN; SELECT 1; ROLLBACK;")[0].contains("ROLLBACK"));
    }

    #[test]
    fn allows_well_formed_blocks() {
        assert!(hits(ID, "BEGIN; SELECT 1; COMMIT; BEGIN; SELECT 2; END;").is_empty());
        assert!(
            hits(
                ID,
                "SELECT 1; COMMIT; CREATE INDEX CONCURRENTLY i ON t (a); BEGIN;"
            )
            .len()
                == 1
        );
        assert!(hits(ID, "SAVEPOINT s; SELECT 1; ROLLBACK TO SAVEPOINT s;").is_empty());
        assert!(hits(ID, "SELECT 1").is_empty());
        let sqlx = Setup {
            tool: Some(crate::tool::Tool::Sqlx),
            ..Setup::default()
        };
        let escape = "SELECT 1; COMMIT; CREATE INDEX CONCURRENTLY i ON t (a); BEGIN;";
        assert!(hits_with(ID, escape, sqlx).is_empty());
    }

    #[test]
    fn documented() {
        assert_documented(ID);
    }
}
