//! `too-many-index-builds`

use pg_query::protobuf::ConstrType;
use pg_query::NodeEnum;

use super::{added_constraint, alter_table, contype, Category, Rule};
use crate::ast;
use crate::lint::{FileCtx, Hit, Severity};

pub(crate) static RULE: Rule = Rule {
    id: "too-many-index-builds",
    summary: "more index builds on existing tables in one migration than max_index_builds",
    doc: DOC,
    default_severity: Severity::Warning,
    opt_in: false,
    size_sensitive: false,
    category: Category::Process,
    check,
};

const DOC: &str = "\
too-many-index-builds: more index builds on existing tables in one migration than max_index_builds

What it flags
  A migration that builds more indexes on pre-existing tables than
  `[lint] max_index_builds` (default 3): CREATE INDEX, REINDEX, and UNIQUE
  / PRIMARY KEY / EXCLUDE constraints that build their own index.

Why it hurts
  Each build reads the whole table and competes for I/O, CPU and
  maintenance_work_mem with production traffic; CONCURRENTLY builds also
  wait for every older transaction, so a batch of them can take hours and
  fail half way, leaving INVALID indexes behind.

Safe alternative
  Split the builds across migrations (or let `lull indexes build` run them
  one at a time inside a safe window):

    -- 0042_orders_user_id_idx.sql
    CREATE INDEX CONCURRENTLY IF NOT EXISTS orders_user_id_idx ON orders (user_id);
    -- 0043_orders_created_at_idx.sql
    CREATE INDEX CONCURRENTLY IF NOT EXISTS orders_created_at_idx ON orders (created_at);
";

fn check(ctx: &FileCtx) -> Vec<Hit> {
    let mut count = 0usize;
    for (i, stmt) in ctx.stmts.iter().enumerate() {
        let builds = match stmt.ast() {
            NodeEnum::IndexStmt(_) | NodeEnum::ReindexStmt(_) => stmt
                .facts
                .index
                .as_ref()
                .and_then(|x| x.table.as_ref())
                .is_none_or(|t| ctx.existing(i, t)),
            _ => alter_table(stmt).is_some_and(|(rel, cmds)| {
                ctx.existing(i, &ast::rel_name(rel))
                    && cmds.iter().filter_map(|c| added_constraint(c)).any(|c| {
                        matches!(
                            contype(c),
                            ConstrType::ConstrUnique
                                | ConstrType::ConstrPrimary
                                | ConstrType::ConstrExclusion
                        ) && c.indexname.is_empty()
                    })
            }),
        };
        if builds {
            count += 1;
            if count == ctx.opts.max_index_builds + 1 {
                return vec![Hit::new(
                    i,
                    format!(
                        "index build number {count} in this migration (max_index_builds = {})",
                        ctx.opts.max_index_builds
                    ),
                )
                .help(Some(
                    "split the builds across migrations, or queue them with `lull indexes build`"
                        .into(),
                ))];
            }
        }
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use crate::rules::testing::*;

    const ID: &str = "too-many-index-builds";

    #[test]
    fn flags_the_build_over_the_limit() {
        let sql = "CREATE INDEX CONCURRENTLY a ON t (a); CREATE INDEX CONCURRENTLY b ON t (b); \
                   REINDEX INDEX CONCURRENTLY c; ALTER TABLE t ADD UNIQUE (d)";
        let found = hits(ID, sql);
        assert_eq!(found.len(), 1);
        assert!(found[0].contains("number 4"));
    }

    #[test]
    fn allows_up_to_the_limit_and_new_tables() {
        assert!(hits(
            ID,
            "CREATE INDEX a ON t (a); CREATE INDEX b ON t (b); CREATE INDEX c ON t (c)"
        )
        .is_empty());
        let sql =
            "CREATE TABLE n (a int, b int); CREATE INDEX a ON n (a); CREATE INDEX b ON n (b); \
                   CREATE INDEX c ON n (a, b); CREATE INDEX d ON n (b, a)";
        assert!(hits(ID, sql).is_empty());
    }

    #[test]
    fn documented() {
        assert_documented(ID);
    }
}
