//! One runner at a time: a session-level advisory lock on a dedicated
//! connection, taken with `pg_try_advisory_lock` in a polling loop.
//!
//! A blocking `pg_advisory_lock` would sit in a transaction snapshot that
//! another runner's `CREATE INDEX CONCURRENTLY` has to wait for, while that
//! runner holds the lock the first one waits for: a deadlock. Polling with
//! the non-blocking form holds no snapshot between tries.

use std::time::{Duration, Instant};

use tokio_postgres::Client;

use crate::db::connect;
use crate::error::EngineError;
use crate::events::{Event, EventSink};

/// The held runner lock. [`RunnerLock::release`] gives it back at once;
/// dropping it closes its connection, which releases it a moment later
/// (also when the process is killed).
pub struct RunnerLock {
    client: Client,
    key: i64,
}

impl RunnerLock {
    /// Releases the lock now, so a run that follows at once in this or
    /// another process does not find it still held by a closing backend.
    pub async fn release(self) {
        // If this fails the connection is gone, and with it the lock.
        let _ = self
            .client
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

/// Takes the runner lock, polling every half second for up to `wait`
/// (zero: one try). Fails with [`EngineError::LockHeld`] naming the
/// holder's pid and application.
pub async fn acquire(
    url: &str,
    schema: &str,
    wait: Duration,
    events: &EventSink,
) -> Result<RunnerLock, EngineError> {
    let client = connect(url, "lull runner lock").await?;
    let key = lock_key(schema);
    let started = Instant::now();
    let mut announced = false;
    loop {
        let row = client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
            .await
            .map_err(|e| EngineError::db("taking the runner lock", e))?;
        if row.get::<_, bool>(0) {
            return Ok(RunnerLock { client, key });
        }
        let (pid, application) = holder(&client, key).await.unwrap_or((None, None));
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

/// Who holds the advisory lock `key` in this database.
async fn holder(client: &Client, key: i64) -> Result<(Option<i32>, Option<String>), EngineError> {
    let classid = ((key as u64) >> 32) as u32;
    let objid = (key as u64 & 0xffff_ffff) as u32;
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
