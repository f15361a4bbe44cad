//! Live progress of index builds, from `pg_stat_progress_create_index`:
//! every build in the cluster, also ones started by other tools, with the
//! phase, how far it is, and which session it waits for.

use serde::Serialize;
use tokio_postgres::Client;

use crate::error::{QueryContext, Result};

/// One running `CREATE INDEX` / `REINDEX`.
#[derive(Debug, Clone, Serialize)]
pub struct BuildProgress {
    /// Backend running the build.
    pub pid: i32,
    /// Database.
    pub database: String,
    /// Table (qualified when in the current database, else its OID).
    pub table: String,
    /// Index name (from the statement, the catalog, or `?` early on).
    pub index: String,
    /// `CREATE INDEX CONCURRENTLY`, `REINDEX`, …
    pub command: String,
    /// The phase, as PostgreSQL names it.
    pub phase: String,
    /// Blocks done / total in the current phase.
    pub blocks_done: i64,
    /// Total blocks of the current phase.
    pub blocks_total: i64,
    /// Tuples done in the current phase.
    pub tuples_done: i64,
    /// Total tuples of the current phase.
    pub tuples_total: i64,
    /// Lockers waited for so far.
    pub lockers_done: i64,
    /// Lockers to wait for.
    pub lockers_total: i64,
    /// The session the build waits for right now, if any.
    pub waiting_for: Option<Locker>,
    /// Seconds since the statement started.
    pub elapsed_secs: f64,
    /// Share of the current phase done, 0–100, when the phase counts.
    pub percent: Option<f64>,
    /// Seconds left in the current phase at the pace so far, when known.
    pub phase_eta_secs: Option<f64>,
}

/// A session a build waits for.
#[derive(Debug, Clone, Serialize)]
pub struct Locker {
    /// Its backend.
    pub pid: i32,
    /// Its state (`idle in transaction`, `active`, …).
    pub state: Option<String>,
    /// Seconds since its transaction started.
    pub xact_age_secs: Option<f64>,
    /// Its current or last statement, shortened.
    pub query: Option<String>,
}

/// Every index build in the cluster, or the one on backend `pid`.
pub async fn snapshot(client: &Client, pid: Option<i32>) -> Result<Vec<BuildProgress>> {
    let rows = client
        .query(
            "SELECT p.pid, p.datname::text,
                    CASE WHEN p.datname = current_database() THEN p.relid::regclass::text ELSE p.relid::text END,
                    CASE WHEN p.datname = current_database() AND p.index_relid <> 0
                         THEN p.index_relid::regclass::text END,
                    p.command, p.phase,
                    p.blocks_done, p.blocks_total, p.tuples_done, p.tuples_total,
                    p.lockers_done, p.lockers_total,
                    nullif(p.current_locker_pid, 0)::int,
                    coalesce(extract(epoch FROM clock_timestamp() - a.query_start), 0)::float8,
                    a.query,
                    l.state, extract(epoch FROM clock_timestamp() - l.xact_start)::float8, left(l.query, 200),
                    (pg_blocking_pids(p.pid))[1]
               FROM pg_stat_progress_create_index p
               LEFT JOIN pg_stat_activity a ON a.pid = p.pid
               LEFT JOIN pg_stat_activity l ON l.pid = coalesce(nullif(p.current_locker_pid, 0), (pg_blocking_pids(p.pid))[1])
              WHERE $1::int IS NULL OR p.pid = $1
              ORDER BY a.query_start, p.pid",
            &[&pid],
        )
        .await
        .during("reading pg_stat_progress_create_index")?;
    Ok(rows
        .iter()
        .map(|r| {
            let query: Option<String> = r.get(14);
            let catalog_name: Option<String> = r.get(3);
            let index = query
                .as_deref()
                .and_then(index_name_of)
                .or(catalog_name)
                .unwrap_or_else(|| "?".to_string());
            let locker_pid: Option<i32> = r.get(12);
            let blocker: Option<i32> = r.get(18);
            let waiting_for = locker_pid.or(blocker).map(|pid| Locker {
                pid,
                state: r.get(15),
                xact_age_secs: r.get(16),
                query: r.get(17),
            });
            let mut p = BuildProgress {
                pid: r.get(0),
                database: r.get(1),
                table: r.get(2),
                index,
                command: r.get(4),
                phase: r.get(5),
                blocks_done: r.get(6),
                blocks_total: r.get(7),
                tuples_done: r.get(8),
                tuples_total: r.get(9),
                lockers_done: r.get(10),
                lockers_total: r.get(11),
                waiting_for,
                elapsed_secs: r.get(13),
                percent: None,
                phase_eta_secs: None,
            };
            p.percent = phase_percent(&p);
            p
        })
        .collect())
}

/// The counter that means something in the current phase: blocks while
/// scanning, tuples while loading, lockers while waiting.
fn phase_percent(p: &BuildProgress) -> Option<f64> {
    let pct = |done: i64, total: i64| {
        (total > 0).then(|| (done as f64 / total as f64 * 100.0).clamp(0.0, 100.0))
    };
    if p.phase.starts_with("waiting") {
        pct(p.lockers_done, p.lockers_total)
    } else {
        pct(p.blocks_done, p.blocks_total).or_else(|| pct(p.tuples_done, p.tuples_total))
    }
}

/// The index name of a `CREATE INDEX` statement text.
fn index_name_of(query: &str) -> Option<String> {
    let parsed = pg_query::parse(query).ok()?;
    parsed
        .protobuf
        .stmts
        .iter()
        .find_map(|raw| match raw.stmt.as_ref()?.node.as_ref()? {
            pg_query::NodeEnum::IndexStmt(s) if !s.idxname.is_empty() => Some(s.idxname.clone()),
            _ => None,
        })
}

/// Tracks one build across snapshots to estimate the time left in the
/// current phase from its pace since the phase began.
#[derive(Debug, Default)]
pub struct PhaseClock {
    phase: String,
    since: Option<(std::time::Instant, f64)>,
}

impl PhaseClock {
    /// Fills `phase_eta_secs` of `p` from the pace since its phase began.
    pub fn update(&mut self, p: &mut BuildProgress) {
        let now = std::time::Instant::now();
        let pct = p.percent.unwrap_or(0.0);
        if self.phase != p.phase || self.since.is_none() {
            self.phase = p.phase.clone();
            self.since = Some((now, pct));
            return;
        }
        if let Some((t0, p0)) = self.since {
            let gained = pct - p0;
            let secs = now.duration_since(t0).as_secs_f64();
            if gained > 0.5 && secs > 0.5 {
                p.phase_eta_secs = Some((100.0 - pct) / gained * secs);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_name_from_statement_text() {
        assert_eq!(
            index_name_of("create index concurrently \"Big\" on t (a)").as_deref(),
            Some("Big")
        );
        assert_eq!(index_name_of("reindex index x"), None);
    }
}
