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
  BEGIN and COMMIT, or in a file that the runner wraps in a transaction
  (see Runners below: the layout or `runner = ...` decides). A COMMIT
  earlier in a file that sqlx, dbmate, diesel or Flyway wraps ends that
  transaction, so what follows it runs on its own.

Why it hurts
  PostgreSQL rejects the statement (\"cannot run inside a transaction
  block\") and the deploy fails half way, after the earlier statements of
  the transaction were rolled back - or, with some tools, after earlier
  files were applied.

Safe alternative
  Let lull run the file: it gives each such statement its own autocommit
  step. With another runner, move the statement to its own migration and
  mark that file as non-transactional, in the tool's own way:

    -- no-transaction                      (sqlx, first line)
    -- migrate:up transaction:false        (dbmate)
    run_in_transaction = false             (diesel, metadata.toml)
    one statement per migration.sql        (Prisma, golang-migrate)
    only non-transactional statements      (Flyway)
    CREATE INDEX CONCURRENTLY IF NOT EXISTS orders_user_id_idx ON orders (user_id);
";

fn check(ctx: &FileCtx) -> Vec<Hit> {
    let mut hits = Vec::new();
    for (i, stmt) in ctx.stmts.iter().enumerate() {
        let info = ctx.info[i];
        if stmt.facts.transactional || !info.in_transaction {
            continue;
        }
        let why = if info.explicit_block {
            "inside the BEGIN ... COMMIT block of this file".to_string()
        } else {
            match ctx.tool {
                Some(tool) => format!("inside the transaction {tool} wraps this file in"),
                None => "inside the transaction the runner wraps this file in".to_string(),
            }
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
            .help(Some(match ctx.tool {
                Some(tool) if !info.explicit_block => {
                    format!("to run it outside a transaction, {}", tool.no_transaction_hint())
                }
                _ => "run it in its own step: let lull run the file, or move it to a migration marked \
                     non-transactional (sqlx `-- no-transaction`, dbmate `transaction:false`)"
                    .into(),
            })),
        );
    }
    hits
}

#[cfg(test)]
mod tests {
    use crate::lint::Runner;
    use crate::rules::testing::*;
    use crate::tool::Tool;

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
    fn follows_each_tools_transactions() {
        let tool = |tool| Setup {
            tool: Some(tool),
            ..Setup::default()
        };
        let two = "CREATE TABLE a (id int); CREATE INDEX CONCURRENTLY i ON t (a)";
        let prisma = hits_with(ID, two, tool(Tool::Prisma));
        assert_eq!(prisma.len(), 1);
        assert!(prisma[0].contains("prisma wraps"), "{prisma:?}");
        // One statement alone is a single query: no transaction.
        assert!(hits_with(
            ID,
            "CREATE INDEX CONCURRENTLY i ON t (a)",
            tool(Tool::Prisma)
        )
        .is_empty());
        assert!(hits_with(
            ID,
            "CREATE INDEX CONCURRENTLY i ON t (a)",
            tool(Tool::GolangMigrate)
        )
        .is_empty());
        assert_eq!(
            hits_with(ID, "CREATE INDEX CONCURRENTLY i ON t (a)", tool(Tool::Sqlx)).len(),
            1
        );
        // Flyway runs a migration of only non-transactional statements bare.
        assert!(hits_with(
            ID,
            "CREATE INDEX CONCURRENTLY i ON t (a); VACUUM t",
            tool(Tool::Flyway)
        )
        .is_empty());
        assert_eq!(hits_with(ID, two, tool(Tool::Flyway)).len(), 1);
        // COMMIT ends the transaction sqlx opened; not Prisma's implicit one.
        let escape =
            "CREATE TABLE a (id int); COMMIT; CREATE INDEX CONCURRENTLY i ON t (a); BEGIN;";
        assert!(hits_with(ID, escape, tool(Tool::Sqlx)).is_empty());
        assert_eq!(hits_with(ID, escape, tool(Tool::Prisma)).len(), 1);
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
