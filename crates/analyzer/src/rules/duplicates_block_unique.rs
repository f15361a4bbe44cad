//! `duplicates-block-unique`

use pg_query::protobuf::ConstrType;
use pg_query::NodeEnum;

use super::{added_constraint, alter_table, contype, Category, Rule};
use crate::ast;
use crate::data::{self, Probe};
use crate::lint::{FileCtx, Hit, Severity};
use crate::parse::Statement;

pub(crate) static RULE: Rule = Rule {
    id: "duplicates-block-unique",
    summary: "a UNIQUE index or constraint that today's rows already violate (with a database)",
    doc: DOC,
    default_severity: Severity::Error,
    opt_in: false,
    size_sensitive: false,
    category: Category::Process,
    check,
};

const DOC: &str = "\
duplicates-block-unique: a UNIQUE index or constraint that today's rows already violate

What it flags
  With a database URL only: CREATE UNIQUE INDEX, ADD UNIQUE and ADD PRIMARY
  KEY on an existing table whose rows already repeat the key (rows with a
  NULL in the key do not clash unless NULLS NOT DISTINCT; a partial index
  counts only the rows its WHERE selects). lull counts the duplicate
  groups with one bounded query (at most 1000 groups, a statement timeout
  of a few seconds, read-only); when it cannot answer, it says so as
  information.

Why it hurts
  The build runs for its whole length and then fails: a plain build holds
  its SHARE lock on the table for nothing, a CONCURRENTLY build leaves an
  INVALID index behind that every write still maintains, and the deploy
  stops half-way.

Safe alternative
  Find and resolve the duplicates first, then build:

    SELECT email, count(*) FROM users GROUP BY email HAVING count(*) > 1;
    -- merge or delete them, then
    CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS users_email_key ON users (email);
";

/// The duplicate probe of a statement that adds uniqueness.
fn probe(stmt: &Statement) -> Vec<(String, Probe)> {
    match stmt.ast() {
        NodeEnum::IndexStmt(s) if s.unique => {
            let Some(rel) = s.relation.as_ref() else {
                return Vec::new();
            };
            let keys: Option<Vec<_>> = s.index_params.iter().map(data::index_key).collect();
            keys.and_then(|keys| {
                data::duplicates(
                    rel,
                    keys,
                    s.where_clause.as_deref().cloned(),
                    !s.nulls_not_distinct,
                )
            })
            .map(|p| (ast::rel_name(rel), p))
            .into_iter()
            .collect()
        }
        _ => {
            let Some((rel, cmds)) = alter_table(stmt) else {
                return Vec::new();
            };
            cmds.into_iter()
                .filter_map(added_constraint)
                .filter(|c| {
                    matches!(
                        contype(c),
                        ConstrType::ConstrUnique | ConstrType::ConstrPrimary
                    ) && c.indexname.is_empty()
                })
                .filter_map(|c| {
                    let cols: Vec<String> = c
                        .keys
                        .iter()
                        .filter_map(ast::string_value)
                        .map(str::to_string)
                        .collect();
                    data::duplicates(rel, data::column_keys(&cols), None, !c.nulls_not_distinct)
                })
                .map(|p| (ast::rel_name(rel), p))
                .collect()
        }
    }
}

fn check(ctx: &FileCtx) -> Vec<Hit> {
    data::count_hits(ctx, probe, "duplicate keys", |i, table, n, probe| {
        Hit::new(
            i,
            format!(
                "`{table}` already holds {} of rows that share this key: the unique build fails on today's data",
                data::counted(n, "group", "groups")
            ),
        )
        .help(Some(format!(
            "resolve the duplicates before this migration runs; lull counted them with:\n{}",
            probe.sql
        )))
    })
}

#[cfg(test)]
mod tests {
    use crate::rules::testing::{assert_documented, hits};

    #[test]
    fn documented_and_silent_without_a_database() {
        assert_documented("duplicates-block-unique");
        assert!(hits("duplicates-block-unique", "CREATE UNIQUE INDEX ON t (a);").is_empty());
    }
}
