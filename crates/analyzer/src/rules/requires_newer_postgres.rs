//! `requires-newer-postgres`

use pg_query::protobuf::{AlterTableType, ConstrType};
use pg_query::{NodeEnum, NodeRef};

use super::{added_constraint, alter_table, contype, subtype, Category, Rule};
use crate::ast;
use crate::lint::{FileCtx, Hit, Severity};

pub(crate) static RULE: Rule = Rule {
    id: "requires-newer-postgres",
    summary: "SQL the target PostgreSQL version (pg_version) does not accept",
    doc: DOC,
    default_severity: Severity::Error,
    opt_in: false,
    size_sensitive: false,
    category: Category::Compatibility,
    check,
};

const DOC: &str = "\
requires-newer-postgres: SQL the target PostgreSQL version (pg_version) does not accept

What it flags
  With a target version known (`pg_version` in lull.toml, `--pg-version`,
  or the server's own version when a database URL is given), statements
  that version rejects:
    REINDEX ... CONCURRENTLY                      needs PostgreSQL 12
    ALTER TABLE ... DETACH PARTITION CONCURRENTLY needs PostgreSQL 14
    a subquery in FROM without an alias           needs PostgreSQL 16
    ADD CONSTRAINT ... NOT NULL ... NOT VALID     needs PostgreSQL 18
  Without a target version lull assumes a current server and stays silent.

Why it hurts
  lull parses with the newest grammar, so such a file passes review and CI
  and then fails on the production server mid-deploy, possibly after
  earlier statements of the migration already ran.

Safe alternative
  Write what the target accepts, e.g. give the subquery an alias:

    SELECT count(*) FROM (SELECT 1 FROM orders) AS o;

  build a new index CONCURRENTLY and drop the old one instead of REINDEX
  CONCURRENTLY before 12, detach without CONCURRENTLY (in a quiet moment)
  before 14, or use a CHECK (col IS NOT NULL) NOT VALID constraint before 18.
  Or raise pg_version if the servers are newer than configured.
";

fn check(ctx: &FileCtx) -> Vec<Hit> {
    let mut hits = Vec::new();
    let Some(version) = ctx.opts.pg_version else {
        return hits;
    };
    for (i, stmt) in ctx.stmts.iter().enumerate() {
        let mut needs = |major: u32, what: &str, help: &str| {
            if version < major {
                hits.push(
                    Hit::new(
                        i,
                        format!("{what} needs PostgreSQL {major}; the target is {version}"),
                    )
                    .help(Some(help.to_string())),
                );
            }
        };
        if let NodeEnum::ReindexStmt(s) = stmt.ast() {
            if ast::has_option(&s.params, "concurrently") {
                needs(
                    12,
                    "REINDEX CONCURRENTLY",
                    "build a new index CONCURRENTLY, drop the old one CONCURRENTLY, and rename the new one",
                );
            }
        }
        if let Some((_, cmds)) = alter_table(stmt) {
            for cmd in &cmds {
                if subtype(cmd) == AlterTableType::AtDetachPartition
                    && ast::partition_cmd(cmd).is_some_and(|p| p.concurrent)
                {
                    needs(
                        14,
                        "DETACH PARTITION ... CONCURRENTLY",
                        "detach without CONCURRENTLY, with a short lock_timeout, when the table is quiet",
                    );
                }
                if let Some(c) = added_constraint(cmd) {
                    if contype(c) == ConstrType::ConstrNotnull && c.skip_validation {
                        needs(
                            18,
                            "ADD CONSTRAINT ... NOT NULL ... NOT VALID",
                            "add CHECK (col IS NOT NULL) NOT VALID, VALIDATE it, then SET NOT NULL",
                        );
                    }
                }
            }
        }
        if version < 16 && has_unaliased_subquery(stmt.ast()) {
            needs(
                16,
                "a subquery in FROM without an alias",
                "give the subquery an alias: FROM (SELECT ...) AS sub",
            );
        }
    }
    hits
}

fn has_unaliased_subquery(node: &NodeEnum) -> bool {
    node.nodes()
        .iter()
        .any(|(n, ..)| matches!(n, NodeRef::RangeSubselect(s) if s.alias.is_none()))
}

#[cfg(test)]
mod tests {
    use crate::rules::testing::*;

    const ID: &str = "requires-newer-postgres";

    fn on(version: u32, sql: &str) -> Vec<String> {
        hits_with(
            ID,
            sql,
            Setup {
                pg_version: Some(version),
                ..Setup::default()
            },
        )
    }

    #[test]
    fn flags_syntax_the_target_rejects() {
        assert_eq!(on(11, "REINDEX INDEX CONCURRENTLY i").len(), 1);
        assert_eq!(
            on(13, "ALTER TABLE p DETACH PARTITION p1 CONCURRENTLY").len(),
            1
        );
        let sub = "SELECT count(*) FROM (SELECT 1 FROM t)";
        assert_eq!(on(15, sub).len(), 1);
        assert_eq!(
            on(
                15,
                "INSERT INTO a SELECT * FROM (SELECT 1 FROM t) WHERE true"
            )
            .len(),
            1
        );
    }

    #[test]
    fn silent_on_new_enough_or_unknown_targets() {
        assert!(on(12, "REINDEX INDEX CONCURRENTLY i").is_empty());
        assert!(on(14, "ALTER TABLE p DETACH PARTITION p1 CONCURRENTLY").is_empty());
        assert!(on(16, "SELECT count(*) FROM (SELECT 1 FROM t)").is_empty());
        assert!(on(15, "SELECT count(*) FROM (SELECT 1 FROM t) AS s").is_empty());
        assert!(hits(ID, "SELECT count(*) FROM (SELECT 1 FROM t)").is_empty());
    }

    #[test]
    fn documented() {
        assert_documented(ID);
    }
}
