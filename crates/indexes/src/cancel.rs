//! `indexes cancel NAME|PID`: stops an index build (lull's or anyone's)
//! and drops the INVALID index it leaves behind.

use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_postgres::Client;

use crate::build::drop_index_concurrently;
use crate::error::{Error, QueryContext, Result};
use crate::progress;
use crate::queue::Queue;
use lull_analyzer::sql::quote_qualified;

/// How long to wait for a cancelled build to stop.
const WAIT_FOR_STOP: Duration = Duration::from_secs(30);

/// What `cancel` did.
#[derive(Debug, Clone, Serialize)]
pub struct CancelReport {
    /// Backend of the build that was cancelled, if one was running.
    pub pid: Option<i32>,
    /// The index, when known.
    pub index: Option<String>,
    /// The build's backend stopped within the wait.
    pub stopped: bool,
    /// INVALID leftovers dropped (schema-qualified).
    pub dropped: Vec<String>,
    /// INVALID leftovers that could not be dropped now (a lock wait ran out).
    pub not_dropped: Vec<String>,
}

/// Cancels the build on backend `target` (a number) or of the index named
/// `target`, then drops the INVALID leftover. With no build running, an
/// INVALID index of that name is still dropped.
pub async fn cancel(client: &Client, queue: &Queue, target: &str) -> Result<CancelReport> {
    let builds = progress::snapshot(client, None).await?;
    let pid_target: Option<i32> = target.parse().ok();
    let build = builds.iter().find(|b| match pid_target {
        Some(pid) => b.pid == pid,
        None => b.index == target || b.index.rsplit('.').next() == Some(target),
    });
    let mut report = CancelReport {
        pid: None,
        index: None,
        stopped: false,
        dropped: Vec::new(),
        not_dropped: Vec::new(),
    };
    if let Some(b) = build {
        report.pid = Some(b.pid);
        report.index = Some(
            b.index
                .rsplit('.')
                .next()
                .unwrap_or(&b.index)
                .trim_matches('"')
                .to_string(),
        );
        client
            .execute("SELECT pg_cancel_backend($1)", &[&b.pid])
            .await
            .during("cancelling the build")?;
        let started = Instant::now();
        while started.elapsed() < WAIT_FOR_STOP {
            if progress::snapshot(client, Some(b.pid)).await?.is_empty() {
                report.stopped = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    } else if pid_target.is_none() {
        report.index = Some(target.to_string());
    }
    let Some(name) = report.index.clone() else {
        return Err(Error::NoSuchBuild(target.to_string()));
    };
    let leftovers = client
        .query(
            "SELECT n.nspname::text FROM pg_index i
               JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relname = $1 AND NOT i.indisvalid",
            &[&name],
        )
        .await
        .during("looking for INVALID leftovers")?;
    if report.pid.is_none() && leftovers.is_empty() {
        return Err(Error::NoSuchBuild(target.to_string()));
    }
    for row in leftovers {
        let qualified = quote_qualified(Some(row.get::<_, &str>(0)), &name);
        if drop_index_concurrently(client, &qualified).await? {
            report.dropped.push(qualified);
        } else {
            report.not_dropped.push(qualified);
        }
    }
    // The queue may not exist (a build by another tool); that is fine.
    if queue.list(client).await?.iter().any(|p| p.name == name) {
        queue
            .record(client, &name, "cancelled by `lull indexes cancel`")
            .await?;
    }
    Ok(report)
}
