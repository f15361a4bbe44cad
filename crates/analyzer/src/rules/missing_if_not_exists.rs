//! `missing-if-not-exists`

use pg_query::protobuf::ObjectType;
use pg_query::NodeEnum;

use super::{Category, Rule};
use crate::lint::{FileCtx, Hit, Severity};

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
  CREATE TABLE and CREATE INDEX without IF NOT EXISTS; DROP TABLE / INDEX /
  VIEW / MATERIALIZED VIEW / SEQUENCE without IF EXISTS.

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

  (An INVALID index left by a failed CONCURRENTLY build is kept by IF NOT
  EXISTS; lull drops such leftovers before retrying.)
";

fn check(ctx: &FileCtx) -> Vec<Hit> {
    let mut hits = Vec::new();
    for (i, stmt) in ctx.stmts.iter().enumerate() {
        let message = match stmt.ast() {
            NodeEnum::CreateStmt(s) if !s.if_not_exists => {
                "CREATE TABLE without IF NOT EXISTS fails when re-run"
            }
            NodeEnum::IndexStmt(s) if !s.if_not_exists => {
                "CREATE INDEX without IF NOT EXISTS fails when re-run"
            }
            NodeEnum::DropStmt(s) if !s.missing_ok && droppable(s.remove_type) => {
                "DROP without IF EXISTS fails when re-run"
            }
            _ => continue,
        };
        hits.push(Hit::new(i, message).help(Some(guarded(&stmt.text))));
    }
    hits
}

fn droppable(kind: i32) -> bool {
    [
        ObjectType::ObjectTable,
        ObjectType::ObjectIndex,
        ObjectType::ObjectView,
        ObjectType::ObjectMatview,
        ObjectType::ObjectSequence,
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
    let object = [Token::Table, Token::Index, Token::View, Token::Sequence];
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
    use crate::rules::testing::*;

    const ID: &str = "missing-if-not-exists";

    #[test]
    fn flags_unguarded_create_and_drop() {
        assert_eq!(hits(ID, "CREATE TABLE t (id int)").len(), 1);
        assert_eq!(hits(ID, "CREATE INDEX CONCURRENTLY i ON t (a)").len(), 1);
        assert_eq!(hits(ID, "DROP INDEX i; DROP TABLE t").len(), 2);
    }

    #[test]
    fn allows_guarded_statements() {
        assert!(hits(ID, "CREATE TABLE IF NOT EXISTS t (id int)").is_empty());
        assert!(hits(ID, "CREATE INDEX IF NOT EXISTS i ON t (a)").is_empty());
        assert!(hits(ID, "DROP TABLE IF EXISTS t").is_empty());
        assert!(hits(ID, "DROP FUNCTION f()").is_empty());
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
    }

    #[test]
    fn documented() {
        assert_documented(ID);
    }
}
