//! `create-index-not-concurrently`

use pg_query::NodeEnum;

use super::{Category, Rule};
use crate::lint::{FileCtx, Hit, Severity};

pub(crate) static RULE: Rule = Rule {
    id: "create-index-not-concurrently",
    summary: "CREATE INDEX without CONCURRENTLY on an existing table",
    doc: DOC,
    default_severity: Severity::Error,
    opt_in: false,
    size_sensitive: true,
    category: Category::Locking,
    check,
};

const DOC: &str = "\
create-index-not-concurrently: CREATE INDEX without CONCURRENTLY on an existing table

What it flags
  A plain CREATE [UNIQUE] INDEX on a table that existed before this
  migration file ran. Tables created earlier in the same file are exempt;
  a table an earlier migration created is live (it has rows and traffic)
  by the time this one runs. With a database URL, migrations still
  pending there run together, so a table created by one pending
  migration is exempt in the next.

Why it hurts
  A plain index build takes a SHARE lock on the table for the whole build:
  reads continue, but every INSERT, UPDATE and DELETE waits until the index
  is complete - seconds to many minutes on a large table.

Safe alternative
  Build it CONCURRENTLY, outside a transaction block (lull runs such
  statements in their own autocommit step). It takes SHARE UPDATE EXCLUSIVE,
  which lets writes continue:

    CREATE INDEX CONCURRENTLY IF NOT EXISTS orders_user_id_idx ON orders (user_id);

  A failed concurrent build leaves an INVALID index; lull drops it before
  retrying.

  On a partitioned table CONCURRENTLY is not allowed; create the index ON
  ONLY the parent, build each partition's index CONCURRENTLY and attach it
  (see `lull explain concurrent-index-on-partitioned-table`).
";

fn check(ctx: &FileCtx) -> Vec<Hit> {
    let mut hits = Vec::new();
    for (i, stmt) in ctx.stmts.iter().enumerate() {
        let NodeEnum::IndexStmt(s) = stmt.ast() else {
            continue;
        };
        let Some(table) = stmt.facts.index.as_ref().and_then(|x| x.table.clone()) else {
            continue;
        };
        if s.concurrent || !ctx.existing(i, &table) {
            continue;
        }
        if ctx.index_on_partitioned(i).is_some() {
            let help = ctx.safe_sql(i).or_else(|| {
                Some(super::concurrent_index_on_partitioned_table::generic_help(
                    &table,
                ))
            });
            hits.push(
                Hit::new(
                    i,
                    format!(
                        "CREATE INDEX on partitioned `{table}` builds every partition's index under a \
                         SHARE lock that blocks writes to it (and CONCURRENTLY is not allowed on a \
                         partitioned table)"
                    ),
                )
                .table(&table)
                .help(help),
            );
            continue;
        }
        hits.push(
            Hit::new(
                i,
                format!("CREATE INDEX on `{table}` takes a SHARE lock that blocks writes to it for the whole build"),
            )
            .table(&table)
            .help(ctx.safe_sql(i)),
        );
    }
    hits
}

#[cfg(test)]
mod tests {
    use crate::rules::testing::*;

    const ID: &str = "create-index-not-concurrently";

    #[test]
    fn flags_plain_index_on_existing_table() {
        assert_eq!(hits(ID, "CREATE INDEX i ON orders (user_id)").len(), 1);
        assert_eq!(
            hits(ID, "CREATE UNIQUE INDEX IF NOT EXISTS i ON app.orders (id)").len(),
            1
        );
    }

    #[test]
    fn allows_concurrent_and_new_tables() {
        assert!(hits(ID, "CREATE INDEX CONCURRENTLY i ON orders (user_id)").is_empty());
        assert!(hits(
            ID,
            "CREATE TABLE orders (id int); CREATE INDEX i ON orders (id)"
        )
        .is_empty());
    }

    #[test]
    fn a_partitioned_table_gets_the_per_partition_form_not_concurrently() {
        let sql = "CREATE TABLE ev (id int, at date) PARTITION BY RANGE (at);\n\
                   CREATE TABLE ev_1 PARTITION OF ev FOR VALUES FROM ('2020-01-01') TO ('2021-01-01');";
        let file = crate::lint::SourceFile {
            path: "2.sql".into(),
            sql: "CREATE INDEX ev_at ON ev (at);".into(),
            ..Default::default()
        };
        let history = crate::lint::SourceFile {
            path: "1.sql".into(),
            sql: sql.into(),
            ..Default::default()
        };
        let report = crate::lint(&[history, file], &crate::lint::LintOptions::default());
        let f = report
            .findings
            .iter()
            .find(|f| f.rule == ID)
            .expect("flagged");
        assert!(f.message.contains("partitioned"), "{}", f.message);
        let help = f.help.as_deref().unwrap();
        assert!(
            help.starts_with("CREATE INDEX ev_at ON ONLY ev")
                && help.contains("CREATE INDEX CONCURRENTLY ev_1_at_idx ON ev_1")
                && help.contains("ALTER INDEX ev_at ATTACH PARTITION ev_1_at_idx"),
            "{help}"
        );
        assert!(!help.contains("CONCURRENTLY ev_at"), "{help}");
    }

    #[test]
    fn documented() {
        assert_documented(ID);
    }
}
