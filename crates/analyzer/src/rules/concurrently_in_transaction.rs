//! `concurrently-in-transaction`

use super::{Category, Rule};
use crate::lint::{FileCtx, Hit, Severity};

pub(crate) static RULE: Rule = Rule {
    id: "concurrently-in-transaction",
    summary: "a statement that cannot run in a transaction block runs in one",
    doc: DOC,
    default_severity: Severity::Error,
    opt_in: false,
    size_sensitive: false,
    category: Category::Locking,
    check,
};

const DOC: &str = "\
concurrently-in-transaction: a statement that cannot run in a transaction block runs in one

What it flags
  CREATE / DROP / REINDEX ... CONCURRENTLY, DETACH PARTITION ...
  CONCURRENTLY, VACUUM and other statements PostgreSQL refuses inside a
  transaction block, when the file puts them in one: between an explicit
  BEGIN and COMMIT, or in a file that the configured runner
  (`runner = \"transactional\"`) wraps in a transaction.

Why it hurts
  PostgreSQL rejects the statement (\"cannot run inside a transaction
  block\") and the deploy fails half way, after the earlier statements of
  the transaction were rolled back - or, with some tools, after earlier
  files were applied.

Safe alternative
  Let lull run the file: it gives each such statement its own autocommit
  step. With another runner, move the statement to its own migration and
  mark that file as non-transactional:

    -- no-transaction                      (sqlx)
    -- migrate:up transaction:false        (dbmate)
    CREATE INDEX CONCURRENTLY IF NOT EXISTS orders_user_id_idx ON orders (user_id);
";

fn check(ctx: &FileCtx) -> Vec<Hit> {
    let mut hits = Vec::new();
    for (i, stmt) in ctx.stmts.iter().enumerate() {
        let info = ctx.info[i];
        if stmt.facts.transactional || !(info.explicit_block || ctx.wrapped) {
            continue;
        }
        let why = if info.explicit_block {
            "inside the BEGIN ... COMMIT block of this file"
        } else {
            "inside the transaction the runner wraps this file in"
        };
        let first = stmt
            .text
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ");
        hits.push(
            Hit::new(
                i,
                format!("`{first} ...` cannot run inside a transaction block, and it runs {why}"),
            )
            .help(Some(
                "run it in its own step: let lull run the file, or move it to a migration marked \
                     non-transactional (sqlx `-- no-transaction`, dbmate `transaction:false`)"
                    .into(),
            )),
        );
    }
    hits
}

#[cfg(test)]
mod tests {
    use crate::lint::Runner;
    use crate::rules::testing::*;

    const ID: &str = "concurrently-in-transaction";

    #[test]
    fn flags_concurrently_inside_begin() {
        assert_eq!(
            hits(ID, "BEGIN; CREATE INDEX CONCURRENTLY i ON t (a); COMMIT;").len(),
            1
        );
    }

    #[test]
    fn flags_files_wrapped_by_a_transactional_runner() {
        let setup = Setup {
            runner: Runner::Transactional,
            ..Setup::default()
        };
        assert_eq!(hits_with(ID, "VACUUM t", setup).len(), 1);
        let setup = Setup {
            runner: Runner::Transactional,
            no_transaction: true,
            ..Setup::default()
        };
        assert!(hits_with(ID, "DROP INDEX CONCURRENTLY i", setup).is_empty());
    }

    #[test]
    fn allows_lull_and_autocommit_runs() {
        assert!(hits(
            ID,
            "CREATE INDEX CONCURRENTLY i ON t (a); ALTER TABLE t ADD COLUMN b int"
        )
        .is_empty());
        let setup = Setup {
            runner: Runner::Autocommit,
            ..Setup::default()
        };
        assert!(hits_with(ID, "CREATE INDEX CONCURRENTLY i ON t (a)", setup).is_empty());
    }

    #[test]
    fn documented() {
        assert_documented(ID);
    }
}
