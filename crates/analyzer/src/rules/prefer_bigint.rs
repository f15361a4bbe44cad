//! `prefer-bigint`

use super::{type_hits, Category, Rule};
use crate::ast;
use crate::lint::{FileCtx, Hit, Severity};

pub(crate) static RULE: Rule = Rule {
    id: "prefer-bigint",
    summary: "integer, smallint and serial columns",
    doc: DOC,
    default_severity: Severity::Warning,
    opt_in: true,
    size_sensitive: false,
    category: Category::Hygiene,
    check,
};

const DOC: &str = "\
prefer-bigint: integer, smallint and serial columns (opt-in)

What it flags
  Columns declared integer / int / int4, smallint / int2, serial or smallserial
  (in CREATE TABLE, ADD COLUMN or ALTER COLUMN TYPE).

Why it hurts
  A 4-byte key runs out at 2,147,483,647. Growing it later is a column type
  change that rewrites the table and its indexes under ACCESS EXCLUSIVE - on
  the table that has by then become large.

Safe alternative
  Use bigint (bigserial, or bigint GENERATED ALWAYS AS IDENTITY) from the start:

    CREATE TABLE events (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY);

  Turn the rule on with `enable = [\"prefer-bigint\"]` under `[lint]` in lull.toml.
";

fn check(ctx: &FileCtx) -> Vec<Hit> {
    type_hits(ctx, |t| {
        let name = ast::type_name(t);
        matches!(
            name.as_str(),
            "int4"
                | "int2"
                | "serial"
                | "serial4"
                | "smallserial"
                | "serial2"
                | "int"
                | "integer"
                | "smallint"
        )
        .then(|| format!("{name} overflows at 2^31; prefer bigint"))
    })
}

#[cfg(test)]
mod tests {
    use crate::rules::testing::*;

    const ID: &str = "prefer-bigint";

    #[test]
    fn flags_the_type() {
        assert_eq!(
            hits(ID, "CREATE TABLE t (id serial PRIMARY KEY, n bigint)").len(),
            1
        );
    }

    #[test]
    fn allows_the_preferred_type() {
        assert!(hits(ID, "CREATE TABLE t (id bigserial PRIMARY KEY, n bigint)").is_empty());
    }

    #[test]
    fn documented() {
        assert_documented(ID);
    }
}
