//! When `lull daemon` runs a pass: a cron expression in the window's time
//! zone. Both the classic five fields (`30 2 * * *`) and the six- or
//! seven-field form with seconds first (`*/10 * * * * *`) are accepted.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

/// A cron expression that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("schedule `{spec}` is not a valid cron expression ({message}); write e.g. `30 2 * * *` (02:30 every day)")]
pub struct ScheduleError {
    /// The expression as written.
    pub spec: String,
    /// The parser's message.
    pub message: String,
}

/// A parsed schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    inner: cron::Schedule,
    tz: Tz,
    spec: String,
}

impl Schedule {
    /// Parses `spec`; `tz` is the zone its hours are in.
    pub fn parse(spec: &str, tz: Tz) -> Result<Schedule, ScheduleError> {
        let fields = spec.split_whitespace().count();
        // The cron crate wants seconds first; classic cron has none.
        let full = if fields == 5 {
            format!("0 {spec}")
        } else {
            spec.to_string()
        };
        let inner = cron::Schedule::from_str(&full).map_err(|e| ScheduleError {
            spec: spec.to_string(),
            message: e.to_string(),
        })?;
        Ok(Schedule {
            inner,
            tz,
            spec: spec.trim().to_string(),
        })
    }

    /// The first tick strictly after `now`, if the expression has one.
    pub fn next_after(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.inner
            .after(&now.with_timezone(&self.tz))
            .next()
            .map(|t| t.with_timezone(&Utc))
    }
}

impl std::fmt::Display for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}` ({})", self.spec, self.tz.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn five_field_cron_in_a_time_zone() {
        let s = Schedule::parse("30 2 * * *", "Europe/Berlin".parse().unwrap()).unwrap();
        assert_eq!(
            s.next_after(at("2026-01-10T12:00:00Z")),
            Some(at("2026-01-11T01:30:00Z"))
        );
    }

    #[test]
    fn seconds_field_for_short_intervals() {
        let s = Schedule::parse("*/5 * * * * *", Tz::UTC).unwrap();
        assert_eq!(
            s.next_after(at("2026-01-10T12:00:01Z")),
            Some(at("2026-01-10T12:00:05Z"))
        );
    }

    #[test]
    fn nonsense_is_refused_with_an_example() {
        let e = Schedule::parse("every night", Tz::UTC).unwrap_err();
        assert!(e.to_string().contains("30 2 * * *"), "{e}");
    }
}
