//! Suppression comments:
//!
//! - `-- lull:ignore RULE[, RULE] reason` on the line of a statement or
//!   anywhere above it (after the previous statement) silences those rules
//!   for that statement;
//! - `-- lull:ignore-file RULE[, RULE] reason` before the first statement
//!   silences them for the whole file.
//!
//! A suppression that names an unknown rule, or that silences nothing, is
//! reported, so stale comments do not pile up.

use crate::parse::{is_comment, LineIndex, Statement};

const IGNORE: &str = "lull:ignore";
const IGNORE_FILE: &str = "lull:ignore-file";

#[derive(Debug)]
struct Entry {
    rule: String,
    /// `None` for a file-wide suppression.
    stmt: Option<usize>,
    offset: usize,
    end: usize,
    used: bool,
}

/// The suppressions of one file.
#[derive(Debug, Default)]
pub(crate) struct Suppressions {
    entries: Vec<Entry>,
}

/// A suppression comment that is itself a problem.
#[derive(Debug)]
pub(crate) struct Problem {
    pub rule: String,
    pub offset: usize,
    pub end: usize,
    /// The rule id is unknown (otherwise: it suppressed nothing).
    pub unknown: bool,
}

impl Suppressions {
    /// Whether `rule` is silenced for statement `stmt`; marks the
    /// suppression as used.
    pub(crate) fn suppress(&mut self, rule: &str, stmt: usize) -> bool {
        let mut hit = false;
        for e in self
            .entries
            .iter_mut()
            .filter(|e| e.rule == rule && e.stmt.is_none_or(|s| s == stmt))
        {
            e.used = true;
            hit = true;
        }
        hit
    }

    /// Unknown rule names, and suppressions of active rules that silenced
    /// nothing.
    pub(crate) fn problems(
        &self,
        known: impl Fn(&str) -> bool,
        active: impl Fn(&str) -> bool,
    ) -> Vec<Problem> {
        self.entries
            .iter()
            .filter_map(|e| {
                let unknown = !known(&e.rule);
                (unknown || (!e.used && active(&e.rule))).then(|| Problem {
                    rule: e.rule.clone(),
                    offset: e.offset,
                    end: e.end,
                    unknown,
                })
            })
            .collect()
    }
}

/// Reads the suppression comments of `sql` and attaches each to its
/// statement.
pub(crate) fn collect(sql: &str, stmts: &[Statement]) -> Suppressions {
    let mut out = Suppressions::default();
    if !sql.contains(IGNORE) {
        return out;
    }
    let Ok(scan) = pg_query::scan(sql) else {
        return out;
    };
    let lines = LineIndex::new(sql);
    for token in scan.tokens.iter().filter(|t| is_comment(t)) {
        let (start, end) = (token.start as usize, token.end as usize);
        let Some(text) = sql.get(start..end) else {
            continue;
        };
        let body = text
            .trim_start_matches("--")
            .trim_start_matches("/*")
            .trim_end_matches("*/")
            .trim();
        let (file_wide, rest) = if let Some(rest) = body.strip_prefix(IGNORE_FILE) {
            (true, rest)
        } else if let Some(rest) = body.strip_prefix(IGNORE) {
            (false, rest)
        } else {
            continue;
        };
        let stmt = if file_wide {
            None
        } else {
            match attach(sql, &lines, stmts, start) {
                Some(i) => Some(i),
                // After the last statement: nothing to attach to.
                None => Some(usize::MAX),
            }
        };
        for rule in rule_list(rest) {
            out.entries.push(Entry {
                rule,
                stmt,
                offset: start,
                end,
                used: false,
            });
        }
    }
    out
}

/// The statement a comment at `offset` belongs to: the statement whose
/// last line it trails, or else the next statement.
fn attach(sql: &str, lines: &LineIndex, stmts: &[Statement], offset: usize) -> Option<usize> {
    let line = lines.position(sql, offset).0;
    if let Some(i) = stmts.iter().rposition(|s| s.span.end <= offset) {
        if lines.position(sql, stmts[i].span.end).0 == line {
            return Some(i);
        }
    }
    stmts.iter().position(|s| s.span.end > offset)
}

/// `a, b reason` → `[a, b]`: rule ids separated by commas; the first word
/// not followed by a comma ends the list.
fn rule_list(text: &str) -> Vec<String> {
    let mut rules = Vec::new();
    let mut rest = text.trim_start();
    loop {
        let end = rest
            .find(|c: char| c.is_whitespace() || c == ',')
            .unwrap_or(rest.len());
        if end == 0 {
            break;
        }
        rules.push(rest[..end].to_string());
        rest = rest[end..].trim_start();
        match rest.strip_prefix(',') {
            Some(more) => rest = more.trim_start(),
            None => break,
        }
    }
    rules
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse;

    #[test]
    fn rule_lists_end_at_the_reason() {
        assert_eq!(rule_list(" a, b,c  because reasons"), vec!["a", "b", "c"]);
        assert_eq!(rule_list(" a reason, with comma"), vec!["a"]);
        assert!(rule_list("   ").is_empty());
    }

    #[test]
    fn comments_attach_to_the_statement_on_or_below_them() {
        let sql = "SELECT 1; -- lull:ignore x trailing\n-- lull:ignore y above\n\nSELECT 2;\nSELECT 3 /* lull:ignore z inside */;\n-- lull:ignore w after all";
        let stmts = parse(sql).unwrap();
        let mut s = collect(sql, &stmts);
        assert!(s.suppress("x", 0));
        assert!(!s.suppress("x", 1));
        assert!(s.suppress("y", 1));
        assert!(s.suppress("z", 2));
        assert!(!s.suppress("w", 2));
        let problems = s.problems(|_| true, |_| true);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].rule, "w");
    }

    #[test]
    fn file_wide_suppressions_cover_every_statement() {
        let sql = "-- lull:ignore-file a, nope\nSELECT 1; SELECT 2;";
        let stmts = parse(sql).unwrap();
        let mut s = collect(sql, &stmts);
        assert!(s.suppress("a", 1));
        let problems = s.problems(|r| r == "a", |_| true);
        assert_eq!(problems.len(), 1);
        assert!(problems[0].unknown);
    }
}
