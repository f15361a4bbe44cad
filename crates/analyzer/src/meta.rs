//! psql meta-commands in SQL files (`\restrict`, `\set`, `\i`, ...).
//!
//! Files written for psql may carry lines that start with a backslash.
//! They are instructions to psql, not SQL, and PostgreSQL's parser rejects
//! them. Every reader in lull (lint, plan, migrate, `indexes check`) treats
//! them the same way, through [`blank_meta_commands`]:
//!
//! - `\restrict KEY` and `\unrestrict KEY`, which `pg_dump` 15.14+, 16.10+,
//!   17.6+ and 18 write around every dump, only guard psql against a
//!   malicious dump and change nothing in the database: they are blanked
//!   (replaced by spaces, so every byte offset, line and column of the
//!   rest stays where it was);
//! - any other meta-command (`\set`, `\i`, `\connect`, `\copy`, ...) would
//!   change what runs, and lull cannot do what psql would: it is an error
//!   naming the command and its line, never silently skipped.
//!
//! A backslash counts only at the start of a line (after blanks) outside
//! string literals, quoted identifiers, dollar-quoted bodies and comments,
//! which is where psql reads one.

use std::borrow::Cow;

use crate::parse::{LineIndex, ParseError};

/// The meta-commands that change nothing in the database and are ignored.
pub const IGNORED: &[&str] = &["restrict", "unrestrict"];

/// `sql` with `\restrict` / `\unrestrict` lines blanked, or an error for
/// the first other psql meta-command (see the module docs). Borrowed, and
/// nearly free, when the text holds no backslash.
pub fn blank_meta_commands(sql: &str) -> Result<Cow<'_, str>, ParseError> {
    if !sql.contains('\\') {
        return Ok(Cow::Borrowed(sql));
    }
    let found = find_meta_commands(sql);
    if found.is_empty() {
        return Ok(Cow::Borrowed(sql));
    }
    let mut out = sql.as_bytes().to_vec();
    for (start, end) in found {
        let line = &sql[start..end];
        let name: String = line[1..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '!' || *c == '?')
            .collect();
        if IGNORED.contains(&name.as_str()) {
            out[start..end].fill(b' ');
            continue;
        }
        let (line_no, column) = LineIndex::new(sql).position(sql, start);
        let shown = line.trim_end();
        return Err(ParseError {
            message: format!(
                "psql meta-command `\\{name}` is not SQL (`{shown}`); lull runs files without psql, \
                 so it cannot do what psql would: remove it or do its work in SQL \
                 (only `\\restrict` and `\\unrestrict` lines from pg_dump are ignored)"
            ),
            offset: start,
            line: line_no,
            column,
        });
    }
    // Only ASCII bytes inside lines were replaced by spaces.
    Ok(Cow::Owned(
        String::from_utf8(out).expect("blanking ASCII keeps UTF-8"),
    ))
}

/// Byte ranges (backslash to end of line, newline excluded) of the
/// meta-command lines of `sql`.
fn find_meta_commands(sql: &str) -> Vec<(usize, usize)> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let mut line_start = true;
    while i < b.len() {
        let c = b[i];
        match c {
            b'\n' => {
                line_start = true;
                i += 1;
                continue;
            }
            b' ' | b'\t' | b'\r' => {
                i += 1;
                continue;
            }
            b'\\' if line_start => {
                let end = crate::lex::line_end(b, i);
                out.push((i, end));
                i = end;
                continue;
            }
            _ => match crate::lex::skip_opaque(b, i) {
                Some(end) => i = end,
                None => i += 1,
            },
        }
        line_start = false;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restrict_lines_are_blanked_keeping_offsets() {
        let sql = "\\restrict abc123\nSELECT 1;\n  \\unrestrict abc123\n";
        let out = blank_meta_commands(sql).unwrap();
        assert_eq!(out.len(), sql.len());
        assert_eq!(out, "                \nSELECT 1;\n                    \n");
    }

    #[test]
    fn other_meta_commands_are_errors_naming_the_line() {
        let err = blank_meta_commands("SELECT 1;\n\\set ON_ERROR_STOP 1\n").unwrap_err();
        assert_eq!((err.line, err.column), (2, 1));
        assert!(err.message.contains("`\\set`"), "{}", err.message);
        for cmd in [
            "\\i other.sql",
            "\\connect db",
            "\\c db",
            "\\copy t from 'x'",
        ] {
            let err = blank_meta_commands(&format!("-- x\n{cmd}\n")).unwrap_err();
            assert_eq!(err.line, 2, "{cmd}");
        }
    }

    #[test]
    fn backslashes_inside_sql_are_not_meta_commands() {
        for sql in [
            "SELECT 'a\n\\set x';",
            "SELECT E'it\\'s\n\\n';",
            "CREATE FUNCTION f() RETURNS text AS $$\n\\set\n$$ LANGUAGE sql;",
            "CREATE FUNCTION f() RETURNS text AS $body$\n\\set $$\n$body$ LANGUAGE sql;",
            "SELECT \"a\n\\b\";",
            "/* \n\\set x */ SELECT 1;",
            "SELECT 1 -- \\set\n;",
            "SELECT '\\x';",
        ] {
            assert_eq!(blank_meta_commands(sql).unwrap(), sql, "{sql}");
        }
    }
}
