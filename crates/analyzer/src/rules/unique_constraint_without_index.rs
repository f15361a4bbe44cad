//! `unique-constraint-without-index`

use pg_query::protobuf::ConstrType;

use super::{added_column, added_constraint, alter_table, contype, Category, Rule};
use crate::ast;
use crate::lint::{FileCtx, Hit, Severity};

pub(crate) static RULE: Rule = Rule {
    id: "unique-constraint-without-index",
    summary: "UNIQUE or PRIMARY KEY added without USING INDEX",
    doc: DOC,
    default_severity: Severity::Error,
    opt_in: false,
    size_sensitive: true,
    category: Category::Locking,
    check,
};

const DOC: &str = "\
unique-constraint-without-index: UNIQUE or PRIMARY KEY added without USING INDEX

What it flags
  ALTER TABLE ... ADD UNIQUE / PRIMARY KEY (or ADD COLUMN ... UNIQUE /
  PRIMARY KEY) on an existing table, where the constraint builds its own
  index instead of using one built concurrently.

Why it hurts
  The index is built while the table holds ACCESS EXCLUSIVE: no reads and
  no writes for as long as the build takes.

Safe alternative
  Build the unique index CONCURRENTLY, then attach it; the attach is a
  catalog change with a brief lock:

    CREATE UNIQUE INDEX CONCURRENTLY users_email_key ON users (email);
    ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE USING INDEX users_email_key;

  For a PRIMARY KEY the columns should already be NOT NULL, or the attach
  scans the table to check them.
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
        for cmd in &cmds {
            let builds_index = match (added_constraint(cmd), added_column(cmd)) {
                (Some(c), _) => {
                    matches!(
                        contype(c),
                        ConstrType::ConstrUnique | ConstrType::ConstrPrimary
                    ) && c.indexname.is_empty()
                }
                (None, Some(col)) => {
                    col.constraints
                        .iter()
                        .filter_map(ast::as_constraint)
                        .any(|c| {
                            matches!(
                                contype(c),
                                ConstrType::ConstrUnique | ConstrType::ConstrPrimary
                            )
                        })
                }
                _ => false,
            };
            if builds_index {
                hits.push(
                    Hit::new(
                        i,
                        format!(
                            "UNIQUE / PRIMARY KEY on `{table}` builds its index under ACCESS EXCLUSIVE, \
                             blocking reads and writes for the whole build"
                        ),
                    )
                    .table(&table)
                    .help(ctx.safe_sql(i)),
                );
            }
        }
    }
    hits
}

#[cfg(test)]
mod tests {
    use crate::rules::testing::*;

    const ID: &str = "unique-constraint-without-index";

    #[test]
    fn flags_constraints_that_build_an_index() {
        assert_eq!(
            hits(ID, "ALTER TABLE u ADD CONSTRAINT k UNIQUE (email)").len(),
            1
        );
        assert_eq!(hits(ID, "ALTER TABLE u ADD PRIMARY KEY (id)").len(), 1);
        assert_eq!(
            hits(ID, "ALTER TABLE u ADD COLUMN code text UNIQUE").len(),
            1
        );
    }

    #[test]
    fn allows_using_index_and_new_tables() {
        assert!(hits(ID, "ALTER TABLE u ADD CONSTRAINT k UNIQUE USING INDEX k").is_empty());
        assert!(hits(ID, "CREATE TABLE u (e text); ALTER TABLE u ADD UNIQUE (e)").is_empty());
    }

    #[test]
    fn documented() {
        assert_documented(ID);
    }
}
