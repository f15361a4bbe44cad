//! `reindex-not-concurrently`

use pg_query::protobuf::ReindexObjectType;
use pg_query::NodeEnum;

use super::{Category, Rule};
use crate::ast;
use crate::lint::{FileCtx, Hit, Severity};

pub(crate) static RULE: Rule = Rule {
    id: "reindex-not-concurrently",
    summary: "REINDEX without CONCURRENTLY",
    doc: DOC,
    default_severity: Severity::Error,
    opt_in: false,
    size_sensitive: true,
    category: Category::Locking,
    check,
};

const DOC: &str = "\
reindex-not-concurrently: REINDEX without CONCURRENTLY

What it flags
  REINDEX INDEX / TABLE / SCHEMA / DATABASE without CONCURRENTLY.

Why it hurts
  A plain REINDEX takes SHARE on the table (blocking every write) and
  ACCESS EXCLUSIVE on each index it rebuilds (blocking every query that
  would use it) for the whole rebuild.

Safe alternative
  Rebuild CONCURRENTLY (PostgreSQL 12+), outside a transaction block:

    REINDEX INDEX CONCURRENTLY orders_user_id_idx;
";

fn check(ctx: &FileCtx) -> Vec<Hit> {
    let mut hits = Vec::new();
    for (i, stmt) in ctx.stmts.iter().enumerate() {
        let NodeEnum::ReindexStmt(s) = stmt.ast() else {
            continue;
        };
        // REINDEX SYSTEM cannot run concurrently: there is no safe form
        // to suggest, and it is not something a migration does by accident.
        if ast::has_option(&s.params, "concurrently")
            || s.kind == ReindexObjectType::ReindexObjectSystem as i32
        {
            continue;
        }
        let target = s
            .relation
            .as_ref()
            .map(ast::rel_name)
            .unwrap_or_else(|| s.name.clone());
        if s.relation.is_some() && !ctx.existing(i, &target) {
            continue;
        }
        let help = if ctx.opts.pg_at_least(12) {
            ctx.safe_sql(i)
        } else {
            Some("REINDEX CONCURRENTLY needs PostgreSQL 12: build a new index CONCURRENTLY, drop the old one CONCURRENTLY, then rename the new one".to_string())
        };
        let mut hit = Hit::new(
            i,
            format!("REINDEX of `{target}` blocks writes to the table and queries using the index until it finishes"),
        )
        .help(help);
        if s.kind == ReindexObjectType::ReindexObjectTable as i32 {
            hit = hit.table(&target);
        }
        hits.push(hit);
    }
    hits
}

#[cfg(test)]
mod tests {
    use crate::rules::testing::*;

    const ID: &str = "reindex-not-concurrently";

    #[test]
    fn flags_plain_reindex() {
        assert_eq!(hits(ID, "REINDEX INDEX i").len(), 1);
        assert_eq!(hits(ID, "REINDEX TABLE t").len(), 1);
    }

    #[test]
    fn allows_concurrent_reindex_and_reindex_system() {
        assert!(hits(ID, "REINDEX SYSTEM app").is_empty());
        assert_eq!(hits(ID, "REINDEX DATABASE app").len(), 1);
        assert!(hits(ID, "REINDEX INDEX CONCURRENTLY i").is_empty());
        assert!(hits(ID, "REINDEX (CONCURRENTLY) TABLE t").is_empty());
    }

    #[test]
    fn documented() {
        assert_documented(ID);
    }
}
