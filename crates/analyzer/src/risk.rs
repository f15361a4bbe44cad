//! The risk level of one migration: Low, Medium or High, from the locks its
//! statements take, how long they hold them (rewrite, scan or catalog-only)
//! and the size of the tables involved. [`RISK_DOC`] is the formula as
//! `lull explain risk` prints it; the code below is that text, line by line.

use serde::Serialize;

use crate::facts::{Class, LockMode};
use crate::lint::FileCtx;

/// How risky a migration is to run on a busy production database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RiskLevel {
    /// Brief locks or only new/small tables.
    Low,
    /// Blocking locks on tables of unknown size, or brief blocking locks on
    /// large tables.
    Medium,
    /// Long blocking locks on large or unknown tables.
    High,
}

impl RiskLevel {
    /// `low`, `medium` or `high`.
    pub fn as_str(&self) -> &'static str {
        match self {
            RiskLevel::Low => "low",
            RiskLevel::Medium => "medium",
            RiskLevel::High => "high",
        }
    }
}

/// A migration's risk level, its score and the statements behind it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Risk {
    /// The level.
    pub level: RiskLevel,
    /// The highest statement score (see [`RISK_DOC`]).
    pub score: u32,
    /// Why, one line per scored table, highest first.
    pub reasons: Vec<String>,
}

impl Risk {
    /// No risk at all.
    pub fn low() -> Risk {
        Risk {
            level: RiskLevel::Low,
            score: 0,
            reasons: Vec::new(),
        }
    }
}

/// Score at or above which a statement is Medium.
pub const MEDIUM_SCORE: u32 = 9;
/// Score at or above which a statement is High.
pub const HIGH_SCORE: u32 = 18;
/// This many Medium-or-worse statements in one migration raise it a level.
pub const HEAVY_STATEMENTS_BUMP: usize = 3;

/// The risk formula, printed by `lull explain risk`.
pub const RISK_DOC: &str = "\
risk: how risky a migration is to run on a busy production database

Every statement scores each table it locks that existed before the run
(tables created earlier in the same run score nothing):

  score = lock x work x size

  lock   4  blocks reads and writes (ACCESS EXCLUSIVE)
         3  blocks writes (SHARE, SHARE ROW EXCLUSIVE, EXCLUSIVE)
         2  UPDATE / DELETE (row locks on every row it touches)
         1  blocks only other schema changes (SHARE UPDATE EXCLUSIVE)
            or INSERT (ROW EXCLUSIVE)
         0  reads (ACCESS SHARE, ROW SHARE)
  work   3  rewrites the table (new file: lock held for a full copy)
         2  scans the whole table while locked (validation, index build,
            an UPDATE/DELETE without WHERE)
         1  catalog-only change (lock held briefly, but queued behind
            long transactions)
  size   3  large table (rows >= large_table_rows or bytes >=
            large_table_bytes; defaults 1,000,000 rows / 1 GiB)
         2  size unknown (no --database-url and no stats file)
         1  small table

The migration's score is its highest statement score:

  score >= 18  High
  score >=  9  Medium
  otherwise    Low

and three or more Medium-or-worse statements raise the level one step
(Low -> Medium -> High): several heavy operations in one migration add up.

Examples (unknown size): ADD COLUMN without default 4x1x2 = 8 Low;
CREATE INDEX 3x2x2 = 12 Medium; SET NOT NULL 4x2x2 = 16 Medium;
ALTER COLUMN TYPE bigint 4x3x2 = 24 High; CREATE INDEX CONCURRENTLY
1x2x2 = 4 Low. On a large table CREATE INDEX is 3x2x3 = 18 High.

`risky-without-down` reports High migrations that have no down migration.
";

fn lock_points(mode: LockMode, class: Class, is_update_or_delete: bool) -> u32 {
    if mode.blocks_reads() {
        4
    } else if mode.blocks_writes() {
        3
    } else if class == Class::Dml && is_update_or_delete && mode == LockMode::RowExclusive {
        2
    } else if mode >= LockMode::RowExclusive {
        1
    } else {
        0
    }
}

/// Scores every statement of a file and derives its level.
pub(crate) fn assess(ctx: &FileCtx) -> Risk {
    let mut scored: Vec<(u32, String)> = Vec::new();
    let mut heavy = 0usize;
    for (i, stmt) in ctx.stmts.iter().enumerate() {
        let f = &stmt.facts;
        let update_or_delete = matches!(
            stmt.ast(),
            pg_query::NodeEnum::UpdateStmt(_) | pg_query::NodeEnum::DeleteStmt(_)
        );
        let whole_table = update_or_delete && !crate::rules::has_where(stmt);
        let mut best = 0u32;
        for lock in &f.locks {
            if !ctx.existing(i, &lock.relation) || f.creates.contains(&lock.relation) {
                continue;
            }
            let lock_pts = lock_points(lock.mode, f.class, update_or_delete);
            if lock_pts == 0 {
                continue;
            }
            let work = if f.rewrites.contains(&lock.relation) {
                3
            } else if f.scans.contains(&lock.relation)
                || (whole_table && lock.mode == LockMode::RowExclusive)
            {
                2
            } else {
                1
            };
            let (size, size_word) = match ctx.is_large(&lock.relation) {
                Some(true) => (3, "large"),
                Some(false) => (1, "small"),
                None => (2, "unknown size"),
            };
            let score = lock_pts * work * size;
            best = best.max(score);
            let work_word = match work {
                3 => "rewrite",
                2 => "full scan",
                _ => "brief",
            };
            scored.push((
                score,
                format!(
                    "line {}: {} on {} ({size_word}), {work_word}: {lock_pts}x{work}x{size} = {score}",
                    stmt.span.line + ctx.file.line_offset,
                    lock.mode.sql_name(),
                    lock.relation
                ),
            ));
        }
        if best >= MEDIUM_SCORE {
            heavy += 1;
        }
    }
    scored.sort_by_key(|s| std::cmp::Reverse(s.0));
    let score = scored.first().map_or(0, |s| s.0);
    let mut level = if score >= HIGH_SCORE {
        RiskLevel::High
    } else if score >= MEDIUM_SCORE {
        RiskLevel::Medium
    } else {
        RiskLevel::Low
    };
    let mut reasons: Vec<String> = scored.into_iter().map(|s| s.1).collect();
    if heavy >= HEAVY_STATEMENTS_BUMP {
        level = match level {
            RiskLevel::Low => RiskLevel::Medium,
            _ => RiskLevel::High,
        };
        reasons.push(format!(
            "{heavy} heavy statements in one migration: raised one level"
        ));
    }
    Risk {
        level,
        score,
        reasons,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lint::{lint, LintOptions, SourceFile};
    use crate::stats::TableSize;

    fn risk(sql: &str, rows: Option<u64>) -> Risk {
        let mut opts = LintOptions::default();
        if let Some(rows) = rows {
            opts.stats.insert("t", TableSize { rows, bytes: 0 });
        }
        let file = SourceFile {
            path: "m.sql".into(),
            sql: sql.into(),
            ..Default::default()
        };
        lint(&[file], &opts).files.remove(0).risk
    }

    #[test]
    fn documented_examples_hold() {
        assert_eq!(risk("ALTER TABLE t ADD COLUMN a int", None).score, 8);
        assert_eq!(risk("CREATE INDEX i ON t (a)", None).score, 12);
        assert_eq!(
            risk("ALTER TABLE t ALTER COLUMN a SET NOT NULL", None).score,
            16
        );
        assert_eq!(
            risk("ALTER TABLE t ALTER COLUMN a TYPE bigint", None).level,
            RiskLevel::High
        );
        assert_eq!(
            risk("CREATE INDEX CONCURRENTLY i ON t (a)", None).level,
            RiskLevel::Low
        );
        assert_eq!(
            risk("CREATE INDEX i ON t (a)", Some(50_000_000)).level,
            RiskLevel::High
        );
        assert_eq!(
            risk("CREATE INDEX i ON t (a)", Some(100)).level,
            RiskLevel::Low
        );
    }

    #[test]
    fn new_tables_score_nothing() {
        let r = risk("CREATE TABLE t (a int); CREATE INDEX i ON t (a); ALTER TABLE t ALTER COLUMN a TYPE bigint", None);
        assert_eq!(r, Risk::low());
    }

    #[test]
    fn many_heavy_statements_raise_the_level() {
        let r = risk(
            "CREATE INDEX a ON t (a); CREATE INDEX b ON t (b); CREATE INDEX c ON t (c)",
            None,
        );
        assert_eq!(r.level, RiskLevel::High);
        assert!(r.reasons.last().unwrap().contains("raised"));
    }
}
