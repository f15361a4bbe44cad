//! `prefer-text`

use super::{type_hits, Category, Rule};
use crate::ast;
use crate::lint::{FileCtx, Hit, Severity};

pub(crate) static RULE: Rule = Rule {
    id: "prefer-text",
    summary: "varchar(n) and char(n) columns",
    doc: DOC,
    default_severity: Severity::Warning,
    opt_in: true,
    size_sensitive: false,
    category: Category::Hygiene,
    check,
};

const DOC: &str = "\
prefer-text: varchar(n) and char(n) columns (opt-in)

What it flags
  Columns declared varchar(n) / character varying(n) or char(n).

Why it hurts
  The length limit is a business rule baked into the type: changing it later
  is an ALTER COLUMN TYPE (shrinking scans the table under ACCESS
  EXCLUSIVE), and char(n) pads values with spaces. In PostgreSQL text and
  varchar perform the same.

Safe alternative
  Use text, with a CHECK constraint when a limit is needed (a CHECK can be
  changed with NOT VALID + VALIDATE, without a long lock):

    ALTER TABLE users ADD COLUMN nick text CONSTRAINT users_nick_len CHECK (length(nick) <= 50);

  Turn the rule on with `enable = [\"prefer-text\"]` under `[lint]` in lull.toml.
";

fn check(ctx: &FileCtx) -> Vec<Hit> {
    type_hits(ctx, |t| {
        let name = ast::type_name(t);
        (matches!(name.as_str(), "varchar" | "bpchar") && !t.typmods.is_empty()).then(|| {
            format!(
                "{} has a length limit in its type; prefer text with a CHECK",
                if name == "bpchar" {
                    "char(n)"
                } else {
                    "varchar(n)"
                }
            )
        })
    })
}

#[cfg(test)]
mod tests {
    use crate::rules::testing::*;

    const ID: &str = "prefer-text";

    #[test]
    fn flags_the_type() {
        assert_eq!(hits(ID, "CREATE TABLE t (name varchar(50))").len(), 1);
    }

    #[test]
    fn allows_the_preferred_type() {
        assert!(hits(ID, "CREATE TABLE t (name text, v varchar)").is_empty());
    }

    #[test]
    fn documented() {
        assert_documented(ID);
    }
}
