//! One runner at a time, and a runner that lost its lock commits nothing.
//!
//! # The lock
//!
//! A session-level advisory lock on the runner's *work* connection — the
//! connection every step's statements and every state record are written
//! on — taken with `pg_try_advisory_lock` in a polling loop. A blocking
//! `pg_advisory_lock` would sit in a transaction snapshot that another
//! runner's `CREATE INDEX CONCURRENTLY` has to wait for, while that runner
//! holds the lock the first one waits for: a deadlock. Polling with the
//! non-blocking form holds no snapshot between tries.
//!
//! # Why it fences the work
//!
//! A lock on a connection of its own does not: when that idle connection
//! dies (`idle_session_timeout`, a job that kills idle sessions, a proxy,
//! `pg_terminate_backend`) the runner carries on without noticing, a second
//! runner takes the lock and both commit the same step. Holding the lock on
//! the work connection closes that gap by construction:
//!
//! 1. Only the session itself can give a session-level advisory lock back
//!    (`pg_advisory_unlock`, `DISCARD ALL`) or it ends with the session.
//! 2. Every transactional step checks, inside its own transaction and just
//!    before its record and `COMMIT`, that this backend still holds the
//!    lock ([`fence_sql`]); a step whose SQL gave the lock back (a file
//!    with `DISCARD ALL`) fails there and rolls back. Autocommit steps run
//!    the same check before their statement is sent.
//! 3. If the session dies, its open transaction dies with it, so the lost
//!    lock and the lost commit are the same event: there is no moment in
//!    which a runner without the lock can still commit on that session.
//!    The runner stops with an error; it never reconnects and carries on.
//!
//! Behind the lock, the state itself refuses a second commit: a step's
//! `done` record is a plain `INSERT` (never an upsert over an earlier row;
//! see [`crate::state::State::step_done_sql`]) in the step's own
//! transaction, so a second runner that somehow ran the same step meets
//! the primary key of the first one's row and its whole transaction rolls
//! back.
//!
//! Lull's sessions also `SET idle_session_timeout = 0` (see
//! [`crate::db::session_guards`]): the work session is idle while an index
//! builds on its own connection and must not be ended for that.

use std::time::{Duration, Instant};

use tokio_postgres::Client;

use crate::error::EngineError;
use crate::events::{Event, EventSink};

/// The SQLSTATE [`fence_sql`] raises when the session lost the runner lock.
pub const LOST_LOCK_SQLSTATE: &str = "LU001";

/// The held runner lock on the work connection. [`RunnerLock::release`]
/// gives it back at once; closing the connection releases it too (also
/// when the process is killed).
pub struct RunnerLock {
    key: i64,
}

impl RunnerLock {
    /// The lock's key.
    pub fn key(&self) -> i64 {
        self.key
    }

    /// Releases the lock now, so a run that follows at once in this or
    /// another process does not find it still held by a closing backend.
    pub async fn release(self, client: &Client) {
        // If this fails the connection is gone, and with it the lock.
        let _ = client
            .execute("SELECT pg_advisory_unlock($1)", &[&self.key])
            .await;
    }
}

/// The advisory lock key for a state schema: runners that share a schema
/// exclude each other; different schemas (different apps in one
/// database) do not.
pub fn lock_key(schema: &str) -> i64 {
    let hex = lull_migrations::checksum(&format!("lull runner lock {schema}"));
    let bytes = u64::from_str_radix(&hex[..16], 16).expect("sha256 hex");
    bytes as i64
}

/// SQL (one `DO` block) that fails with SQLSTATE [`LOST_LOCK_SQLSTATE`]
/// unless the session running it holds the runner lock `key`. Run inside a
/// step's transaction before its `COMMIT`.
pub fn fence_sql(key: i64) -> String {
    let (classid, objid) = split_key(key);
    format!(
        "DO $lull_fence$ BEGIN IF NOT EXISTS (SELECT FROM pg_catalog.pg_locks \
           WHERE locktype = 'advisory' AND granted AND pid = pg_catalog.pg_backend_pid() \
             AND classid = {classid} AND objid = {objid} AND objsubid = 1) THEN \
           RAISE EXCEPTION 'this lull runner no longer holds the runner lock' \
             USING ERRCODE = '{LOST_LOCK_SQLSTATE}'; \
         END IF; END $lull_fence$"
    )
}

fn split_key(key: i64) -> (u32, u32) {
    (
        ((key as u64) >> 32) as u32,
        (key as u64 & 0xffff_ffff) as u32,
    )
}

/// Takes the runner lock on `client` (the run's work connection), polling
/// every half second for up to `wait` (zero: one try). Fails with
/// [`EngineError::LockHeld`] naming the holder's pid and application.
/// Returns the lock and the time spent waiting for it.
pub async fn acquire(
    client: &Client,
    schema: &str,
    wait: Duration,
    events: &EventSink,
) -> Result<(RunnerLock, Duration), EngineError> {
    let key = lock_key(schema);
    let started = Instant::now();
    let mut announced = false;
    loop {
        if try_lock(client, key).await? {
            return Ok((RunnerLock { key }, started.elapsed()));
        }
        let (pid, application) = holder(client, key).await.unwrap_or((None, None));
        if started.elapsed() >= wait {
            return Err(EngineError::LockHeld {
                pid,
                application,
                waited: started.elapsed(),
            });
        }
        if !announced {
            events(&Event::RunnerLockWaiting { pid, application });
            announced = true;
        }
        let left = wait.saturating_sub(started.elapsed());
        tokio::time::sleep(left.min(Duration::from_millis(500))).await;
    }
}

/// One `pg_try_advisory_lock` of the runner lock for `schema` on `client`.
pub async fn try_lock(client: &Client, key: i64) -> Result<bool, EngineError> {
    let row = client
        .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
        .await
        .map_err(|e| EngineError::db("taking the runner lock", e))?;
    Ok(row.get(0))
}

/// Who holds the advisory lock `key` in this database.
async fn holder(client: &Client, key: i64) -> Result<(Option<i32>, Option<String>), EngineError> {
    let (classid, objid) = split_key(key);
    let row = client
        .query_opt(
            "SELECT l.pid, a.application_name FROM pg_locks l \
             LEFT JOIN pg_stat_activity a ON a.pid = l.pid \
             WHERE l.locktype = 'advisory' AND l.granted AND l.classid = $1 AND l.objid = $2 \
               AND l.objsubid = 1 \
               AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
             LIMIT 1",
            &[&classid, &objid],
        )
        .await
        .map_err(|e| EngineError::db("looking up the runner lock holder", e))?;
    Ok(match row {
        Some(r) => (Some(r.get(0)), r.get(1)),
        None => (None, None),
    })
}
