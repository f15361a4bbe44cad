//! Who blocks a lock: the tree from `pg_blocking_pids()` joined with
//! `pg_stat_activity`, as text for people and as JSON for machines.
//!
//! A failed lock try is over by the time lull can ask who blocked it, so
//! the blockers come from two places: pids seen by `pg_blocking_pids()`
//! while the try was waiting (polled on a second connection), and the
//! sessions that hold or queue for a conflicting lock on the relations the
//! statement locks. Each blocker's own blockers are added below it, so a
//! chain (an idle transaction holding a lock, an ALTER queued behind it)
//! shows who really has to go.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use lull_analyzer::sql::{quote_ident, quote_qualified};
use lull_analyzer::LockMode;
use serde::Serialize;
use tokio_postgres::Client;

use crate::error::{excerpt, EngineError};

/// One session that blocks, and who blocks it in turn.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Blocker {
    /// Backend pid (`pg_terminate_backend(pid)` ends it).
    pub pid: i32,
    /// Database user.
    pub user: String,
    /// `application_name`.
    pub application: String,
    /// Client address, or `local` for a Unix socket.
    pub client: String,
    /// `active`, `idle in transaction`, ...
    pub state: String,
    /// Age of its transaction in seconds, if it is in one.
    pub transaction_age_secs: Option<f64>,
    /// `type:event` it waits on, if any.
    pub wait_event: Option<String>,
    /// The first 200 characters of its current or last query.
    pub query: String,
    /// Sessions that block this one.
    pub blocked_by: Vec<Blocker>,
}

/// The sessions that kept a statement from its locks.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BlockerReport {
    /// The sessions that directly blocked lull, each with its own blockers.
    pub blockers: Vec<Blocker>,
}

impl BlockerReport {
    /// Whether nobody was found (the blocker may have ended already).
    pub fn is_empty(&self) -> bool {
        self.blockers.is_empty()
    }

    /// Every pid in the tree.
    pub fn pids(&self) -> Vec<i32> {
        fn walk(b: &Blocker, out: &mut Vec<i32>) {
            out.push(b.pid);
            b.blocked_by.iter().for_each(|c| walk(c, out));
        }
        let mut out = Vec::new();
        self.blockers.iter().for_each(|b| walk(b, &mut out));
        out
    }

    /// The tree as indented lines.
    pub fn human(&self) -> String {
        fn line(b: &Blocker, depth: usize, out: &mut String) {
            let indent = "  ".repeat(depth + 1);
            let age = b
                .transaction_age_secs
                .map(|s| {
                    format!(
                        ", transaction open {}",
                        crate::events::human(std::time::Duration::from_secs_f64(s.max(0.0)))
                    )
                })
                .unwrap_or_default();
            let wait = b
                .wait_event
                .as_deref()
                .map(|w| format!(", waiting on {w}"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "{indent}pid {} user {} application {} client {} state {}{age}{wait}",
                b.pid,
                or_dash(&b.user),
                or_dash(&b.application),
                or_dash(&b.client),
                or_dash(&b.state),
            );
            let _ = writeln!(out, "{indent}  query: {}", b.query);
            for c in &b.blocked_by {
                line(c, depth + 1, out);
            }
        }
        let mut out = String::new();
        for b in &self.blockers {
            line(b, 0, &mut out);
        }
        out
    }
}

fn or_dash(s: &str) -> &str {
    if s.is_empty() {
        "-"
    } else {
        s
    }
}

/// `pg_blocking_pids(pid)`: who blocks that backend right now.
pub async fn blocking_pids(client: &Client, pid: i32) -> Result<Vec<i32>, EngineError> {
    let row = client
        .query_one("SELECT pg_blocking_pids($1)", &[&pid])
        .await
        .map_err(|e| EngineError::db("reading pg_blocking_pids", e))?;
    Ok(row.get(0))
}

/// Sessions other than `exclude` that hold, or queue for, a lock that
/// conflicts with `mode` on `relation` (a name as the analyzer reports it,
/// `schema.name` or `name`).
pub async fn conflicting_holders(
    client: &Client,
    relation: &str,
    mode: LockMode,
    exclude: &[i32],
) -> Result<Vec<i32>, EngineError> {
    let quoted = match relation.split_once('.') {
        Some((schema, name)) => quote_qualified(Some(schema), name),
        None => quote_ident(relation),
    };
    let rows = client
        .query(
            "SELECT l.pid, l.mode FROM pg_locks l \
             WHERE l.locktype = 'relation' AND l.relation = to_regclass($1) \
               AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
               AND l.pid <> ALL($2) AND l.pid IS NOT NULL",
            &[&quoted, &exclude],
        )
        .await
        .map_err(|e| EngineError::db("reading pg_locks", e))?;
    let mut pids = BTreeSet::new();
    for row in rows {
        let pid: i32 = row.get(0);
        let held: String = row.get(1);
        if LockMode::from_pg_name(&held).is_some_and(|h| h.conflicts_with(&mode)) {
            pids.insert(pid);
        }
    }
    Ok(pids.into_iter().collect())
}

/// Builds the tree for the given pids from `pg_stat_activity`, following
/// each one's own `pg_blocking_pids()` a few levels down. Pids that have
/// ended are left out.
pub async fn report(client: &Client, pids: &[i32]) -> Result<BlockerReport, EngineError> {
    let mut seen = BTreeSet::new();
    let blockers = tree(client, pids, &mut seen, 0).await?;
    Ok(BlockerReport { blockers })
}

fn tree<'a>(
    client: &'a Client,
    pids: &'a [i32],
    seen: &'a mut BTreeSet<i32>,
    depth: usize,
) -> std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Vec<Blocker>, EngineError>> + Send + 'a>,
> {
    Box::pin(async move {
        let fresh: Vec<i32> = pids.iter().copied().filter(|p| seen.insert(*p)).collect();
        if fresh.is_empty() || depth > 4 {
            return Ok(Vec::new());
        }
        let rows = client
            .query(
                "SELECT a.pid, coalesce(a.usename::text, ''), coalesce(a.application_name, ''), \
                        coalesce(host(a.client_addr), CASE WHEN a.client_port = -1 THEN 'local' ELSE '' END), \
                        coalesce(a.state, ''), \
                        extract(epoch FROM now() - a.xact_start)::float8, \
                        CASE WHEN a.wait_event IS NULL THEN NULL \
                             ELSE a.wait_event_type || ':' || a.wait_event END, \
                        coalesce(a.query, ''), pg_blocking_pids(a.pid) \
                 FROM pg_stat_activity a WHERE a.pid = ANY($1) ORDER BY a.xact_start NULLS LAST, a.pid",
                &[&fresh],
            )
            .await
            .map_err(|e| EngineError::db("reading pg_stat_activity", e))?;
        let mut out = Vec::new();
        for row in rows {
            let query: String = row.get(7);
            let below: Vec<i32> = row.get(8);
            let blocked_by = tree(client, &below, seen, depth + 1).await?;
            out.push(Blocker {
                pid: row.get(0),
                user: row.get(1),
                application: row.get(2),
                client: row.get(3),
                state: row.get(4),
                transaction_age_secs: row.get(5),
                wait_event: row.get(6),
                query: excerpt(&query, 200),
                blocked_by,
            });
        }
        Ok(out)
    })
}
