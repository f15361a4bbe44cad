//! `exclusion-constraint`

use pg_query::protobuf::ConstrType;

use super::{added_constraint, alter_table, contype, Category, Rule};
use crate::ast;
use crate::lint::{FileCtx, Hit, Severity};

pub(crate) static RULE: Rule = Rule {
    id: "exclusion-constraint",
    summary: "ADD CONSTRAINT ... EXCLUDE on an existing table",
    doc: DOC,
    default_severity: Severity::Error,
    opt_in: false,
    size_sensitive: true,
    category: Category::Locking,
    check,
};

const DOC: &str = "\
exclusion-constraint: ADD CONSTRAINT ... EXCLUDE on an existing table

What it flags
  ALTER TABLE ... ADD CONSTRAINT ... EXCLUDE on a table that existed
  before the run.

Why it hurts
  The exclusion constraint builds its index and checks every row under
  ACCESS EXCLUSIVE: no reads, no writes, for the whole build. Unlike
  UNIQUE there is no USING INDEX form and no NOT VALID, so there is no
  online way to add it.

Safe alternative
  Add it when the table is created, or to a new empty table that you fill
  in batches and swap in; otherwise schedule it in a maintenance window
  with a bounded lock wait:

    SET lock_timeout = '2s';
    ALTER TABLE bookings ADD CONSTRAINT no_overlap EXCLUDE USING gist (room WITH =, during WITH &&);
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
        if cmds
            .iter()
            .filter_map(|c| added_constraint(c))
            .any(|c| contype(c) == ConstrType::ConstrExclusion)
        {
            hits.push(
                Hit::new(
                    i,
                    format!(
                        "EXCLUDE constraint on `{table}` builds its index under ACCESS EXCLUSIVE; \
                         it has no online form"
                    ),
                )
                .table(&table),
            );
        }
    }
    hits
}

#[cfg(test)]
mod tests {
    use crate::rules::testing::*;

    const ID: &str = "exclusion-constraint";

    #[test]
    fn flags_exclusion_constraints_on_existing_tables() {
        assert_eq!(
            hits(
                ID,
                "ALTER TABLE b ADD CONSTRAINT x EXCLUDE USING gist (r WITH &&)"
            )
            .len(),
            1
        );
    }

    #[test]
    fn allows_new_tables() {
        assert!(hits(ID, "CREATE TABLE b (r int4range); ALTER TABLE b ADD CONSTRAINT x EXCLUDE USING gist (r WITH &&)").is_empty());
        assert!(hits(ID, "ALTER TABLE b ADD CONSTRAINT u UNIQUE (r)").is_empty());
    }

    #[test]
    fn documented() {
        assert_documented(ID);
    }
}
