//! Findings about the linting itself: files that do not parse, and
//! suppression comments that are wrong. They are produced by the engine,
//! not by a check; they are rules so `lull explain` documents them and
//! `[lint.rules]` can set their level.

use super::{Category, Rule};
use crate::lint::{FileCtx, Hit, Severity};

/// Id of the finding for a file that does not parse.
pub(crate) const PARSE_ERROR: &str = "parse-error";
/// Id of the finding for a suppression naming an unknown rule.
pub(crate) const UNKNOWN_RULE: &str = "unknown-rule";
/// Id of the finding for a suppression that silenced nothing.
pub(crate) const UNUSED_SUPPRESSION: &str = "unused-suppression";

fn none(_: &FileCtx) -> Vec<Hit> {
    Vec::new()
}

pub(crate) static PARSE_ERROR_RULE: Rule = Rule {
    id: PARSE_ERROR,
    summary: "the file is not valid PostgreSQL",
    doc: "\
parse-error: the file is not valid PostgreSQL

What it flags
  A file the PostgreSQL parser rejects, at the offending token. The other
  files are still linted.

Why it hurts
  The migration fails when it runs; nothing in it can be checked.

Safe alternative
  Fix the syntax; `psql -f FILE` against a scratch database shows the same
  error.
",
    default_severity: Severity::Error,
    opt_in: false,
    size_sensitive: false,
    category: Category::Meta,
    check: none,
};

pub(crate) static UNKNOWN_RULE_RULE: Rule = Rule {
    id: UNKNOWN_RULE,
    summary: "a lull:ignore comment names a rule that does not exist",
    doc: "\
unknown-rule: a lull:ignore comment names a rule that does not exist

What it flags
  `-- lull:ignore NAME` or `-- lull:ignore-file NAME` where NAME is not a
  rule id (`lull explain` lists them).

Why it hurts
  A misspelt suppression silences nothing, so the finding it was meant for
  still fails the build - or, after the rule is fixed, someone assumes it
  is suppressed when it is not.

Safe alternative
  Use the exact id, e.g.

    -- lull:ignore create-index-not-concurrently table has 40 rows
",
    default_severity: Severity::Warning,
    opt_in: false,
    size_sensitive: false,
    category: Category::Meta,
    check: none,
};

pub(crate) static UNUSED_SUPPRESSION_RULE: Rule = Rule {
    id: UNUSED_SUPPRESSION,
    summary: "a lull:ignore comment that suppresses nothing",
    doc: "\
unused-suppression: a lull:ignore comment that suppresses nothing

What it flags
  A `-- lull:ignore RULE` comment whose statement (the one on its line or
  below it) has no RULE finding, or a `lull:ignore-file RULE` for a rule
  that found nothing in the file.

Why it hurts
  Stale suppressions pile up and hide the next real finding on that line.

Safe alternative
  Remove the comment, or move it on or directly above the statement it is
  meant for:

    -- lull:ignore drop-column column unused since release 41
    ALTER TABLE users DROP COLUMN legacy_flag;
",
    default_severity: Severity::Warning,
    opt_in: false,
    size_sensitive: false,
    category: Category::Meta,
    check: none,
};
