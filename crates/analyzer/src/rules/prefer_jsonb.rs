//! `prefer-jsonb`

use super::{type_hits, Category, Rule};
use crate::ast;
use crate::lint::{FileCtx, Hit, Severity};

pub(crate) static RULE: Rule = Rule {
    id: "prefer-jsonb",
    summary: "json columns",
    doc: DOC,
    default_severity: Severity::Warning,
    opt_in: true,
    size_sensitive: false,
    category: Category::Hygiene,
    check,
};

const DOC: &str = "\
prefer-jsonb: json columns (opt-in)

What it flags
  Columns declared json.

Why it hurts
  json stores the text as written: it is re-parsed on every access, cannot be
  indexed with GIN, and has no equality operator (DISTINCT, GROUP BY and
  UNION fail on it).

Safe alternative
  Use jsonb:

    ALTER TABLE events ADD COLUMN payload jsonb;

  Turn the rule on with `enable = [\"prefer-jsonb\"]` under `[lint]` in lull.toml.
";

fn check(ctx: &FileCtx) -> Vec<Hit> {
    type_hits(ctx, |t| {
        let name = ast::type_name(t);
        (name == "json").then(|| {
            "json is re-parsed on every read and cannot be indexed; prefer jsonb".to_string()
        })
    })
}

#[cfg(test)]
mod tests {
    use crate::rules::testing::*;

    const ID: &str = "prefer-jsonb";

    #[test]
    fn flags_the_type() {
        assert_eq!(hits(ID, "ALTER TABLE t ADD COLUMN p json").len(), 1);
    }

    #[test]
    fn allows_the_preferred_type() {
        assert!(hits(ID, "ALTER TABLE t ADD COLUMN p jsonb").is_empty());
    }

    #[test]
    fn documented() {
        assert_documented(ID);
    }
}
