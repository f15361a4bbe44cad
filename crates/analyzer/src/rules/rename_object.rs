//! `rename-object`

use pg_query::protobuf::ObjectType;
use pg_query::NodeEnum;

use super::{Category, Rule};
use crate::lint::{FileCtx, Hit, Severity};

pub(crate) static RULE: Rule = Rule {
    id: "rename-object",
    summary: "renaming (or moving with SET SCHEMA) a schema, view, function, type, enum value, sequence, domain or constraint",
    doc: DOC,
    default_severity: Severity::Warning,
    opt_in: false,
    size_sensitive: false,
    category: Category::Compatibility,
    check,
};

const DOC: &str = "\
rename-object: renaming (or moving with SET SCHEMA) a schema, view, function, type, enum value, sequence, domain or constraint

What it flags
  ALTER SCHEMA / VIEW / MATERIALIZED VIEW / FUNCTION / PROCEDURE / TYPE /
  SEQUENCE / DOMAIN ... RENAME TO, ALTER TABLE ... RENAME CONSTRAINT,
  ALTER TYPE ... RENAME VALUE, and ... SET SCHEMA of any object, unless
  this file created it. (Tables and columns have rules of their own.)

Why it hurts
  The running application still uses the old name: its queries, casts,
  function calls and enum literals fail from the moment the migration
  commits until the new release is out everywhere.

Safe alternative
  Expand and contract: add the new name beside the old one (a new enum
  value, a wrapper function, a view), move the code over in a release,
  and drop the old name later:

    ALTER TYPE order_status ADD VALUE IF NOT EXISTS 'cancelled';
    -- release: write 'cancelled', read both
    -- later: migrate rows, stop accepting 'canceled'
";

fn check(ctx: &FileCtx) -> Vec<Hit> {
    let mut hits = Vec::new();
    for (i, stmt) in ctx.stmts.iter().enumerate() {
        let message = match stmt.ast() {
            NodeEnum::RenameStmt(s) => {
                let Some(kind) = kind_name(s.rename_type) else {
                    continue;
                };
                if let Some(rel) = &s.relation {
                    if !ctx.existing(i, &crate::ast::rel_name(rel)) {
                        continue;
                    }
                }
                format!("renaming a {kind} to `{}` breaks running code that uses the old name", s.newname)
            }
            NodeEnum::AlterEnumStmt(s) if !s.old_val.is_empty() => format!(
                "renaming enum value '{}' to '{}' breaks running code that writes or compares the old value",
                s.old_val, s.new_val
            ),
            NodeEnum::AlterObjectSchemaStmt(s) => {
                if let Some(rel) = &s.relation {
                    if !ctx.existing(i, &crate::ast::rel_name(rel)) {
                        continue;
                    }
                }
                format!(
                    "SET SCHEMA {} moves the object: running code that names it (or finds it on search_path) breaks",
                    s.newschema
                )
            }
            _ => continue,
        };
        hits.push(Hit::new(i, message).help(Some(
            "add the new name beside the old one, move the code over in a release, then drop the old name".into(),
        )));
    }
    hits
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
        ObjectType::ObjectTabconstraint | ObjectType::ObjectDomconstraint => "constraint",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use crate::rules::testing::*;

    const ID: &str = "rename-object";

    #[test]
    fn flags_renames_and_moves() {
        for sql in [
            "ALTER SCHEMA a RENAME TO b",
            "ALTER VIEW v RENAME TO w",
            "ALTER FUNCTION f(int) RENAME TO g",
            "ALTER TYPE mood RENAME TO feeling",
            "ALTER TYPE mood RENAME VALUE 'sad' TO 'blue'",
            "ALTER SEQUENCE s RENAME TO s2",
            "ALTER DOMAIN email RENAME TO mail",
            "ALTER TABLE t RENAME CONSTRAINT c TO d",
            "ALTER TABLE t SET SCHEMA archive",
            "ALTER FUNCTION f() SET SCHEMA archive",
        ] {
            assert_eq!(hits(ID, sql).len(), 1, "{sql}");
        }
    }

    #[test]
    fn allows_new_objects_and_other_renames() {
        assert!(hits(ID, "CREATE VIEW v AS SELECT 1; ALTER VIEW v RENAME TO w").is_empty());
        assert!(
            hits(ID, "ALTER TABLE t RENAME TO u").is_empty(),
            "rename-table's job"
        );
        assert!(hits(ID, "ALTER TABLE t RENAME COLUMN a TO b").is_empty());
        assert!(hits(ID, "ALTER TYPE mood ADD VALUE 'ok'").is_empty());
    }

    #[test]
    fn documented() {
        assert_documented(ID);
    }
}
