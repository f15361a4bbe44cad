//! `statements-after-exclusive-lock`

use pg_query::NodeEnum;

use super::{Category, Rule};
use crate::facts::{Class, LockMode};
use crate::lint::{FileCtx, Hit, Severity};

pub(crate) static RULE: Rule = Rule {
    id: "statements-after-exclusive-lock",
    summary: "more work in the same transaction after an ACCESS EXCLUSIVE lock is taken",
    doc: DOC,
    default_severity: Severity::Warning,
    opt_in: false,
    size_sensitive: true,
    category: Category::Locking,
    check,
};

const DOC: &str = "\
statements-after-exclusive-lock: more work in the same transaction after an ACCESS EXCLUSIVE lock is taken

What it flags
  A statement that runs in the same transaction after another statement
  took ACCESS EXCLUSIVE on a table that existed before the run, when it
  does real work: reads or rewrites a table, changes data, or locks
  another existing table. (More brief changes to the same table are fine.) With lull
  as the runner, consecutive transactional statements share a transaction;
  with a transactional runner the whole file does.

Why it hurts
  Locks are held until the transaction ends. Everything after the ACCESS
  EXCLUSIVE statement - index builds, backfills, other tables' changes -
  runs while the table is blocked for reads and writes, turning a
  millisecond catalog change into a long outage.

Safe alternative
  Put the ACCESS EXCLUSIVE statement last in its transaction, or in a
  transaction of its own:

    BEGIN;
    ALTER TABLE orders ADD COLUMN note text;
    COMMIT;
    BEGIN;
    UPDATE settings SET value = 'x' WHERE key = 'y';
    COMMIT;
";

fn check(ctx: &FileCtx) -> Vec<Hit> {
    let mut hits = Vec::new();
    // (group, table) of the ACCESS EXCLUSIVE lock being held.
    let mut held: Option<(usize, String)> = None;
    let mut reported_group = None;
    for (i, stmt) in ctx.stmts.iter().enumerate() {
        let info = ctx.info[i];
        if !info.in_transaction {
            held = None;
            continue;
        }
        if let Some((group, table)) = &held {
            // A brief catalog change to the table already locked (or to new
            // relations) adds almost nothing to the hold time; real work,
            // data changes and locks on other existing tables do.
            let f = &stmt.facts;
            let heavy = !f.scans.is_empty()
                || !f.rewrites.is_empty()
                || f.class == Class::Dml
                || f.locks.iter().any(|l| {
                    l.relation != *table
                        && ctx.existing(i, &l.relation)
                        && !f.creates.contains(&l.relation)
                });
            let trivial = matches!(stmt.ast(), NodeEnum::VariableSetStmt(_))
                || f.class == Class::Transaction
                || !heavy;
            if *group == info.group && !trivial && reported_group != Some(*group) {
                reported_group = Some(*group);
                hits.push(
                    Hit::new(
                        i,
                        format!(
                            "runs while ACCESS EXCLUSIVE on `{table}` is still held by an earlier statement of \
                             the same transaction"
                        ),
                    )
                    .table(table)
                    .help(Some(
                        "commit right after the ACCESS EXCLUSIVE statement, or move it last in its transaction".into(),
                    )),
                );
            } else if *group != info.group {
                held = None;
            }
        }
        if held.is_none() {
            held = stmt
                .facts
                .locks
                .iter()
                .find(|l| {
                    l.mode == LockMode::AccessExclusive
                        && ctx.existing(i, &l.relation)
                        && !stmt.facts.creates.contains(&l.relation)
                })
                .map(|l| (info.group, l.relation.clone()));
        }
    }
    hits
}

#[cfg(test)]
mod tests {
    use crate::lint::Runner;
    use crate::rules::testing::*;

    const ID: &str = "statements-after-exclusive-lock";

    #[test]
    fn flags_work_after_the_lock_in_one_transaction() {
        let sql = "BEGIN; ALTER TABLE o ADD COLUMN n text; UPDATE s SET v = 1; CREATE INDEX i ON s (v); COMMIT;";
        assert_eq!(hits(ID, sql).len(), 1);
        assert_eq!(
            hits(ID, "ALTER TABLE o ADD COLUMN n text; UPDATE s SET v = 1").len(),
            1
        );
    }

    #[test]
    fn allows_more_brief_changes_to_the_same_table() {
        assert!(hits(ID, "ALTER TABLE o ADD COLUMN n text; ALTER TABLE o ADD COLUMN m text; CREATE TABLE x (a int)").is_empty());
        assert_eq!(
            hits(
                ID,
                "ALTER TABLE o ADD COLUMN n text; ALTER TABLE p ADD COLUMN m text"
            )
            .len(),
            1
        );
    }

    #[test]
    fn allows_the_lock_last_or_alone() {
        assert!(hits(
            ID,
            "BEGIN; UPDATE s SET v = 1; ALTER TABLE o ADD COLUMN n text; COMMIT;"
        )
        .is_empty());
        assert!(hits(
            ID,
            "BEGIN; ALTER TABLE o ADD COLUMN n text; COMMIT; BEGIN; UPDATE s SET v = 1; COMMIT;"
        )
        .is_empty());
        let setup = Setup {
            runner: Runner::Autocommit,
            ..Setup::default()
        };
        assert!(hits_with(
            ID,
            "ALTER TABLE o ADD COLUMN n text; UPDATE s SET v = 1",
            setup
        )
        .is_empty());
        assert!(hits(
            ID,
            "CREATE TABLE n (a int); ALTER TABLE n ADD COLUMN b int; UPDATE n SET b = 1"
        )
        .is_empty());
    }

    #[test]
    fn documented() {
        assert_documented(ID);
    }
}
