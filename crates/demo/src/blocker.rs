//! The long read transaction: a report that reads `orders` and keeps its
//! transaction open for a while, as reports, analytics queries and
//! forgotten `psql` sessions do.
//!
//! It holds only an ACCESS SHARE lock, which no write conflicts with; the
//! harm comes from a migration that queues for an ACCESS EXCLUSIVE lock
//! behind it, because every later query on the table queues behind that.

use std::time::{Duration, Instant};

use lull_engine::db::connect;
use tokio::task::JoinHandle;

use crate::{DemoError, TABLE};

/// An open read transaction that commits by itself after its time.
pub struct Blocker {
    /// When it held its lock.
    pub opened: Instant,
    task: JoinHandle<Result<Instant, DemoError>>,
}

impl Blocker {
    /// Opens the transaction and returns once it holds its lock on the
    /// table; it commits `hold` later.
    pub async fn open(url: &str, hold: Duration) -> Result<Blocker, DemoError> {
        let client = connect(url, "lull demo blocker (a long report)").await?;
        client
            .batch_execute(&format!(
                "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; \
                 SELECT count(*) FROM (SELECT 1 FROM {TABLE} LIMIT 1000) AS report"
            ))
            .await
            .map_err(|e| DemoError::db("opening the long read transaction", e))?;
        let opened = Instant::now();
        let task = tokio::spawn(async move {
            tokio::time::sleep_until((opened + hold).into()).await;
            client
                .batch_execute("COMMIT")
                .await
                .map_err(|e| DemoError::db("ending the long read transaction", e))?;
            Ok(Instant::now())
        });
        Ok(Blocker { opened, task })
    }

    /// Waits until the transaction has ended; returns when it ended.
    pub async fn ended(self) -> Result<Instant, DemoError> {
        self.task.await.map_err(|e| DemoError::Other {
            message: format!("the long read transaction's task failed: {e}"),
        })?
    }
}
