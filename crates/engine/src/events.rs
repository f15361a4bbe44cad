//! Progress of a run as plain data. The engine never prints: it sends
//! [`Event`]s to a callback, and the CLI (or the demo, or an application
//! using the library) decides how to show them.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::blocker_actions::Action;
use crate::blockers::BlockerReport;
use crate::gap::Holder;
use crate::index_build::IndexProgress;

/// Something that happened during a run.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    /// The runner lock is held by someone else; lull keeps polling.
    RunnerLockWaiting {
        /// The holder's pid, if visible.
        pid: Option<i32>,
        /// The holder's application_name.
        application: Option<String>,
    },
    /// A migration starts (or resumes).
    MigrationStarted {
        /// Its version.
        version: String,
        /// Its name.
        name: String,
        /// `up` or `down`.
        direction: &'static str,
        /// Number of steps.
        steps: usize,
        /// Steps already done by an earlier, interrupted run.
        resumed_after: usize,
    },
    /// Progress of a backfill step.
    Backfill {
        /// Migration version.
        version: String,
        /// 1-based step number.
        step: usize,
        /// What the backfill reports.
        progress: lull_backfill::BackfillEvent,
    },
    /// A step starts.
    StepStarted {
        /// Migration version.
        version: String,
        /// 1-based step number.
        step: usize,
        /// Steps in the migration.
        total: usize,
        /// `transaction` or `autocommit`.
        kind: &'static str,
        /// The policy class that runs it.
        policy: &'static str,
        /// A one-line summary of its statements.
        summary: String,
    },
    /// A step is skipped because an earlier run finished it.
    StepSkipped {
        /// Migration version.
        version: String,
        /// 1-based step number.
        step: usize,
        /// Why.
        reason: String,
    },
    /// A step needs a lock stronger than the application's and sessions
    /// that conflict with it are there: lull watches instead of queueing.
    /// Sent when the sessions waited for change and about once a second.
    LockWaiting {
        /// Migration version.
        version: String,
        /// 1-based step number.
        step: usize,
        /// Time waited for the step's locks so far.
        #[serde(serialize_with = "ser_ms")]
        waited: Duration,
        /// The step's wait budget (`policy.ddl.wait_budget`).
        #[serde(serialize_with = "ser_ms")]
        budget: Duration,
        /// Who is waited for, oldest transaction first.
        holders: Vec<Holder>,
    },
    /// A try in a gap did not get the lock within its lock_timeout (a
    /// session arrived in the gap); lull goes back to watching.
    LockRetry {
        /// Migration version.
        version: String,
        /// 1-based step number.
        step: usize,
        /// 1-based number of the failed try.
        attempt: usize,
        /// The lock_timeout of the failed try.
        #[serde(serialize_with = "ser_ms")]
        lock_timeout: Duration,
        /// The lock_timeout of the next try (larger when it escalated on
        /// a hot table).
        #[serde(serialize_with = "ser_ms")]
        next_lock_timeout: Duration,
        /// Who held the lock.
        blockers: BlockerReport,
    },
    /// `[policy.blockers]` acted against a session blocking the step.
    BlockerAction {
        /// Migration version.
        version: String,
        /// 1-based step number.
        step: usize,
        /// What was done, to whom, and whether it worked.
        #[serde(flatten)]
        action: Action,
    },
    /// A retryable error (deadlock, serialization failure, failed index
    /// build); lull backs off and tries again.
    Retry {
        /// Migration version.
        version: String,
        /// 1-based step number.
        step: usize,
        /// 1-based number of the failed try.
        attempt: usize,
        /// The error.
        error: String,
        /// The sleep before the next try.
        #[serde(serialize_with = "ser_ms")]
        sleep: Duration,
    },
    /// Live progress of an index build.
    IndexProgress {
        /// Migration version (empty outside a migration).
        version: String,
        /// 1-based step number.
        step: usize,
        /// The index.
        index: String,
        /// What `pg_stat_progress_create_index` said.
        progress: IndexProgress,
    },
    /// An INVALID index left by an earlier failed build was dropped.
    InvalidIndexDropped {
        /// The index.
        index: String,
    },
    /// A step finished.
    StepFinished {
        /// Migration version.
        version: String,
        /// 1-based step number.
        step: usize,
        /// How long it took, retries included.
        #[serde(serialize_with = "ser_ms")]
        elapsed: Duration,
        /// How many tries it took.
        tries: usize,
    },
    /// A migration finished.
    MigrationFinished {
        /// Its version.
        version: String,
        /// `up` or `down`.
        direction: &'static str,
        /// Time for all its steps.
        #[serde(serialize_with = "ser_ms")]
        elapsed: Duration,
    },
    /// Something the user must know that does not stop the run.
    Warning {
        /// The message.
        message: String,
    },
}

fn ser_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

/// Where events go. Cheap to clone; called from the runner's task.
pub type EventSink = Arc<dyn Fn(&Event) + Send + Sync>;

/// A sink that drops every event.
pub fn no_events() -> EventSink {
    Arc::new(|_| {})
}

/// A duration the way people read it: `350ms`, `2.5s`, `3m05s`.
pub fn human(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1_000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        let s = d.as_secs();
        format!("{}m{:02}s", s / 60, s % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations() {
        assert_eq!(human(Duration::from_millis(350)), "350ms");
        assert_eq!(human(Duration::from_millis(2500)), "2.5s");
        assert_eq!(human(Duration::from_secs(185)), "3m05s");
    }
}
