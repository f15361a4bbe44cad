//! `missing-statement-timeout`

use super::{Category, Rule};
use crate::lint::{FileCtx, Hit, Severity};

pub(crate) static RULE: Rule = Rule {
    id: "missing-statement-timeout",
    summary: "a locking statement with no statement_timeout set first (runners other than lull)",
    doc: DOC,
    default_severity: Severity::Warning,
    opt_in: false,
    size_sensitive: false,
    category: Category::Locking,
    check,
};

const DOC: &str = "\
missing-statement-timeout: a locking statement with no statement_timeout set first (runners other than lull)

What it flags
  The first statement of a file that locks an existing table in a mode
  stronger than SHARE UPDATE EXCLUSIVE (blocking writes or reads) when no
  `SET statement_timeout` comes before it. Only when the file is run by a tool
  other than lull (`runner = \"transactional\"` or `\"autocommit\"`): lull
  sets statement_timeout itself, per statement class.

Why it hurts
  A schema change that runs longer than expected (a scan or rewrite of a table bigger than in staging) keeps its lock for as long as it runs. Without statement_timeout nothing stops it before the application does.

Safe alternative
  Set it at the top of the migration (SET LOCAL inside a transaction):

    SET statement_timeout = '5min';
";

fn check(ctx: &FileCtx) -> Vec<Hit> {
    super::missing_lock_timeout::first_lock_without(
        ctx,
        "statement_timeout",
        "SET statement_timeout = '5min';",
    )
}

#[cfg(test)]
mod tests {
    use crate::lint::Runner;
    use crate::rules::testing::*;

    const ID: &str = "missing-statement-timeout";

    fn external(sql: &str) -> Vec<String> {
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
    fn flags_external_runs_without_the_setting() {
        assert_eq!(
            external("ALTER TABLE o ADD COLUMN n text; ALTER TABLE o ADD COLUMN m text").len(),
            1
        );
        assert_eq!(external("CREATE INDEX i ON o (a)").len(), 1);
    }

    #[test]
    fn allows_the_setting_lull_and_new_tables() {
        assert!(
            external("SET statement_timeout = '1s'; ALTER TABLE o ADD COLUMN n text").is_empty()
        );
        assert!(
            external("SET LOCAL statement_timeout TO '1s'; ALTER TABLE o ADD COLUMN n text")
                .is_empty()
        );
        assert!(external("CREATE TABLE o (a int); ALTER TABLE o ADD COLUMN n text").is_empty());
        assert!(external("CREATE INDEX CONCURRENTLY i ON o (a)").is_empty());
        assert!(hits(ID, "ALTER TABLE o ADD COLUMN n text").is_empty());
    }

    #[test]
    fn documented() {
        assert_documented(ID);
    }
}
