//! `unnamed-index`

use pg_query::NodeEnum;

use super::{Category, Rule};
use crate::lint::{FileCtx, Hit, Severity};

pub(crate) static RULE: Rule = Rule {
    id: "unnamed-index",
    summary: "CREATE INDEX without a name",
    doc: DOC,
    default_severity: Severity::Warning,
    opt_in: false,
    size_sensitive: false,
    category: Category::Process,
    check,
};

const DOC: &str = "\
unnamed-index: CREATE INDEX without a name

What it flags
  CREATE INDEX ... ON t (...) with no index name.

Why it hurts
  PostgreSQL picks a name (t_a_idx, t_a_idx1, ...), so IF NOT EXISTS
  cannot work, a retried CONCURRENTLY build creates a second index instead
  of finding the first, and the down migration cannot name what to drop.

Safe alternative
  Name every index:

    CREATE INDEX CONCURRENTLY IF NOT EXISTS orders_user_id_idx ON orders (user_id);
";

fn check(ctx: &FileCtx) -> Vec<Hit> {
    let mut hits = Vec::new();
    for (i, stmt) in ctx.stmts.iter().enumerate() {
        let NodeEnum::IndexStmt(s) = stmt.ast() else {
            continue;
        };
        if s.idxname.is_empty() {
            let table = s
                .relation
                .as_ref()
                .map(|r| r.relname.clone())
                .unwrap_or_default();
            hits.push(Hit::new(
                i,
                format!(
                    "index on `{table}` has no name, so IF NOT EXISTS and retries cannot find it"
                ),
            ));
        }
    }
    hits
}

#[cfg(test)]
mod tests {
    use crate::rules::testing::*;

    const ID: &str = "unnamed-index";

    #[test]
    fn flags_unnamed_indexes() {
        assert_eq!(hits(ID, "CREATE INDEX ON t (a)").len(), 1);
        assert_eq!(hits(ID, "CREATE INDEX CONCURRENTLY ON t (a)").len(), 1);
    }

    #[test]
    fn allows_named_indexes() {
        assert!(hits(ID, "CREATE INDEX t_a ON t (a)").is_empty());
    }

    #[test]
    fn documented() {
        assert_documented(ID);
    }
}
