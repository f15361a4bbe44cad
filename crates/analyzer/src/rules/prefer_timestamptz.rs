//! `prefer-timestamptz`

use super::{type_hits, Category, Rule};
use crate::ast;
use crate::lint::{FileCtx, Hit, Severity};

pub(crate) static RULE: Rule = Rule {
    id: "prefer-timestamptz",
    summary: "timestamp without time zone",
    doc: DOC,
    default_severity: Severity::Warning,
    opt_in: true,
    size_sensitive: false,
    category: Category::Hygiene,
    check,
};

const DOC: &str = "\
prefer-timestamptz: timestamp without time zone (opt-in)

What it flags
  Columns declared timestamp / timestamp without time zone.

Why it hurts
  timestamp stores wall-clock time with no zone: values written by servers or
  sessions in different time zones silently disagree, and daylight-saving
  transitions make some values ambiguous.

Safe alternative
  Use timestamptz, which stores an instant:

    ALTER TABLE orders ADD COLUMN shipped_at timestamptz;

  Turn the rule on with `enable = [\"prefer-timestamptz\"]` under `[lint]` in lull.toml.
";

fn check(ctx: &FileCtx) -> Vec<Hit> {
    type_hits(ctx, |t| {
        let name = ast::type_name(t);
        (name == "timestamp").then(|| "timestamp has no time zone; prefer timestamptz".to_string())
    })
}

#[cfg(test)]
mod tests {
    use crate::rules::testing::*;

    const ID: &str = "prefer-timestamptz";

    #[test]
    fn flags_the_type() {
        assert_eq!(hits(ID, "ALTER TABLE t ADD COLUMN at timestamp").len(), 1);
    }

    #[test]
    fn allows_the_preferred_type() {
        assert!(hits(ID, "ALTER TABLE t ADD COLUMN at timestamptz").is_empty());
    }

    #[test]
    fn documented() {
        assert_documented(ID);
    }
}
