//! `concurrent-index-on-partitioned-table`

use pg_query::NodeEnum;

use super::{Category, Rule};
use crate::lint::{FileCtx, Hit, Severity};

pub(crate) static RULE: Rule = Rule {
    id: "concurrent-index-on-partitioned-table",
    summary: "CREATE INDEX CONCURRENTLY on a partitioned table (PostgreSQL rejects it)",
    doc: DOC,
    default_severity: Severity::Error,
    opt_in: false,
    size_sensitive: false,
    category: Category::Locking,
    check,
};

const DOC: &str = "\
concurrent-index-on-partitioned-table: CREATE INDEX CONCURRENTLY on a partitioned table (PostgreSQL rejects it)

What it flags
  CREATE INDEX CONCURRENTLY on a table known to be partitioned: created
  with PARTITION BY earlier in the history or this file, or (with a
  database URL) a partitioned table in the catalog.

Why it hurts
  PostgreSQL refuses it: \"cannot create index on partitioned table ...
  concurrently\". The migration fails at that statement, half-applied when
  it does not run in one transaction. Dropping CONCURRENTLY is no way out
  on a live table: a plain CREATE INDEX on the parent builds every
  partition's index under a SHARE lock, blocking writes to all of them.

Safe alternative
  Create the index on the parent alone (ON ONLY: invalid, no data, quick),
  build each partition's index CONCURRENTLY and attach it; the parent
  index becomes valid when every partition's index is attached. A
  sub-partitioned partition gets its own ON ONLY index the same way.
  `lull fix` writes this when the history names the partitions, and `lull
  migrate` runs a plain CREATE INDEX on a partitioned table this way:

    CREATE INDEX events_at_idx ON ONLY events (at);
    CREATE INDEX CONCURRENTLY events_2024_at_idx ON events_2024 (at);
    ALTER INDEX events_at_idx ATTACH PARTITION events_2024_at_idx;
    CREATE INDEX CONCURRENTLY events_2025_at_idx ON events_2025 (at);
    ALTER INDEX events_at_idx ATTACH PARTITION events_2025_at_idx;
";

/// Help when the partitions are not known: the shape of the safe form.
pub(crate) fn generic_help(table: &str) -> String {
    format!(
        "CREATE INDEX <name> ON ONLY {table} (...); then for each partition: \
         CREATE INDEX CONCURRENTLY <part_name> ON <partition> (...); \
         ALTER INDEX <name> ATTACH PARTITION <part_name>;"
    )
}

fn check(ctx: &FileCtx) -> Vec<Hit> {
    let mut hits = Vec::new();
    for (i, stmt) in ctx.stmts.iter().enumerate() {
        let NodeEnum::IndexStmt(s) = stmt.ast() else {
            continue;
        };
        if !s.concurrent {
            continue;
        }
        let Some(table) = ctx.index_on_partitioned(i) else {
            continue;
        };
        let help = ctx.safe_sql(i).or_else(|| Some(generic_help(&table)));
        hits.push(
            Hit::new(
                i,
                format!(
                    "`{table}` is partitioned: PostgreSQL rejects CREATE INDEX CONCURRENTLY on it \
                     (\"cannot create index on partitioned table concurrently\")"
                ),
            )
            .table(&table)
            .help(help),
        );
    }
    hits
}

#[cfg(test)]
mod tests {
    use crate::rules::testing::*;

    const ID: &str = "concurrent-index-on-partitioned-table";
    const PARTITIONED: &str = "CREATE TABLE ev (id int, at date) PARTITION BY RANGE (at); \
        CREATE TABLE ev_1 PARTITION OF ev FOR VALUES FROM ('2020-01-01') TO ('2021-01-01');";

    #[test]
    fn flags_a_concurrent_build_on_a_partitioned_table() {
        let sql = format!("{PARTITIONED} CREATE INDEX CONCURRENTLY i ON ev (at)");
        assert_eq!(hits(ID, &sql).len(), 1);
    }

    #[test]
    fn allows_partitions_plain_tables_and_only() {
        for tail in [
            "CREATE INDEX CONCURRENTLY i ON ev_1 (at)",
            "CREATE INDEX i ON ONLY ev (at)",
            "CREATE INDEX CONCURRENTLY i ON other (at)",
        ] {
            assert!(
                hits(ID, &format!("{PARTITIONED} {tail}")).is_empty(),
                "{tail}"
            );
        }
        assert!(hits(ID, "CREATE INDEX CONCURRENTLY i ON ev (at)").is_empty());
    }

    #[test]
    fn documented() {
        assert_documented(ID);
    }
}
