//! `refresh-matview-not-concurrently`

use pg_query::NodeEnum;

use super::{Category, Rule};
use crate::ast;
use crate::lint::{FileCtx, Hit, Severity};

pub(crate) static RULE: Rule = Rule {
    id: "refresh-matview-not-concurrently",
    summary: "REFRESH MATERIALIZED VIEW without CONCURRENTLY",
    doc: DOC,
    default_severity: Severity::Warning,
    opt_in: false,
    size_sensitive: true,
    category: Category::Locking,
    check,
};

const DOC: &str = "\
refresh-matview-not-concurrently: REFRESH MATERIALIZED VIEW without CONCURRENTLY

What it flags
  REFRESH MATERIALIZED VIEW without CONCURRENTLY on a materialized view
  that existed before the run.

Why it hurts
  A plain refresh takes ACCESS EXCLUSIVE on the view for the whole
  refresh: every query reading it waits.

Safe alternative
  Refresh CONCURRENTLY (needs a unique index on the view); it takes
  EXCLUSIVE, which still allows reads:

    CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS daily_totals_day ON daily_totals (day);
    REFRESH MATERIALIZED VIEW CONCURRENTLY daily_totals;
";

fn check(ctx: &FileCtx) -> Vec<Hit> {
    let mut hits = Vec::new();
    for (i, stmt) in ctx.stmts.iter().enumerate() {
        let NodeEnum::RefreshMatViewStmt(s) = stmt.ast() else {
            continue;
        };
        let Some(rel) = &s.relation else { continue };
        let view = ast::rel_name(rel);
        if s.concurrent || s.skip_data || !ctx.existing(i, &view) {
            continue;
        }
        let help = format!(
            "REFRESH MATERIALIZED VIEW CONCURRENTLY {};",
            crate::sql::quote_qualified(ast::rel_schema(rel), &rel.relname)
        );
        hits.push(
            Hit::new(i, format!("REFRESH of `{view}` takes ACCESS EXCLUSIVE, blocking every read of it until done"))
                .table(&view)
                .help(Some(help)),
        );
    }
    hits
}

#[cfg(test)]
mod tests {
    use crate::rules::testing::*;

    const ID: &str = "refresh-matview-not-concurrently";

    #[test]
    fn flags_plain_refresh() {
        assert_eq!(hits(ID, "REFRESH MATERIALIZED VIEW totals").len(), 1);
    }

    #[test]
    fn allows_concurrent_refresh() {
        assert!(hits(ID, "REFRESH MATERIALIZED VIEW CONCURRENTLY totals").is_empty());
        assert!(hits(
            ID,
            "CREATE MATERIALIZED VIEW totals AS SELECT 1; REFRESH MATERIALIZED VIEW totals"
        )
        .is_empty());
    }

    #[test]
    fn documented() {
        assert_documented(ID);
    }
}
