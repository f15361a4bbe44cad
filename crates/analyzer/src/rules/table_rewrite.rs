//! `table-rewrite`

use pg_query::NodeEnum;

use super::{Category, Rule};
use crate::lint::{FileCtx, Hit, Severity};

pub(crate) static RULE: Rule = Rule {
    id: "table-rewrite",
    summary: "VACUUM FULL, CLUSTER, SET TABLESPACE, SET LOGGED/UNLOGGED rewrite the table",
    doc: DOC,
    default_severity: Severity::Error,
    opt_in: false,
    size_sensitive: true,
    category: Category::Locking,
    check,
};

const DOC: &str = "\
table-rewrite: VACUUM FULL, CLUSTER, SET TABLESPACE, SET LOGGED/UNLOGGED rewrite the table

What it flags
  VACUUM FULL, CLUSTER, ALTER TABLE ... SET TABLESPACE, SET LOGGED,
  SET UNLOGGED and SET ACCESS METHOD on a table that existed before the
  migration file ran; a bare `CLUSTER;` or `VACUUM FULL;`, which rewrite
  every table they apply to.

Why it hurts
  Each copies the whole table (and rebuilds its indexes) into new files
  under ACCESS EXCLUSIVE: no reads, no writes, for as long as the copy
  takes - minutes to hours on a large table. SET LOGGED also writes the
  whole table to WAL.

Safe alternative
  Do not do it in a migration. To reclaim space or re-order a busy table
  online use an extension built for it (pg_repack, pg_squeeze); to move a
  table, create a new one and copy in batches. A plain VACUUM (no FULL)
  does not block reads or writes:

    VACUUM (ANALYZE) orders;
";

fn check(ctx: &FileCtx) -> Vec<Hit> {
    let mut hits = Vec::new();
    for (i, stmt) in ctx.stmts.iter().enumerate() {
        let what = match stmt.ast() {
            NodeEnum::VacuumStmt(_) => "VACUUM FULL",
            NodeEnum::ClusterStmt(_) => "CLUSTER",
            NodeEnum::AlterTableStmt(_) => "this ALTER TABLE",
            _ => continue,
        };
        // A bare CLUSTER (or VACUUM FULL) re-writes every table it may.
        let bare = match stmt.ast() {
            NodeEnum::ClusterStmt(c) => c.relation.is_none(),
            NodeEnum::VacuumStmt(v) => {
                v.is_vacuumcmd && v.rels.is_empty() && crate::ast::has_option(&v.options, "full")
            }
            _ => false,
        };
        if bare {
            hits.push(Hit::new(
                i,
                format!("{what} without a table rewrites every table it applies to under ACCESS EXCLUSIVE, one after another"),
            ));
            continue;
        }
        for table in stmt.facts.rewrites.iter().filter(|t| ctx.existing(i, t)) {
            if matches!(stmt.ast(), NodeEnum::AlterTableStmt(_)) && !rewrites_storage(stmt) {
                continue;
            }
            hits.push(
                Hit::new(
                    i,
                    format!("{what} rewrites `{table}` under ACCESS EXCLUSIVE, blocking reads and writes until done"),
                )
                .table(table),
            );
        }
    }
    hits
}

/// ALTER TABLE forms this rule owns (the others have their own rules).
fn rewrites_storage(stmt: &crate::Statement) -> bool {
    use pg_query::protobuf::AlterTableType::*;
    super::alter_table(stmt).is_some_and(|(_, cmds)| {
        cmds.iter().any(|c| {
            matches!(
                super::subtype(c),
                AtSetTableSpace | AtSetLogged | AtSetUnLogged | AtSetAccessMethod
            )
        })
    })
}

#[cfg(test)]
mod tests {
    use crate::rules::testing::*;

    const ID: &str = "table-rewrite";

    #[test]
    fn flags_rewrites() {
        assert_eq!(hits(ID, "VACUUM FULL orders").len(), 1);
        assert_eq!(hits(ID, "CLUSTER orders USING orders_pkey").len(), 1);
        assert_eq!(hits(ID, "ALTER TABLE orders SET TABLESPACE fast").len(), 1);
        assert_eq!(hits(ID, "ALTER TABLE orders SET LOGGED").len(), 1);
        assert_eq!(hits(ID, "CLUSTER").len(), 1);
        assert_eq!(hits(ID, "VACUUM FULL").len(), 1);
    }

    #[test]
    fn allows_plain_vacuum_and_other_alters() {
        assert!(hits(ID, "VACUUM orders").is_empty());
        assert!(hits(ID, "ALTER TABLE orders ALTER COLUMN a TYPE bigint").is_empty());
        assert!(hits(ID, "CREATE TABLE n (a int); ALTER TABLE n SET UNLOGGED").is_empty());
    }

    #[test]
    fn documented() {
        assert_documented(ID);
    }
}
