//! `drop-object`

use pg_query::protobuf::{AlterTableType, ObjectType};
use pg_query::NodeEnum;

use super::{alter_table, subtype, Category, Rule};
use crate::ast;
use crate::lint::{FileCtx, Hit, Severity};
use crate::parse::Statement;

pub(crate) static RULE: Rule = Rule {
    id: "drop-object",
    summary: "dropping a schema, view, function, type, sequence, domain, extension or constraint the application may use",
    doc: DOC,
    default_severity: Severity::Warning,
    opt_in: false,
    size_sensitive: false,
    category: Category::Compatibility,
    check,
};

const DOC: &str = "\
drop-object: dropping a schema, view, function, type, sequence, domain, extension or constraint the application may use

What it flags
  DROP SCHEMA / VIEW / MATERIALIZED VIEW / FUNCTION / PROCEDURE / TYPE /
  SEQUENCE / DOMAIN / EXTENSION, and ALTER TABLE ... DROP CONSTRAINT, of
  an object this file did not create itself. (Tables, columns and
  indexes have rules of their own.)

Why it hurts
  Running code that still calls the function, reads the view, casts to
  the type or relies on the constraint fails at once (or, for a dropped
  constraint, silently accepts rows it used to refuse). CASCADE takes
  dependent objects with it, often more than intended.

Safe alternative
  Stop using the object in a release first, then drop it in a later
  migration; keep CASCADE out of migrations so the drop fails instead of
  taking dependants along:

    -- release N: the application no longer calls legacy_total()
    -- release N+1:
    DROP FUNCTION IF EXISTS legacy_total(bigint);
";

fn check(ctx: &FileCtx) -> Vec<Hit> {
    let mut hits = Vec::new();
    for (i, stmt) in ctx.stmts.iter().enumerate() {
        if let NodeEnum::DropStmt(s) = stmt.ast() {
            let Some(kind) = kind_name(s.remove_type) else {
                continue;
            };
            for name in s.objects.iter().filter_map(object_name) {
                if created_before(ctx, i, s.remove_type, &name) {
                    continue;
                }
                let cascade = if s.behavior == pg_query::protobuf::DropBehavior::DropCascade as i32
                {
                    " (CASCADE drops its dependants too)"
                } else {
                    ""
                };
                hits.push(
                    Hit::new(
                        i,
                        format!("dropping {kind} `{name}` breaks running code that uses it{cascade}"),
                    )
                    .help(Some(format!(
                        "stop using the {kind} in a release first, then drop it in a later migration"
                    ))),
                );
            }
        }
        if let Some((rel, cmds)) = alter_table(stmt) {
            let table = ast::rel_name(rel);
            if !ctx.existing(i, &table) {
                continue;
            }
            for cmd in cmds.iter().filter(|c| {
                subtype(c) == AlterTableType::AtDropConstraint
                    && !added_before(ctx, i, &table, &c.name)
            }) {
                hits.push(
                    Hit::new(
                        i,
                        format!(
                            "dropping constraint `{}` on `{table}` lets rows in that running code may assume are impossible",
                            cmd.name
                        ),
                    )
                    .table(&table)
                    .help(Some(
                        "make sure no code relies on the constraint; drop it in its own migration"
                            .into(),
                    )),
                );
            }
        }
    }
    hits
}

/// Whether an earlier statement of the file added constraint `name` to
/// `table` (a temporary CHECK, as the SET NOT NULL rewrite writes).
fn added_before(ctx: &FileCtx, idx: usize, table: &str, name: &str) -> bool {
    ctx.stmts[..idx].iter().any(|s| {
        alter_table(s).is_some_and(|(rel, cmds)| {
            ast::rel_name(rel) == table
                && cmds
                    .iter()
                    .filter_map(|c| super::added_constraint(c))
                    .any(|c| c.conname == name)
        })
    })
}

fn kind_name(kind: i32) -> Option<&'static str> {
    let kind = ObjectType::try_from(kind).ok()?;
    Some(match kind {
        ObjectType::ObjectSchema => "schema",
        ObjectType::ObjectView => "view",
        ObjectType::ObjectMatview => "materialized view",
        ObjectType::ObjectFunction => "function",
        ObjectType::ObjectProcedure => "procedure",
        ObjectType::ObjectType => "type",
        ObjectType::ObjectSequence => "sequence",
        ObjectType::ObjectDomain => "domain",
        ObjectType::ObjectExtension => "extension",
        _ => return None,
    })
}

/// The name of a dropped object: a dotted name, a type name, or a
/// function with its arguments.
fn object_name(node: &pg_query::protobuf::Node) -> Option<String> {
    match &node.node {
        Some(NodeEnum::ObjectWithArgs(f)) => Some(
            f.objname
                .iter()
                .filter_map(ast::string_value)
                .collect::<Vec<_>>()
                .join("."),
        ),
        Some(NodeEnum::TypeName(t)) => Some(
            t.names
                .iter()
                .filter_map(ast::string_value)
                .collect::<Vec<_>>()
                .join("."),
        ),
        Some(NodeEnum::String(s)) => Some(s.sval.clone()),
        _ => ast::dotted_name(node),
    }
}

/// Whether statement `idx` drops something an earlier statement of the
/// same file (or unit, for relations) created.
fn created_before(ctx: &FileCtx, idx: usize, kind: i32, name: &str) -> bool {
    let kind = ObjectType::try_from(kind).unwrap_or(ObjectType::Undefined);
    if matches!(
        kind,
        ObjectType::ObjectView | ObjectType::ObjectMatview | ObjectType::ObjectSequence
    ) {
        return ctx.is_new(idx, name);
    }
    ctx.stmts[..idx]
        .iter()
        .any(|s| created_name(s, kind).is_some_and(|n| n == name))
}

fn created_name(stmt: &Statement, kind: ObjectType) -> Option<String> {
    let join = |nodes: &[pg_query::protobuf::Node]| {
        nodes
            .iter()
            .filter_map(ast::string_value)
            .collect::<Vec<_>>()
            .join(".")
    };
    match (stmt.ast(), kind) {
        (NodeEnum::CreateSchemaStmt(s), ObjectType::ObjectSchema) => Some(s.schemaname.clone()),
        (
            NodeEnum::CreateFunctionStmt(s),
            ObjectType::ObjectFunction | ObjectType::ObjectProcedure,
        ) => Some(join(&s.funcname)),
        (NodeEnum::CreateEnumStmt(s), ObjectType::ObjectType) => Some(join(&s.type_name)),
        (NodeEnum::CompositeTypeStmt(s), ObjectType::ObjectType) => {
            s.typevar.as_ref().map(ast::rel_name)
        }
        (NodeEnum::CreateDomainStmt(s), ObjectType::ObjectDomain) => Some(join(&s.domainname)),
        (NodeEnum::CreateExtensionStmt(s), ObjectType::ObjectExtension) => Some(s.extname.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use crate::rules::testing::*;

    const ID: &str = "drop-object";

    #[test]
    fn flags_drops_of_objects_the_application_uses() {
        for sql in [
            "DROP SCHEMA reporting",
            "DROP VIEW v",
            "DROP MATERIALIZED VIEW mv",
            "DROP FUNCTION f(int)",
            "DROP TYPE mood",
            "DROP SEQUENCE s",
            "DROP DOMAIN email",
            "DROP EXTENSION pg_trgm",
            "ALTER TABLE t DROP CONSTRAINT t_check",
        ] {
            assert_eq!(hits(ID, sql).len(), 1, "{sql}");
        }
        assert!(hits(ID, "DROP VIEW v CASCADE")[0].contains("CASCADE"));
    }

    #[test]
    fn allows_objects_created_in_the_same_file_and_other_drops() {
        assert!(hits(ID, "CREATE TYPE mood AS ENUM ('a'); DROP TYPE mood").is_empty());
        assert!(hits(
            ID,
            "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'; DROP FUNCTION f()"
        )
        .is_empty());
        assert!(hits(ID, "CREATE VIEW v AS SELECT 1; DROP VIEW v").is_empty());
        assert!(hits(
            ID,
            "CREATE TABLE t (a int, CONSTRAINT c CHECK (a > 0)); ALTER TABLE t DROP CONSTRAINT c"
        )
        .is_empty());
        assert!(hits(ID, "DROP TABLE t; DROP INDEX i").is_empty());
        assert!(hits(
            ID,
            "ALTER TABLE t ADD CONSTRAINT c CHECK (a IS NOT NULL) NOT VALID; ALTER TABLE t DROP CONSTRAINT c"
        )
        .is_empty());
    }

    #[test]
    fn documented() {
        assert_documented(ID);
    }
}
