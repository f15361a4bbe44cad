//! Human durations in configuration: `100ms`, `2s`, `5m`, `1h`, `0`.

use std::fmt;
use std::str::FromStr;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

/// A duration written the way people write them in config files and flags.
///
/// Accepts an integer with a unit (`ms`, `s`, `m`, `h`, `d`), a bare `0`,
/// or a bare integer in a TOML file meaning milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(pub std::time::Duration);

impl Duration {
    /// A duration of the given milliseconds.
    pub const fn from_millis(ms: u64) -> Self {
        Duration(std::time::Duration::from_millis(ms))
    }

    /// A duration of the given seconds.
    pub const fn from_secs(s: u64) -> Self {
        Duration(std::time::Duration::from_secs(s))
    }

    /// The standard library value.
    pub fn std(self) -> std::time::Duration {
        self.0
    }

    /// Whole milliseconds, the unit PostgreSQL settings such as
    /// `lock_timeout` take when given a bare number.
    pub fn as_millis(self) -> u128 {
        self.0.as_millis()
    }

    /// The value for a PostgreSQL duration setting, e.g. `'100ms'`; `0`
    /// means "no limit" there.
    pub fn pg_setting(self) -> String {
        format!("{}ms", self.0.as_millis())
    }
}

impl FromStr for Duration {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let n: u64 = num.parse().map_err(|_| {
            format!("`{s}` is not a duration; write e.g. `100ms`, `2s`, `5m`, `1h`")
        })?;
        let ms = match unit.trim() {
            "ms" => Some(n),
            "s" => n.checked_mul(1_000),
            "m" | "min" => n.checked_mul(60_000),
            "h" => n.checked_mul(3_600_000),
            "d" => n.checked_mul(86_400_000),
            "" if n == 0 => Some(0),
            "" => {
                return Err(format!(
                    "`{s}` has no unit; write e.g. `{s}ms` or `{s}s` (units: ms, s, m, h, d)"
                ))
            }
            other => {
                return Err(format!(
                    "unknown unit `{other}` in `{s}`; valid units: ms, s, m, h, d"
                ))
            }
        };
        ms.map(Duration::from_millis)
            .ok_or_else(|| format!("`{s}` is too long a duration"))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms == 0 {
            write!(f, "0")
        } else if ms.is_multiple_of(3_600_000) {
            write!(f, "{}h", ms / 3_600_000)
        } else if ms.is_multiple_of(60_000) {
            write!(f, "{}m", ms / 60_000)
        } else if ms.is_multiple_of(1_000) {
            write!(f, "{}s", ms / 1_000)
        } else {
            write!(f, "{ms}ms")
        }
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration such as \"100ms\", \"2s\", \"5m\" or \"1h\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
                u64::try_from(v)
                    .map(Duration::from_millis)
                    .map_err(|_| E::custom("a duration cannot be negative"))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
                Ok(Duration::from_millis(v))
            }
        }
        d.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(
            "100ms".parse::<Duration>().unwrap(),
            Duration::from_millis(100)
        );
        assert_eq!("2s".parse::<Duration>().unwrap(), Duration::from_secs(2));
        assert_eq!("5m".parse::<Duration>().unwrap(), Duration::from_secs(300));
        assert_eq!("1h".parse::<Duration>().unwrap(), Duration::from_secs(3600));
        assert_eq!("0".parse::<Duration>().unwrap(), Duration::from_millis(0));
    }

    #[test]
    fn rejects_bad_input_with_the_valid_units() {
        let err = "5 parsecs".parse::<Duration>().unwrap_err();
        assert!(err.contains("valid units: ms, s, m, h, d"), "{err}");
        let err = "15".parse::<Duration>().unwrap_err();
        assert!(err.contains("has no unit"), "{err}");
        assert!("ms".parse::<Duration>().is_err());
    }

    #[test]
    fn displays_in_the_largest_whole_unit() {
        assert_eq!(Duration::from_millis(1500).to_string(), "1500ms");
        assert_eq!(Duration::from_secs(120).to_string(), "2m");
        assert_eq!(Duration::from_millis(0).to_string(), "0");
        assert_eq!(Duration::from_millis(100).pg_setting(), "100ms");
    }
}
