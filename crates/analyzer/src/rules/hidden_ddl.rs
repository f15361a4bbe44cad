//! `hidden-ddl`

use pg_query::NodeEnum;

use super::{Category, Rule};
use crate::lint::{FileCtx, Hit, Severity};

pub(crate) static RULE: Rule = Rule {
    id: "hidden-ddl",
    summary: "DDL inside a DO block or function body, which lull cannot see into",
    doc: DOC,
    default_severity: Severity::Info,
    opt_in: false,
    size_sensitive: false,
    category: Category::Meta,
    check,
};

const DOC: &str = "\
hidden-ddl: DDL inside a DO block or function body, which lull cannot see into

What it flags
  A DO $$ ... $$ block, or a CREATE FUNCTION / PROCEDURE body, whose text
  holds schema changes (ALTER, CREATE, DROP, TRUNCATE, LOCK, EXECUTE of a
  built string). Reported once per file, as information.

Why it hurts
  The statements inside are strings to the parser: lull's locking rules,
  its lock facts and `lull migrate`'s safe forms do not apply to them. A
  plain CREATE INDEX inside a DO block blocks writes just the same.

Safe alternative
  Write the DDL as top-level statements where possible; a guard that
  only exists to make the statement idempotent is usually expressible as
  IF [NOT] EXISTS:

    ALTER TABLE orders ADD COLUMN IF NOT EXISTS note text;
";

const DDL: &[&str] = &[
    "alter ",
    "create ",
    "drop ",
    "truncate ",
    "lock ",
    "execute ",
    "reindex ",
    "cluster ",
];

fn check(ctx: &FileCtx) -> Vec<Hit> {
    for (i, stmt) in ctx.stmts.iter().enumerate() {
        let what = match stmt.ast() {
            NodeEnum::DoStmt(_) => "DO block",
            NodeEnum::CreateFunctionStmt(s) if s.is_procedure => "procedure body",
            NodeEnum::CreateFunctionStmt(_) => "function body",
            _ => continue,
        };
        let body = match stmt.text.find("$") {
            Some(at) => stmt.text[at..].to_ascii_lowercase(),
            None => continue,
        };
        let body = body.replace(['\n', '\t', '\r', '('], " ");
        if DDL.iter().any(|k| body.contains(k)) {
            return vec![Hit::new(
                i,
                format!("this {what} holds schema changes lull cannot see into: its locking rules and safe forms do not apply inside"),
            )
            .help(Some(
                "write the DDL as top-level statements so lull can check it (IF [NOT] EXISTS covers most guards)".into(),
            ))];
        }
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use crate::rules::testing::*;

    const ID: &str = "hidden-ddl";

    #[test]
    fn flags_ddl_in_do_blocks_and_functions_once() {
        let sql = "DO $$ BEGIN IF NOT EXISTS (SELECT 1) THEN ALTER TABLE t ADD COLUMN a int; END IF; END $$; \
                   DO $$ BEGIN CREATE INDEX i ON t (a); END $$;";
        assert_eq!(hits(ID, sql).len(), 1);
        let f = "CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$ BEGIN EXECUTE 'DROP TABLE x'; END $$";
        assert_eq!(hits(ID, f).len(), 1);
    }

    #[test]
    fn allows_bodies_without_ddl() {
        assert!(hits(ID, "DO $$ BEGIN RAISE NOTICE 'hi'; END $$").is_empty());
        assert!(hits(
            ID,
            "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$"
        )
        .is_empty());
        assert!(hits(ID, "ALTER TABLE t ADD COLUMN a int").is_empty());
    }

    #[test]
    fn documented() {
        assert_documented(ID);
    }
}
