//! Splitting a SQL file into statements with exact spans, using the real
//! PostgreSQL parser (`pg_query`), and locating parse errors.
//!
//! PostgreSQL's grammar gives every raw statement a location that starts
//! right after the previous `;` (so it includes leading whitespace and
//! comments). The scanner's tokens are used to trim that to the first and
//! last real token, so a [`Span`] covers exactly the statement text.

use std::fmt;

use pg_query::protobuf::{ScanToken, Token};
use pg_query::NodeEnum;
use serde::Serialize;

use crate::facts::{self, Facts};

/// Where a statement sits in its input: a byte range plus the 1-based line
/// and column (in characters) of its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Span {
    /// Byte offset of the first character of the statement.
    pub start: usize,
    /// Byte offset just past the statement's last token (before any `;`).
    pub end: usize,
    /// 1-based line of `start`.
    pub line: usize,
    /// 1-based column of `start`, counted in characters.
    pub column: usize,
}

/// One parsed statement: its exact source text, where it is, and what it
/// does to the database.
#[derive(Debug, Clone, Serialize)]
pub struct Statement {
    /// The statement's source text, without the trailing `;`.
    pub text: String,
    /// Where the text sits in the input that was parsed.
    pub span: Span,
    /// Class, locks, rewrites, scans and more (see [`Facts`]).
    pub facts: Facts,
    #[serde(skip)]
    pub(crate) node: NodeEnum,
}

impl Statement {
    /// The statement's parse tree from the PostgreSQL parser. Node
    /// locations inside it are byte offsets into the input given to
    /// [`parse`], not into [`Statement::text`].
    pub fn ast(&self) -> &NodeEnum {
        &self.node
    }

    /// Whether this is `BEGIN` / `START TRANSACTION`.
    pub fn begins_transaction(&self) -> bool {
        facts::is_begin(&self.node)
    }

    /// Whether this is `COMMIT` / `END` / `ROLLBACK` / `PREPARE TRANSACTION`,
    /// which closes an open transaction block.
    pub fn ends_transaction(&self) -> bool {
        facts::is_end(&self.node)
    }
}

/// SQL that PostgreSQL would reject, with the position of the offending
/// token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParseError {
    /// PostgreSQL's own message, e.g. `syntax error at or near "TABEL"`.
    pub message: String,
    /// Byte offset of the offending token in the input.
    pub offset: usize,
    /// 1-based line of `offset`.
    pub line: usize,
    /// 1-based column of `offset`, counted in characters.
    pub column: usize,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (line {}, column {})",
            self.message, self.line, self.column
        )
    }
}

impl std::error::Error for ParseError {}

/// Parses `sql` (any number of statements) with the PostgreSQL parser and
/// derives the facts of each statement for the newest PostgreSQL lull
/// knows ([`parse_for`] with no version).
///
/// Empty input, or input with only comments, gives no statements. Any
/// syntax error fails the whole input, because PostgreSQL would too.
/// psql meta-commands are handled as [`crate::meta`] says: `\restrict`
/// lines are ignored, any other is an error naming its line.
pub fn parse(sql: &str) -> Result<Vec<Statement>, ParseError> {
    parse_for(sql, None)
}

/// [`parse`] for a target PostgreSQL major (`pg_version`; `None` means
/// the newest lull knows): lock modes that changed between majors are
/// those of the target. SQL the target rejects still parses (lull's
/// grammar is the newest); [`Facts::rejected_on`] says so.
pub fn parse_for(sql: &str, pg_version: Option<u32>) -> Result<Vec<Statement>, ParseError> {
    let major = crate::versions::target_or_newest(pg_version);
    let blanked = crate::meta::blank_meta_commands(sql)?;
    let sql: &str = &blanked;
    if let Some(nul) = sql.find('\0') {
        return Err(error_at(
            sql,
            nul,
            "input contains a NUL byte, which PostgreSQL does not accept",
        ));
    }
    let parsed = match pg_query::parse(sql) {
        Ok(parsed) => parsed,
        Err(err) => return Err(locate_error(sql, err)),
    };
    let tokens = pg_query::scan(sql)
        .map(|scan| scan.tokens)
        .unwrap_or_default();
    let lines = LineIndex::new(sql);
    let mut statements = Vec::with_capacity(parsed.protobuf.stmts.len());
    for raw in &parsed.protobuf.stmts {
        let Some(node) = raw.stmt.as_ref().and_then(|n| n.node.clone()) else {
            continue;
        };
        let from = usize::try_from(raw.stmt_location)
            .unwrap_or(0)
            .min(sql.len());
        let to = match usize::try_from(raw.stmt_len) {
            Ok(0) | Err(_) => sql.len(),
            Ok(len) => (from + len).min(sql.len()),
        };
        let (start, end) = trim_range(sql, &tokens, from, to);
        let (line, column) = lines.position(sql, start);
        let span = Span {
            start,
            end,
            line,
            column,
        };
        let facts = facts::facts_of(&node, major);
        statements.push(Statement {
            text: sql[start..end].to_string(),
            span,
            facts,
            node,
        });
    }
    Ok(statements)
}

/// The byte range of the real tokens between `from` and `to`, skipping
/// whitespace and comments on both ends. Tokens are in input order, so
/// the range is found by binary search: a file of many statements costs
/// a logarithmic look-up per statement, not a scan from the start.
fn trim_range(sql: &str, tokens: &[ScanToken], from: usize, to: usize) -> (usize, usize) {
    let real = |t: &&ScanToken| {
        let (s, e) = (t.start as usize, t.end as usize);
        s >= from && e <= to && !is_comment(t)
    };
    let lo = tokens.partition_point(|t| (t.start as usize) < from);
    let hi = tokens.partition_point(|t| (t.start as usize) < to);
    let window = &tokens[lo..hi.max(lo)];
    let first = window.iter().find(real);
    let last = window.iter().rev().find(real);
    match (first, last) {
        (Some(first), Some(last)) => (first.start as usize, last.end as usize),
        _ => {
            // No tokens (the scanner failed): fall back to whitespace.
            let text = &sql[from..to];
            let start = from + (text.len() - text.trim_start().len());
            let end = from + text.trim_end().len();
            (start, end.max(start))
        }
    }
}

/// Whether a scanner token is a comment.
pub(crate) fn is_comment(token: &ScanToken) -> bool {
    token.token == Token::SqlComment as i32 || token.token == Token::CComment as i32
}

/// Finds where a failing input goes wrong.
///
/// The PostgreSQL grammar is LALR(1), so every prefix that ends before the
/// offending token is either valid or fails only "at end of input". A
/// binary search over token ends for the shortest prefix that fails any
/// other way finds the offending token.
fn locate_error(sql: &str, err: pg_query::Error) -> ParseError {
    let message = match err {
        pg_query::Error::Parse(m) | pg_query::Error::Scan(m) | pg_query::Error::Split(m) => m,
        other => other.to_string(),
    };
    let fails_before_end = |end: usize| match pg_query::parse(&sql[..end]) {
        Ok(_) => false,
        Err(pg_query::Error::Parse(m)) => !m.ends_with("at end of input"),
        Err(_) => true,
    };
    let offset = match pg_query::scan(sql) {
        Ok(scan) if !scan.tokens.is_empty() => {
            let tokens: Vec<&ScanToken> = scan.tokens.iter().filter(|t| !is_comment(t)).collect();
            let ends: Vec<usize> = tokens.iter().map(|t| t.end as usize).collect();
            match first_true(ends.len(), |i| fails_before_end(ends[i])) {
                Some(i) => tokens[i].start as usize,
                None => sql.trim_end().len(),
            }
        }
        // The scanner itself failed: an unterminated quote or comment, which
        // runs to the end of the input and is quoted in the message.
        _ => near_start(sql, &message),
    };
    error_at(sql, offset, &message)
}

/// For scanner errors (`unterminated quoted string at or near "'abc"`),
/// where the quoted text starts: its last occurrence in the input.
fn near_start(sql: &str, message: &str) -> usize {
    let near = message
        .split_once("at or near \"")
        .map(|(_, rest)| rest.strip_suffix('"').unwrap_or(rest))
        .unwrap_or("");
    let probe: String = near.chars().take(16).collect();
    match sql.rfind(&probe) {
        Some(pos) if !probe.is_empty() => pos,
        _ => sql.trim_end().len(),
    }
}

/// The smallest index in `0..len` for which the monotone predicate holds.
fn first_true(len: usize, pred: impl Fn(usize) -> bool) -> Option<usize> {
    let (mut lo, mut hi) = (0usize, len);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if pred(mid) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    (lo < len).then_some(lo)
}

fn error_at(sql: &str, offset: usize, message: &str) -> ParseError {
    let (line, column) = LineIndex::new(sql).position(sql, offset);
    ParseError {
        message: message.to_string(),
        offset,
        line,
        column,
    }
}

/// Byte offsets of line starts, for offset → line/column conversion.
pub(crate) struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    /// Indexes the line starts of `text`.
    pub(crate) fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { starts }
    }

    /// 1-based line and character column of byte `offset` in `text`.
    pub(crate) fn position(&self, text: &str, offset: usize) -> (usize, usize) {
        let offset = offset.min(text.len());
        let line = self.starts.partition_point(|&s| s <= offset);
        let line_start = self.starts[line - 1];
        let column = text
            .get(line_start..offset)
            .map_or(1, |s| s.chars().count() + 1);
        (line, column)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_cover_exact_statement_text() {
        let sql = "-- header\nCREATE TABLE a (id int);\n\n  /* c */ ALTER TABLE a ADD COLUMN b int -- trailing\n;\nSELECT 1";
        let stmts = parse(sql).unwrap();
        assert_eq!(stmts.len(), 3);
        assert_eq!(stmts[0].text, "CREATE TABLE a (id int)");
        assert_eq!((stmts[0].span.line, stmts[0].span.column), (2, 1));
        assert_eq!(stmts[1].text, "ALTER TABLE a ADD COLUMN b int");
        assert_eq!((stmts[1].span.line, stmts[1].span.column), (4, 11));
        assert_eq!(&sql[stmts[1].span.start..stmts[1].span.end], stmts[1].text);
        assert_eq!(stmts[2].text, "SELECT 1");
        assert_eq!(stmts[2].span.line, 6);
    }

    #[test]
    fn empty_and_comment_only_inputs_have_no_statements() {
        assert!(parse("").unwrap().is_empty());
        assert!(parse("-- nothing\n/* here */ ;;").unwrap().is_empty());
    }

    #[test]
    fn syntax_error_points_at_the_offending_token() {
        let sql = "SELECT 1;\nCREATE TABEL x (id int);\nSELECT 2;";
        let err = parse(sql).unwrap_err();
        assert_eq!(err.message, "syntax error at or near \"TABEL\"");
        assert_eq!((err.line, err.column), (2, 8));
        assert_eq!(&sql[err.offset..err.offset + 5], "TABEL");
    }

    #[test]
    fn error_at_end_of_input_points_at_the_end() {
        let err = parse("CREATE TABLE x (").unwrap_err();
        assert!(err.message.contains("end of input"), "{err}");
        assert_eq!(err.offset, 16);
    }

    #[test]
    fn unterminated_string_is_located() {
        let sql = "SELECT 1;\nSELECT 'abc";
        let err = parse(sql).unwrap_err();
        assert!(err.message.contains("unterminated"), "{err}");
        assert_eq!(err.line, 2);
        assert_eq!(err.column, 8);
    }

    #[test]
    fn nul_byte_is_an_error_not_a_panic() {
        let err = parse("SELECT 1;\0").unwrap_err();
        assert_eq!(err.offset, 9);
    }

    #[test]
    fn columns_count_characters() {
        let stmts = parse("SELECT 'é'; SELECT 2").unwrap();
        assert_eq!(stmts[1].span.column, 13);
        assert_eq!(stmts[1].span.start, 13);
    }
}
