//! `identifier-too-long`

use pg_query::protobuf::Token;

use super::{Category, Rule};
use crate::lint::{FileCtx, Hit, Severity};
use crate::safe::MAX_IDENTIFIER_BYTES;

pub(crate) static RULE: Rule = Rule {
    id: "identifier-too-long",
    summary: "an identifier longer than 63 bytes",
    doc: DOC,
    default_severity: Severity::Error,
    opt_in: false,
    size_sensitive: false,
    category: Category::Process,
    check,
};

const DOC: &str = "\
identifier-too-long: an identifier longer than 63 bytes

What it flags
  A table, column, index or constraint name longer than 63 bytes
  (NAMEDATALEN - 1).

Why it hurts
  PostgreSQL silently truncates it (with only a NOTICE). Two long names
  that share their first 63 bytes collide, IF NOT EXISTS finds the wrong
  object, and code that looks the object up by its full name (including
  lull's own index checks) never finds it.

Safe alternative
  Use a name of at most 63 bytes:

    CREATE INDEX CONCURRENTLY IF NOT EXISTS orders_customer_created_idx ON orders (customer_id, created_at);
";

/// Whether `text` can contain a name over the limit: a quoted name, or a
/// run of more than [`MAX_IDENTIFIER_BYTES`] name characters. Most
/// statements cannot, and are not scanned.
fn may_hold_long_name(text: &str) -> bool {
    if text.contains('"') {
        return true;
    }
    let mut run = 0;
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80 {
            run += 1;
            if run > MAX_IDENTIFIER_BYTES {
                return true;
            }
        } else {
            run = 0;
        }
    }
    false
}

fn check(ctx: &FileCtx) -> Vec<Hit> {
    let mut hits = Vec::new();
    for (i, stmt) in ctx.stmts.iter().enumerate() {
        if !may_hold_long_name(&stmt.text) {
            continue;
        }
        // The parser has already truncated long names in the tree, so read
        // the identifiers from the scanner's tokens instead.
        let Ok(scan) = pg_query::scan(&stmt.text) else {
            continue;
        };
        let mut seen: Vec<String> = Vec::new();
        for token in scan
            .tokens
            .iter()
            .filter(|t| t.token == Token::Ident as i32)
        {
            let Some(raw) = stmt.text.get(token.start as usize..token.end as usize) else {
                continue;
            };
            let name = match raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
                Some(quoted) => quoted.replace("\"\"", "\""),
                None => raw.to_lowercase(),
            };
            if name.len() <= MAX_IDENTIFIER_BYTES || seen.contains(&name) {
                continue;
            }
            let mut cut = MAX_IDENTIFIER_BYTES;
            while !name.is_char_boundary(cut) {
                cut -= 1;
            }
            hits.push(Hit::new(
                i,
                format!(
                    "`{name}` is {} bytes; PostgreSQL silently truncates it to `{}`",
                    name.len(),
                    &name[..cut]
                ),
            ));
            seen.push(name);
        }
    }
    hits
}

#[cfg(test)]
mod tests {
    use crate::rules::testing::*;

    const ID: &str = "identifier-too-long";

    #[test]
    fn flags_long_names() {
        let long = "x".repeat(64);
        assert_eq!(hits(ID, &format!("CREATE INDEX {long} ON t (a)")).len(), 1);
        assert_eq!(
            hits(ID, &format!("ALTER TABLE t ADD COLUMN {long} int")).len(),
            1
        );
        assert_eq!(
            hits(ID, &format!("ALTER TABLE t RENAME TO \"{long}\"")).len(),
            1
        );
    }

    #[test]
    fn allows_63_bytes() {
        let ok = "x".repeat(63);
        assert!(hits(ID, &format!("CREATE TABLE {ok} ({ok} int)")).is_empty());
        assert!(hits(ID, &format!("COMMENT ON TABLE t IS '{}'", "y".repeat(100))).is_empty());
    }

    #[test]
    fn documented() {
        assert_documented(ID);
    }
}
