//! `detach-partition-not-concurrently`

use pg_query::protobuf::AlterTableType;

use super::{alter_table, subtype, Category, Rule};
use crate::ast;
use crate::lint::{FileCtx, Hit, Severity};

pub(crate) static RULE: Rule = Rule {
    id: "detach-partition-not-concurrently",
    summary: "DETACH PARTITION without CONCURRENTLY",
    doc: DOC,
    default_severity: Severity::Warning,
    opt_in: false,
    size_sensitive: false,
    category: Category::Locking,
    check,
};

const DOC: &str = "\
detach-partition-not-concurrently: DETACH PARTITION without CONCURRENTLY

What it flags
  ALTER TABLE ... DETACH PARTITION without CONCURRENTLY on an existing
  partitioned table, when the target PostgreSQL is 14 or newer (or
  unknown); older servers have no concurrent detach.

Why it hurts
  A plain detach takes ACCESS EXCLUSIVE on the parent table: every query
  on any partition of it waits.

Safe alternative
  Detach CONCURRENTLY (PostgreSQL 14+), outside a transaction block; it
  takes SHARE UPDATE EXCLUSIVE on the parent:

    ALTER TABLE events DETACH PARTITION events_2020 CONCURRENTLY;
";

fn check(ctx: &FileCtx) -> Vec<Hit> {
    let mut hits = Vec::new();
    for (i, stmt) in ctx.stmts.iter().enumerate() {
        let Some((rel, cmds)) = alter_table(stmt) else {
            continue;
        };
        let table = ast::rel_name(rel);
        if !ctx.existing(i, &table) {
            continue;
        }
        for cmd in cmds
            .iter()
            .filter(|c| subtype(c) == AlterTableType::AtDetachPartition)
        {
            let Some(part) = ast::partition_cmd(cmd) else {
                continue;
            };
            // Before PostgreSQL 14 there is no concurrent detach to suggest.
            if part.concurrent || !ctx.opts.pg_at_least(14) {
                continue;
            }
            let name = part.name.as_ref().map(ast::rel_name).unwrap_or_default();
            hits.push(
                Hit::new(
                    i,
                    format!("DETACH PARTITION {name} takes ACCESS EXCLUSIVE on `{table}`, blocking all its partitions"),
                )
                .table(&table)
                .help(Some(format!(
                    "{} CONCURRENTLY; -- outside a transaction block",
                    stmt.text.trim_end_matches(';')
                ))),
            );
        }
    }
    hits
}

#[cfg(test)]
mod tests {
    use crate::rules::testing::*;

    const ID: &str = "detach-partition-not-concurrently";

    #[test]
    fn flags_plain_detach() {
        assert_eq!(
            hits(ID, "ALTER TABLE events DETACH PARTITION events_2020").len(),
            1
        );
    }

    #[test]
    fn silent_before_14() {
        let setup = Setup {
            pg_version: Some(13),
            ..Setup::default()
        };
        assert!(hits_with(ID, "ALTER TABLE events DETACH PARTITION events_2020", setup).is_empty());
    }

    #[test]
    fn allows_concurrent_detach() {
        assert!(hits(
            ID,
            "ALTER TABLE events DETACH PARTITION events_2020 CONCURRENTLY"
        )
        .is_empty());
        assert!(hits(
            ID,
            "ALTER TABLE events ATTACH PARTITION e FOR VALUES IN (1)"
        )
        .is_empty());
    }

    #[test]
    fn documented() {
        assert_documented(ID);
    }
}
