//! The safe window: the hours (in a time zone, on some days of the week)
//! in which lull may start and run index builds.
//!
//! A window is wall-clock time, so `02:00-05:00` in `Europe/Berlin` stays
//! 02:00 local across daylight-saving changes. A window whose end is not
//! after its start crosses midnight (`22:00-04:00`); the day of week is the
//! day it opens. Seconds are allowed (`14:03:10-14:03:20`) so tests and
//! demos can use windows of seconds.

use chrono::{
    DateTime, Datelike, Duration as ChronoDuration, NaiveDate, NaiveTime, TimeZone, Utc, Weekday,
};
use chrono_tz::Tz;
use serde::Serialize;

/// A window specification that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    /// The `window` value.
    #[error("window `{0}` is not valid; write `HH:MM-HH:MM`, e.g. `02:00-05:00` (seconds allowed: `02:00:30-02:01:00`)")]
    Spec(String),
    /// The `timezone` value.
    #[error("time zone `{0}` is not known; write an IANA name such as `UTC` or `Europe/Berlin`")]
    TimeZone(String),
    /// A `days` entry.
    #[error("day `{0}` is not valid; write mon, tue, wed, thu, fri, sat or sun")]
    Day(String),
}

/// When builds may run.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    start: NaiveTime,
    end: NaiveTime,
    tz: Tz,
    days: Option<Vec<Weekday>>,
    spec: String,
}

/// Where `now` is relative to the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum WindowState {
    /// Inside the window, which closes at `closes_at`.
    Open {
        /// When the current window closes.
        closes_at: DateTime<Utc>,
    },
    /// Outside; the next window opens at `opens_at` (within a week).
    Closed {
        /// When the next window opens.
        opens_at: DateTime<Utc>,
    },
}

impl Window {
    /// Parses a window such as `02:00-05:00` with an optional IANA time zone
    /// (default UTC) and optional days of week (default every day).
    pub fn parse(
        spec: &str,
        timezone: Option<&str>,
        days: Option<&[String]>,
    ) -> Result<Window, WindowError> {
        let bad = || WindowError::Spec(spec.to_string());
        let (a, b) = spec.split_once('-').ok_or_else(bad)?;
        let time = |s: &str| {
            let s = s.trim();
            NaiveTime::parse_from_str(s, "%H:%M:%S")
                .or_else(|_| NaiveTime::parse_from_str(s, "%H:%M"))
                .map_err(|_| bad())
        };
        let tz = match timezone {
            None => Tz::UTC,
            Some(name) => name
                .parse::<Tz>()
                .map_err(|_| WindowError::TimeZone(name.to_string()))?,
        };
        let days = days
            .map(|list| {
                list.iter()
                    .map(|d| {
                        d.trim()
                            .parse::<Weekday>()
                            .map_err(|_| WindowError::Day(d.clone()))
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?;
        Ok(Window {
            start: time(a)?,
            end: time(b)?,
            tz,
            days,
            spec: spec.trim().to_string(),
        })
    }

    /// Whether `now` is inside the window, and until or from when.
    pub fn state(&self, now: DateTime<Utc>) -> WindowState {
        let today = now.with_timezone(&self.tz).date_naive();
        // A window that crosses midnight may have opened yesterday.
        let mut day = today.pred_opt().unwrap_or(today);
        for _ in 0..9 {
            if self.open_on(day) {
                let (start, end) = self.bounds(day);
                if now < start {
                    return WindowState::Closed { opens_at: start };
                }
                if now < end {
                    return WindowState::Open { closes_at: end };
                }
            }
            day = day.succ_opt().unwrap_or(day);
        }
        // Only reachable with an empty day list: never open.
        WindowState::Closed {
            opens_at: DateTime::<Utc>::MAX_UTC,
        }
    }

    /// True when `now` is inside the window.
    pub fn is_open(&self, now: DateTime<Utc>) -> bool {
        matches!(self.state(now), WindowState::Open { .. })
    }

    fn open_on(&self, day: NaiveDate) -> bool {
        match &self.days {
            Some(days) => days.contains(&day.weekday()),
            None => true,
        }
    }

    /// Start and end instants of the window that opens on local `day`.
    fn bounds(&self, day: NaiveDate) -> (DateTime<Utc>, DateTime<Utc>) {
        let start = self.local(day, self.start);
        let end_day = if self.end > self.start {
            day
        } else {
            day.succ_opt().unwrap_or(day)
        };
        (start, self.local(end_day, self.end))
    }

    /// A local wall-clock time as an instant; a time skipped by a DST jump
    /// moves forward by the jump, a repeated one takes its first occurrence.
    fn local(&self, day: NaiveDate, time: NaiveTime) -> DateTime<Utc> {
        let naive = day.and_time(time);
        let mut probe = naive;
        for _ in 0..4 {
            if let Some(t) = self.tz.from_local_datetime(&probe).earliest() {
                return t.with_timezone(&Utc);
            }
            probe += ChronoDuration::minutes(30);
        }
        Utc.from_utc_datetime(&naive)
    }
}

impl std::fmt::Display for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.spec, self.tz.name())?;
        if let Some(days) = &self.days {
            let names: Vec<String> = days.iter().map(|d| d.to_string().to_lowercase()).collect();
            write!(f, " ({})", names.join(", "))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn plain_window_in_utc() {
        let w = Window::parse("02:00-05:00", None, None).unwrap();
        assert_eq!(
            w.state(at("2026-03-02T03:00:00Z")),
            WindowState::Open {
                closes_at: at("2026-03-02T05:00:00Z")
            }
        );
        assert_eq!(
            w.state(at("2026-03-02T05:00:00Z")),
            WindowState::Closed {
                opens_at: at("2026-03-03T02:00:00Z")
            }
        );
        assert_eq!(
            w.state(at("2026-03-02T01:59:59Z")),
            WindowState::Closed {
                opens_at: at("2026-03-02T02:00:00Z")
            }
        );
    }

    #[test]
    fn window_across_midnight_opened_the_day_before() {
        let w = Window::parse("22:00-04:00", None, Some(&["fri".to_string()])).unwrap();
        // 2026-03-06 is a Friday: open from Friday 22:00 to Saturday 04:00.
        assert!(w.is_open(at("2026-03-07T03:00:00Z")));
        assert!(!w.is_open(at("2026-03-08T03:00:00Z")));
        assert_eq!(
            w.state(at("2026-03-07T05:00:00Z")),
            WindowState::Closed {
                opens_at: at("2026-03-13T22:00:00Z")
            }
        );
    }

    #[test]
    fn time_zone_and_daylight_saving() {
        let w = Window::parse("02:00-05:00", Some("Europe/Berlin"), None).unwrap();
        // Winter: UTC+1.
        assert!(w.is_open(at("2026-01-10T01:30:00Z")));
        // Summer: UTC+2, so 01:30 UTC is 03:30 local.
        assert!(w.is_open(at("2026-07-10T01:30:00Z")));
        assert!(!w.is_open(at("2026-07-10T03:30:00Z")));
        // 2026-03-29: 02:00 local does not exist; the window opens at 03:00 local (01:00 UTC).
        assert_eq!(
            w.state(at("2026-03-29T00:30:00Z")),
            WindowState::Closed {
                opens_at: at("2026-03-29T01:00:00Z")
            }
        );
    }

    #[test]
    fn window_of_seconds() {
        let w = Window::parse("10:00:05-10:00:08", None, None).unwrap();
        assert!(!w.is_open(at("2026-03-02T10:00:04Z")));
        assert!(w.is_open(at("2026-03-02T10:00:05Z")));
        assert!(!w.is_open(at("2026-03-02T10:00:08Z")));
    }

    #[test]
    fn bad_values_say_what_to_write() {
        assert!(Window::parse("2am-5am", None, None)
            .unwrap_err()
            .to_string()
            .contains("HH:MM-HH:MM"));
        assert!(matches!(
            Window::parse("02:00-05:00", Some("Mars/Base"), None),
            Err(WindowError::TimeZone(_))
        ));
        assert!(matches!(
            Window::parse("02:00-05:00", None, Some(&["funday".into()])),
            Err(WindowError::Day(_))
        ));
        let w = Window::parse(
            "02:00-05:00",
            Some("Europe/Berlin"),
            Some(&["sat".into(), "sun".into()]),
        )
        .unwrap();
        assert_eq!(w.to_string(), "02:00-05:00 Europe/Berlin (sat, sun)");
    }
}
