//! `constraint-not-valid`

use pg_query::protobuf::{AlterTableType, ConstrType};

use super::{added_constraint, alter_table, contype, subtype, Category, Rule};
use crate::ast;
use crate::lint::{FileCtx, Hit, Severity};

pub(crate) static RULE: Rule = Rule {
    id: "constraint-not-valid",
    summary: "FOREIGN KEY or CHECK added without NOT VALID, or validated in the same transaction",
    doc: DOC,
    default_severity: Severity::Error,
    opt_in: false,
    size_sensitive: true,
    category: Category::Locking,
    check,
};

const DOC: &str = "\
constraint-not-valid: FOREIGN KEY or CHECK added without NOT VALID, or validated in the same transaction

What it flags
  ALTER TABLE ... ADD FOREIGN KEY / CHECK on an existing table without
  NOT VALID; and VALIDATE CONSTRAINT in the same transaction as the
  NOT VALID add of that constraint.

Why it hurts
  Adding a CHECK takes ACCESS EXCLUSIVE (no reads, no writes) and a
  FOREIGN KEY takes SHARE ROW EXCLUSIVE on both tables (no writes), and
  either holds it while every existing row is checked - a full scan.
  Validating in the same transaction keeps the add's lock for the scan,
  which is the same thing.

Safe alternative
  Add it NOT VALID (a brief lock, no scan; new rows are checked from now
  on), then validate in a separate transaction: VALIDATE takes only SHARE
  UPDATE EXCLUSIVE, so reads and writes continue during the scan.

    ALTER TABLE orders ADD CONSTRAINT orders_user_id_fkey
      FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID;
    -- next transaction (lull: next migration or after a COMMIT)
    ALTER TABLE orders VALIDATE CONSTRAINT orders_user_id_fkey;
";

fn check(ctx: &FileCtx) -> Vec<Hit> {
    let mut hits = Vec::new();
    // (group, table, constraint) of NOT VALID adds seen so far.
    let mut not_valid: Vec<(usize, String, String)> = Vec::new();
    for (i, stmt) in ctx.stmts.iter().enumerate() {
        let Some((rel, cmds)) = alter_table(stmt) else {
            continue;
        };
        let table = ast::rel_name(rel);
        if !ctx.existing(i, &table) {
            continue;
        }
        for cmd in &cmds {
            if let Some(c) = added_constraint(cmd) {
                let kind = contype(c);
                if !matches!(kind, ConstrType::ConstrForeign | ConstrType::ConstrCheck) {
                    continue;
                }
                if c.skip_validation {
                    not_valid.push((ctx.info[i].group, table.clone(), c.conname.clone()));
                    continue;
                }
                let message = if kind == ConstrType::ConstrForeign {
                    let target = c.pktable.as_ref().map(ast::rel_name).unwrap_or_default();
                    format!(
                        "FOREIGN KEY on `{table}` without NOT VALID blocks writes to `{table}` and `{target}` \
                         while every row is checked"
                    )
                } else {
                    format!("CHECK on `{table}` without NOT VALID blocks reads and writes while every row is checked")
                };
                hits.push(Hit::new(i, message).table(&table).help(ctx.safe_sql(i)));
            } else if subtype(cmd) == AlterTableType::AtValidateConstraint {
                let group = ctx.info[i].group;
                let same_tx = not_valid
                    .iter()
                    .any(|(g, t, n)| *g == group && *t == table && *n == cmd.name);
                if same_tx && ctx.info[i].in_transaction {
                    hits.push(
                        Hit::new(
                            i,
                            format!(
                                "VALIDATE CONSTRAINT {} runs in the same transaction as its NOT VALID add, so the \
                                 add's lock on `{table}` is held for the whole validation scan",
                                cmd.name
                            ),
                        )
                        .table(&table)
                        .help(Some("COMMIT after the NOT VALID add, or validate in the next migration".into())),
                    );
                }
            }
        }
    }
    hits
}

#[cfg(test)]
mod tests {
    use crate::lint::Runner;
    use crate::rules::testing::*;

    const ID: &str = "constraint-not-valid";

    #[test]
    fn flags_validating_adds() {
        assert_eq!(
            hits(
                ID,
                "ALTER TABLE o ADD CONSTRAINT fk FOREIGN KEY (u) REFERENCES u (id)"
            )
            .len(),
            1
        );
        assert_eq!(hits(ID, "ALTER TABLE o ADD CHECK (qty > 0)").len(), 1);
    }

    #[test]
    fn flags_validate_in_the_same_transaction() {
        let sql = "BEGIN; ALTER TABLE o ADD CONSTRAINT c CHECK (q > 0) NOT VALID; ALTER TABLE o VALIDATE CONSTRAINT c; COMMIT;";
        assert_eq!(hits(ID, sql).len(), 1);
        // lull runs consecutive transactional statements in one transaction.
        let sql = "ALTER TABLE o ADD CONSTRAINT c CHECK (q > 0) NOT VALID; ALTER TABLE o VALIDATE CONSTRAINT c;";
        assert_eq!(hits(ID, sql).len(), 1);
    }

    #[test]
    fn allows_not_valid_then_separate_validate() {
        assert!(hits(ID, "ALTER TABLE o ADD CONSTRAINT c CHECK (q > 0) NOT VALID").is_empty());
        let sql = "BEGIN; ALTER TABLE o ADD CONSTRAINT c CHECK (q > 0) NOT VALID; COMMIT; ALTER TABLE o VALIDATE CONSTRAINT c;";
        assert!(hits(ID, sql).is_empty());
        let setup = Setup {
            runner: Runner::Autocommit,
            ..Setup::default()
        };
        let sql = "ALTER TABLE o ADD CONSTRAINT c CHECK (q > 0) NOT VALID; ALTER TABLE o VALIDATE CONSTRAINT c;";
        assert!(hits_with(ID, sql, setup).is_empty());
        assert!(hits(
            ID,
            "CREATE TABLE o (q int); ALTER TABLE o ADD CHECK (q > 0)"
        )
        .is_empty());
    }

    #[test]
    fn documented() {
        assert_documented(ID);
    }
}
