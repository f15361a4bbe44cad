//! Building one index CONCURRENTLY under the index policy: the primitive
//! the runner's index steps and `lull indexes build` share.
//!
//! [`build_index`] runs the build on its own autocommit connection. Before
//! each try an INVALID index of that name (left by an earlier failed or
//! killed build, which `IF NOT EXISTS` would silently keep) is dropped
//! CONCURRENTLY; retryable failures back off exponentially; success is
//! only reported once `pg_index.indisvalid` says so. While the build runs,
//! a second connection reads `pg_stat_progress_create_index` once a second
//! and reports it through the callback. A [`CancelToken`] stops the build
//! from outside (`pg_cancel_backend` on the build's backend); the build's
//! pid is also in [`IndexEvent::Started`] for callers that cancel it
//! themselves.
//!
//! # Several builders of one index
//!
//! `migrate`, `indexes build`, `indexes auto` and `daemon` (and a killed
//! run's orphan still on the server) may build the same index at once. An
//! index being built CONCURRENTLY is INVALID until it is done, so "INVALID
//! means a dead leftover" is only true when no backend is building it:
//!
//! - lull's builders take a session-level advisory lock per index (schema
//!   and name) on the build connection with `pg_try_advisory_lock`, polled
//!   so that no waiting transaction holds a snapshot the running build has
//!   to wait for. The second builder says it waits ([`IndexEvent::
//!   WaitingForBuilder`]); once it has the lock it finds the index valid
//!   and is done, or finds a dead leftover and builds. A killed run's
//!   orphan holds the lock until the server ends it.
//! - An INVALID index is dropped only when `pg_stat_progress_create_index`
//!   shows no backend building it (`index_relid`), so a build by another
//!   tool or by hand is waited for, not destroyed.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lull_analyzer::sql::{quote_literal, quote_qualified};
use lull_config::IndexPolicy;
use serde::Serialize;
use tokio::sync::watch;
use tokio_postgres::Client;

use crate::db::{backend_pid, connect};
use crate::error::{pg_message, sqlstate, EngineError};
use crate::executor::backoff;

/// One index to build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexBuild {
    /// The index's schema, or `None` for the connection's `search_path`.
    pub schema: Option<String>,
    /// The index name (unquoted).
    pub name: String,
    /// The `CREATE [UNIQUE] INDEX CONCURRENTLY ...` statement to run.
    pub sql: String,
}

impl IndexBuild {
    /// The quoted, possibly schema-qualified name.
    pub fn qualified(&self) -> String {
        quote_qualified(self.schema.as_deref(), &self.name)
    }
}

/// A handle to stop a build from another task. Clones share the state.
#[derive(Debug, Clone)]
pub struct CancelToken(Arc<watch::Sender<bool>>);

impl Default for CancelToken {
    fn default() -> Self {
        CancelToken(Arc::new(watch::channel(false).0))
    }
}

impl CancelToken {
    /// A token that has not been cancelled.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the build to stop: its backend gets `pg_cancel_backend`, the
    /// INVALID leftover is dropped and `build_index` returns
    /// [`IndexBuildErrorKind::Cancelled`].
    pub fn cancel(&self) {
        self.0.send_replace(true);
    }

    /// Whether [`cancel`](Self::cancel) was called.
    pub fn is_cancelled(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once the token is cancelled.
    pub async fn cancelled(&self) {
        let mut rx = self.0.subscribe();
        let _ = rx.wait_for(|c| *c).await;
    }
}

/// A snapshot of `pg_stat_progress_create_index` for the build.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct IndexProgress {
    /// The build's backend pid.
    pub pid: i32,
    /// e.g. `building index: scanning table`, `waiting for old snapshots`.
    pub phase: String,
    /// Blocks scanned so far.
    pub blocks_done: i64,
    /// Blocks to scan in this phase.
    pub blocks_total: i64,
    /// Tuples processed so far.
    pub tuples_done: i64,
    /// Tuples to process in this phase.
    pub tuples_total: i64,
    /// Sessions waited for so far in a waiting phase.
    pub lockers_done: i64,
    /// Sessions to wait for in a waiting phase.
    pub lockers_total: i64,
    /// The pids the build waits for right now (`pg_blocking_pids`).
    pub waiting_for: Vec<i32>,
    /// Time since the try started.
    pub elapsed_ms: u64,
}

impl IndexProgress {
    /// Percent done in the current phase, when the phase has a total.
    pub fn percent(&self) -> Option<f64> {
        if self.blocks_total > 0 {
            Some(100.0 * self.blocks_done as f64 / self.blocks_total as f64)
        } else if self.tuples_total > 0 {
            Some(100.0 * self.tuples_done as f64 / self.tuples_total as f64)
        } else {
            None
        }
    }
}

/// What happens during a build, for progress display and for callers that
/// want the backend pid.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum IndexEvent {
    /// A try starts on backend `pid`.
    Started {
        /// 1-based try.
        attempt: u32,
        /// The build's backend pid.
        pid: i32,
    },
    /// Progress, about once a second.
    Progress(IndexProgress),
    /// An INVALID index of that name was dropped before a try or after a
    /// failure.
    DroppedInvalid {
        /// The quoted index name.
        index: String,
    },
    /// Another backend is building this index (another lull run holding
    /// its builder lock, or a build by another tool); this build waits for
    /// it to end before deciding anything.
    WaitingForBuilder {
        /// The quoted index name.
        index: String,
        /// The other build's backend, when known.
        pid: Option<i32>,
    },
    /// A try failed with a retryable error; the next one starts after
    /// `sleep`.
    Retry {
        /// 1-based try that failed.
        attempt: u32,
        /// The error.
        error: String,
        /// Sleep before the next try.
        sleep: Duration,
    },
}

/// How a successful build went.
#[derive(Debug, Clone, PartialEq)]
pub struct BuildReport {
    /// Tries it took (0 when a valid index of that name already existed).
    pub tries: u32,
    /// Time from the call to the valid index.
    pub elapsed: Duration,
    /// A valid index of that name already existed; nothing was built.
    pub already_valid: bool,
}

/// Why a build did not produce a valid index.
#[derive(Debug)]
pub struct IndexBuildError {
    /// The quoted index name.
    pub index: String,
    /// What happened.
    pub kind: IndexBuildErrorKind,
}

/// The ways a build ends without a valid index.
#[derive(Debug)]
pub enum IndexBuildErrorKind {
    /// The server rejected the build (after every allowed try, for
    /// retryable errors).
    Failed {
        /// The server's message.
        message: String,
        /// The SQLSTATE.
        code: Option<String>,
        /// Tries made.
        tries: u32,
    },
    /// The build finished but `indisvalid` is false.
    NotValid,
    /// [`CancelToken::cancel`] was called.
    Cancelled,
    /// Connecting or a bookkeeping query failed.
    Engine(Box<EngineError>),
}

impl IndexBuildError {
    fn new(index: &str, kind: IndexBuildErrorKind) -> Self {
        IndexBuildError {
            index: index.to_string(),
            kind,
        }
    }

    /// The SQLSTATE of the final failure, if the server sent one.
    pub fn code(&self) -> Option<&str> {
        match &self.kind {
            IndexBuildErrorKind::Failed { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    /// What to do next.
    pub fn hint(&self) -> Option<String> {
        match &self.kind {
            IndexBuildErrorKind::Failed { code, .. } if code.as_deref() == Some("23505") => Some(
                "the table holds duplicate values for this unique index; fix the data and \
                 re-run (the INVALID leftover is dropped before the next build)"
                    .into(),
            ),
            IndexBuildErrorKind::Failed { .. } => Some(
                "fix the cause and re-run; an INVALID leftover is dropped before the next build"
                    .into(),
            ),
            IndexBuildErrorKind::Engine(e) => e.hint(),
            _ => None,
        }
    }
}

impl fmt::Display for IndexBuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            IndexBuildErrorKind::Failed {
                message,
                code,
                tries,
            } => {
                write!(
                    f,
                    "building index {} failed after {tries} tr{}: {message}",
                    self.index,
                    if *tries == 1 { "y" } else { "ies" }
                )?;
                if let Some(code) = code {
                    write!(f, " (SQLSTATE {code})")?;
                }
                Ok(())
            }
            IndexBuildErrorKind::NotValid => write!(
                f,
                "index {} was built but PostgreSQL marks it INVALID",
                self.index
            ),
            IndexBuildErrorKind::Cancelled => {
                write!(f, "building index {} was cancelled", self.index)
            }
            IndexBuildErrorKind::Engine(e) => write!(f, "building index {}: {e}", self.index),
        }
    }
}

impl std::error::Error for IndexBuildError {}

/// SQLSTATEs after which another try may succeed: lock timeout, deadlock,
/// serialization failure, and the backend being terminated. A cancel
/// (57014: `pg_cancel_backend` by an operator, or the policy's own
/// statement_timeout) is final: retrying would undo the operator's
/// decision or hit the same bound again.
fn retryable(code: Option<&str>) -> bool {
    matches!(code, Some("55P03" | "40P01" | "40001" | "57P01"))
}

/// `pg_index.indisvalid` of the index named `qualified` (quoted), or
/// `None` when no such index exists.
pub async fn index_validity(client: &Client, qualified: &str) -> Result<Option<bool>, EngineError> {
    let row = client
        .query_opt(
            "SELECT i.indisvalid FROM pg_index i WHERE i.indexrelid = to_regclass($1::text)",
            &[&qualified],
        )
        .await
        .map_err(|e| EngineError::db("reading pg_index", e))?;
    Ok(row.map(|r| r.get(0)))
}

/// The backend building the index named `qualified` (quoted) right now,
/// from `pg_stat_progress_create_index`, other than this session and the
/// backends in `own`. A build's own backend is passed in `own` after its
/// statement failed: the server sends the error before it clears the
/// progress row, so for a moment the failed build still looks alive.
pub async fn building_pid(
    client: &Client,
    qualified: &str,
    own: &[i32],
) -> Result<Option<i32>, EngineError> {
    let row = client
        .query_opt(
            "SELECT pid FROM pg_stat_progress_create_index \
             WHERE index_relid = to_regclass($1::text) AND pid <> pg_backend_pid() \
               AND pid <> ALL($2) LIMIT 1",
            &[&qualified, &own],
        )
        .await
        .map_err(|e| EngineError::db("reading pg_stat_progress_create_index", e))?;
    Ok(row.map(|r| r.get(0)))
}

/// How often a waiting builder looks again.
const BUILDER_POLL: Duration = Duration::from_millis(500);

/// Waits while another backend builds `qualified` (see the module docs);
/// says once that it waits. Stops waiting when `cancel` fires.
async fn wait_for_other_build(
    client: &Client,
    qualified: &str,
    own: i32,
    cancel: &CancelToken,
    on_event: &(dyn Fn(&IndexEvent) + Send + Sync),
) -> Result<(), EngineError> {
    let mut announced = false;
    while let Some(pid) = building_pid(client, qualified, &[own]).await? {
        if cancel.is_cancelled() {
            return Ok(());
        }
        if !announced {
            on_event(&IndexEvent::WaitingForBuilder {
                index: qualified.to_string(),
                pid: Some(pid),
            });
            announced = true;
        }
        tokio::time::sleep(BUILDER_POLL).await;
    }
    Ok(())
}

/// Takes the builder lock of the index on the build connection, waiting
/// (polled, see the module docs) while another session holds it. Returns
/// false if `cancel` fired first.
async fn claim(
    conn: &Client,
    build: &IndexBuild,
    cancel: &CancelToken,
    on_event: &(dyn Fn(&IndexEvent) + Send + Sync),
) -> Result<bool, EngineError> {
    const KEY: &str = "hashtextextended('lull index build ' || coalesce($1::text, current_schema()) || '.' || $2::text, 0)";
    let mut announced = false;
    loop {
        let got: bool = conn
            .query_one(
                &format!("SELECT pg_try_advisory_lock({KEY})"),
                &[&build.schema, &build.name],
            )
            .await
            .map_err(|e| EngineError::db("taking the index's builder lock", e))?
            .get(0);
        if got {
            return Ok(true);
        }
        if cancel.is_cancelled() {
            return Ok(false);
        }
        if !announced {
            let pid: Option<i32> = conn
                .query_opt(
                    &format!(
                        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1 \
                           AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
                           AND ((classid::bigint << 32) | objid::bigint) = {KEY} LIMIT 1"
                    ),
                    &[&build.schema, &build.name],
                )
                .await
                .map_err(|e| EngineError::db("looking for the other builder", e))?
                .map(|r| r.get(0));
            on_event(&IndexEvent::WaitingForBuilder {
                index: build.qualified(),
                pid,
            });
            announced = true;
        }
        tokio::time::sleep(BUILDER_POLL).await;
    }
}

/// Drops the index CONCURRENTLY if it exists, is INVALID and no backend is
/// building it (see the module docs; `own`: backends of this build whose
/// statement has ended); says whether it did.
pub async fn drop_invalid(
    client: &Client,
    qualified: &str,
    own: &[i32],
) -> Result<bool, EngineError> {
    if index_validity(client, qualified).await? == Some(false)
        && building_pid(client, qualified, own).await?.is_none()
    {
        client
            .batch_execute(&format!("DROP INDEX CONCURRENTLY IF EXISTS {qualified}"))
            .await
            .map_err(|e| EngineError::db(format!("dropping INVALID index {qualified}"), e))?;
        return Ok(true);
    }
    Ok(false)
}

/// Reads the build's row of `pg_stat_progress_create_index`.
pub async fn read_progress(
    client: &Client,
    pid: i32,
) -> Result<Option<IndexProgress>, EngineError> {
    let row = client
        .query_opt(
            "SELECT p.phase, p.blocks_done, p.blocks_total, p.tuples_done, p.tuples_total, \
                    p.lockers_done, p.lockers_total, pg_blocking_pids(p.pid) \
             FROM pg_stat_progress_create_index p WHERE p.pid = $1",
            &[&pid],
        )
        .await
        .map_err(|e| EngineError::db("reading pg_stat_progress_create_index", e))?;
    Ok(row.map(|r| IndexProgress {
        pid,
        phase: r.get(0),
        blocks_done: r.get(1),
        blocks_total: r.get(2),
        tuples_done: r.get(3),
        tuples_total: r.get(4),
        lockers_done: r.get(5),
        lockers_total: r.get(6),
        waiting_for: r.get(7),
        elapsed_ms: 0,
    }))
}

async fn session(url: &str, policy: &IndexPolicy) -> Result<(Client, i32), EngineError> {
    let client = connect(url, "lull index build").await?;
    let mut set = format!(
        "SET lock_timeout = {}; SET statement_timeout = {};",
        quote_literal(&policy.lock_timeout.pg_setting()),
        quote_literal(&policy.statement_timeout.pg_setting())
    );
    if let Some(mem) = &policy.maintenance_work_mem {
        set.push_str(&format!(
            " SET maintenance_work_mem = {};",
            quote_literal(mem)
        ));
    }
    if let Some(workers) = policy.max_parallel_maintenance_workers {
        set.push_str(&format!(
            " SET max_parallel_maintenance_workers = {workers};"
        ));
    }
    client
        .batch_execute(&set)
        .await
        .map_err(|e| EngineError::db("setting the index build's session settings", e))?;
    let pid = backend_pid(&client).await?;
    Ok((client, pid))
}

/// Builds one index CONCURRENTLY under `policy` (tries, backoff, session
/// settings) on its own connection to `url`, reporting through `on_event`.
///
/// Returns once `indisvalid` is true. A valid index of that name that
/// already exists counts as built (`already_valid`). On a final failure or
/// a cancel the INVALID leftover is dropped, so nothing half-built stays
/// behind to slow writes or enforce a unique constraint.
pub async fn build_index(
    url: &str,
    build: &IndexBuild,
    policy: &IndexPolicy,
    cancel: &CancelToken,
    on_event: &(dyn Fn(&IndexEvent) + Send + Sync),
) -> Result<BuildReport, IndexBuildError> {
    let started = Instant::now();
    let qualified = build.qualified();
    let engine =
        |e: EngineError| IndexBuildError::new(&qualified, IndexBuildErrorKind::Engine(Box::new(e)));
    let monitor = connect(url, "lull index progress").await.map_err(engine)?;
    if index_validity(&monitor, &qualified).await.map_err(engine)? == Some(true) {
        return Ok(BuildReport {
            tries: 0,
            elapsed: started.elapsed(),
            already_valid: true,
        });
    }
    let (mut conn, mut pid) = session(url, policy).await.map_err(engine)?;
    let mut claimed = false;
    let max_tries = policy.max_tries.max(1);
    let mut attempt = 0;
    loop {
        attempt += 1;
        if conn.is_closed() {
            (conn, pid) = session(url, policy).await.map_err(engine)?;
            claimed = false;
        }
        if !claimed {
            claimed = claim(&conn, build, cancel, on_event)
                .await
                .map_err(engine)?;
        }
        if claimed {
            wait_for_other_build(&monitor, &qualified, pid, cancel, on_event)
                .await
                .map_err(engine)?;
        }
        if cancel.is_cancelled() {
            return Err(cleanup(
                &monitor,
                &qualified,
                pid,
                on_event,
                IndexBuildErrorKind::Cancelled,
            )
            .await);
        }
        // Another builder may have finished it while this one waited.
        if index_validity(&monitor, &qualified).await.map_err(engine)? == Some(true) {
            return Ok(BuildReport {
                tries: 0,
                elapsed: started.elapsed(),
                already_valid: true,
            });
        }
        if drop_invalid(&conn, &qualified, &[]).await.map_err(engine)? {
            on_event(&IndexEvent::DroppedInvalid {
                index: qualified.clone(),
            });
        }
        on_event(&IndexEvent::Started { attempt, pid });
        let try_started = Instant::now();
        let result = {
            let run = conn.batch_execute(&build.sql);
            tokio::pin!(run);
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            let mut cancel_sent = false;
            loop {
                tokio::select! {
                    r = &mut run => break r,
                    _ = tick.tick() => {
                        if let Ok(Some(mut p)) = read_progress(&monitor, pid).await {
                            p.elapsed_ms = try_started.elapsed().as_millis() as u64;
                            on_event(&IndexEvent::Progress(p));
                        }
                    }
                    _ = cancel.cancelled(), if !cancel_sent => {
                        cancel_sent = true;
                        let _ = monitor.execute("SELECT pg_cancel_backend($1)", &[&pid]).await;
                    }
                }
            }
        };
        match result {
            Ok(()) => {
                return match index_validity(&monitor, &qualified).await.map_err(engine)? {
                    Some(true) => Ok(BuildReport {
                        tries: attempt,
                        elapsed: started.elapsed(),
                        already_valid: false,
                    }),
                    _ => Err(cleanup(
                        &monitor,
                        &qualified,
                        pid,
                        on_event,
                        IndexBuildErrorKind::NotValid,
                    )
                    .await),
                };
            }
            Err(err) => {
                if cancel.is_cancelled() {
                    return Err(cleanup(
                        &monitor,
                        &qualified,
                        pid,
                        on_event,
                        IndexBuildErrorKind::Cancelled,
                    )
                    .await);
                }
                let code = sqlstate(&err);
                let closed = conn.is_closed();
                if (retryable(code.as_deref()) || closed) && attempt < max_tries {
                    let sleep =
                        backoff(policy.backoff_base.std(), policy.backoff_max.std(), attempt);
                    on_event(&IndexEvent::Retry {
                        attempt,
                        error: pg_message(&err),
                        sleep,
                    });
                    tokio::time::sleep(sleep).await;
                    continue;
                }
                let kind = IndexBuildErrorKind::Failed {
                    message: pg_message(&err),
                    code,
                    tries: attempt,
                };
                return Err(cleanup(&monitor, &qualified, pid, on_event, kind).await);
            }
        }
    }
}

/// Drops the INVALID leftover after a failure and returns the error.
async fn cleanup(
    monitor: &Client,
    qualified: &str,
    own: i32,
    on_event: &(dyn Fn(&IndexEvent) + Send + Sync),
    kind: IndexBuildErrorKind,
) -> IndexBuildError {
    if let Ok(true) = drop_invalid(monitor, qualified, &[own]).await {
        on_event(&IndexEvent::DroppedInvalid {
            index: qualified.to_string(),
        });
    }
    IndexBuildError::new(qualified, kind)
}
