//! `missing-if-not-exists`

use pg_query::protobuf::{self, AlterTableType, ObjectType};
use pg_query::NodeEnum;

use super::{Category, Rule};
use crate::lint::{FileCtx, Hit, Runner, Severity};

pub(crate) static RULE: Rule = Rule {
    id: "missing-if-not-exists",
    summary: "CREATE TABLE / INDEX without IF NOT EXISTS, DROP without IF EXISTS",
    doc: DOC,
    default_severity: Severity::Warning,
    opt_in: false,
    size_sensitive: false,
    category: Category::Process,
    check,
};

const DOC: &str = "\
missing-if-not-exists: CREATE TABLE / INDEX without IF NOT EXISTS, DROP without IF EXISTS

What it flags
  Statements that fail when run a second time, but only where a second run
  can happen: outside a transaction, under a runner that does not track
  which statements of a file already ran (`runner = \"autocommit\"`, or a
  file that opts out of its tool's transaction: sqlx `-- no-transaction`,
  dbmate `transaction:false`, a CONCURRENTLY statement after a COMMIT),
  and only where something can fail after it: the last statement of a
  file undoes itself when it fails (unless it is a CONCURRENTLY build,
  which leaves an INVALID index behind).
  Inside a transaction a failure rolls back everything, and under
  `lull migrate` every step is recorded, so the rule stays silent there.
  Covered: CREATE TABLE and named CREATE INDEX without IF NOT EXISTS;
  DROP TABLE / INDEX / VIEW / MATERIALIZED VIEW / SEQUENCE / TYPE without
  IF EXISTS; ALTER TABLE ... ADD COLUMN without IF NOT EXISTS, DROP COLUMN
  and DROP CONSTRAINT without IF EXISTS. TEMP tables are exempt.

Why it hurts
  A migration that stopped half way (a lock timeout, a killed deploy, a
  non-transactional CONCURRENTLY step) must be re-run. Without the guards
  the re-run fails on the objects the first attempt already created or
  dropped, and someone has to fix the database by hand during an incident.

Safe alternative
  Make each statement idempotent:

    CREATE TABLE IF NOT EXISTS audit_log (id bigint PRIMARY KEY);
    CREATE INDEX CONCURRENTLY IF NOT EXISTS audit_log_at ON audit_log (at);
    DROP INDEX CONCURRENTLY IF EXISTS old_idx;
    ALTER TABLE orders ADD COLUMN IF NOT EXISTS note text;

  An unnamed CREATE INDEX cannot say IF NOT EXISTS: give it a name first.
  (An INVALID index left by a failed CONCURRENTLY build is kept by IF NOT
  EXISTS; lull drops such leftovers before retrying.)
";

fn check(ctx: &FileCtx) -> Vec<Hit> {
    let mut hits = Vec::new();
    if ctx.runner == Runner::Lull {
        return hits;
    }
    // A failure leaves earlier work behind only when something follows:
    // the last statement, if it fails, undoes itself (unless it cannot
    // run in a transaction and leaves a leftover, like CONCURRENTLY).
    let last_real = ctx
        .stmts
        .iter()
        .rposition(|s| s.facts.class != crate::facts::Class::Transaction);
    for (i, stmt) in ctx.stmts.iter().enumerate() {
        if ctx.info.get(i).is_some_and(|t| t.in_transaction) {
            continue;
        }
        if Some(i) == last_real && stmt.facts.transactional {
            continue;
        }
        let (message, help) = match stmt.ast() {
            NodeEnum::CreateStmt(s) if !s.if_not_exists && !is_temp(s.relation.as_ref()) => (
                "CREATE TABLE without IF NOT EXISTS fails when re-run".to_string(),
                guarded(&stmt.text),
            ),
            NodeEnum::IndexStmt(s) if !s.if_not_exists => {
                if s.idxname.is_empty() {
                    (
                        "CREATE INDEX without a name cannot be made idempotent and builds a second index when re-run".to_string(),
                        "name the index, then add IF NOT EXISTS: CREATE INDEX CONCURRENTLY IF NOT EXISTS <name> ON ...".to_string(),
                    )
                } else {
                    (
                        "CREATE INDEX without IF NOT EXISTS fails when re-run".to_string(),
                        guarded(&stmt.text),
                    )
                }
            }
            NodeEnum::DropStmt(s) if !s.missing_ok && droppable(s.remove_type) => (
                "DROP without IF EXISTS fails when re-run".to_string(),
                guarded(&stmt.text),
            ),
            NodeEnum::AlterTableStmt(s) if !is_temp(s.relation.as_ref()) => {
                let Some(what) = unguarded_alter(s) else {
                    continue;
                };
                (
                    format!("ALTER TABLE ... {what} fails when re-run"),
                    guarded_alter(stmt.ast()).unwrap_or_else(|| stmt.text.clone() + ";"),
                )
            }
            _ => continue,
        };
        hits.push(Hit::new(i, message).help(Some(help)));
    }
    hits
}

fn is_temp(rel: Option<&protobuf::RangeVar>) -> bool {
    rel.is_some_and(|r| r.relpersistence == "t")
}

/// The first unguarded ADD COLUMN / DROP COLUMN / DROP CONSTRAINT, named.
fn unguarded_alter(s: &protobuf::AlterTableStmt) -> Option<&'static str> {
    s.cmds
        .iter()
        .filter_map(|n| match &n.node {
            Some(NodeEnum::AlterTableCmd(c)) => Some(c),
            _ => None,
        })
        .filter(|c| !c.missing_ok)
        .find_map(|c| match AlterTableType::try_from(c.subtype).ok()? {
            AlterTableType::AtAddColumn => Some("ADD COLUMN without IF NOT EXISTS"),
            AlterTableType::AtDropColumn => Some("DROP COLUMN without IF EXISTS"),
            AlterTableType::AtDropConstraint => Some("DROP CONSTRAINT without IF EXISTS"),
            _ => None,
        })
}

/// The ALTER TABLE with every ADD COLUMN / DROP COLUMN / DROP CONSTRAINT
/// guarded, as PostgreSQL would print it.
fn guarded_alter(node: &NodeEnum) -> Option<String> {
    let mut node = node.clone();
    let NodeEnum::AlterTableStmt(s) = &mut node else {
        return None;
    };
    for cmd in &mut s.cmds {
        if let Some(NodeEnum::AlterTableCmd(c)) = &mut cmd.node {
            if matches!(
                AlterTableType::try_from(c.subtype),
                Ok(AlterTableType::AtAddColumn
                    | AlterTableType::AtDropColumn
                    | AlterTableType::AtDropConstraint)
            ) {
                c.missing_ok = true;
            }
        }
    }
    node.deparse().ok().map(|t| t + ";")
}

fn droppable(kind: i32) -> bool {
    [
        ObjectType::ObjectTable,
        ObjectType::ObjectIndex,
        ObjectType::ObjectView,
        ObjectType::ObjectMatview,
        ObjectType::ObjectSequence,
        ObjectType::ObjectType,
    ]
    .iter()
    .any(|k| *k as i32 == kind)
}

/// The statement with the guard inserted after its object keyword.
fn guarded(text: &str) -> String {
    use pg_query::protobuf::Token;
    let Ok(scan) = pg_query::scan(text) else {
        return text.to_string();
    };
    let tokens: Vec<_> = scan
        .tokens
        .iter()
        .filter(|t| !crate::parse::is_comment(t))
        .collect();
    let is_drop = tokens
        .first()
        .is_some_and(|t| t.token == Token::Drop as i32);
    let object = [
        Token::Table,
        Token::Index,
        Token::View,
        Token::Sequence,
        Token::TypeP,
    ];
    let mut at = tokens
        .iter()
        .find(|t| object.iter().any(|o| *o as i32 == t.token))
        .map(|t| t.end as usize);
    if let (Some(pos), false) = (at, is_drop) {
        // CREATE INDEX CONCURRENTLY IF NOT EXISTS: the guard follows CONCURRENTLY.
        if let Some(c) = tokens
            .iter()
            .find(|t| t.token == Token::Concurrently as i32 && t.start as usize >= pos)
        {
            at = Some(c.end as usize);
        }
    }
    let guard = if is_drop {
        " IF EXISTS"
    } else {
        " IF NOT EXISTS"
    };
    match at {
        Some(pos) => format!("{}{guard}{};", &text[..pos], &text[pos..]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::guarded;
    use crate::lint::Runner;
    use crate::rules::testing::*;

    const ID: &str = "missing-if-not-exists";

    fn auto(sql: &str) -> Vec<String> {
        hits_with(
            ID,
            sql,
            Setup {
                runner: Runner::Autocommit,
                ..Setup::default()
            },
        )
    }

    #[test]
    fn flags_unguarded_create_and_drop_outside_a_transaction() {
        assert_eq!(auto("CREATE TABLE t (id int); SELECT 1").len(), 1);
        assert_eq!(auto("CREATE INDEX CONCURRENTLY i ON t (a)").len(), 1);
        assert_eq!(
            auto("DROP INDEX i; DROP TABLE t; DROP TYPE e; SELECT 1").len(),
            3
        );
        assert_eq!(
            auto("ALTER TABLE t ADD COLUMN a int, DROP COLUMN b; SELECT 1").len(),
            1
        );
        assert_eq!(auto("ALTER TABLE t DROP CONSTRAINT c; SELECT 1").len(), 1);
        // The last statement undoes itself when it fails...
        assert!(auto("SELECT 1; CREATE TABLE t (id int)").is_empty());
        // ...unless it leaves an INVALID index behind.
        assert_eq!(auto("CREATE INDEX CONCURRENTLY i ON t (a)").len(), 1);
    }

    #[test]
    fn silent_inside_a_transaction_and_under_lull() {
        let sql = "CREATE TABLE t (id int); CREATE INDEX i ON t (id); DROP TABLE u";
        assert!(hits(ID, sql).is_empty(), "lull tracks every step");
        let wrapped = Setup {
            runner: Runner::Transactional,
            ..Setup::default()
        };
        assert!(hits_with(ID, sql, wrapped).is_empty());
        assert!(auto(&format!("BEGIN; {sql}; COMMIT")).is_empty());
        // A file that opts out of its runner's transaction is exposed.
        let opted_out = Setup {
            runner: Runner::Transactional,
            no_transaction: true,
            ..Setup::default()
        };
        assert_eq!(
            hits_with(ID, "CREATE INDEX CONCURRENTLY i ON t (a)", opted_out).len(),
            1
        );
        // COMMIT ends sqlx's transaction: what follows runs on its own.
        let wrapped = Setup {
            runner: Runner::Transactional,
            ..Setup::default()
        };
        assert_eq!(
            hits_with(
                ID,
                "COMMIT; CREATE INDEX CONCURRENTLY i ON t (a); BEGIN;",
                wrapped
            )
            .len(),
            1
        );
    }

    #[test]
    fn allows_guarded_statements_and_temp_tables() {
        assert!(auto("CREATE TABLE IF NOT EXISTS t (id int)").is_empty());
        assert!(auto("CREATE INDEX IF NOT EXISTS i ON t (a)").is_empty());
        assert!(auto("DROP TABLE IF EXISTS t; DROP TYPE IF EXISTS e").is_empty());
        assert!(auto("DROP FUNCTION f()").is_empty());
        assert!(auto("CREATE TEMP TABLE scratch (id int)").is_empty());
        assert!(
            auto("ALTER TABLE t ADD COLUMN IF NOT EXISTS a int, DROP COLUMN IF EXISTS b")
                .is_empty()
        );
        assert!(auto("ALTER TABLE t ALTER COLUMN a SET DEFAULT 1").is_empty());
    }

    #[test]
    fn unnamed_index_hint_does_not_suggest_if_not_exists_without_a_name() {
        let file = crate::SourceFile {
            sql: "CREATE INDEX CONCURRENTLY ON t (c)".into(),
            ..Default::default()
        };
        let opts = crate::LintOptions {
            runner: Runner::Autocommit,
            ..Default::default()
        };
        let report = crate::lint(std::slice::from_ref(&file), &opts);
        let f = report
            .findings
            .iter()
            .find(|f| f.rule == ID)
            .expect("flagged");
        let help = f.help.as_deref().unwrap();
        assert!(help.contains("name the index"), "{help}");
        assert!(!help.contains("IF NOT EXISTS ON t"), "{help}");
    }

    #[test]
    fn alter_help_guards_every_command() {
        let stmts = crate::parse("ALTER TABLE t ADD COLUMN a int, DROP COLUMN b").unwrap();
        let help = super::guarded_alter(stmts[0].ast()).unwrap();
        assert!(help.contains("ADD COLUMN IF NOT EXISTS a"), "{help}");
        assert!(help.contains("DROP IF EXISTS b"), "{help}");
        assert!(crate::parse(&help).is_ok());
    }

    #[test]
    fn help_inserts_the_guard() {
        assert_eq!(
            guarded("CREATE INDEX CONCURRENTLY i ON t (a)"),
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON t (a);"
        );
        assert_eq!(guarded("drop table t"), "drop table IF EXISTS t;");
        assert_eq!(
            guarded("CREATE UNIQUE INDEX i ON t (a)"),
            "CREATE UNIQUE INDEX IF NOT EXISTS i ON t (a);"
        );
        assert_eq!(guarded("DROP TYPE mood"), "DROP TYPE IF EXISTS mood;");
    }

    #[test]
    fn documented() {
        assert_documented(ID);
    }
}
