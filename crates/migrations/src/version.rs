//! Ordering of migration versions.
//!
//! Versions are compared the way people read them: runs of digits as
//! numbers (`9` < `10`, `1.2` < `1.10`), everything else as text. Plain
//! string order would run `10_x` before `9_y`.

use std::cmp::Ordering;

/// Compares two versions numerically where they are numbers.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a, b);
    loop {
        match (a.is_empty(), b.is_empty()) {
            (true, true) => return Ordering::Equal,
            (true, false) => return Ordering::Less,
            (false, true) => return Ordering::Greater,
            _ => {}
        }
        let (ta, ra) = split_token(a);
        let (tb, rb) = split_token(b);
        let a_num = ta.as_bytes()[0].is_ascii_digit();
        let b_num = tb.as_bytes()[0].is_ascii_digit();
        let ord = match (a_num, b_num) {
            (true, true) => {
                let na = ta.trim_start_matches('0');
                let nb = tb.trim_start_matches('0');
                na.len().cmp(&nb.len()).then_with(|| na.cmp(nb))
            }
            // A number sorts before a separator or text.
            (true, false) => Ordering::Less,
            (false, true) => Ordering::Greater,
            (false, false) => ta.cmp(tb),
        };
        if ord != Ordering::Equal {
            return ord;
        }
        a = ra;
        b = rb;
    }
}

/// Splits off the leading run of digits, or of non-digits.
fn split_token(s: &str) -> (&str, &str) {
    let digit = s.as_bytes()[0].is_ascii_digit();
    let end = s
        .char_indices()
        .find(|(_, c)| c.is_ascii_digit() != digit)
        .map(|(i, _)| i)
        .unwrap_or(s.len());
    s.split_at(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_compare_as_numbers() {
        assert_eq!(compare_versions("9", "10"), Ordering::Less);
        assert_eq!(compare_versions("0010", "9"), Ordering::Greater);
        assert_eq!(compare_versions("007", "7"), Ordering::Equal);
        assert_eq!(compare_versions("1.2", "1.10"), Ordering::Less);
        assert_eq!(compare_versions("1.2", "1.2.1"), Ordering::Less);
        assert_eq!(
            compare_versions("20240101000000", "20231231235959"),
            Ordering::Greater
        );
    }

    #[test]
    fn sorting_uses_numeric_order() {
        let mut v = vec!["10", "9", "1.10", "1.2", "100"];
        v.sort_by(|a, b| compare_versions(a, b));
        assert_eq!(v, ["1.2", "1.10", "9", "10", "100"]);
    }
}
