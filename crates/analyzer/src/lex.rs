//! Just enough of PostgreSQL's lexical rules for the readers that work on
//! raw text before (or instead of) the parser: where quoted strings
//! (`'…'`, `E'…'` with backslash escapes), quoted names, dollar-quoted
//! bodies and comments (`--`, nested `/* */`) begin and end. psql
//! meta-commands ([`crate::meta`]), the cut points of long files and the
//! start of each statement's text ([`crate::parse`]) and placeholders
//! ([`crate::placeholders`]) are all found this way.

/// Whether `c` may be part of an unquoted name (so a `$` after it is part
/// of the name, not a dollar quote).
pub(crate) fn is_ident_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80
}

/// The length of a dollar-quote tag (`$$`, `$body$`) at the start of `b`;
/// `None` for anything else, such as a parameter `$1`.
pub(crate) fn dollar_tag(b: &[u8]) -> Option<usize> {
    let mut j = 1;
    while j < b.len() && is_ident_byte(b[j]) {
        if j == 1 && b[j].is_ascii_digit() {
            return None;
        }
        j += 1;
    }
    (b.get(j) == Some(&b'$')).then_some(j + 1)
}

/// The offset of the newline that ends the line holding `at` (the end of
/// `b` on the last line).
pub(crate) fn line_end(b: &[u8], at: usize) -> usize {
    b[at..]
        .iter()
        .position(|&c| c == b'\n')
        .map_or(b.len(), |p| at + p)
}

/// Whether a comment (`--` or `/*`) starts at `i`.
pub(crate) fn comment_at(b: &[u8], i: usize) -> bool {
    matches!(
        (b.get(i), b.get(i + 1)),
        (Some(b'-'), Some(b'-')) | (Some(b'/'), Some(b'*'))
    )
}

/// When a comment, a quoted string or name, or a dollar-quoted body starts
/// at `i`: the offset just past it (a `--` comment ends at its newline).
/// `None` when `b[i]` starts none of them. Unterminated ones run to the
/// end of `b`.
pub(crate) fn skip_opaque(b: &[u8], i: usize) -> Option<usize> {
    match b[i] {
        b'-' if b.get(i + 1) == Some(&b'-') => Some(line_end(b, i)),
        b'/' if b.get(i + 1) == Some(&b'*') => Some(comment_end(b, i)),
        b'\'' => {
            let escapes =
                i > 0 && matches!(b[i - 1], b'e' | b'E') && (i < 2 || !is_ident_byte(b[i - 2]));
            Some(quoted_end(b, i, b'\'', escapes))
        }
        b'"' => Some(quoted_end(b, i, b'"', false)),
        b'$' if i == 0 || !is_ident_byte(b[i - 1]) => {
            let tag = &b[i..i + dollar_tag(&b[i..])?];
            let body = i + tag.len();
            Some(
                b[body..]
                    .windows(tag.len())
                    .position(|w| w == tag)
                    .map_or(b.len(), |p| body + p + tag.len()),
            )
        }
        _ => None,
    }
}

/// Past the `*/` that closes the (nested) comment opened at `at`.
fn comment_end(b: &[u8], mut at: usize) -> usize {
    let mut depth = 0usize;
    while at + 1 < b.len() {
        match (b[at], b[at + 1]) {
            (b'/', b'*') => {
                depth += 1;
                at += 2;
            }
            (b'*', b'/') => {
                depth -= 1;
                at += 2;
                if depth == 0 {
                    return at;
                }
            }
            _ => at += 1,
        }
    }
    b.len()
}

/// Past the closing quote of the string or name opened at `at` (a doubled
/// quote stays inside; with `backslash`, so does `\'`).
fn quoted_end(b: &[u8], at: usize, quote: u8, backslash: bool) -> usize {
    let mut i = at + 1;
    while i < b.len() {
        if backslash && b[i] == b'\\' {
            i += 2;
        } else if b[i] == quote {
            if b.get(i + 1) == Some(&quote) {
                i += 2;
            } else {
                return i + 1;
            }
        } else {
            i += 1;
        }
    }
    b.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skip(sql: &str, i: usize) -> Option<&str> {
        skip_opaque(sql.as_bytes(), i).map(|end| &sql[i..end])
    }

    #[test]
    fn skips_each_kind_whole() {
        assert_eq!(skip("-- a; b\nx", 0), Some("-- a; b"));
        assert_eq!(skip("/* a /* b; */ c */x", 0), Some("/* a /* b; */ c */"));
        assert_eq!(skip("'a''b;'x", 0), Some("'a''b;'"));
        assert_eq!(skip(r"E'a\'b;'x", 1), Some(r"'a\'b;'"));
        assert_eq!(
            skip(r"'a\'x", 0),
            Some(r"'a\'"),
            "backslash is plain in standard strings"
        );
        assert_eq!(skip(r#""a""b;"x"#, 0), Some(r#""a""b;""#));
        assert_eq!(skip("$b$ x; $c$ $b$x", 0), Some("$b$ x; $c$ $b$"));
        assert_eq!(skip("$1", 0), None);
        assert_eq!(skip("a$b$", 1), None, "a $ inside a name");
        assert_eq!(skip("x", 0), None);
    }
}
