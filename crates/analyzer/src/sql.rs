//! The one place lull quotes identifiers and literals for the SQL it
//! generates. Every crate that builds SQL text uses these functions, so a
//! table called `User` or `drop table x; --` is always handled the same way.

use pg_query::protobuf::{KeywordKind, Token};

/// Quotes an identifier the way PostgreSQL's `quote_ident` does: left bare
/// when it is a lowercase name that is not a reserved word, otherwise in
/// double quotes with inner quotes doubled.
///
/// ```
/// use lull_analyzer::sql::quote_ident;
/// assert_eq!(quote_ident("users"), "users");
/// assert_eq!(quote_ident("User"), "\"User\"");
/// assert_eq!(quote_ident("select"), "\"select\"");
/// assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
/// ```
pub fn quote_ident(s: &str) -> String {
    if is_bare_ident(s) {
        s.to_string()
    } else {
        format!("\"{}\"", s.replace('"', "\"\""))
    }
}

/// Quotes a possibly schema-qualified relation name.
///
/// ```
/// use lull_analyzer::sql::quote_qualified;
/// assert_eq!(quote_qualified(Some("app"), "Users"), "app.\"Users\"");
/// assert_eq!(quote_qualified(None, "users"), "users");
/// ```
pub fn quote_qualified(schema: Option<&str>, name: &str) -> String {
    match schema {
        Some(schema) if !schema.is_empty() => {
            format!("{}.{}", quote_ident(schema), quote_ident(name))
        }
        _ => quote_ident(name),
    }
}

/// Quotes a string literal. Backslashes switch to the `E'...'` form with
/// doubled backslashes, which means the same text whatever
/// `standard_conforming_strings` is set to.
///
/// ```
/// use lull_analyzer::sql::quote_literal;
/// assert_eq!(quote_literal("it's"), "'it''s'");
/// assert_eq!(quote_literal("a\\b"), "E'a\\\\b'");
/// ```
pub fn quote_literal(s: &str) -> String {
    let body = s.replace('\'', "''");
    if s.contains('\\') {
        format!("E'{}'", body.replace('\\', "\\\\"))
    } else {
        format!("'{body}'")
    }
}

/// An identifier PostgreSQL reads back unchanged without quotes: starts
/// with a lowercase letter or `_`, continues with lowercase letters,
/// digits, `_` or `$`, and is not a keyword that would be read as syntax
/// (asked of the real scanner, so the keyword list never goes stale).
fn is_bare_ident(s: &str) -> bool {
    let mut chars = s.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    if !(first.is_ascii_lowercase() || first == '_') {
        return false;
    }
    if !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '$') {
        return false;
    }
    match pg_query::scan(s) {
        Ok(scan) => match scan.tokens.as_slice() {
            [token] => {
                token.keyword_kind == KeywordKind::NoKeyword as i32
                    || token.keyword_kind == KeywordKind::UnreservedKeyword as i32
                    || token.token == Token::Ident as i32
            }
            _ => false,
        },
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_are_quoted_only_when_reserved_or_special() {
        assert_eq!(quote_ident("user"), "\"user\"");
        assert_eq!(quote_ident("table"), "\"table\"");
        assert_eq!(quote_ident("between"), "\"between\"");
        // Unreserved keywords are fine as bare names.
        assert_eq!(quote_ident("comment"), "comment");
        assert_eq!(quote_ident("index"), "index");
    }

    #[test]
    fn odd_names_are_quoted() {
        assert_eq!(quote_ident(""), "\"\"");
        assert_eq!(quote_ident("1abc"), "\"1abc\"");
        assert_eq!(quote_ident("with space"), "\"with space\"");
        assert_eq!(
            quote_ident("x; drop table y; --"),
            "\"x; drop table y; --\""
        );
        assert_eq!(quote_ident("naïve"), "\"naïve\"");
    }

    #[test]
    fn quoted_names_round_trip_through_the_parser() {
        for name in ["User", "select", "a\"b", "with space", "users", "éé"] {
            let sql = format!("SELECT 1 FROM {}", quote_qualified(Some("My Schema"), name));
            let parsed = pg_query::parse(&sql).unwrap();
            let tables = parsed.tables();
            assert_eq!(tables, vec![format!("My Schema.{name}")], "{sql}");
        }
    }

    #[test]
    fn literals_round_trip() {
        for text in ["plain", "it's", "back\\slash", "both ' and \\"] {
            let sql = format!("SELECT {}", quote_literal(text));
            assert!(pg_query::parse(&sql).is_ok(), "{sql}");
        }
    }
}
