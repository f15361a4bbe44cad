//! Running one step under its class's policy.
//!
//! - `ddl` steps (in a transaction, or autocommit) get their locks through
//!   gap-aware acquisition ([`crate::gap`]): while a conflicting session is
//!   there lull watches and reports it instead of queueing; in a gap it
//!   tries with a short `lock_timeout`; a lock timeout (55P03) or deadlock
//!   (40P01) rolls back and goes back to watching; after the wait budget
//!   the step fails with the blocker report. There is never an unbounded
//!   wait, and never a silent one.
//! - `dml` steps retry 55P03, 40P01 and 40001 with exponential backoff and
//!   jitter; a statement timeout (57014) fails clearly.
//! - `index` steps run on their own autocommit connection;
//!   `CREATE INDEX CONCURRENTLY` goes through [`crate::index_build`].
//! - `backfill` steps run through `lull_backfill`: keyset batches, each
//!   its own transaction with its progress; a table without a usable key
//!   (known only now) runs the statement as written under the dml policy,
//!   with a warning.
//! - naive steps run as written: no settings, no retries.
//!
//! Session settings are `SET LOCAL` (or `SET` then `RESET` on autocommit
//! connections), never global. The record of a transactional step is
//! written inside its own transaction.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lull_analyzer::sql::{quote_literal, quote_qualified};
use lull_config::Policies;
use rand::Rng;
use tokio_postgres::Client;

use crate::blocker_actions;
use crate::blockers::{self, BlockerReport};
use crate::db::connect;
use crate::error::{excerpt, pg_message, sqlstate, EngineError, StepFailure};
use crate::events::{Event, EventSink};
use crate::gap;
use crate::index_build::{self, build_index, CancelToken, IndexBuild, IndexEvent};
use crate::plan::{Direction, PolicyClass, Step, StepKind};
use crate::state::State;

/// A lock timeout (55P03) or a deadlock (40P01): the try lost the race
/// for the lock, nothing else went wrong.
fn is_lock_failure(err: &tokio_postgres::Error) -> bool {
    matches!(sqlstate(err).as_deref(), Some("55P03" | "40P01"))
}

/// Exponential backoff with jitter: `base * 2^(attempt-1)`, capped at
/// `max`, then scaled by a random factor in [0.5, 1.0] so that runners
/// retrying the same lock do not retry in step.
pub fn backoff(base: Duration, max: Duration, attempt: u32) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
    let capped = exp.min(max);
    capped.mul_f64(rand::thread_rng().gen_range(0.5..=1.0))
}

/// The `application_name` of the work session while it runs an
/// autocommit step, so that a later run can find the statement a killed
/// run left behind (PostgreSQL keeps the first 63 bytes).
pub fn step_marker(version: &str, direction: Direction, step: usize) -> String {
    let suffix = format!(" {} step {step}", direction.as_str());
    let mut keep = 63usize
        .saturating_sub("lull ".len() + suffix.len())
        .min(version.len());
    while !version.is_char_boundary(keep) {
        keep -= 1;
    }
    format!("lull {}{suffix}", &version[..keep])
}

/// Whether running an autocommit statement a second time does no harm
/// (maintenance commands). Anything else whose outcome is unknown stops
/// the run instead of being run again.
pub fn rerun_is_harmless(sql: &str) -> bool {
    let first = sql
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_ascii_uppercase();
    matches!(
        first.as_str(),
        "VACUUM" | "ANALYZE" | "ANALYSE" | "REINDEX" | "REFRESH" | "CHECKPOINT" | "CLUSTER"
    )
}

/// Where a step belongs, for records and events.
pub struct StepContext<'a> {
    /// The migration's version.
    pub version: &'a str,
    /// Up or down.
    pub direction: Direction,
    /// The step.
    pub step: &'a Step,
    /// SQL to run in the step's transaction after its own record when it
    /// is the migration's last step (marks the migration applied or
    /// forgotten).
    pub finish_sql: Option<String>,
}

/// What a finished step reports.
pub struct StepOutcome {
    /// Tries it took.
    pub tries: usize,
    /// A warning to show (best-effort index that was queued instead).
    pub warning: Option<String>,
}

/// Runs steps on a work connection, with a monitor connection for blocker
/// reports.
pub struct Executor<'a> {
    /// The connection string, for index steps' own connections.
    pub url: &'a str,
    /// The policies.
    pub policies: &'a Policies,
    /// `[backfill]`: batch sizing and holds of backfill steps.
    pub backfill: &'a lull_config::BackfillPolicy,
    /// lull's state tables.
    pub state: &'a State,
    /// Where events go.
    pub events: EventSink,
    /// The connection transactional steps run on.
    pub work: &'a Client,
    /// Its backend pid.
    pub work_pid: i32,
    /// A second connection for watching blockers.
    pub monitor: Arc<Client>,
    /// Cancels index builds.
    pub cancel: CancelToken,
}

impl Executor<'_> {
    /// Runs one step and records it done (the migration's finish SQL
    /// included, for the last step).
    pub async fn run(&self, ctx: &StepContext<'_>) -> Result<StepOutcome, EngineError> {
        match (ctx.step.kind, ctx.step.policy) {
            (StepKind::Backfill, _) => self.backfill(ctx).await,
            (StepKind::Transaction, PolicyClass::None) => self.naive(ctx, true).await,
            (StepKind::Autocommit, PolicyClass::None) => self.naive(ctx, false).await,
            (StepKind::Transaction, PolicyClass::Dml) => self.dml(ctx).await,
            (StepKind::Transaction, _) => self.ddl(ctx).await,
            (StepKind::Autocommit, PolicyClass::Index) => self.index(ctx).await,
            (StepKind::Autocommit, _) => self.autocommit_ddl(ctx).await,
        }
    }

    fn done_sql(&self, ctx: &StepContext<'_>, tries: usize) -> String {
        let mut sql = self.state.step_done_sql(
            ctx.version,
            ctx.direction.as_str(),
            ctx.step.number,
            ctx.step.kind.as_str(),
            &ctx.step.sql(),
            tries,
        );
        if let Some(finish) = &ctx.finish_sql {
            sql.push_str(";\n");
            sql.push_str(finish);
        }
        sql
    }

    fn failed(
        &self,
        ctx: &StepContext<'_>,
        sql: &str,
        err: &tokio_postgres::Error,
        tries: usize,
        hint: Option<String>,
    ) -> EngineError {
        match sqlstate(err).as_deref() {
            Some(crate::lock::LOST_LOCK_SQLSTATE) => return crate::state::lost_lock(),
            // The step's `done` row exists: another run committed it first
            // and this transaction rolled back (see `State::step_done_sql`).
            Some("23505") if sql == "COMMIT" => {
                return EngineError::Other {
                    message: format!(
                        "migration {} step {} was committed by another lull run meanwhile; \
                         this run's transaction rolled back, so nothing was applied twice",
                        ctx.version, ctx.step.number
                    ),
                    hint: Some("run `lull status` to see where the migration stands".into()),
                    kind: crate::error::ErrorKind::Refused,
                }
            }
            _ => {}
        }
        EngineError::StepFailed(Box::new(StepFailure {
            version: ctx.version.to_string(),
            step: ctx.step.number,
            tries,
            statement: excerpt(sql, 200),
            message: pg_message(err),
            code: sqlstate(err),
            hint,
        }))
    }

    async fn rollback(&self) {
        // Fails only when there is no transaction, which is the state wanted.
        let _ = self.work.batch_execute("ROLLBACK").await;
    }

    /// Runs the step's statements in one transaction with `settings`,
    /// writing its record before COMMIT. Returns the error and the
    /// statement that failed.
    async fn transaction(
        &self,
        ctx: &StepContext<'_>,
        settings: &str,
        tries: usize,
    ) -> Result<(), (tokio_postgres::Error, String)> {
        let begin = format!("BEGIN; {settings}");
        self.work
            .batch_execute(&begin)
            .await
            .map_err(|e| (e, begin.clone()))?;
        for s in &ctx.step.statements {
            if let Err(e) = self.work.batch_execute(&s.sql).await {
                self.rollback().await;
                return Err((e, s.sql.clone()));
            }
        }
        let commit = format!("{};\nCOMMIT", self.done_sql(ctx, tries));
        if let Err(e) = self.work.batch_execute(&commit).await {
            self.rollback().await;
            return Err((e, "COMMIT".to_string()));
        }
        Ok(())
    }

    async fn naive(
        &self,
        ctx: &StepContext<'_>,
        in_transaction: bool,
    ) -> Result<StepOutcome, EngineError> {
        if in_transaction {
            self.transaction(ctx, "", 1)
                .await
                .map_err(|(e, sql)| self.failed(ctx, &sql, &e, 1, None))?;
        } else {
            let sql = ctx.step.sql();
            self.work
                .batch_execute(&sql)
                .await
                .map_err(|e| self.failed(ctx, &sql, &e, 1, None))?;
            self.record_autocommit_done(ctx, 1).await?;
        }
        Ok(StepOutcome {
            tries: 1,
            warning: None,
        })
    }

    async fn record_autocommit_done(
        &self,
        ctx: &StepContext<'_>,
        tries: usize,
    ) -> Result<(), EngineError> {
        let sql = format!("BEGIN; {}; COMMIT", self.done_sql(ctx, tries));
        let result = self.work.batch_execute(&sql).await;
        if result.is_err() {
            self.rollback().await;
        }
        result.map_err(|e| crate::state::fence_error("recording the finished step", e))
    }

    /// Polls `pg_blocking_pids(work_pid)` while a try waits, so the blocker
    /// can be named even though the try is over when it is reported.
    fn watch_blockers(
        &self,
        lock_timeout: Duration,
    ) -> (tokio::task::JoinHandle<()>, Arc<Mutex<Vec<i32>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let monitor = self.monitor.clone();
        let pid = self.work_pid;
        let every = (lock_timeout / 4).clamp(Duration::from_millis(10), Duration::from_millis(250));
        let out = seen.clone();
        let handle = tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                if let Ok(pids) = blockers::blocking_pids(&monitor, pid).await {
                    if !pids.is_empty() {
                        *out.lock().unwrap() = pids;
                    }
                }
            }
        });
        (handle, seen)
    }

    /// The blockers seen while waiting plus the sessions holding a
    /// conflicting lock on the step's relations now.
    async fn blocker_report(&self, ctx: &StepContext<'_>, seen: &[i32]) -> BlockerReport {
        let mut pids: Vec<i32> = seen.to_vec();
        let exclude = [self.work_pid];
        for l in ctx.step.locks() {
            if let Ok(found) =
                blockers::conflicting_holders(&self.monitor, &l.relation, l.mode, &exclude).await
            {
                pids.extend(found);
            }
        }
        pids.sort_unstable();
        pids.dedup();
        pids.retain(|p| *p != self.work_pid);
        blockers::report(&self.monitor, &pids)
            .await
            .unwrap_or_default()
    }

    async fn ddl(&self, ctx: &StepContext<'_>) -> Result<StepOutcome, EngineError> {
        let p = &self.policies.ddl;
        self.acquire(ctx, |try_number, lock_timeout| {
            let settings = format!(
                "SET LOCAL lock_timeout = {}; SET LOCAL statement_timeout = {}; \
                 SET LOCAL idle_in_transaction_session_timeout = {};",
                quote_literal(&lock_timeout.pg_setting()),
                quote_literal(&p.statement_timeout.pg_setting()),
                quote_literal(&p.idle_in_transaction_session_timeout.pg_setting()),
            );
            async move { self.transaction(ctx, &settings, try_number).await }
        })
        .await
    }

    /// Gap-aware acquisition (see [`crate::gap`]): while a session holds
    /// or queues for a lock conflicting with the step's strong locks, watch
    /// and report it; in a gap, try with a short lock_timeout; a failed try
    /// goes back to watching; escalate (capped) only on a hot table; fail
    /// with the blocker report when the wait budget is spent. A step whose
    /// locks are no stronger than the application's makes no query wait
    /// behind it and gets one try bounded by the budget.
    async fn acquire<F, Fut>(
        &self,
        ctx: &StepContext<'_>,
        mut attempt: F,
    ) -> Result<StepOutcome, EngineError>
    where
        F: FnMut(usize, lull_config::Duration) -> Fut,
        Fut: std::future::Future<Output = Result<(), (tokio_postgres::Error, String)>>,
    {
        let p = &self.policies.ddl;
        if let lull_config::Acquisition::Queue {
            backoff_base,
            backoff_max,
        } = p.acquisition
        {
            return self
                .queue_and_retry(ctx, attempt, backoff_base.std(), backoff_max.std())
                .await;
        }
        let started = Instant::now();
        let budget = p.wait_budget.std();
        let strong = gap::stronger_than_application(&ctx.step.locks());
        let watch = if strong.is_empty() {
            None
        } else {
            let w = gap::Watch::new(&self.monitor, &strong, self.own_pids().await).await?;
            (!w.is_empty()).then_some(w)
        };
        let Some(watch) = watch else {
            let timeout = lull_config::Duration(budget);
            let (poll, seen) = self.watch_blockers(budget);
            let result = attempt(1, timeout).await;
            poll.abort();
            return match result {
                Ok(()) => Ok(StepOutcome {
                    tries: 1,
                    warning: None,
                }),
                Err((err, _)) if is_lock_failure(&err) => {
                    let seen = seen.lock().unwrap().clone();
                    Err(self.exhausted(ctx, 1, started.elapsed(), &seen).await)
                }
                Err((err, sql)) => Err(self.step_error(ctx, &sql, &err, 1)),
            };
        };
        let mut state = gap::GapState::new(p);
        let mut tries = 0usize;
        let mut acted = BTreeSet::new();
        let mut announced: Option<(Instant, Vec<i32>)> = None;
        loop {
            let holders = watch.holders(&self.monitor).await?;
            let timeout = match state.decide(&holders) {
                gap::Decision::Wait(pids) => {
                    let waited_for: Vec<gap::Holder> = holders
                        .iter()
                        .filter(|h| pids.contains(&h.pid))
                        .cloned()
                        .collect();
                    for action in blocker_actions::apply(
                        &self.monitor,
                        &self.policies.blockers,
                        &waited_for,
                        &mut acted,
                    )
                    .await
                    {
                        (self.events)(&Event::BlockerAction {
                            version: ctx.version.to_string(),
                            step: ctx.step.number,
                            action,
                        });
                    }
                    let waited = started.elapsed();
                    if waited >= budget {
                        return Err(self.exhausted(ctx, tries, waited, &pids).await);
                    }
                    let due = match &announced {
                        None => true,
                        Some((at, last)) => *last != pids || at.elapsed() >= Duration::from_secs(1),
                    };
                    if due {
                        (self.events)(&Event::LockWaiting {
                            version: ctx.version.to_string(),
                            step: ctx.step.number,
                            waited,
                            budget,
                            holders: waited_for,
                        });
                        announced = Some((Instant::now(), pids));
                    }
                    tokio::time::sleep(p.poll_interval.std().min(budget - waited)).await;
                    continue;
                }
                gap::Decision::Try(timeout) => timeout,
            };
            announced = None;
            tries += 1;
            let (poll, seen) = self.watch_blockers(timeout);
            let result = attempt(tries, lull_config::Duration(timeout)).await;
            poll.abort();
            let (err, sql) = match result {
                Ok(()) => {
                    return Ok(StepOutcome {
                        tries,
                        warning: None,
                    })
                }
                Err(e) => e,
            };
            if !is_lock_failure(&err) {
                return Err(self.step_error(ctx, &sql, &err, tries));
            }
            let after = watch.holders(&self.monitor).await?;
            state.failed(&after);
            let seen = seen.lock().unwrap().clone();
            let report = self.blocker_report(ctx, &seen).await;
            (self.events)(&Event::LockRetry {
                version: ctx.version.to_string(),
                step: ctx.step.number,
                attempt: tries,
                lock_timeout: timeout,
                next_lock_timeout: state.timeout(),
                blockers: report,
            });
            let waited = started.elapsed();
            if waited >= budget {
                let pids: Vec<i32> = after.iter().map(|h| h.pid).collect();
                return Err(self.exhausted(ctx, tries, waited, &pids).await);
            }
        }
    }

    /// The guides' recipe, kept for comparisons (`lull demo`): every try
    /// queues with `lock_timeout`, and application queries queue behind
    /// it for as long; a failed try sleeps with backoff; the wait budget
    /// bounds the whole.
    async fn queue_and_retry<F, Fut>(
        &self,
        ctx: &StepContext<'_>,
        mut attempt: F,
        backoff_base: Duration,
        backoff_max: Duration,
    ) -> Result<StepOutcome, EngineError>
    where
        F: FnMut(usize, lull_config::Duration) -> Fut,
        Fut: std::future::Future<Output = Result<(), (tokio_postgres::Error, String)>>,
    {
        let p = &self.policies.ddl;
        let started = Instant::now();
        let mut tries = 0usize;
        loop {
            tries += 1;
            let (poll, seen) = self.watch_blockers(p.lock_timeout.std());
            let result = attempt(tries, p.lock_timeout).await;
            poll.abort();
            let (err, sql) = match result {
                Ok(()) => {
                    return Ok(StepOutcome {
                        tries,
                        warning: None,
                    })
                }
                Err(e) => e,
            };
            if !is_lock_failure(&err) {
                return Err(self.step_error(ctx, &sql, &err, tries));
            }
            let seen = seen.lock().unwrap().clone();
            let report = self.blocker_report(ctx, &seen).await;
            if started.elapsed() >= p.wait_budget.std() {
                return Err(EngineError::LockExhausted {
                    version: ctx.version.to_string(),
                    step: ctx.step.number,
                    tries,
                    waited: started.elapsed(),
                    blockers: report,
                });
            }
            (self.events)(&Event::LockRetry {
                version: ctx.version.to_string(),
                step: ctx.step.number,
                attempt: tries,
                lock_timeout: p.lock_timeout.std(),
                next_lock_timeout: p.lock_timeout.std(),
                blockers: report,
            });
            tokio::time::sleep(backoff(backoff_base, backoff_max, tries as u32)).await;
        }
    }

    /// lull's own backends, which never count as blockers.
    async fn own_pids(&self) -> Vec<i32> {
        let mut pids = vec![self.work_pid];
        if let Ok(row) = self.monitor.query_one("SELECT pg_backend_pid()", &[]).await {
            pids.push(row.get(0));
        }
        pids
    }

    async fn exhausted(
        &self,
        ctx: &StepContext<'_>,
        tries: usize,
        waited: Duration,
        pids: &[i32],
    ) -> EngineError {
        EngineError::LockExhausted {
            version: ctx.version.to_string(),
            step: ctx.step.number,
            tries,
            waited,
            blockers: self.blocker_report(ctx, pids).await,
        }
    }

    /// A failure that is not about getting the lock: the step fails.
    fn step_error(
        &self,
        ctx: &StepContext<'_>,
        sql: &str,
        err: &tokio_postgres::Error,
        tries: usize,
    ) -> EngineError {
        let p = &self.policies.ddl;
        let hint = (sqlstate(err).as_deref() == Some("57014")).then(|| {
            format!(
                "the statement ran longer than policy.ddl.statement_timeout ({}); a DDL step \
                 that needs longer is holding a strong lock for that long: split it, or \
                 raise the timeout in lull.toml if that is really wanted",
                crate::events::human(p.statement_timeout.std())
            )
        });
        self.failed(ctx, sql, err, tries, hint)
    }

    async fn dml(&self, ctx: &StepContext<'_>) -> Result<StepOutcome, EngineError> {
        let p = &self.policies.dml;
        let settings = format!(
            "SET LOCAL lock_timeout = {}; SET LOCAL statement_timeout = {};",
            quote_literal(&p.lock_timeout.pg_setting()),
            quote_literal(&p.statement_timeout.pg_setting()),
        );
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let (err, sql) = match self.transaction(ctx, &settings, attempt as usize).await {
                Ok(()) => {
                    return Ok(StepOutcome {
                        tries: attempt as usize,
                        warning: None,
                    })
                }
                Err(e) => e,
            };
            let code = sqlstate(&err);
            let retry = matches!(code.as_deref(), Some("55P03" | "40P01" | "40001"));
            if !retry || attempt > p.max_retries {
                let hint = match code.as_deref() {
                    Some("57014") => Some(format!(
                        "the statement ran longer than policy.dml.statement_timeout ({}); an UPDATE or \
                         DELETE that `lull plan` does not show as a backfill step can run in batches with \
                         `lull backfill run --sql \"...\"` outside the migration; or raise the timeout in lull.toml",
                        crate::events::human(p.statement_timeout.std())
                    )),
                    _ if retry => Some(format!("gave up after {} retries; re-run when the database is quieter", p.max_retries)),
                    _ => None,
                };
                return Err(self.failed(ctx, &sql, &err, attempt as usize, hint));
            }
            let sleep = backoff(p.backoff_base.std(), p.backoff_max.std(), attempt);
            (self.events)(&Event::Retry {
                version: ctx.version.to_string(),
                step: ctx.step.number,
                attempt: attempt as usize,
                error: pg_message(&err),
                sleep,
            });
            tokio::time::sleep(sleep).await;
        }
    }

    /// A batched UPDATE/DELETE. The backfill's name is the migration's
    /// version and step, so a resumed run continues the same walk (and a
    /// finished one is only recorded done).
    async fn backfill(&self, ctx: &StepContext<'_>) -> Result<StepOutcome, EngineError> {
        let stmt = &ctx.step.statements[0];
        let per = stmt.backfill.as_ref().and_then(|b| b.per.clone());
        match lull_backfill::prepare(self.work, &stmt.sql, per.as_deref()).await {
            Ok(_) => {}
            Err(lull_backfill::BackfillError::NotBatchable { reason }) => {
                (self.events)(&Event::Warning {
                    message: format!(
                        "migration {} step {}: not batched, runs as one statement: {reason}",
                        ctx.version, ctx.step.number
                    ),
                });
                return self.dml(ctx).await;
            }
            Err(e) => return Err(backfill_error(e)),
        }
        let sql = ctx.step.sql();
        self.state
            .step_running(
                self.work,
                ctx.version,
                ctx.direction.as_str(),
                ctx.step.number,
                ctx.step.kind.as_str(),
                &sql,
            )
            .await?;
        let spec = lull_backfill::Spec {
            name: format!("migration {} step {}", ctx.version, ctx.step.number),
            sql: stmt.sql.clone(),
            per,
            batch_size: None,
        };
        let events = self.events.clone();
        let version = ctx.version.to_string();
        let step = ctx.step.number;
        let sink = move |e: &lull_backfill::BackfillEvent| {
            events(&Event::Backfill {
                version: version.clone(),
                step,
                progress: e.clone(),
            })
        };
        let opts = lull_backfill::Options {
            schema: self.state.schema(),
            policy: self.backfill,
            dml: &self.policies.dml,
            events: &sink,
        };
        lull_backfill::run(self.work, &spec, &opts)
            .await
            .map_err(backfill_error)?;
        self.record_autocommit_done(ctx, 1).await?;
        Ok(StepOutcome {
            tries: 1,
            warning: None,
        })
    }

    /// A statement that cannot run in a transaction but is not index work
    /// (VACUUM, a `-- no-transaction` file's statements): the ddl ramp with
    /// session-level settings that are reset afterwards.
    async fn autocommit_ddl(&self, ctx: &StepContext<'_>) -> Result<StepOutcome, EngineError> {
        let p = &self.policies.ddl;
        let sql = ctx.step.sql();
        self.state
            .step_running(
                self.work,
                ctx.version,
                ctx.direction.as_str(),
                ctx.step.number,
                ctx.step.kind.as_str(),
                &sql,
            )
            .await?;
        let sql = &sql;
        // The orphan of a killed run is found by this name (see
        // `Executor::wait_for_orphan`).
        let marker = step_marker(ctx.version, ctx.direction, ctx.step.number);
        self.work
            .batch_execute(&format!(
                "SET application_name = {}",
                quote_literal(&marker)
            ))
            .await
            .map_err(|e| EngineError::db("naming the step's session", e))?;
        let outcome = self
            .acquire(ctx, |_, lock_timeout| {
                let settings = format!(
                    "SET lock_timeout = {}; SET statement_timeout = {};",
                    quote_literal(&lock_timeout.pg_setting()),
                    quote_literal(&p.statement_timeout.pg_setting()),
                );
                async move {
                    self.work
                        .batch_execute(&settings)
                        .await
                        .map_err(|e| (e, settings.clone()))?;
                    let result = self.work.batch_execute(sql).await;
                    let _ = self
                        .work
                        .batch_execute("RESET lock_timeout; RESET statement_timeout")
                        .await;
                    result.map_err(|e| (e, sql.clone()))
                }
            })
            .await;
        let _ = self.work.batch_execute("RESET application_name").await;
        let outcome = outcome?;
        self.record_autocommit_done(ctx, outcome.tries).await?;
        Ok(outcome)
    }

    async fn index(&self, ctx: &StepContext<'_>) -> Result<StepOutcome, EngineError> {
        let stmt = &ctx.step.statements[0];
        let sql = ctx.step.sql();
        self.state
            .step_running(
                self.work,
                ctx.version,
                ctx.direction.as_str(),
                ctx.step.number,
                ctx.step.kind.as_str(),
                &sql,
            )
            .await?;
        let facts = stmt.index.clone().unwrap_or_default();
        let is_create = facts.table.is_some();
        let named = if is_create && facts.name.is_none() {
            self.name_unnamed(ctx, &sql).await?
        } else {
            None
        };
        let build = match (&facts.name, is_create) {
            _ if named.is_some() => named.map(|n| IndexBuild {
                schema: Some(n.schema),
                name: n.name,
                sql: n.sql,
            }),
            (Some(name), true) => {
                let (schema, name) = match name.split_once('.') {
                    Some((s, n)) => (Some(s.to_string()), n.to_string()),
                    None => (None, name.clone()),
                };
                Some(IndexBuild {
                    schema,
                    name,
                    sql: sql.clone(),
                })
            }
            _ => None,
        };
        let Some(build) = build else {
            // DROP / REINDEX CONCURRENTLY, or an unnamed CREATE: plain
            // retries on an own connection.
            let tries = self.index_plain(ctx, &sql).await?;
            self.record_autocommit_done(ctx, tries).await?;
            return Ok(StepOutcome {
                tries,
                warning: None,
            });
        };
        let events = self.events.clone();
        let version = ctx.version.to_string();
        let step = ctx.step.number;
        let index_name = build.qualified();
        let on_event = move |e: &IndexEvent| match e {
            IndexEvent::Progress(p) => events(&Event::IndexProgress {
                version: version.clone(),
                step,
                index: index_name.clone(),
                progress: p.clone(),
            }),
            IndexEvent::DroppedInvalid { index } => events(&Event::InvalidIndexDropped {
                index: index.clone(),
            }),
            IndexEvent::WaitingForBuilder { index, pid } => events(&Event::Warning {
                message: format!(
                    "migration {version} step {step}: another session{} is building index {index}; \
                     waiting for it to end",
                    pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
                ),
            }),
            IndexEvent::Retry {
                attempt,
                error,
                sleep,
            } => events(&Event::Retry {
                version: version.clone(),
                step,
                attempt: *attempt as usize,
                error: error.clone(),
                sleep: *sleep,
            }),
            IndexEvent::Started { .. } => {}
        };
        match build_index(
            self.url,
            &build,
            &self.policies.index,
            &self.cancel,
            &on_event,
        )
        .await
        {
            Ok(report) => {
                let tries = report.tries.max(1) as usize;
                self.record_autocommit_done(ctx, tries).await?;
                Ok(StepOutcome {
                    tries,
                    warning: None,
                })
            }
            Err(err) if stmt.best_effort => {
                let table = facts.table.clone().unwrap_or_default();
                let message = err.to_string();
                self.state
                    .queue_pending_index(
                        self.work,
                        &build.name,
                        &table,
                        &sql,
                        "best-effort build in a migration failed",
                        &message,
                    )
                    .await?;
                self.record_autocommit_done(ctx, self.policies.index.max_tries as usize)
                    .await?;
                let warning = format!(
                    "best-effort index {} was not built ({message}); it is queued in {}.pending_indexes \
                     for `lull indexes build`",
                    build.qualified(),
                    self.state.schema()
                );
                (self.events)(&Event::Warning {
                    message: warning.clone(),
                });
                Ok(StepOutcome {
                    tries: self.policies.index.max_tries as usize,
                    warning: Some(warning),
                })
            }
            Err(err) => Err(EngineError::IndexBuild(err)),
        }
    }

    /// The name for an unnamed CREATE INDEX (see [`crate::index_name`]):
    /// the one an earlier run of this step recorded, else the one
    /// PostgreSQL would choose now, recorded on the step before the build.
    async fn name_unnamed(
        &self,
        ctx: &StepContext<'_>,
        sql: &str,
    ) -> Result<Option<crate::index_name::NamedIndex>, EngineError> {
        let dir = ctx.direction.as_str();
        let recorded = self
            .state
            .step_index_name(self.work, ctx.version, dir, ctx.step.number)
            .await?;
        if let Some(name) = recorded {
            return crate::index_name::reuse(self.work, sql, &name).await;
        }
        let Some(named) = crate::index_name::choose(self.work, sql).await? else {
            return Ok(None);
        };
        self.state
            .set_step_index_name(self.work, ctx.version, dir, ctx.step.number, &named.name)
            .await?;
        Ok(Some(named))
    }

    /// DROP / REINDEX CONCURRENTLY on an own connection under the index
    /// policy's retries.
    async fn index_plain(&self, ctx: &StepContext<'_>, sql: &str) -> Result<usize, EngineError> {
        let p = &self.policies.index;
        let conn = connect(self.url, "lull index").await?;
        conn.batch_execute(&format!(
            "SET lock_timeout = {}; SET statement_timeout = {};",
            quote_literal(&p.lock_timeout.pg_setting()),
            quote_literal(&p.statement_timeout.pg_setting())
        ))
        .await
        .map_err(|e| EngineError::db("setting the index session's timeouts", e))?;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let err = match conn.batch_execute(sql).await {
                Ok(()) => return Ok(attempt as usize),
                Err(e) => e,
            };
            // A cancel (57014) is final, as in `index_build::retryable`.
            let retry = matches!(sqlstate(&err).as_deref(), Some("55P03" | "40P01" | "40001"));
            if !retry || attempt >= p.max_tries {
                return Err(self.failed(ctx, sql, &err, attempt as usize, None));
            }
            let sleep = backoff(p.backoff_base.std(), p.backoff_max.std(), attempt);
            (self.events)(&Event::Retry {
                version: ctx.version.to_string(),
                step: ctx.step.number,
                attempt: attempt as usize,
                error: pg_message(&err),
                sleep,
            });
            tokio::time::sleep(sleep).await;
        }
    }

    /// Waits until no session still runs the statement an earlier, killed
    /// run of this step left on the server (found by its
    /// `application_name`, see [`step_marker`]). Lull's sessions set
    /// `client_connection_check_interval`, so such an orphan is normally
    /// cancelled within a second of its client's death; one that is still
    /// there after `limit` is reported by pid instead of being raced.
    pub async fn wait_for_orphan(
        &self,
        version: &str,
        direction: Direction,
        step: usize,
        limit: Duration,
    ) -> Result<(), EngineError> {
        let marker = step_marker(version, direction, step);
        let started = std::time::Instant::now();
        let mut announced = false;
        loop {
            let pids: Vec<i32> = self
                .monitor
                .query(
                    "SELECT pid FROM pg_stat_activity WHERE application_name = $1 \
                       AND datname = current_database() AND pid <> pg_backend_pid() \
                       AND state <> 'idle'",
                    &[&marker],
                )
                .await
                .map_err(|e| EngineError::db("looking for an earlier run's statement", e))?
                .into_iter()
                .map(|r| r.get(0))
                .collect();
            let Some(pid) = pids.first().copied() else {
                return Ok(());
            };
            if started.elapsed() >= limit {
                return Err(EngineError::Other {
                    message: format!(
                        "migration {version} step {step}: the statement an earlier run started is \
                         still running on the server (pid {pid})"
                    ),
                    hint: Some(format!(
                        "wait for it to end, or cancel it with `SELECT pg_cancel_backend({pid})`, \
                         then run `lull migrate` again"
                    )),
                    kind: crate::error::ErrorKind::Refused,
                });
            }
            if !announced {
                (self.events)(&Event::Warning {
                    message: format!(
                        "migration {version} step {step}: waiting for pid {pid}, the statement an \
                         earlier run left on the server, to end"
                    ),
                });
                announced = true;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Decides whether an autocommit step that an earlier run left
    /// `running` already took effect: a valid index of the name (for an
    /// unnamed CREATE INDEX, the name recorded on the step) is done; a DROP
    /// INDEX whose index is gone is done; anything else runs again (an
    /// INVALID index is dropped and rebuilt by the build itself).
    pub async fn already_done(
        &self,
        version: &str,
        direction: Direction,
        step: &Step,
    ) -> Result<bool, EngineError> {
        let Some(stmt) = step.statements.first() else {
            return Ok(true);
        };
        let Some(facts) = &stmt.index else {
            return Ok(false);
        };
        let qualified = match &facts.name {
            Some(name) => match name.split_once('.') {
                Some((s, n)) => quote_qualified(Some(s), n),
                None => quote_qualified(None, name),
            },
            // An unnamed CREATE INDEX: the name an earlier run chose.
            None => {
                let recorded = self
                    .state
                    .step_index_name(self.work, version, direction.as_str(), step.number)
                    .await?;
                let Some(name) = recorded else {
                    return Ok(false);
                };
                match crate::index_name::reuse(self.work, &stmt.sql, &name).await? {
                    Some(n) => quote_qualified(Some(&n.schema), &n.name),
                    None => return Ok(false),
                }
            }
        };
        let validity = index_build::index_validity(self.work, &qualified).await?;
        let is_drop = stmt
            .sql
            .trim_start()
            .to_ascii_uppercase()
            .starts_with("DROP");
        Ok(if is_drop {
            validity.is_none()
        } else {
            validity == Some(true)
        })
    }
}

/// A backfill error as the engine reports it.
fn backfill_error(e: lull_backfill::BackfillError) -> EngineError {
    use lull_backfill::BackfillError as B;
    let kind = match &e {
        B::Refused { .. } => crate::error::ErrorKind::Refused,
        B::Invalid { .. } | B::NotBatchable { .. } => crate::error::ErrorKind::Error,
        B::Db { .. } | B::Cancelled { .. } | B::BatchFailed { .. } => {
            crate::error::ErrorKind::Failed
        }
    };
    EngineError::Other {
        hint: e.hint(),
        message: e.to_string(),
        kind,
    }
}
