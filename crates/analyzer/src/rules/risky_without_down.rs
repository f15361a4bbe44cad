//! `risky-without-down`

use super::{Category, Rule};
use crate::lint::{FileCtx, Hit, Severity};
use crate::risk::{self, RiskLevel};

pub(crate) static RULE: Rule = Rule {
    id: "risky-without-down",
    summary: "a High-risk migration with no down migration",
    doc: DOC,
    default_severity: Severity::Warning,
    opt_in: false,
    size_sensitive: false,
    category: Category::Process,
    check,
};

const DOC: &str = "\
risky-without-down: a High-risk migration with no down migration

What it flags
  A migration whose risk level is High (see `lull explain risk`) and that
  has no down migration, in layouts that have down migrations (sqlx,
  golang-migrate, dbmate, diesel, lull). Loose files are not checked.

Why it hurts
  High-risk migrations are the ones most likely to be stopped or rolled
  back during an incident; without a tested down migration the way back is
  improvised under pressure.

Safe alternative
  Write the down migration next to it, and prefer splitting the change
  into lower-risk steps:

    -- 0042_add_orders_index.down.sql
    DROP INDEX CONCURRENTLY IF EXISTS orders_user_id_idx;
";

fn check(ctx: &FileCtx) -> Vec<Hit> {
    if ctx.file.has_down != Some(false) || ctx.stmts.is_empty() {
        return Vec::new();
    }
    let risk = risk::assess(ctx);
    if risk.level != RiskLevel::High {
        return Vec::new();
    }
    let why = risk.reasons.first().cloned().unwrap_or_default();
    vec![Hit::new(
        0,
        format!("High-risk migration ({why}) has no down migration"),
    )
    .help(Some("add a down migration that reverts it".into()))]
}

#[cfg(test)]
mod tests {
    use crate::rules::testing::*;

    const ID: &str = "risky-without-down";
    const HIGH: &str = "ALTER TABLE o ALTER COLUMN a TYPE bigint";

    #[test]
    fn flags_high_risk_without_down() {
        let setup = Setup {
            has_down: Some(false),
            ..Setup::default()
        };
        assert_eq!(hits_with(ID, HIGH, setup).len(), 1);
    }

    #[test]
    fn allows_down_low_risk_and_loose_files() {
        assert!(hits_with(
            ID,
            HIGH,
            Setup {
                has_down: Some(true),
                ..Setup::default()
            }
        )
        .is_empty());
        assert!(hits(ID, HIGH).is_empty());
        let setup = Setup {
            has_down: Some(false),
            ..Setup::default()
        };
        assert!(hits_with(ID, "CREATE INDEX CONCURRENTLY i ON o (a)", setup).is_empty());
    }

    #[test]
    fn documented() {
        assert_documented(ID);
    }
}
