//! `drop-index-not-concurrently`

use pg_query::protobuf::ObjectType;
use pg_query::NodeEnum;

use super::{Category, Rule};
use crate::ast;
use crate::lint::{FileCtx, Hit, Severity};

pub(crate) static RULE: Rule = Rule {
    id: "drop-index-not-concurrently",
    summary: "DROP INDEX without CONCURRENTLY",
    doc: DOC,
    default_severity: Severity::Error,
    opt_in: false,
    size_sensitive: false,
    category: Category::Locking,
    check,
};

const DOC: &str = "\
drop-index-not-concurrently: DROP INDEX without CONCURRENTLY

What it flags
  DROP INDEX without CONCURRENTLY, for an index that existed before this
  migration run.

Why it hurts
  A plain DROP INDEX takes ACCESS EXCLUSIVE on the index's table. While it
  waits for running queries to finish, every later query on the table -
  even a SELECT - queues behind it.

Safe alternative
  Drop it CONCURRENTLY, outside a transaction block, one index per
  statement (no CASCADE):

    DROP INDEX CONCURRENTLY IF EXISTS orders_user_id_idx;
";

fn check(ctx: &FileCtx) -> Vec<Hit> {
    let mut hits = Vec::new();
    for (i, stmt) in ctx.stmts.iter().enumerate() {
        let NodeEnum::DropStmt(s) = stmt.ast() else {
            continue;
        };
        if s.remove_type != ObjectType::ObjectIndex as i32 || s.concurrent {
            continue;
        }
        let names: Vec<String> = s
            .objects
            .iter()
            .filter_map(ast::dotted_name)
            .filter(|n| ctx.existing(i, n))
            .collect();
        if names.is_empty() {
            continue;
        }
        hits.push(
            Hit::new(
                i,
                format!(
                    "DROP INDEX {} takes ACCESS EXCLUSIVE on its table, blocking reads and writes while it waits",
                    names.join(", ")
                ),
            )
            .help(ctx.safe_sql(i)),
        );
    }
    hits
}

#[cfg(test)]
mod tests {
    use crate::rules::testing::*;

    const ID: &str = "drop-index-not-concurrently";

    #[test]
    fn flags_plain_drop_index() {
        assert_eq!(hits(ID, "DROP INDEX IF EXISTS i").len(), 1);
    }

    #[test]
    fn allows_concurrent_drops_and_new_indexes() {
        assert!(hits(ID, "DROP INDEX CONCURRENTLY IF EXISTS i").is_empty());
        assert!(hits(
            ID,
            "CREATE TABLE t (a int); CREATE INDEX i ON t (a); DROP INDEX i"
        )
        .is_empty());
        assert!(hits(ID, "DROP TABLE t").is_empty());
    }

    #[test]
    fn documented() {
        assert_documented(ID);
    }
}
