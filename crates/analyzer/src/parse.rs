//! Splitting a SQL file into statements with exact spans, using the real
//! PostgreSQL parser (`pg_query`), and locating parse errors.
//!
//! PostgreSQL's grammar gives every raw statement a location that starts
//! right after the previous `;` (so it includes leading whitespace and
//! comments); that is trimmed to the first and last real token, so a
//! [`Span`] covers exactly the statement text. Long files are parsed in
//! chunks of statements, on all cores, so time and memory grow linearly
//! with the file (see [`parse`]).

use std::fmt;

use pg_query::protobuf::{ScanToken, Token};
use pg_query::NodeEnum;
use serde::Serialize;

use crate::facts::{self, Facts};
use crate::lex;

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
    pub(crate) node: Box<NodeEnum>,
    /// Where the text the parser saw for this statement began in the input
    /// (node locations count from there).
    #[serde(skip)]
    pub(crate) base: usize,
}

impl Statement {
    /// The statement's parse tree from the PostgreSQL parser. Node
    /// locations inside it are turned into offsets into the input given
    /// to [`parse`] by [`Statement::offset_of`]. Of an `INSERT … VALUES`
    /// only the target table is kept (its facts are derived first).
    pub fn ast(&self) -> &NodeEnum {
        &self.node
    }

    /// The byte offset in the input given to [`parse`] of a node
    /// `location` from [`Statement::ast`]; `None` for an unknown (-1) one.
    pub fn offset_of(&self, location: i32) -> Option<usize> {
        usize::try_from(location).ok().map(|l| self.base + l)
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
    let lines = LineIndex::new(sql);
    let chunks = chunks(sql);
    if chunks.len() == 1 {
        return parse_whole(sql, &lines, major);
    }
    // A long file is parsed a chunk of statements at a time, so the
    // parser's tree of one chunk, not of the whole file, is alive at once,
    // and chunks go to all cores. A chunk that does not parse alone (a cut
    // inside a `BEGIN ATOMIC` body, or a real syntax error) sends the whole
    // file to the parser, which then decides as PostgreSQL would.
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(chunks.len());
    let per_thread = chunks.len().div_ceil(threads);
    let parsed: Option<Vec<Vec<Statement>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = chunks
            .chunks(per_thread)
            .map(|part| {
                let lines = &lines;
                scope.spawn(move || {
                    let mut out = Vec::new();
                    for &(from, to) in part {
                        let parsed = pg_query::parse(&sql[from..to]).ok()?;
                        collect(sql, lines, major, from, to, parsed, &mut out);
                    }
                    Some(out)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| match h.join() {
                Ok(part) => part,
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    });
    match parsed {
        Some(parts) => Ok(parts.into_iter().flatten().collect()),
        None => parse_whole(sql, &lines, major),
    }
}

/// Statements per chunk the parser sees at once.
const CHUNK_STATEMENTS: usize = 512;

/// The byte ranges to parse one at a time: runs of [`CHUNK_STATEMENTS`]
/// statements, each cut right after a `;` outside strings, quoted names,
/// dollar quotes and comments ([`crate::lex`]); the parser checks every
/// piece, and a wrong cut makes a piece fail to parse. One range for a
/// short file.
fn chunks(sql: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut from = 0;
    let mut count = 0;
    for end in semicolons(sql) {
        count += 1;
        if count == CHUNK_STATEMENTS {
            out.push((from, end));
            from = end;
            count = 0;
        }
    }
    if from < sql.len() || out.is_empty() {
        out.push((from, sql.len()));
    }
    out
}

/// Parses `sql` in one piece (short files, and the fallback).
fn parse_whole(sql: &str, lines: &LineIndex, major: u32) -> Result<Vec<Statement>, ParseError> {
    let parsed = pg_query::parse(sql).map_err(|err| locate_error(sql, err))?;
    let mut statements = Vec::new();
    collect(sql, lines, major, 0, sql.len(), parsed, &mut statements);
    Ok(statements)
}

/// Turns the parser's result for `sql[from..to]` into statements.
fn collect(
    sql: &str,
    lines: &LineIndex,
    major: u32,
    from: usize,
    to: usize,
    parsed: pg_query::ParseResult,
    statements: &mut Vec<Statement>,
) {
    statements.reserve(parsed.protobuf.stmts.len());
    for raw in parsed.protobuf.stmts {
        let Some(mut node) = raw.stmt.and_then(|n| n.node) else {
            continue;
        };
        let start = usize::try_from(raw.stmt_location)
            .map_or(from, |l| from + l)
            .min(to);
        let end = match usize::try_from(raw.stmt_len) {
            Ok(0) | Err(_) => to,
            Ok(len) => (start + len).min(to),
        };
        let (start, end) = trim_range(sql, start, end);
        let (line, column) = lines.position(sql, start);
        let span = Span {
            start,
            end,
            line,
            column,
        };
        let facts = facts::facts_of(&node, major);
        shed_values(&mut node);
        statements.push(Statement {
            text: sql[start..end].to_string(),
            span,
            facts,
            node: Box::new(node),
            base: from,
        });
    }
}

/// Keeps of an `INSERT … VALUES` only its target table once its facts are
/// known: no rule reads the rows, and a data migration of many such
/// statements would otherwise keep every row's tree in memory.
fn shed_values(node: &mut NodeEnum) {
    let NodeEnum::InsertStmt(insert) = node else {
        return;
    };
    let values = matches!(
        insert.select_stmt.as_ref().and_then(|s| s.node.as_ref()),
        Some(NodeEnum::SelectStmt(select)) if !select.values_lists.is_empty()
    );
    if values && insert.returning_list.is_empty() && insert.with_clause.is_none() {
        *node = NodeEnum::InsertStmt(Box::new(pg_query::protobuf::InsertStmt {
            relation: insert.relation.take(),
            ..Default::default()
        }));
    }
}

/// The byte range of the real tokens between `from` and `to`: the parser
/// gives a statement everything after the previous `;`, so leading
/// whitespace and comments are skipped, and trailing ones (before a `;`,
/// or at the end of the input) dropped.
fn trim_range(sql: &str, from: usize, to: usize) -> (usize, usize) {
    let start = skip_blank(&sql.as_bytes()[..to], from);
    let text = &sql[start..to];
    let trimmed = text.trim_end_matches(|c: char| c.is_ascii_whitespace());
    let end = start + trimmed.len();
    // Only a tail that may end in a comment needs the real scanner.
    let last_line = &trimmed[trimmed.rfind('\n').map_or(0, |i| i + 1)..];
    if !(trimmed.ends_with("*/") || last_line.contains("--")) {
        return (start, end);
    }
    match pg_query::scan(trimmed) {
        Ok(scan) => match scan.tokens.iter().rev().find(|t| !is_comment(t)) {
            Some(last) => (start, start + last.end as usize),
            None => (start, start),
        },
        Err(_) => (start, end),
    }
}

/// Offsets just past every `;` outside quotes, dollar quotes and comments.
fn semicolons(sql: &str) -> impl Iterator<Item = usize> + '_ {
    let b = sql.as_bytes();
    let mut i = 0;
    std::iter::from_fn(move || {
        while i < b.len() {
            if b[i] == b';' {
                i += 1;
                return Some(i);
            }
            i = lex::skip_opaque(b, i).unwrap_or(i + 1);
        }
        None
    })
}

/// The first offset at or after `at` that is not whitespace or inside a
/// comment.
fn skip_blank(b: &[u8], mut at: usize) -> usize {
    loop {
        while at < b.len() && b[at].is_ascii_whitespace() {
            at += 1;
        }
        if !lex::comment_at(b, at) {
            return at.min(b.len());
        }
        at = lex::skip_opaque(b, at).unwrap_or(b.len());
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

    /// The statements' texts and spans, for comparing two parses.
    fn shape(stmts: &[Statement]) -> Vec<(String, Span)> {
        stmts.iter().map(|s| (s.text.clone(), s.span)).collect()
    }

    #[test]
    fn chunked_parse_matches_the_whole_file_parse() {
        // Many statements, with `;` inside strings, E-strings, quoted names,
        // dollar quotes, line and nested block comments, and a BEGIN ATOMIC
        // body, so chunk cuts land next to all of them.
        let mut sql = String::new();
        for i in 0..1500 {
            match i % 7 {
                0 => sql.push_str(&format!("INSERT INTO t VALUES ({i}, 'a;b''c;');\n")),
                1 => sql.push_str(&format!("-- a comment; with a semicolon\nUPDATE t SET n = {i}; /* tail; */\n")),
                2 => sql.push_str(&format!("INSERT INTO \"we;ird\" VALUES (E'\\';x', {i});\n")),
                3 => sql.push_str(&format!("CREATE FUNCTION f{i}() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql;\n")),
                4 => sql.push_str(&format!("/* outer /* inner; */ still; */ DELETE FROM t WHERE n = {i};\n")),
                5 => sql.push_str(&format!("CREATE FUNCTION g{i}() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT {i}; END;\n")),
                _ => sql.push_str(&format!("SELECT $1::int, a$b$ FROM t{i}\n;\n")),
            }
        }
        sql.push_str("SELECT 'last' -- no semicolon; a comment\n");
        assert!(
            chunks(&sql).len() > 1,
            "the test must cross chunk boundaries"
        );
        let chunked = parse(&sql).unwrap();
        let whole = parse_whole(
            &sql,
            &LineIndex::new(&sql),
            crate::versions::target_or_newest(None),
        )
        .unwrap();
        assert_eq!(chunked.len(), 1501);
        assert_eq!(shape(&chunked), shape(&whole));
        assert_eq!(chunked.last().unwrap().text, "SELECT 'last'");
        for s in &chunked {
            assert_eq!(&sql[s.span.start..s.span.end], s.text);
        }
    }

    #[test]
    fn a_syntax_error_in_a_late_chunk_is_located_in_the_file() {
        let mut sql = "INSERT INTO t VALUES (1);\n".repeat(2000);
        sql.push_str("SELEC 1;\n");
        sql.push_str(&"INSERT INTO t VALUES (2);\n".repeat(10));
        let err = parse(&sql).unwrap_err();
        assert_eq!(err.line, 2001, "{err}");
        assert_eq!(err.column, 1, "{err}");
    }

    #[test]
    fn node_locations_count_from_the_input_in_every_chunk() {
        let mut sql = "INSERT INTO t VALUES (1);\n".repeat(1200);
        let at = sql.len();
        sql.push_str("ALTER TABLE t ADD CHECK (n > 0);\n");
        let stmts = parse(&sql).unwrap();
        let last = stmts.last().unwrap();
        let NodeEnum::AlterTableStmt(alter) = last.ast() else {
            panic!("{:?}", last.ast());
        };
        let Some(NodeEnum::AlterTableCmd(cmd)) = alter.cmds[0].node.as_ref() else {
            panic!()
        };
        let Some(NodeEnum::Constraint(c)) = cmd.def.as_ref().and_then(|d| d.node.as_ref()) else {
            panic!()
        };
        let offset = last.offset_of(c.location).unwrap();
        assert!(sql[offset..].starts_with("CHECK"), "{}", &sql[offset..]);
        assert!(offset > at);
    }

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
