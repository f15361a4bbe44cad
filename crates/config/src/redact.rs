//! Connection strings without their secrets, for every message and log.

/// Hides the password in a PostgreSQL connection string.
///
/// Handles URLs (`postgres://user:secret@host/db?password=…`) and key/value
/// strings (`host=h password=secret`). Everything else is kept so the
/// message still says which server and database were meant.
pub fn redact_url(conn: &str) -> String {
    if let Some(scheme_end) = conn.find("://") {
        let (scheme, rest) = conn.split_at(scheme_end + 3);
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        let authority = match authority.rfind('@') {
            Some(at) => {
                let userinfo = &authority[..at];
                let user = match userinfo.find(':') {
                    Some(colon) => format!("{}:***", &userinfo[..colon]),
                    None => userinfo.to_string(),
                };
                format!("{user}{}", &authority[at..])
            }
            None => authority.to_string(),
        };
        format!("{scheme}{authority}{}", redact_query(tail))
    } else {
        redact_key_values(conn)
    }
}

fn redact_query(tail: &str) -> String {
    let Some(q) = tail.find('?') else {
        return tail.to_string();
    };
    let (path, query) = tail.split_at(q + 1);
    let parts: Vec<String> = query
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
            _ => kv.to_string(),
        })
        .collect();
    format!("{path}{}", parts.join("&"))
}

fn redact_key_values(conn: &str) -> String {
    let mut out = String::with_capacity(conn.len());
    let mut rest = conn;
    while let Some(pos) = find_password_key(rest) {
        out.push_str(&rest[..pos]);
        let after_key = &rest[pos..];
        let eq = after_key.find('=').expect("find_password_key saw '='");
        out.push_str(&after_key[..=eq]);
        out.push_str("***");
        let value = after_key[eq + 1..].trim_start();
        let skipped = after_key.len() - eq - 1 - value.len();
        let value_len = if let Some(quoted) = value.strip_prefix('\'') {
            let mut end = 0;
            let mut escaped = false;
            for (i, c) in quoted.char_indices() {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == '\'' {
                    end = i + 1;
                    break;
                }
                end = i + c.len_utf8();
            }
            1 + end
        } else {
            value.find(char::is_whitespace).unwrap_or(value.len())
        };
        rest = &after_key[eq + 1 + skipped + value_len..];
    }
    out.push_str(rest);
    out
}

fn find_password_key(s: &str) -> Option<usize> {
    let lower = s.to_ascii_lowercase();
    let mut from = 0;
    while let Some(i) = lower[from..].find("password") {
        let at = from + i;
        let before_ok = at == 0 || lower.as_bytes()[at - 1].is_ascii_whitespace();
        let after = lower[at + "password".len()..].trim_start();
        if before_ok && after.starts_with('=') {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn hides_url_passwords() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db.internal:5432/shop"),
            "postgres://app:***@db.internal:5432/shop"
        );
        assert_eq!(
            redact_url("postgresql://app:p%40ss@h/db?sslmode=require&password=x"),
            "postgresql://app:***@h/db?sslmode=require&password=***"
        );
    }

    #[test]
    fn keeps_urls_without_secrets() {
        assert_eq!(redact_url("postgres://app@h/db"), "postgres://app@h/db");
        assert_eq!(
            redact_url("postgres:///db?host=/tmp"),
            "postgres:///db?host=/tmp"
        );
    }

    #[test]
    fn password_with_at_sign_is_hidden_whole() {
        assert_eq!(redact_url("postgres://u:a@b@h/db"), "postgres://u:***@h/db");
    }

    #[test]
    fn hides_key_value_passwords() {
        assert_eq!(
            redact_url("host=h user=u password=secret dbname=d"),
            "host=h user=u password=*** dbname=d"
        );
        assert_eq!(
            redact_url("host=h password = 'se cret' dbname=d"),
            "host=h password =*** dbname=d"
        );
    }
}
