//! `missing-lock-timeout`

use pg_query::NodeEnum;

use super::{Category, Rule};
use crate::facts::LockMode;
use crate::lint::{FileCtx, Hit, Runner, Severity};

pub(crate) static RULE: Rule = Rule {
    id: "missing-lock-timeout",
    summary: "a locking statement with no lock_timeout set first (runners other than lull)",
    doc: DOC,
    default_severity: Severity::Warning,
    opt_in: false,
    size_sensitive: false,
    category: Category::Locking,
    check,
};

const DOC: &str = "\
missing-lock-timeout: a locking statement with no lock_timeout set first (runners other than lull)

What it flags
  The first statement of a file that locks an existing table in a mode
  stronger than SHARE UPDATE EXCLUSIVE (blocking writes or reads) when no
  `SET lock_timeout` comes before it. Only when the file is run by a tool
  other than lull (`runner = \"transactional\"` or `\"autocommit\"`): lull
  sets lock_timeout itself, per statement class.

Why it hurts
  A statement that needs a strong lock waits for every running transaction that touches the table; while it waits, every later query on the table queues behind it. Without lock_timeout that wait - and the outage - is unbounded.

Safe alternative
  Set it at the top of the migration (SET LOCAL inside a transaction):

    SET lock_timeout = '2s';
";

fn check(ctx: &FileCtx) -> Vec<Hit> {
    first_lock_without(ctx, "lock_timeout", "SET lock_timeout = '2s';")
}

/// The first statement that takes a lock stronger than SHARE UPDATE
/// EXCLUSIVE on an existing table before the file sets `setting` — shared
/// with `missing-statement-timeout`, which differs only in the setting.
pub(super) fn first_lock_without(ctx: &FileCtx, setting: &str, example: &str) -> Vec<Hit> {
    if ctx.runner == Runner::Lull {
        return Vec::new();
    }
    for (i, stmt) in ctx.stmts.iter().enumerate() {
        if let NodeEnum::VariableSetStmt(s) = stmt.ast() {
            if s.name == setting {
                return Vec::new();
            }
        }
        let lock = stmt.facts.locks.iter().find(|l| {
            l.mode > LockMode::ShareUpdateExclusive
                && ctx.existing(i, &l.relation)
                && !stmt.facts.creates.contains(&l.relation)
        });
        if let Some(lock) = lock {
            return vec![Hit::new(
                i,
                format!(
                    "takes {} on `{}` with no {setting} set",
                    lock.mode.sql_name(),
                    lock.relation
                ),
            )
            .table(&lock.relation)
            .help(Some(format!("{example} -- at the top of the file")))];
        }
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use crate::lint::Runner;
    use crate::rules::testing::*;

    const ID: &str = "missing-lock-timeout";

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
        assert!(external("SET lock_timeout = '1s'; ALTER TABLE o ADD COLUMN n text").is_empty());
        assert!(
            external("SET LOCAL lock_timeout TO '1s'; ALTER TABLE o ADD COLUMN n text").is_empty()
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
