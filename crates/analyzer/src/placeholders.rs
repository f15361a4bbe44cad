//! Templated SQL: placeholders substituted from configuration before a
//! file is parsed.
//!
//! Real histories carry placeholders their tool fills in: Go templates
//! (`{{ index .Options "Namespace" }}`, `{{ .Schema }}` in golang-migrate
//! based projects such as supabase/auth), Flyway's `${schema}`, and psql
//! variables (`:'name'` as a literal, `:"name"` as an identifier, `:name`
//! as it is). With values from `[placeholders]` in `lull.toml`, lint,
//! plan and migrate read what the tool would run. A placeholder without a
//! value is an error naming it and its line and column, never a silent
//! guess.
//!
//! Go templates and `${…}` are replaced wherever they appear (their tools
//! work on the text, dollar-quoted bodies included); psql variables only
//! outside literals, quoted identifiers, comments and dollar-quoted
//! bodies, as psql does, and a bare `:name` without a value is left alone
//! (psql leaves it too, and `a[lo:hi]` is SQL).
//!
//! [`Substituted::original_offset`] maps a byte offset of the substituted
//! text back into the file, so findings point at what the user wrote.

use std::collections::BTreeMap;

use crate::lex;
use crate::parse::LineIndex;

/// A placeholder with no configured value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownPlaceholder {
    /// The placeholder's name (`Namespace`, `schema`).
    pub name: String,
    /// The placeholder as written (`{{ index .Options "Namespace" }}`).
    pub written: String,
    /// Byte offset in the original text.
    pub offset: usize,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
}

impl std::fmt::Display for UnknownPlaceholder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "placeholder `{}` (written `{}`) has no value at line {}, column {}; \
             set it under [placeholders] in lull.toml",
            self.name, self.written, self.line, self.column
        )
    }
}

impl std::error::Error for UnknownPlaceholder {}

/// Text after substitution, with the map back to the original.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Substituted {
    /// The text with every placeholder replaced.
    pub sql: String,
    /// (offset in `sql`, offset in the original, length in the original,
    /// length in `sql`) of each replacement, in order.
    replaced: Vec<(usize, usize, usize, usize)>,
}

impl Substituted {
    /// Whether anything was replaced.
    pub fn changed(&self) -> bool {
        !self.replaced.is_empty()
    }

    /// The offset in the original text of byte `offset` of [`Self::sql`]:
    /// text outside a replacement maps one to one, a position inside a
    /// replacement maps to the start of the placeholder.
    pub fn original_offset(&self, offset: usize) -> usize {
        let i = self.replaced.partition_point(|r| r.0 <= offset);
        if i == 0 {
            return offset;
        }
        let (new_at, orig_at, orig_len, new_len) = self.replaced[i - 1];
        if offset < new_at + new_len {
            orig_at
        } else {
            orig_at + orig_len + (offset - new_at - new_len)
        }
    }
}

/// Replaces every placeholder of `sql` with its value from `values`.
/// Without any value configured the text is returned as it is (a file
/// with placeholders then fails to parse, as without this feature).
pub fn substitute(
    sql: &str,
    values: &BTreeMap<String, String>,
) -> Result<Substituted, UnknownPlaceholder> {
    let unchanged = || Substituted {
        sql: sql.to_string(),
        replaced: Vec::new(),
    };
    if values.is_empty() {
        return Ok(unchanged());
    }
    let found = find(sql);
    if found.is_empty() {
        return Ok(unchanged());
    }
    let mut out = String::with_capacity(sql.len());
    let mut replaced = Vec::new();
    let mut at = 0;
    for p in found {
        let value = match values.get(&p.name) {
            Some(v) => v,
            None if p.kind == Kind::PsqlBare => continue,
            None => {
                let (line, column) = LineIndex::new(sql).position(sql, p.start);
                return Err(UnknownPlaceholder {
                    name: p.name,
                    written: sql[p.start..p.end].to_string(),
                    offset: p.start,
                    line,
                    column,
                });
            }
        };
        let text = match p.kind {
            Kind::PsqlLiteral => format!("'{}'", value.replace('\'', "''")),
            Kind::PsqlIdent => format!("\"{}\"", value.replace('"', "\"\"")),
            _ => value.clone(),
        };
        out.push_str(&sql[at..p.start]);
        replaced.push((out.len(), p.start, p.end - p.start, text.len()));
        out.push_str(&text);
        at = p.end;
    }
    out.push_str(&sql[at..]);
    Ok(Substituted { sql: out, replaced })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Go,
    Flyway,
    PsqlLiteral,
    PsqlIdent,
    PsqlBare,
}

struct Found {
    kind: Kind,
    name: String,
    start: usize,
    end: usize,
}

/// Every placeholder of `sql`, in order.
fn find(sql: &str) -> Vec<Found> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'{' if b.get(i + 1) == Some(&b'{') => {
                if let Some(end) = sql[i + 2..].find("}}").map(|e| i + 2 + e + 2) {
                    if let Some(name) = go_template_name(&sql[i + 2..end - 2]) {
                        out.push(Found {
                            kind: Kind::Go,
                            name,
                            start: i,
                            end,
                        });
                        i = end;
                        continue;
                    }
                }
                i += 1;
            }
            b'$' if b.get(i + 1) == Some(&b'{') => {
                match sql[i + 2..].find('}').map(|e| i + 2 + e) {
                    Some(close) if is_name(&sql[i + 2..close]) => {
                        out.push(Found {
                            kind: Kind::Flyway,
                            name: sql[i + 2..close].to_string(),
                            start: i,
                            end: close + 1,
                        });
                        i = close + 1;
                    }
                    _ => i += 1,
                }
            }
            // psql variables only count in plain SQL text; Go and Flyway
            // placeholders count inside quotes too.
            q @ (b'\'' | b'"') => {
                let end = skip_quoted(sql, i, q);
                let inner = &sql[i + 1..end.saturating_sub(1).max(i + 1)];
                out.extend(find_text_placeholders(inner).into_iter().map(|mut f| {
                    f.start += i + 1;
                    f.end += i + 1;
                    f
                }));
                i = end;
            }
            b'-' | b'/' if lex::comment_at(b, i) => {
                i = lex::skip_opaque(b, i).unwrap_or(b.len());
            }
            b'$' if i == 0 || !lex::is_ident_byte(b[i - 1]) => {
                let tag_len = lex::dollar_tag(&b[i..]);
                match tag_len {
                    Some(len) => {
                        let tag = &sql[i..i + len];
                        let body = i + len;
                        // Go and Flyway placeholders inside the body still count.
                        let end = sql[body..].find(tag).map_or(b.len(), |p| body + p);
                        out.extend(find_text_placeholders(&sql[body..end]).into_iter().map(
                            |mut f| {
                                f.start += body;
                                f.end += body;
                                f
                            },
                        ));
                        i = (end + len).min(b.len());
                    }
                    None => i += 1,
                }
            }
            b':' if b.get(i + 1) != Some(&b':') && (i == 0 || b[i - 1] != b':') => {
                match psql_variable(sql, i) {
                    Some(f) => {
                        i = f.end;
                        out.push(f);
                    }
                    None => i += 1,
                }
            }
            _ => i += 1,
        }
    }
    out
}

/// Go and Flyway placeholders only (inside dollar-quoted bodies).
fn find_text_placeholders(text: &str) -> Vec<Found> {
    find(text)
        .into_iter()
        .filter(|f| matches!(f.kind, Kind::Go | Kind::Flyway))
        .collect()
}

/// The value name of a Go template action: `index .Options "Name"` →
/// `Name`, `.Name` or `.Options.Name` → `Name`; `None` for anything else
/// (so `'{{1,2}}'` array literals are left alone).
fn go_template_name(inner: &str) -> Option<String> {
    let inner = inner.trim_matches(|c: char| c == '-' || c.is_whitespace());
    if let Some(rest) = inner.strip_prefix("index ") {
        let quoted = rest.rsplit('"').nth(1)?;
        return is_name(quoted).then(|| quoted.to_string());
    }
    let path = inner.strip_prefix('.')?;
    let last = path.rsplit('.').next()?;
    is_name(last).then(|| last.to_string())
}

fn psql_variable(sql: &str, colon: usize) -> Option<Found> {
    let rest = &sql[colon + 1..];
    let (kind, quote) = match rest.as_bytes().first()? {
        b'\'' => (Kind::PsqlLiteral, Some('\'')),
        b'"' => (Kind::PsqlIdent, Some('"')),
        _ => (Kind::PsqlBare, None),
    };
    match quote {
        Some(q) => {
            let close = rest[1..].find(q)? + 1;
            let name = &rest[1..close];
            is_name(name).then(|| Found {
                kind,
                name: name.to_string(),
                start: colon,
                end: colon + 1 + close + 1,
            })
        }
        None => {
            let len = rest
                .bytes()
                .take_while(|&c| c.is_ascii_alphanumeric() || c == b'_')
                .count();
            let name = &rest[..len];
            (len > 0
                && !name.as_bytes()[0].is_ascii_digit()
                && rest.as_bytes().get(len) != Some(&b'='))
            .then(|| Found {
                kind,
                name: name.to_string(),
                start: colon,
                end: colon + 1 + len,
            })
        }
    }
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-' || c == '.')
}

/// Past the quote that closes the one at `start`. A Go template action
/// inside (`"{{ index .Options "Namespace" }}"`) is stepped over whole, so
/// the quotes within it do not end the quoted text.
fn skip_quoted(sql: &str, start: usize, quote: u8) -> usize {
    let b = sql.as_bytes();
    let mut i = start + 1;
    while i < b.len() {
        if b[i] == b'{' && b.get(i + 1) == Some(&b'{') {
            let text = &sql[i + 2..];
            if let Some(e) = text.find("}}") {
                if go_template_name(&text[..e]).is_some() {
                    i += 2 + e + 2;
                    continue;
                }
            }
        }
        if b[i] == quote {
            return i + 1;
        }
        i += 1;
    }
    b.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_go_template_with_quotes_inside_a_quoted_name_is_substituted() {
        let values = BTreeMap::from([("Namespace".to_string(), "auth".to_string())]);
        let sql = r#"CREATE INDEX i ON "{{ index .Options "Namespace" }}".identities (user_id);"#;
        let out = substitute(sql, &values).unwrap();
        assert_eq!(out.sql, r#"CREATE INDEX i ON "auth".identities (user_id);"#);
    }

    fn values(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn each_syntax_is_replaced() {
        let v = values(&[("Namespace", "auth"), ("schema", "app"), ("owner", "o'k")]);
        let sql = "CREATE TABLE {{ index .Options \"Namespace\" }}.users ();\n\
                   CREATE TABLE {{.Namespace}}.x (); CREATE TABLE ${schema}.t ();\n\
                   COMMENT ON TABLE t IS :'owner'; ALTER TABLE :\"schema\".t OWNER TO :owner;\n\
                   SELECT a[1:2], x::text, '{{1,2}}'::int[], ':owner', '${schema}.t' -- :owner\n\
                   ; DO $$ BEGIN PERFORM '{{ .Namespace }}', ':owner'; END $$;";
        let out = substitute(sql, &v).unwrap();
        assert_eq!(
            out.sql,
            "CREATE TABLE auth.users ();\n\
             CREATE TABLE auth.x (); CREATE TABLE app.t ();\n\
             COMMENT ON TABLE t IS 'o''k'; ALTER TABLE \"app\".t OWNER TO o'k;\n\
             SELECT a[1:2], x::text, '{{1,2}}'::int[], ':owner', 'app.t' -- :owner\n\
             ; DO $$ BEGIN PERFORM 'auth', ':owner'; END $$;"
        );
    }

    #[test]
    fn offsets_map_back_to_the_file() {
        let v = values(&[("Namespace", "auth")]);
        let sql = "ALTER TABLE {{ index .Options \"Namespace\" }}.users ADD x int;";
        let out = substitute(sql, &v).unwrap();
        let users = out.sql.find("users").unwrap();
        assert_eq!(&sql[out.original_offset(users)..][..5], "users");
        assert_eq!(out.original_offset(12), 12);
        assert_eq!(
            out.original_offset(13),
            12,
            "inside the value: the placeholder"
        );
        assert_eq!(out.original_offset(3), 3);
    }

    #[test]
    fn unknown_placeholders_are_named_with_their_position() {
        let v = values(&[("Namespace", "auth")]);
        let err = substitute("SELECT 1;\n  SELECT ${tenant};", &v).unwrap_err();
        assert_eq!((err.name.as_str(), err.line, err.column), ("tenant", 2, 10));
        let err = substitute("SELECT {{ .Other }}", &v).unwrap_err();
        assert_eq!(err.name, "Other");
        // A bare psql variable without a value is SQL psql leaves alone.
        assert_eq!(
            substitute("SELECT a[lo:hi]", &v).unwrap().sql,
            "SELECT a[lo:hi]"
        );
        // Nothing configured: nothing changes.
        assert!(!substitute("SELECT ${x}", &BTreeMap::new())
            .unwrap()
            .changed());
    }
}
