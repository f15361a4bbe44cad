//! `primary-key-using-index`

use pg_query::protobuf::ConstrType;

use super::{added_constraint, alter_table, contype, Category, Rule};
use crate::ast;
use crate::lint::{FileCtx, Hit, Severity};
use crate::safe::choose_constraint_name;
use crate::sql::{quote_ident, quote_qualified};

pub(crate) static RULE: Rule = Rule {
    id: "primary-key-using-index",
    summary: "ADD PRIMARY KEY USING INDEX on columns not known to be NOT NULL",
    doc: DOC,
    default_severity: Severity::Error,
    opt_in: false,
    size_sensitive: true,
    category: Category::Locking,
    check,
};

const DOC: &str = "\
primary-key-using-index: ADD PRIMARY KEY USING INDEX on columns not known to be NOT NULL

What it flags
  ALTER TABLE ... ADD [CONSTRAINT c] PRIMARY KEY USING INDEX idx on an
  existing table when a column of the index is not known to be NOT NULL:
  not declared NOT NULL (or part of a primary key) earlier in the history
  or this file, not SET NOT NULL since, and (PostgreSQL 12+) without a
  validated CHECK (col IS NOT NULL). When the history does not say which
  columns the index covers, it is a warning.

Why it hurts
  Attaching the index is quick, but a primary key needs NOT NULL columns:
  PostgreSQL runs SET NOT NULL on every nullable one, which scans the
  whole table under ACCESS EXCLUSIVE - no reads and no writes for the
  length of the scan. The concurrent unique index built beforehand saves
  nothing if this step then scans.

Safe alternative
  Prove each column NOT NULL first with a CHECK validated under SHARE
  UPDATE EXCLUSIVE (reads and writes continue); SET NOT NULL then skips
  the scan (PostgreSQL 12+), and so does the primary key:

    ALTER TABLE users ADD CONSTRAINT users_id_lull_nn CHECK (id IS NOT NULL) NOT VALID;
    ALTER TABLE users VALIDATE CONSTRAINT users_id_lull_nn;
    ALTER TABLE users ALTER COLUMN id SET NOT NULL;
    ALTER TABLE users DROP CONSTRAINT users_id_lull_nn;
    ALTER TABLE users ADD CONSTRAINT users_pkey PRIMARY KEY USING INDEX users_id_idx;
";

fn check(ctx: &FileCtx) -> Vec<Hit> {
    let mut hits = Vec::new();
    for (i, stmt) in ctx.stmts.iter().enumerate() {
        let Some((rel, cmds)) = alter_table(stmt) else {
            continue;
        };
        let table = ast::rel_name(rel);
        let pk_indexes: Vec<&str> = cmds
            .iter()
            .filter_map(|c| added_constraint(c))
            .filter(|c| contype(c) == ConstrType::ConstrPrimary && !c.indexname.is_empty())
            .map(|c| c.indexname.as_str())
            .collect();
        if pk_indexes.is_empty() || !ctx.existing(i, &table) {
            continue;
        }
        let known = ctx.known_at(i);
        let proven = super::set_not_null::proven_columns(&ctx.stmts[..i]);
        let checked = |col: &str| {
            ctx.opts.pg_at_least(12)
                && (ctx
                    .run
                    .not_null_checks
                    .contains(&(table.clone(), col.to_string()))
                    || proven.iter().any(|(t, c)| *t == table && c == col))
        };
        for index in pk_indexes {
            let columns = known.index(index).map(|ix| {
                ix.columns
                    .iter()
                    .flatten()
                    .filter(|c| !known.is_not_null(&table, c) && !checked(c))
                    .cloned()
                    .collect::<Vec<_>>()
            });
            let (message, help, unsure) = match columns {
                Some(cols) if cols.is_empty() => continue,
                Some(cols) => {
                    let list = cols
                        .iter()
                        .map(|c| format!("`{c}`"))
                        .collect::<Vec<_>>()
                        .join(", ");
                    (
                        format!(
                            "ADD PRIMARY KEY USING INDEX {index} on `{table}` sets {list} NOT NULL: \
                             a full scan under ACCESS EXCLUSIVE, blocking reads and writes"
                        ),
                        help_sql(rel, &cols, &stmt.text),
                        false,
                    )
                }
                None => (
                    format!(
                        "ADD PRIMARY KEY USING INDEX {index} on `{table}` sets the index's columns \
                         NOT NULL, a full scan under ACCESS EXCLUSIVE, unless they are NOT NULL \
                         already (the history does not say which columns {index} covers)"
                    ),
                    help_sql(rel, &["<column>".to_string()], &stmt.text),
                    true,
                ),
            };
            let mut hit = Hit::new(i, message).table(&table).help(Some(help));
            if unsure {
                hit = hit.at_most(Severity::Warning);
            }
            hits.push(hit);
        }
    }
    hits
}

/// The CHECK-first statements for `columns`, then the statement itself.
fn help_sql(rel: &pg_query::protobuf::RangeVar, columns: &[String], original: &str) -> String {
    let table = quote_qualified(ast::rel_schema(rel), &rel.relname);
    let mut out = Vec::new();
    for col in columns {
        let check = choose_constraint_name(&rel.relname, Some(col), "lull_nn", &|_| false);
        let (c, k) = if col.starts_with('<') {
            (col.clone(), quote_ident(&check))
        } else {
            (quote_ident(col), quote_ident(&check))
        };
        out.push(format!(
            "ALTER TABLE {table} ADD CONSTRAINT {k} CHECK ({c} IS NOT NULL) NOT VALID;"
        ));
        out.push(format!("ALTER TABLE {table} VALIDATE CONSTRAINT {k};"));
        out.push(format!(
            "ALTER TABLE {table} ALTER COLUMN {c} SET NOT NULL;"
        ));
        out.push(format!("ALTER TABLE {table} DROP CONSTRAINT {k};"));
    }
    out.push(format!("{};", original.trim_end_matches(';')));
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use crate::rules::testing::*;

    const ID: &str = "primary-key-using-index";
    const INDEX: &str = "CREATE UNIQUE INDEX CONCURRENTLY u_id ON u (id);";

    #[test]
    fn flags_nullable_or_unknown_columns() {
        let sql =
            format!("{INDEX} ALTER TABLE u ADD CONSTRAINT u_pkey PRIMARY KEY USING INDEX u_id");
        let found = hits(ID, &sql);
        assert_eq!(found.len(), 1);
        assert!(found[0].contains("`id`"), "{}", found[0]);
        let unknown = hits(ID, "ALTER TABLE u ADD PRIMARY KEY USING INDEX u_id");
        assert_eq!(unknown.len(), 1);
        assert!(unknown[0].contains("does not say"), "{}", unknown[0]);
        // An unvalidated CHECK proves nothing.
        let sql = format!(
            "ALTER TABLE u ADD CONSTRAINT c CHECK (id IS NOT NULL) NOT VALID; {INDEX} \
             ALTER TABLE u ADD PRIMARY KEY USING INDEX u_id"
        );
        assert_eq!(hits(ID, &sql).len(), 1);
    }

    #[test]
    fn silent_when_the_columns_are_known_not_null() {
        for before in [
            "ALTER TABLE u ALTER COLUMN id SET NOT NULL;",
            "ALTER TABLE u ADD CONSTRAINT c CHECK (id IS NOT NULL) NOT VALID; ALTER TABLE u VALIDATE CONSTRAINT c;",
        ] {
            let sql = format!("{before} {INDEX} ALTER TABLE u ADD PRIMARY KEY USING INDEX u_id");
            assert!(hits(ID, &sql).is_empty(), "{before}");
        }
        // Declared NOT NULL by an earlier file of the history.
        let history = crate::lint::SourceFile {
            path: "1.sql".into(),
            sql: "CREATE TABLE u (id bigint NOT NULL, e text);".into(),
            ..Default::default()
        };
        let file = crate::lint::SourceFile {
            path: "2.sql".into(),
            sql: format!("{INDEX} ALTER TABLE u ADD PRIMARY KEY USING INDEX u_id;"),
            ..Default::default()
        };
        let report = crate::lint(&[history, file], &crate::lint::LintOptions::default());
        assert!(
            !report.findings.iter().any(|f| f.rule == ID),
            "{:?}",
            report.findings
        );
        // A plain ADD PRIMARY KEY and a new table are other matters.
        assert!(hits(ID, "ALTER TABLE u ADD PRIMARY KEY (id)").is_empty());
        assert!(hits(
            ID,
            "CREATE TABLE u (id int); CREATE UNIQUE INDEX u_id ON u (id); ALTER TABLE u ADD PRIMARY KEY USING INDEX u_id"
        )
        .is_empty());
    }

    #[test]
    fn the_check_does_not_help_before_12() {
        let sql = format!(
            "ALTER TABLE u ADD CONSTRAINT c CHECK (id IS NOT NULL); {INDEX} \
             ALTER TABLE u ADD PRIMARY KEY USING INDEX u_id"
        );
        assert!(hits(ID, &sql).is_empty());
        let setup = Setup {
            pg_version: Some(11),
            ..Setup::default()
        };
        assert_eq!(hits_with(ID, &sql, setup).len(), 1);
    }

    #[test]
    fn documented() {
        assert_documented(ID);
    }
}
