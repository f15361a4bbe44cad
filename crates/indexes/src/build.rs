//! One guarded index build: the executor's index-build primitive
//! (`lull_engine::index_build::build_index`: `CREATE INDEX CONCURRENTLY`
//! on its own autocommit connection, INVALID leftovers dropped before each
//! try, tries with backoff under the index policy) wrapped in guards that
//! are checked before the start and every `check_interval` during it,
//! live progress, and verification at the end.
//!
//! A tripped guard, SIGTERM or a stop request cancels the build through
//! the primitive's cancel token (`pg_cancel_backend` on the build's own
//! backend); the primitive then drops the INVALID leftover a cancelled
//! concurrent build always leaves, so the next try starts clean.

use std::time::{Duration, Instant};

use lull_config::IndexPolicy;
use lull_engine::index_build::{
    build_index, index_validity, CancelToken, IndexBuild, IndexBuildErrorKind, IndexEvent,
};
use serde::Serialize;
use tokio::sync::watch;
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

use crate::catalog;
use crate::db;
use crate::definition::IndexDef;
use crate::error::{db_message, QueryContext, Result};
use crate::guards::{GuardContext, Guards, Trip};
use crate::progress::{self, PhaseClock};

/// How long dropping an INVALID leftover may wait for locks before it is
/// left for the next try (which drops it first).
const DROP_LOCK_TIMEOUT: &str = "10s";
/// SQLSTATE of a statement stopped by `pg_cancel_backend` (or a timeout).
const QUERY_CANCELED: &str = "57014";
/// How often progress is read during a build.
const PROGRESS_EVERY: Duration = Duration::from_millis(1000);

/// What the checks after a build found.
#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    /// `indisvalid`: queries may use it.
    pub valid: bool,
    /// `indisready`: writes maintain it.
    pub ready: bool,
    /// The table was analyzed (expression indexes get statistics).
    pub analyzed: bool,
    /// Whether `EXPLAIN` of the example query uses the index; `None`
    /// without an example query.
    pub plan_uses_index: Option<bool>,
    /// Why the plan could not be checked, if it could not.
    pub plan_note: Option<String>,
}

/// How one build ended.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Built and verified.
    Built {
        /// Wall time of the last try.
        seconds: f64,
        /// Tries used.
        tries: u32,
        /// The checks.
        verification: Verification,
    },
    /// A valid index with the same definition already existed.
    AlreadyPresent {
        /// The checks.
        verification: Verification,
    },
    /// Not started: a guard said no.
    Skipped {
        /// Which guard.
        trip: Trip,
    },
    /// Started and cancelled by a guard or a stop request.
    Cancelled {
        /// Which guard.
        trip: Trip,
        /// The INVALID leftover is gone (else the next try drops it).
        leftover_dropped: bool,
    },
    /// The build failed.
    Failed {
        /// The server's message.
        error: String,
        /// The INVALID leftover, if any, is gone.
        leftover_dropped: bool,
    },
}

impl Outcome {
    /// Why the index is still pending, for the queue's `last_error`; `None`
    /// when it was built.
    pub fn pending_reason(&self) -> Option<String> {
        match self {
            Outcome::Built { .. } | Outcome::AlreadyPresent { .. } => None,
            Outcome::Skipped { trip } => Some(format!("skipped: {trip}")),
            Outcome::Cancelled {
                trip,
                leftover_dropped,
            } => Some(format!(
                "cancelled: {trip}{}",
                if *leftover_dropped {
                    ""
                } else {
                    "; the INVALID leftover is dropped before the next try"
                }
            )),
            Outcome::Failed { error, .. } => Some(format!("failed: {error}")),
        }
    }
}

/// What a build reports while it runs.
#[derive(Debug, Clone)]
pub enum BuildEvent<'a> {
    /// A try starts with this statement.
    Started {
        /// 1-based try number.
        try_no: u32,
        /// The statement.
        sql: &'a str,
        /// Backend running it.
        pid: i32,
    },
    /// A progress snapshot of the running build.
    Progress(&'a progress::BuildProgress),
    /// A try failed with a retryable error; the next starts after `sleep`.
    Retrying {
        /// The error.
        error: &'a str,
        /// The pause.
        sleep: Duration,
    },
    /// An INVALID index of that name (a leftover) was dropped.
    DroppedInvalid(&'a str),
    /// Another backend (another lull run, or another tool) is building
    /// this index; the build waits for it instead of dropping its work.
    WaitingForBuilder {
        /// The other build's backend, when known.
        pid: Option<i32>,
    },
    /// A guard tripped during the build; it is being cancelled.
    Cancelling(&'a Trip),
}

/// Builds indexes on one database under one policy and set of guards.
pub struct Builder<'a> {
    /// Connection string.
    pub url: &'a str,
    /// Session settings and tries.
    pub policy: &'a IndexPolicy,
    /// When to skip or cancel.
    pub guards: &'a Guards,
    /// Becomes true on SIGTERM or another stop request.
    pub stop: watch::Receiver<bool>,
    /// When the pass began (for `max_pass_duration`).
    pub pass_started: Instant,
    /// Do not apply the window guard (a manual build during the day).
    pub ignore_window: bool,
}

impl Builder<'_> {
    fn guards(&self) -> Guards {
        let mut g = self.guards.clone();
        if self.ignore_window {
            g.window = None;
        }
        g
    }

    /// Builds `def` and verifies it; `example_query` is EXPLAINed after.
    pub async fn build(
        &mut self,
        def: &IndexDef,
        example_query: Option<&str>,
        on_event: &mut dyn FnMut(BuildEvent<'_>),
    ) -> Result<Outcome> {
        let guards = self.guards();
        let mon = db::connect(self.url).await?;
        let table = def.qualified_table();
        if let Some(existing) = catalog::find(&mon, def.schema_or_public(), &def.name).await? {
            if existing.valid {
                let differences = IndexDef::parse(&existing.definition)
                    .map(|actual| def.differences(&actual))
                    .unwrap_or_default();
                if differences.is_empty() {
                    let verification = verify(&mon, def, example_query).await?;
                    return Ok(Outcome::AlreadyPresent { verification });
                }
                return Ok(Outcome::Failed {
                    error: format!(
                        "an index named {} already exists with another definition ({}); drop or rename it first",
                        def.name,
                        differences.join("; ")
                    ),
                    leftover_dropped: false,
                });
            }
        }
        if *self.stop.borrow() {
            return Ok(Outcome::Skipped {
                trip: Trip::Stopped,
            });
        }
        let before = GuardContext {
            table: &table,
            build_pid: None,
            build_elapsed: None,
            pass_elapsed: self.pass_started.elapsed(),
        };
        if let Some(trip) = guards.check(&mon, before).await? {
            return Ok(Outcome::Skipped { trip });
        }
        let sql = def.concurrent_sql()?;
        let spec = IndexBuild {
            schema: Some(def.schema_or_public().to_string()),
            name: def.name.clone(),
            sql: sql.clone(),
        };
        let qualified = spec.qualified();
        let cancel = CancelToken::new();
        // The primitive reports through a shared callback; a channel turns
        // its events into this task's, where the guards run.
        let (tx, mut events) = tokio::sync::mpsc::unbounded_channel::<IndexEvent>();
        let forward = move |e: &IndexEvent| {
            let _ = tx.send(e.clone());
        };
        let started = Instant::now();
        let run = build_index(self.url, &spec, self.policy, &cancel, &forward);
        tokio::pin!(run);
        let mut pid: Option<i32> = None;
        let mut ticker = tokio::time::interval(PROGRESS_EVERY);
        let mut last_guard_check = Instant::now();
        let mut clock = PhaseClock::default();
        let mut trip: Option<Trip> = None;
        // A dropped sender means nobody can ask for a stop any more.
        let mut stop_open = true;
        let result = loop {
            tokio::select! {
                r = &mut run => break r,
                Some(event) = events.recv() => match event {
                    IndexEvent::Started { attempt, pid: p } => {
                        pid = Some(p);
                        clock = PhaseClock::default();
                        on_event(BuildEvent::Started { try_no: attempt, sql: &sql, pid: p });
                    }
                    IndexEvent::Retry { error, sleep, .. } => {
                        on_event(BuildEvent::Retrying { error: &error, sleep });
                    }
                    IndexEvent::DroppedInvalid { index } => on_event(BuildEvent::DroppedInvalid(&index)),
                    IndexEvent::WaitingForBuilder { pid, .. } => on_event(BuildEvent::WaitingForBuilder { pid }),
                    // Read below with the locker's details, which this event lacks.
                    IndexEvent::Progress(_) => {}
                },
                _ = ticker.tick(), if trip.is_none() => {
                    if let Some(p) = pid {
                        for mut snap in progress::snapshot(&mon, Some(p)).await.unwrap_or_default() {
                            clock.update(&mut snap);
                            on_event(BuildEvent::Progress(&snap));
                        }
                    }
                    if last_guard_check.elapsed() >= guards.check_interval {
                        last_guard_check = Instant::now();
                        let during = GuardContext {
                            table: &table,
                            build_pid: Some(pid.unwrap_or(0)),
                            build_elapsed: Some(started.elapsed()),
                            pass_elapsed: self.pass_started.elapsed(),
                        };
                        // A guard that cannot be read is a guard that does
                        // not hold: stop rather than build blind.
                        let tripped = guards
                            .check(&mon, during)
                            .await
                            .unwrap_or_else(|e| Some(Trip::Unchecked { error: e.to_string() }));
                        if let Some(t) = tripped {
                            on_event(BuildEvent::Cancelling(&t));
                            cancel.cancel();
                            trip = Some(t);
                        }
                    }
                }
                changed = self.stop.changed(), if trip.is_none() && stop_open => {
                    stop_open = changed.is_ok();
                    if stop_open && *self.stop.borrow() {
                        on_event(BuildEvent::Cancelling(&Trip::Stopped));
                        cancel.cancel();
                        trip = Some(Trip::Stopped);
                    }
                }
            }
        };
        while let Ok(event) = events.try_recv() {
            if let IndexEvent::DroppedInvalid { index } = event {
                on_event(BuildEvent::DroppedInvalid(&index));
            }
        }
        match result {
            // Also when a guard tripped: the build finished before the cancel.
            Ok(report) if report.already_valid => {
                let verification = verify(&mon, def, example_query).await?;
                Ok(Outcome::AlreadyPresent { verification })
            }
            Ok(report) => {
                let verification = verify(&mon, def, example_query).await?;
                if !(verification.valid && verification.ready) {
                    return Ok(Outcome::Failed {
                        error: format!(
                            "the build finished but {} is not valid and ready",
                            def.name
                        ),
                        leftover_dropped: false,
                    });
                }
                Ok(Outcome::Built {
                    seconds: started.elapsed().as_secs_f64(),
                    tries: report.tries,
                    verification,
                })
            }
            Err(e) => {
                let leftover_dropped =
                    index_validity(&mon, &qualified).await.ok().flatten() != Some(false);
                Ok(match e.kind {
                    IndexBuildErrorKind::Cancelled => Outcome::Cancelled {
                        trip: trip.unwrap_or(Trip::Stopped),
                        leftover_dropped,
                    },
                    // A cancel the build did not send itself: an operator's
                    // `lull indexes cancel` or pg_cancel_backend. The engine
                    // does not retry it; for the queue it means "stopped".
                    IndexBuildErrorKind::Failed { code, .. }
                        if trip.is_none() && code.as_deref() == Some(QUERY_CANCELED) =>
                    {
                        on_event(BuildEvent::Cancelling(&Trip::CancelledElsewhere));
                        Outcome::Cancelled {
                            trip: Trip::CancelledElsewhere,
                            leftover_dropped,
                        }
                    }
                    IndexBuildErrorKind::Failed { message, .. } => Outcome::Failed {
                        error: message,
                        leftover_dropped,
                    },
                    IndexBuildErrorKind::NotValid => Outcome::Failed {
                        error: format!("the build finished but {} is not valid", def.name),
                        leftover_dropped,
                    },
                    IndexBuildErrorKind::Engine(err) => Outcome::Failed {
                        error: err.to_string(),
                        leftover_dropped,
                    },
                })
            }
        }
    }
}

/// `DROP INDEX CONCURRENTLY IF EXISTS` with a bounded lock wait; false
/// when the wait ran out.
pub(crate) async fn drop_index_concurrently(client: &Client, qualified_name: &str) -> Result<bool> {
    client
        .batch_execute(&format!("SET lock_timeout = '{DROP_LOCK_TIMEOUT}'"))
        .await
        .during("setting lock_timeout")?;
    let result = client
        .batch_execute(&format!(
            "DROP INDEX CONCURRENTLY IF EXISTS {qualified_name}"
        ))
        .await;
    client
        .batch_execute("RESET lock_timeout")
        .await
        .during("resetting lock_timeout")?;
    match result {
        Ok(()) => Ok(true),
        Err(e) if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) => Ok(false),
        Err(e) => Err(e).during(&format!("dropping the INVALID index {qualified_name}")),
    }
}

/// The checks after a build: valid and ready, `ANALYZE`, and the plan of
/// the example query.
pub async fn verify(
    client: &Client,
    def: &IndexDef,
    example_query: Option<&str>,
) -> Result<Verification> {
    let row = client
        .query_opt(
            "SELECT indisvalid, indisready FROM pg_index WHERE indexrelid = to_regclass($1)",
            &[&def.qualified_name()],
        )
        .await
        .during("verifying the index")?;
    let (valid, ready) = row.map_or((false, false), |r| (r.get(0), r.get(1)));
    client
        .batch_execute(&format!("ANALYZE {}", def.qualified_table()))
        .await
        .during("analyzing the table")?;
    let (plan_uses_index, plan_note) = match example_query {
        None => (None, None),
        Some(q) => {
            // The extended protocol refuses more than one statement, so
            // the example query cannot smuggle in another command.
            match client
                .query(&format!("EXPLAIN (FORMAT JSON) {q}"), &[])
                .await
            {
                Ok(rows) => {
                    let plan: serde_json::Value =
                        rows.first().map(|r| r.get(0)).unwrap_or_default();
                    let uses = plan_mentions_index(&plan, &def.name);
                    let note = (!uses).then(|| {
                        "the planner does not use the index for the example query (a small table or a \
                         cheaper plan); check again when the table has grown"
                            .to_string()
                    });
                    (Some(uses), note)
                }
                Err(e) => (
                    None,
                    Some(format!(
                        "cannot EXPLAIN the example query: {}",
                        db_message(&e)
                    )),
                ),
            }
        }
    };
    Ok(Verification {
        valid,
        ready,
        analyzed: true,
        plan_uses_index,
        plan_note,
    })
}

fn plan_mentions_index(plan: &serde_json::Value, name: &str) -> bool {
    match plan {
        serde_json::Value::Object(map) => map.iter().any(|(k, v)| {
            (k == "Index Name" && v.as_str() == Some(name)) || plan_mentions_index(v, name)
        }),
        serde_json::Value::Array(items) => items.iter().any(|v| plan_mentions_index(v, name)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_index_in_a_nested_plan() {
        let plan = serde_json::json!([{"Plan": {"Node Type": "Limit", "Plans": [
            {"Node Type": "Index Scan", "Index Name": "orders_customer"}]}}]);
        assert!(plan_mentions_index(&plan, "orders_customer"));
        assert!(!plan_mentions_index(&plan, "orders"));
    }
}
