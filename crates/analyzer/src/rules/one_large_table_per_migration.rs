//! `one-large-table-per-migration`

use pg_query::NodeEnum;

use super::{Category, Rule};
use crate::facts::LockMode;
use crate::lint::{FileCtx, Hit, Severity};

pub(crate) static RULE: Rule = Rule {
    id: "one-large-table-per-migration",
    summary: "heavy work on more than one large table in one migration",
    doc: DOC,
    default_severity: Severity::Warning,
    opt_in: false,
    size_sensitive: false,
    category: Category::Process,
    check,
};

const DOC: &str = "\
one-large-table-per-migration: heavy work on more than one large table in one migration

What it flags
  A migration that rewrites, scans or builds an index on more than one
  large table (known from --database-url or a stats file; `[lint]
  large_table_rows` / `large_table_bytes`). Without sizes it stays quiet.

Why it hurts
  Heavy operations on large tables each take minutes and hold locks or
  compete for I/O; together they multiply the time the deploy is exposed,
  and a failure in the second leaves the first half-done. Guides ask for
  one large table per migration so each can be watched, retried and
  rolled back on its own.

Safe alternative
  One migration per large table:

    -- 0051_orders_created_at_idx.sql
    CREATE INDEX CONCURRENTLY IF NOT EXISTS orders_created_at_idx ON orders (created_at);
    -- 0052_events_created_at_idx.sql
    CREATE INDEX CONCURRENTLY IF NOT EXISTS events_created_at_idx ON events (created_at);
";

fn check(ctx: &FileCtx) -> Vec<Hit> {
    let mut tables: Vec<String> = Vec::new();
    for (i, stmt) in ctx.stmts.iter().enumerate() {
        let f = &stmt.facts;
        let backfill = matches!(
            stmt.ast(),
            NodeEnum::UpdateStmt(_) | NodeEnum::DeleteStmt(_)
        );
        let written = f
            .locks
            .iter()
            .filter(|l| backfill && l.mode == LockMode::RowExclusive)
            .map(|l| &l.relation);
        let heavy = f.rewrites.iter().chain(f.scans.iter()).chain(written);
        for table in heavy {
            if ctx.is_large(table) != Some(true)
                || !ctx.existing(i, table)
                || tables.contains(table)
            {
                continue;
            }
            tables.push(table.clone());
            if tables.len() == 2 {
                return vec![Hit::new(
                    i,
                    format!("heavy work on a second large table `{table}` (after `{}`) in one migration", tables[0]),
                )
                .table(table)
                .help(Some("move the work on each large table into its own migration".into()))];
            }
        }
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use crate::rules::testing::*;

    const ID: &str = "one-large-table-per-migration";

    fn sized(sql: &str) -> Vec<String> {
        let setup = Setup {
            sizes: vec![("a", 50_000_000), ("b", 20_000_000), ("s", 10)],
            ..Setup::default()
        };
        hits_with(ID, sql, setup)
    }

    #[test]
    fn flags_two_large_tables() {
        assert_eq!(
            sized("CREATE INDEX CONCURRENTLY x ON a (c); CREATE INDEX CONCURRENTLY y ON b (c)")
                .len(),
            1
        );
    }

    #[test]
    fn allows_one_large_table_and_unknown_sizes() {
        assert!(sized(
            "CREATE INDEX CONCURRENTLY x ON a (c); CREATE INDEX CONCURRENTLY y ON s (c)"
        )
        .is_empty());
        assert!(
            sized("CREATE INDEX CONCURRENTLY x ON a (c); ALTER TABLE b ADD COLUMN n int")
                .is_empty()
        );
        assert!(hits(ID, "CREATE INDEX x ON a (c); CREATE INDEX y ON b (c)").is_empty());
        assert_eq!(sized("UPDATE a SET c = 1; UPDATE b SET c = 2").len(), 1);
    }

    #[test]
    fn documented() {
        assert_documented(ID);
    }
}
