//! `enum-value-used-in-transaction`

use pg_query::NodeEnum;

use super::{Category, Rule};
use crate::lint::{FileCtx, Hit, Severity};

pub(crate) static RULE: Rule = Rule {
    id: "enum-value-used-in-transaction",
    summary: "a value added by ALTER TYPE ... ADD VALUE used in the same transaction",
    doc: DOC,
    default_severity: Severity::Error,
    opt_in: false,
    size_sensitive: false,
    category: Category::Compatibility,
    check,
};

const DOC: &str = "\
enum-value-used-in-transaction: a value added by ALTER TYPE ... ADD VALUE used in the same transaction

What it flags
  ALTER TYPE ... ADD VALUE 'x' followed, in the same transaction, by a
  statement that uses 'x' (a DEFAULT, an UPDATE, a CHECK, an INSERT).

Why it hurts
  PostgreSQL refuses to use a new enum value before the transaction that
  added it commits: \"unsafe use of new value\" (SQLSTATE 55P04). The
  migration fails at deploy time, after its earlier statements ran.

Safe alternative
  Add the value in its own migration (or commit between the two):

    ALTER TYPE order_status ADD VALUE IF NOT EXISTS 'refunded';
    -- next migration:
    UPDATE orders SET status = 'refunded' WHERE refunded_at IS NOT NULL;
";

fn check(ctx: &FileCtx) -> Vec<Hit> {
    let mut hits = Vec::new();
    for (i, stmt) in ctx.stmts.iter().enumerate() {
        let NodeEnum::AlterEnumStmt(s) = stmt.ast() else {
            continue;
        };
        if s.new_val.is_empty() || !s.old_val.is_empty() || !ctx.info[i].in_transaction {
            continue;
        }
        let literal = format!("'{}'", s.new_val.replace('\'', "''"));
        let group = ctx.info[i].group;
        if let Some(j) = (i + 1..ctx.stmts.len()).find(|&j| {
            ctx.info[j].in_transaction
                && ctx.info[j].group == group
                && ctx.stmts[j].text.contains(&literal)
        }) {
            hits.push(
                Hit::new(
                    j,
                    format!("{literal} was added to the enum in this same transaction; PostgreSQL refuses to use it before that commits (55P04)"),
                )
                .help(Some("move the statement using the new value to a later migration".into())),
            );
        }
    }
    hits
}

#[cfg(test)]
mod tests {
    use crate::lint::Runner;
    use crate::rules::testing::*;

    const ID: &str = "enum-value-used-in-transaction";

    fn wrapped(sql: &str) -> Vec<String> {
        hits_with(
            ID,
            sql,
            Setup {
                runner: Runner::Transactional,
                ..Setup::default()
            },
        )
    }

    #[test]
    fn flags_a_new_value_used_in_the_same_transaction() {
        let sql =
            "ALTER TYPE s ADD VALUE 'refunded'; UPDATE o SET status = 'refunded' WHERE id = 1";
        assert_eq!(wrapped(sql).len(), 1);
        assert_eq!(hits(ID, sql).len(), 1, "lull runs both in one transaction");
    }

    #[test]
    fn allows_use_after_commit_or_other_values() {
        assert!(wrapped("ALTER TYPE s ADD VALUE 'a'; UPDATE o SET status = 'b'").is_empty());
        let auto = Setup {
            runner: Runner::Autocommit,
            ..Setup::default()
        };
        assert!(hits_with(
            ID,
            "ALTER TYPE s ADD VALUE 'a'; UPDATE o SET status = 'a'",
            auto
        )
        .is_empty());
        assert!(hits(
            ID,
            "BEGIN; ALTER TYPE s ADD VALUE 'a'; COMMIT; UPDATE o SET status = 'a'"
        )
        .is_empty());
    }

    #[test]
    fn documented() {
        assert_documented(ID);
    }
}
