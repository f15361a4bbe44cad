//! One guarded index build: `CREATE INDEX CONCURRENTLY` on its own
//! autocommit connection, with the index policy (session settings, tries
//! with backoff), guards checked before the start and every
//! `check_interval` during it, live progress, and verification at the end.
//!
//! A tripped guard, SIGTERM or a stop request cancels the build on its own
//! backend with `pg_cancel_backend`, then drops the INVALID leftover a
//! cancelled concurrent build always leaves, so the next try starts clean.
//!
//! This is lull-indexes' own concurrent build; the executor's
//! `lull_engine::index_build` primitive does the same for migrations and
//! the two are meant to merge once it exists.

use std::time::{Duration, Instant};

use lull_config::IndexPolicy;
use serde::Serialize;
use tokio::sync::watch;
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

use crate::catalog;
use crate::db;
use crate::definition::IndexDef;
use crate::error::{db_message, QueryContext, Result};
use crate::guards::{GuardContext, Guards, Trip};
use crate::progress::{self, BuildProgress, PhaseClock};
use lull_analyzer::sql::quote_literal;

/// How long dropping an INVALID leftover may wait for locks before it is
/// left for the next try (which drops it first).
const DROP_LOCK_TIMEOUT: &str = "10s";
/// How long a cancelled build may take to stop before its backend is
/// terminated.
const CANCEL_GRACE: Duration = Duration::from_secs(30);
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
    Progress(&'a BuildProgress),
    /// A try failed with a retryable error; the next starts after `sleep`.
    Retrying {
        /// The error.
        error: &'a str,
        /// The pause.
        sleep: Duration,
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
        let sql = def.concurrent_sql()?;
        let mut try_no = 0;
        loop {
            try_no += 1;
            let ctx = GuardContext {
                table: &table,
                build_pid: None,
                build_elapsed: None,
                pass_elapsed: self.pass_started.elapsed(),
            };
            if *self.stop.borrow() {
                return Ok(Outcome::Skipped {
                    trip: Trip::Stopped,
                });
            }
            if let Some(trip) = guards.check(&mon, ctx).await? {
                return Ok(Outcome::Skipped { trip });
            }
            // The name may be taken by the INVALID leftover of an earlier
            // try; CREATE would fail and IF NOT EXISTS would keep it.
            if !drop_invalid(&mon, def).await? {
                return Ok(Outcome::Failed {
                    error: format!(
                        "an INVALID index {} from an earlier build could not be dropped within {DROP_LOCK_TIMEOUT}; \
                         a long transaction on the table holds it",
                        def.name
                    ),
                    leftover_dropped: false,
                });
            }
            let started = Instant::now();
            let attempt = self
                .one_try(&mon, def, &sql, &table, try_no, &guards, on_event)
                .await?;
            match attempt {
                TryResult::Done => {
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
                    return Ok(Outcome::Built {
                        seconds: started.elapsed().as_secs_f64(),
                        tries: try_no,
                        verification,
                    });
                }
                TryResult::Cancelled(trip) => {
                    // The build may have finished just before the cancel arrived.
                    if let Some(i) = catalog::find(&mon, def.schema_or_public(), &def.name).await? {
                        if i.valid {
                            let verification = verify(&mon, def, example_query).await?;
                            return Ok(Outcome::Built {
                                seconds: started.elapsed().as_secs_f64(),
                                tries: try_no,
                                verification,
                            });
                        }
                    }
                    let leftover_dropped = drop_invalid(&mon, def).await?;
                    return Ok(Outcome::Cancelled {
                        trip,
                        leftover_dropped,
                    });
                }
                TryResult::Failed { message, retryable } => {
                    let leftover_dropped = drop_invalid(&mon, def).await?;
                    if !retryable || try_no >= self.policy.max_tries {
                        return Ok(Outcome::Failed {
                            error: message,
                            leftover_dropped,
                        });
                    }
                    let sleep = backoff(self.policy, try_no);
                    on_event(BuildEvent::Retrying {
                        error: &message,
                        sleep,
                    });
                    tokio::select! {
                        _ = tokio::time::sleep(sleep) => {}
                        Ok(()) = self.stop.changed() => {}
                    }
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn one_try(
        &mut self,
        mon: &Client,
        def: &IndexDef,
        sql: &str,
        table: &str,
        try_no: u32,
        guards: &Guards,
        on_event: &mut dyn FnMut(BuildEvent<'_>),
    ) -> Result<TryResult> {
        let conn = db::connect(self.url).await?;
        let pid: i32 = conn
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .during("starting the build session")?
            .get(0);
        conn.batch_execute(&session_settings(self.policy, &def.name))
            .await
            .during("setting the build session's timeouts")?;
        on_event(BuildEvent::Started { try_no, sql, pid });
        let started = Instant::now();
        let build = conn.batch_execute(sql);
        tokio::pin!(build);
        let mut ticker = tokio::time::interval(PROGRESS_EVERY);
        let mut last_guard_check = Instant::now();
        let mut clock = PhaseClock::default();
        let mut cancelled: Option<Trip> = None;
        // A dropped sender means nobody can ask for a stop any more.
        let mut stop_open = true;
        let result = loop {
            tokio::select! {
                res = &mut build => break res,
                _ = ticker.tick(), if cancelled.is_none() => {
                    for mut p in progress::snapshot(mon, Some(pid)).await? {
                        clock.update(&mut p);
                        on_event(BuildEvent::Progress(&p));
                    }
                    if last_guard_check.elapsed() >= guards.check_interval {
                        last_guard_check = Instant::now();
                        let ctx = GuardContext {
                            table,
                            build_pid: Some(pid),
                            build_elapsed: Some(started.elapsed()),
                            pass_elapsed: self.pass_started.elapsed(),
                        };
                        if let Some(trip) = guards.check(mon, ctx).await? {
                            on_event(BuildEvent::Cancelling(&trip));
                            cancel_backend(mon, pid).await?;
                            cancelled = Some(trip);
                        }
                    }
                }
                changed = self.stop.changed(), if cancelled.is_none() && stop_open => {
                    stop_open = changed.is_ok();
                    if stop_open && *self.stop.borrow() {
                        on_event(BuildEvent::Cancelling(&Trip::Stopped));
                        cancel_backend(mon, pid).await?;
                        cancelled = Some(Trip::Stopped);
                    }
                }
                _ = tokio::time::sleep(CANCEL_GRACE), if cancelled.is_some() => {
                    // A cancel is only seen at the next interrupt check;
                    // terminating the backend is the last resort.
                    let _ = mon.execute("SELECT pg_terminate_backend($1)", &[&pid]).await;
                }
            }
        };
        Ok(match (result, cancelled) {
            (_, Some(trip)) => TryResult::Cancelled(trip),
            (Ok(()), None) => TryResult::Done,
            (Err(e), None) => {
                let retryable = matches!(
                    e.code(),
                    Some(c) if *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::LOCK_NOT_AVAILABLE
                );
                TryResult::Failed {
                    message: db_message(&e),
                    retryable,
                }
            }
        })
    }
}

enum TryResult {
    Done,
    Cancelled(Trip),
    Failed { message: String, retryable: bool },
}

/// The build session's settings, from the index policy.
fn session_settings(policy: &IndexPolicy, name: &str) -> String {
    let mut s = format!(
        "SET application_name = {}; SET lock_timeout = '{}'; SET statement_timeout = '{}';",
        quote_literal(
            &format!("lull: build {name}")
                .chars()
                .take(63)
                .collect::<String>()
        ),
        policy.lock_timeout.pg_setting(),
        policy.statement_timeout.pg_setting()
    );
    if let Some(mem) = &policy.maintenance_work_mem {
        s.push_str(&format!(
            " SET maintenance_work_mem = {};",
            quote_literal(mem)
        ));
    }
    if let Some(workers) = policy.max_parallel_maintenance_workers {
        s.push_str(&format!(
            " SET max_parallel_maintenance_workers = {workers};"
        ));
    }
    s
}

fn backoff(policy: &IndexPolicy, try_no: u32) -> Duration {
    let base = policy.backoff_base.std();
    let factor = 2u32.saturating_pow(try_no.saturating_sub(1).min(16));
    base.saturating_mul(factor).min(policy.backoff_max.std())
}

async fn cancel_backend(mon: &Client, pid: i32) -> Result<()> {
    mon.execute("SELECT pg_cancel_backend($1)", &[&pid])
        .await
        .during("cancelling the build")?;
    Ok(())
}

/// Drops `def`'s index if it exists and is INVALID. Returns false when a
/// lock wait stopped the drop (the leftover stays, still INVALID).
pub async fn drop_invalid(client: &Client, def: &IndexDef) -> Result<bool> {
    let invalid: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_index WHERE indexrelid = to_regclass($1) AND NOT indisvalid)",
            &[&def.qualified_name()],
        )
        .await
        .during("looking for an INVALID leftover")?
        .get(0);
    if !invalid {
        return Ok(true);
    }
    drop_index_concurrently(client, &def.qualified_name()).await
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
    fn backoff_doubles_up_to_the_cap() {
        let mut p = lull_config::Policies::default().index;
        p.backoff_base = lull_config::Duration::from_secs(1);
        p.backoff_max = lull_config::Duration::from_secs(5);
        let sleeps: Vec<u64> = (1..=5).map(|n| backoff(&p, n).as_secs()).collect();
        assert_eq!(sleeps, vec![1, 2, 4, 5, 5]);
    }

    #[test]
    fn finds_the_index_in_a_nested_plan() {
        let plan = serde_json::json!([{"Plan": {"Node Type": "Limit", "Plans": [
            {"Node Type": "Index Scan", "Index Name": "orders_customer"}]}}]);
        assert!(plan_mentions_index(&plan, "orders_customer"));
        assert!(!plan_mentions_index(&plan, "orders"));
    }

    #[test]
    fn session_settings_quote_values() {
        let mut p = lull_config::Policies::default().index;
        p.maintenance_work_mem = Some("1GB'; DROP TABLE x; --".into());
        let s = session_settings(&p, "it's");
        assert!(s.contains("'lull: build it''s'"), "{s}");
        assert!(
            s.contains("maintenance_work_mem = '1GB''; DROP TABLE x; --'"),
            "{s}"
        );
    }
}
