//! `nulls-block-not-null`

use pg_query::protobuf::{AlterTableType, ConstrType};

use super::{added_constraint, alter_table, contype, subtype, Category, Rule};
use crate::ast;
use crate::data::{self, Probe};
use crate::lint::{FileCtx, Hit, Severity};
use crate::parse::Statement;

pub(crate) static RULE: Rule = Rule {
    id: "nulls-block-not-null",
    summary: "SET NOT NULL or a PRIMARY KEY on columns that hold NULLs today (with a database)",
    doc: DOC,
    default_severity: Severity::Error,
    opt_in: false,
    size_sensitive: false,
    category: Category::Process,
    check,
};

const DOC: &str = "\
nulls-block-not-null: SET NOT NULL or a PRIMARY KEY on columns that hold NULLs today

What it flags
  With a database URL only: ALTER COLUMN ... SET NOT NULL and ADD PRIMARY
  KEY (cols) on an existing table when rows with a NULL there exist
  today. lull counts them with one bounded query (at most 1000 rows, a
  statement timeout of a few seconds, read-only); when it cannot answer,
  it says so as information.

Why it hurts
  The statement scans the table under ACCESS EXCLUSIVE (or validates a
  CHECK for minutes) and then fails; the deploy stops half-way.

Safe alternative
  Fill the NULLs first (in batches: `lull backfill run`), then constrain:

    UPDATE users SET email = '' WHERE email IS NULL;   -- batched by lull migrate
    ALTER TABLE users ADD CONSTRAINT users_email_lull_nn CHECK (email IS NOT NULL) NOT VALID;
    ALTER TABLE users VALIDATE CONSTRAINT users_email_lull_nn;
    ALTER TABLE users ALTER COLUMN email SET NOT NULL;
";

/// The NULL probes of a statement that forbids NULLs.
fn probes(stmt: &Statement) -> Vec<(String, Probe)> {
    let Some((rel, cmds)) = alter_table(stmt) else {
        return Vec::new();
    };
    let table = ast::rel_name(rel);
    let mut out = Vec::new();
    for cmd in cmds {
        let cols: Vec<String> = if subtype(cmd) == AlterTableType::AtSetNotNull {
            vec![cmd.name.clone()]
        } else if let Some(c) = added_constraint(cmd)
            .filter(|c| contype(c) == ConstrType::ConstrPrimary && c.indexname.is_empty())
        {
            c.keys
                .iter()
                .filter_map(ast::string_value)
                .map(str::to_string)
                .collect()
        } else {
            continue;
        };
        out.extend(data::nulls(rel, &cols).map(|p| (table.clone(), p)));
    }
    out
}

fn check(ctx: &FileCtx) -> Vec<Hit> {
    data::count_hits(ctx, probes, "NULLs", |i, table, n, probe| {
        Hit::new(
            i,
            format!(
                "`{table}` has {} with a NULL there today: this statement fails on today's data",
                data::counted(n, "row", "rows")
            ),
        )
        .help(Some(format!(
            "fill or delete those rows first (`lull backfill run --sql \"UPDATE …\"`); lull counted them with:\n{}",
            probe.sql
        )))
    })
}

#[cfg(test)]
mod tests {
    use crate::rules::testing::{assert_documented, hits};

    #[test]
    fn documented_and_silent_without_a_database() {
        assert_documented("nulls-block-not-null");
        assert!(hits(
            "nulls-block-not-null",
            "ALTER TABLE t ALTER COLUMN a SET NOT NULL;"
        )
        .is_empty());
    }
}
