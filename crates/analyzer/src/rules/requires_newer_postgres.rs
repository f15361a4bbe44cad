//! `requires-newer-postgres`

use super::{Category, Rule};
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
    MERGE                                         needs PostgreSQL 15
    UNIQUE ... NULLS NOT DISTINCT                 needs PostgreSQL 15
    ALTER TABLE ... SET ACCESS METHOD             needs PostgreSQL 15
    a subquery in FROM without an alias           needs PostgreSQL 16
    JSON_OBJECT(k VALUE v), JSON_ARRAY, IS JSON   needs PostgreSQL 16
    MERGE ... RETURNING, WHEN NOT MATCHED BY
      SOURCE                                      needs PostgreSQL 17
    ALTER COLUMN ... SET EXPRESSION               needs PostgreSQL 17
    JSON_TABLE, JSON_QUERY, JSON_VALUE, ...       needs PostgreSQL 17
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
  before 14, INSERT ... ON CONFLICT (or an UPDATE and an INSERT in one
  transaction) instead of MERGE before 15, or use a CHECK (col IS NOT NULL)
  NOT VALID constraint before 18.
  Or raise pg_version if the servers are newer than configured.
";

fn check(ctx: &FileCtx) -> Vec<Hit> {
    let Some(version) = ctx.opts.pg_version else {
        return Vec::new();
    };
    let mut hits = Vec::new();
    for (i, stmt) in ctx.stmts.iter().enumerate() {
        // What each major accepts is written down once, in crate::versions.
        for req in stmt.facts.requires.iter().filter(|r| r.major > version) {
            hits.push(
                Hit::new(
                    i,
                    format!(
                        "{} needs PostgreSQL {}; the target is {version}",
                        req.what, req.major
                    ),
                )
                .help(Some(req.help.to_string())),
            );
        }
    }
    hits
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
        let merge = "MERGE INTO u USING t ON u.id = t.id WHEN MATCHED THEN DO NOTHING";
        assert_eq!(
            on(14, merge),
            vec!["MERGE needs PostgreSQL 15; the target is 14"]
        );
        assert!(on(15, merge).is_empty());
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
