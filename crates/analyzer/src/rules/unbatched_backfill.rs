//! `unbatched-backfill`

use pg_query::NodeEnum;

use super::{has_where, Category, Rule};
use crate::ast;
use crate::lint::{FileCtx, Hit, Severity};

pub(crate) static RULE: Rule = Rule {
    id: "unbatched-backfill",
    summary: "UPDATE or DELETE over an existing table inside a migration",
    doc: DOC,
    default_severity: Severity::Warning,
    opt_in: false,
    size_sensitive: true,
    category: Category::Process,
    check,
};

const DOC: &str = "\
unbatched-backfill: UPDATE or DELETE over an existing table inside a migration

What it flags
  UPDATE or DELETE of a table that existed before the run, in a migration.

Why it hurts
  One statement over many rows holds a row lock on every row it touches
  until it commits (blocking the application's updates of those rows),
  writes the whole change to WAL at once (replicas fall behind), bloats the
  table, and in a transaction with DDL keeps that DDL's locks for the whole
  backfill.

Safe alternative
  Backfill in small batches by key, each in its own short transaction,
  outside the schema migration - `lull backfill` does this resumably and
  throttled:

    UPDATE orders SET status = 'open'
    WHERE id IN (SELECT id FROM orders WHERE status IS NULL ORDER BY id LIMIT 5000);
    -- repeat until no rows are updated

  Run by `lull migrate`, a single-table UPDATE or DELETE of a table with a
  primary key (or a unique NOT NULL column) is batched this way already,
  as a step of its own (`lull plan` shows it; `-- lull:no-batch` before
  the statement opts out). The finding matters for other runners, for
  tables without such a key and for statements lull cannot batch.
";

fn check(ctx: &FileCtx) -> Vec<Hit> {
    let mut hits = Vec::new();
    for (i, stmt) in ctx.stmts.iter().enumerate() {
        let (verb, rel) = match stmt.ast() {
            NodeEnum::UpdateStmt(s) => ("UPDATE", s.relation.as_ref()),
            NodeEnum::DeleteStmt(s) => ("DELETE", s.relation.as_ref()),
            _ => continue,
        };
        let Some(rel) = rel else { continue };
        let table = ast::rel_name(rel);
        if !ctx.existing(i, &table) {
            continue;
        }
        let scope = if has_where(stmt) {
            "rows of"
        } else {
            "every row of"
        };
        hits.push(
            Hit::new(
                i,
                format!(
                    "{verb} of {scope} `{table}` in one statement holds row locks until commit"
                ),
            )
            .table(&table)
            .help(Some(
                "backfill in batches by key outside the migration, e.g. with `lull backfill`"
                    .into(),
            )),
        );
    }
    hits
}

#[cfg(test)]
mod tests {
    use crate::rules::testing::*;

    const ID: &str = "unbatched-backfill";

    #[test]
    fn flags_update_and_delete_of_existing_tables() {
        assert_eq!(hits(ID, "UPDATE orders SET status = 'open'").len(), 1);
        assert_eq!(
            hits(
                ID,
                "DELETE FROM orders WHERE created_at < now() - interval '1 year'"
            )
            .len(),
            1
        );
    }

    #[test]
    fn allows_new_tables_and_inserts() {
        assert!(hits(ID, "CREATE TABLE n (a int); UPDATE n SET a = 1").is_empty());
        assert!(hits(ID, "INSERT INTO settings VALUES ('a', 'b')").is_empty());
    }

    #[test]
    fn documented() {
        assert_documented(ID);
    }
}
