//! What one run measured, and which step each stalled write belongs to.
//!
//! Plain data and functions, no database: the orchestration in the crate
//! root collects write samples and step spans, and [`RunReport::build`]
//! turns them into the figures of the side-by-side table and the per-step
//! attribution under it.

use std::time::Duration;

use serde::Serialize;

/// A write slower than this is counted as stalled ("writes over 1 s").
pub const STALL: Duration = Duration::from_secs(1);

/// One write of the workload.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WriteSample {
    /// When it was due, measured from the start of the run.
    pub due: Duration,
    /// From when it was due until it was done. Time spent waiting for a
    /// free connection counts, as it would for the application: a fixed
    /// rate means writes keep arriving while earlier ones are stuck.
    pub latency: Duration,
    /// It succeeded.
    pub ok: bool,
}

impl WriteSample {
    fn end(&self) -> Duration {
        self.due + self.latency
    }
}

/// A stretch of the run, measured from its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Span {
    /// Start.
    #[serde(rename = "start_ms", serialize_with = "ser_ms")]
    pub start: Duration,
    /// End.
    #[serde(rename = "end_ms", serialize_with = "ser_ms")]
    pub end: Duration,
}

impl Span {
    /// How long it lasted.
    pub fn len(&self) -> Duration {
        self.end.saturating_sub(self.start)
    }

    /// Whether it lasted no time at all.
    pub fn is_empty(&self) -> bool {
        self.len().is_zero()
    }

    /// How long it overlaps `[start, end]`.
    pub fn overlap(&self, start: Duration, end: Duration) -> Duration {
        end.min(self.end).saturating_sub(start.max(self.start))
    }

    fn contains(&self, t: Duration) -> bool {
        self.start <= t && t <= self.end
    }
}

/// One migration step as it ran.
#[derive(Debug, Clone, Serialize)]
pub struct StepSpan {
    /// The migration's version.
    pub version: String,
    /// The migration's name.
    pub name: String,
    /// 1-based step number within the migration.
    pub step: usize,
    /// Its SQL, shortened to one line.
    pub summary: String,
    /// The policy that ran it (`none` for the naive run).
    pub policy: String,
    /// The locks the plan says it takes, e.g. `SHARE on orders`.
    pub locks: Vec<String>,
    /// One of those locks blocks writes to the table.
    pub blocks_writes: bool,
    /// When it ran.
    pub span: Span,
    /// Tries it took (lock timeouts retried).
    pub tries: usize,
    /// The lock_timeout of each try that gave up waiting for its lock:
    /// while such a try waits, writes queue behind it, so the longest one
    /// bounds what the step costs them.
    #[serde(rename = "lock_timeouts_ms", serialize_with = "ser_ms_list")]
    pub lock_timeouts: Vec<Duration>,
    /// Time it spent watching conflicting sessions from outside the lock
    /// queue (lull's gap-aware acquisition), where no write waits for it.
    #[serde(rename = "watched_ms", serialize_with = "ser_ms")]
    pub watched: Duration,
    /// It failed (the run stopped there).
    pub failed: bool,
}

/// Latency figures of a set of writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct WriteStats {
    /// Writes done.
    pub writes: usize,
    /// Writes that failed.
    pub failed: usize,
    /// The slowest write.
    #[serde(rename = "worst_ms", serialize_with = "ser_ms")]
    pub worst: Duration,
    /// The 99th percentile (nearest rank).
    #[serde(rename = "p99_ms", serialize_with = "ser_ms")]
    pub p99: Duration,
    /// Writes slower than [`STALL`].
    pub over_1s: usize,
}

impl WriteStats {
    /// The figures of `samples`.
    pub fn of<'a>(samples: impl IntoIterator<Item = &'a WriteSample>) -> WriteStats {
        let mut lat: Vec<Duration> = Vec::new();
        let mut failed = 0;
        for s in samples {
            lat.push(s.latency);
            failed += usize::from(!s.ok);
        }
        lat.sort_unstable();
        let p99 = if lat.is_empty() {
            Duration::ZERO
        } else {
            // Nearest rank: the smallest value with at least 99 % at or below it.
            let rank = (lat.len() * 99).div_ceil(100);
            lat[rank - 1]
        };
        WriteStats {
            writes: lat.len(),
            failed,
            worst: lat.last().copied().unwrap_or_default(),
            p99,
            over_1s: lat.iter().filter(|l| **l > STALL).count(),
        }
    }
}

/// A step with the writes attributed to it.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    /// The step.
    #[serde(flatten)]
    pub step: StepSpan,
    /// The writes that waited mostly while it ran.
    pub stats: WriteStats,
    /// How long it ran while the long read transaction was open.
    #[serde(rename = "with_blocker_ms", serialize_with = "ser_ms")]
    pub with_blocker: Duration,
}

/// Everything one run (naive, recipe or lull) measured.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// `naive`, `recipe` or `lull`.
    pub label: &'static str,
    /// Every write of the run.
    pub total: WriteStats,
    /// Wall time from the first migration's start to the last one's end.
    #[serde(rename = "finish_ms", serialize_with = "ser_ms")]
    pub finish: Duration,
    /// When the migrations ran.
    pub migrations: Span,
    /// When the long read transaction was open, if it was opened.
    pub blocker: Option<Span>,
    /// Each step, with the writes attributed to it.
    pub steps: Vec<StepReport>,
    /// Writes that overlapped no step (the quiet time before, between and
    /// after the migrations).
    pub outside: WriteStats,
    /// Why the run stopped early, if it did.
    pub error: Option<String>,
    /// The first error of a failed write, if any write failed.
    pub write_error: Option<String>,
    /// Every write, for plots (left out of the JSON, which has the
    /// figures).
    #[serde(skip)]
    pub samples: Vec<WriteSample>,
}

impl RunReport {
    /// Attributes every write to the step it waited in longest: a write
    /// stalled by a step is in flight while that step runs, so the overlap
    /// of its wait with the step's span says where its time went. A write
    /// that overlaps no step belongs to `outside`.
    pub fn build(
        label: &'static str,
        samples: &[WriteSample],
        steps: Vec<StepSpan>,
        migrations: Span,
        blocker: Option<Span>,
        error: Option<String>,
    ) -> RunReport {
        let mut buckets: Vec<Vec<WriteSample>> = vec![Vec::new(); steps.len()];
        let mut outside = Vec::new();
        for s in samples {
            match owner(s, &steps) {
                Some(i) => buckets[i].push(*s),
                None => outside.push(*s),
            }
        }
        let steps = steps
            .into_iter()
            .zip(buckets)
            .map(|(step, writes)| StepReport {
                with_blocker: blocker
                    .map(|b| b.overlap(step.span.start, step.span.end))
                    .unwrap_or_default(),
                stats: WriteStats::of(&writes),
                step,
            })
            .collect();
        RunReport {
            label,
            total: WriteStats::of(samples),
            finish: migrations.len(),
            migrations,
            blocker,
            steps,
            outside: WriteStats::of(&outside),
            error,
            write_error: None,
            samples: samples.to_vec(),
        }
    }

    /// The step the worst write belongs to (`None`: outside every step).
    pub fn worst_step(&self) -> Option<&StepReport> {
        self.steps
            .iter()
            .filter(|s| s.stats.writes > 0)
            .max_by_key(|s| s.stats.worst)
            .filter(|s| s.stats.worst >= self.outside.worst)
    }
}

fn owner(s: &WriteSample, steps: &[StepSpan]) -> Option<usize> {
    let mut best: Option<(usize, Duration)> = None;
    for (i, step) in steps.iter().enumerate() {
        let o = step.span.overlap(s.due, s.end());
        if o > best.map_or(Duration::ZERO, |b| b.1) {
            best = Some((i, o));
        }
    }
    best.map(|b| b.0).or_else(|| {
        // A write too fast to overlap measurably still belongs to the step
        // it happened in.
        steps.iter().position(|st| st.span.contains(s.due))
    })
}

fn ser_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

fn ser_ms_list<S: serde::Serializer>(d: &[Duration], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(d.iter().map(|d| d.as_millis() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn write(due: u64, latency: u64) -> WriteSample {
        WriteSample {
            due: ms(due),
            latency: ms(latency),
            ok: true,
        }
    }

    fn step(n: usize, start: u64, end: u64) -> StepSpan {
        StepSpan {
            version: format!("00{n}"),
            name: "x".into(),
            step: 1,
            summary: "ALTER TABLE orders ...".into(),
            policy: "none".into(),
            locks: vec![],
            blocks_writes: true,
            span: Span {
                start: ms(start),
                end: ms(end),
            },
            tries: 1,
            lock_timeouts: vec![],
            watched: Duration::ZERO,
            failed: false,
        }
    }

    #[test]
    fn stats_of_nothing_are_zero() {
        assert_eq!(WriteStats::of(&[]), WriteStats::default());
    }

    #[test]
    fn p99_is_nearest_rank_and_stalls_are_strictly_over_a_second() {
        let mut samples: Vec<WriteSample> = (0..99).map(|i| write(i * 5, 2)).collect();
        samples.push(write(600, 1000)); // exactly 1 s is not a stall
        samples.push(write(700, 1001));
        let s = WriteStats::of(&samples);
        assert_eq!(s.writes, 101);
        assert_eq!(s.worst, ms(1001));
        // 101 values: rank ceil(99.99) = 100, the second largest.
        assert_eq!(s.p99, ms(1000));
        assert_eq!(s.over_1s, 1);
    }

    #[test]
    fn a_stalled_write_belongs_to_the_step_it_waited_in() {
        let steps = vec![step(1, 1000, 2000), step(2, 2000, 9000)];
        let samples = vec![
            write(100, 3),     // before any step
            write(1500, 10),   // during step 1
            write(1990, 6000), // due in step 1, waited in step 2
            write(5000, 3990), // inside step 2
            write(9500, 4),    // after
        ];
        let r = RunReport::build(
            "naive",
            &samples,
            steps,
            Span {
                start: ms(1000),
                end: ms(9000),
            },
            Some(Span {
                start: ms(1800),
                end: ms(8800),
            }),
            None,
        );
        assert_eq!(r.outside.writes, 2);
        assert_eq!(r.steps[0].stats.writes, 1);
        assert_eq!(r.steps[1].stats.writes, 2);
        assert_eq!(r.steps[1].stats.worst, ms(6000));
        assert_eq!(r.steps[1].with_blocker, ms(6800));
        assert_eq!(r.steps[0].with_blocker, ms(200));
        assert_eq!(r.finish, ms(8000));
        assert_eq!(r.worst_step().map(|s| s.step.version.as_str()), Some("002"));
    }

    #[test]
    fn worst_outside_every_step_is_not_pinned_on_a_step() {
        let r = RunReport::build(
            "lull",
            &[write(0, 700), write(1500, 20)],
            vec![step(1, 1000, 2000)],
            Span {
                start: ms(1000),
                end: ms(2000),
            },
            None,
            None,
        );
        assert!(r.worst_step().is_none());
        assert_eq!(r.outside.worst, ms(700));
    }
}
