//! `domain-constraint`

use pg_query::protobuf::ConstrType;
use pg_query::NodeEnum;

use super::{contype, Category, Rule};
use crate::ast;
use crate::lint::{FileCtx, Hit, Severity};

pub(crate) static RULE: Rule = Rule {
    id: "domain-constraint",
    summary: "ALTER DOMAIN ... ADD CONSTRAINT without NOT VALID, or CREATE DOMAIN ... CHECK",
    doc: DOC,
    default_severity: Severity::Warning,
    opt_in: false,
    size_sensitive: false,
    category: Category::Locking,
    check,
};

const DOC: &str = "\
domain-constraint: ALTER DOMAIN ... ADD CONSTRAINT without NOT VALID, or CREATE DOMAIN ... CHECK

What it flags
  ALTER DOMAIN ... ADD CONSTRAINT (CHECK or NOT NULL) without NOT VALID,
  and, as information, CREATE DOMAIN with a CHECK constraint.

Why it hurts
  Adding a constraint to a domain checks every column of every table that
  uses the domain, each under a lock that blocks writes, in one
  transaction. A CHECK on a domain is also hard to change later: every
  change is such a scan, and dropping it needs every dependent column.

Safe alternative
  Add the constraint NOT VALID (new values are checked at once), then
  validate existing rows separately:

    ALTER DOMAIN email ADD CONSTRAINT email_at CHECK (VALUE LIKE '%@%') NOT VALID;
    ALTER DOMAIN email VALIDATE CONSTRAINT email_at;

  Or put the CHECK on the table columns, where NOT VALID + VALIDATE
  CONSTRAINT works per table.
";

fn check(ctx: &FileCtx) -> Vec<Hit> {
    let mut hits = Vec::new();
    for (i, stmt) in ctx.stmts.iter().enumerate() {
        match stmt.ast() {
            NodeEnum::AlterDomainStmt(s) if s.subtype == "C" => {
                let Some(c) = s.def.as_deref().and_then(ast::as_constraint) else {
                    continue;
                };
                if c.skip_validation {
                    continue;
                }
                let name = s
                    .type_name
                    .iter()
                    .filter_map(ast::string_value)
                    .collect::<Vec<_>>()
                    .join(".");
                hits.push(
                    Hit::new(
                        i,
                        format!("ADD CONSTRAINT on domain `{name}` checks every column that uses it, blocking writes to those tables"),
                    )
                    .help(Some(format!(
                        "add it NOT VALID, then: ALTER DOMAIN {name} VALIDATE CONSTRAINT {};",
                        if c.conname.is_empty() { "<name>" } else { &c.conname }
                    ))),
                );
            }
            NodeEnum::CreateDomainStmt(s)
                if s.constraints
                    .iter()
                    .filter_map(ast::as_constraint)
                    .any(|c| contype(c) == ConstrType::ConstrCheck) =>
            {
                hits.push(
                    Hit::new(
                        i,
                        "a CHECK on a domain can only be changed by scanning every column that uses the domain",
                    )
                    .help(Some("consider a CHECK on the table columns instead".into()))
                    .at_most(Severity::Info),
                );
            }
            _ => {}
        }
    }
    hits
}

#[cfg(test)]
mod tests {
    use crate::rules::testing::*;

    const ID: &str = "domain-constraint";

    #[test]
    fn flags_validated_domain_constraints_and_domain_checks() {
        assert_eq!(
            hits(
                ID,
                "ALTER DOMAIN email ADD CONSTRAINT c CHECK (VALUE LIKE '%@%')"
            )
            .len(),
            1
        );
        assert_eq!(
            hits(ID, "CREATE DOMAIN email AS text CHECK (VALUE LIKE '%@%')").len(),
            1
        );
    }

    #[test]
    fn allows_not_valid_and_plain_domains() {
        assert!(hits(
            ID,
            "ALTER DOMAIN email ADD CONSTRAINT c CHECK (VALUE LIKE '%@%') NOT VALID"
        )
        .is_empty());
        assert!(hits(ID, "ALTER DOMAIN email VALIDATE CONSTRAINT c").is_empty());
        assert!(hits(ID, "CREATE DOMAIN email AS text NOT NULL").is_empty());
    }

    #[test]
    fn documented() {
        assert_documented(ID);
    }
}
