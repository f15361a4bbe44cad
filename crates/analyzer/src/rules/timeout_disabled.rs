//! `timeout-disabled`

use pg_query::NodeEnum;

use super::{Category, Rule};
use crate::lint::{FileCtx, Hit, Runner, Severity};

pub(crate) static RULE: Rule = Rule {
    id: "timeout-disabled",
    summary: "SET lock_timeout = 0 or statement_timeout = 0 in a migration",
    doc: DOC,
    default_severity: Severity::Warning,
    opt_in: false,
    size_sensitive: false,
    category: Category::Locking,
    check,
};

const DOC: &str = "\
timeout-disabled: SET lock_timeout = 0 or statement_timeout = 0 in a migration

What it flags
  SET [LOCAL] lock_timeout or statement_timeout to 0 (or '0', '0s', ...),
  which turns the limit off for the rest of the session or transaction.

Why it hurts
  Without a lock_timeout a DDL statement that waits behind a long
  transaction queues every later query on the table behind itself: the
  outage the timeout exists to prevent. Without a statement_timeout a
  runaway backfill or index build holds its locks for as long as it runs.

Safe alternative
  Set a bound instead, as long as the statement really needs:

    SET lock_timeout = '2s';
    SET statement_timeout = '30min';  -- for a long, non-blocking build

  `lull migrate` does not run a file's SET of either setting: its policy
  sets both for every step, and `lull plan` lists the SET as not run. The
  finding still matters for any other runner that applies the file.
";

fn check(ctx: &FileCtx) -> Vec<Hit> {
    let mut hits = Vec::new();
    for (i, stmt) in ctx.stmts.iter().enumerate() {
        let NodeEnum::VariableSetStmt(s) = stmt.ast() else {
            continue;
        };
        if s.name != "lock_timeout" && s.name != "statement_timeout" {
            continue;
        }
        if s.args.len() == 1 && is_zero(&s.args[0]) {
            let lull = if ctx.runner == Runner::Lull {
                " (`lull migrate` does not run it: its policy sets the timeout per step; other runners do)"
            } else {
                ""
            };
            hits.push(
                Hit::new(
                    i,
                    format!(
                        "`{}` = 0 removes the bound: a blocked or runaway statement waits forever{lull}",
                        s.name
                    ),
                )
                .help(Some(format!(
                    "SET {} = '2s';  -- or as long as the statement really needs",
                    s.name
                ))),
            );
        }
    }
    hits
}

fn is_zero(node: &pg_query::protobuf::Node) -> bool {
    use pg_query::protobuf::a_const::Val;
    let Some(NodeEnum::AConst(c)) = &node.node else {
        return false;
    };
    match &c.val {
        Some(Val::Ival(v)) => v.ival == 0,
        Some(Val::Fval(v)) => v.fval.parse::<f64>().is_ok_and(|f| f == 0.0),
        Some(Val::Sval(v)) => {
            let digits: String = v
                .sval
                .trim()
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .collect();
            !digits.is_empty() && digits.parse::<f64>().is_ok_and(|f| f == 0.0)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use crate::rules::testing::*;

    const ID: &str = "timeout-disabled";

    #[test]
    fn flags_disabled_timeouts() {
        assert_eq!(hits(ID, "SET lock_timeout = 0").len(), 1);
        assert_eq!(hits(ID, "SET LOCAL statement_timeout TO '0'").len(), 1);
        assert_eq!(hits(ID, "SET statement_timeout = '0s'").len(), 1);
    }

    #[test]
    fn allows_bounds() {
        assert!(hits(ID, "SET lock_timeout = '2s'").is_empty());
        assert!(hits(ID, "SET statement_timeout = 5000").is_empty());
        assert!(hits(ID, "SET work_mem = 0").is_empty());
    }

    #[test]
    fn documented() {
        assert_documented(ID);
    }
}
