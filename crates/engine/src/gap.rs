//! Gap-aware lock acquisition: take a strong lock only in the gap between
//! the transactions that conflict with it.
//!
//! A lock request that waits queues every later request on the table
//! behind it, so a DDL statement that waits for a long read transaction
//! stalls every write for as long as it waits. Instead of waiting in the
//! queue, lull reads `pg_locks` for the sessions that hold, or queue for, a
//! lock conflicting with the step's (the conflict matrix of
//! [`LockMode::conflicts_with`]) on the step's relations. While a *long*
//! one is there it polls and reports who it waits for; when none is left
//! it tries at once with a short `lock_timeout`, so a try costs the
//! application at most that. A failed try goes straight back to watching.
//!
//! The rules, as plain data in [`GapState`] so they are tested without a
//! server:
//!
//! - a holder is *long* when its transaction is at least as old as the
//!   try's timeout: it has already outlived a try, so it is waited out
//!   rather than queued behind;
//! - while a long holder that was there when watching began is still
//!   there, lull waits; when all of those have ended but new long ones
//!   keep appearing (a hot table of transactions a little longer than a
//!   try), lull tries in the turnover;
//! - a failed try with no holder older than the escalation cap afterwards
//!   (nothing a longer try could not have outlasted) counts towards
//!   escalation; after `escalate_after` of those the try's timeout
//!   doubles, never beyond `max_lock_timeout`.
//!
//! `pg_blocking_pids()` is not used for this: it only answers for a backend
//! that is already waiting, which is what lull avoids.
//!
//! What this module is not for: running the statement (the executor does)
//! or acting against blockers ([`crate::blocker_actions`]).

use std::collections::BTreeSet;
use std::time::Duration;

use lull_analyzer::sql::{quote_ident, quote_qualified};
use lull_analyzer::{LockMode, RelLock};
use lull_config::DdlPolicy;
use serde::Serialize;
use tokio_postgres::{Client, Statement};

use crate::error::{excerpt, EngineError};

/// A session that holds or queues for a lock conflicting with the step's.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Holder {
    /// Backend pid.
    pub pid: i32,
    /// Database user.
    pub user: String,
    /// `application_name`.
    pub application: String,
    /// `active`, `idle in transaction`, ... (empty for background workers).
    pub state: String,
    /// `client backend`, `autovacuum worker`, ...
    pub backend_type: String,
    /// The relation, as the step names it.
    pub relation: String,
    /// The mode it holds or wants, as `pg_locks` spells it.
    pub mode: String,
    /// Whether it holds the lock (false: it queues for it).
    pub granted: bool,
    /// Age of its transaction (or of its query outside one), in seconds.
    pub transaction_age_secs: f64,
    /// Time since its state last changed (how long it has been idle in
    /// its transaction, or running its query), in seconds.
    pub state_age_secs: f64,
    /// The first 200 characters of its current or last query.
    pub query: String,
    /// When its transaction started (seconds since the epoch), telling
    /// two transactions of one pid apart.
    #[serde(skip)]
    pub xact_start: Option<f64>,
}

impl Holder {
    fn id(&self) -> (i32, i64) {
        (
            self.pid,
            self.xact_start.map(|s| (s * 1e6) as i64).unwrap_or(0),
        )
    }

    fn age(&self) -> Duration {
        Duration::from_secs_f64(self.transaction_age_secs.max(0.0))
    }

    /// One line for people: `pid 4242 (psql, idle in transaction, open
    /// 3.2s) holds AccessShareLock on orders: SELECT ...`.
    pub fn human(&self) -> String {
        let app = if self.application.is_empty() {
            self.backend_type.as_str()
        } else {
            self.application.as_str()
        };
        let state = if self.state.is_empty() {
            String::new()
        } else {
            format!(", {}", self.state)
        };
        format!(
            "pid {} ({app}{state}, transaction open {}) {} {} on {}: {}",
            self.pid,
            crate::events::human(self.age()),
            if self.granted { "holds" } else { "queues for" },
            self.mode,
            self.relation,
            crate::error::excerpt(&self.query, 80)
        )
    }
}

/// The locks of a step that are stronger than what the application takes:
/// modes that conflict with its writes (ROW EXCLUSIVE) or reads (ACCESS
/// SHARE). Only these need a gap; weaker ones (SHARE UPDATE EXCLUSIVE of a
/// VALIDATE, CREATE INDEX CONCURRENTLY) make no application query wait.
pub fn stronger_than_application(locks: &[RelLock]) -> Vec<RelLock> {
    locks
        .iter()
        .filter(|l| l.mode.blocks_writes() || l.mode.blocks_reads())
        .cloned()
        .collect()
}

/// Reads the conflicting sessions of one step's locks, with one prepared
/// query over `pg_locks` and `pg_stat_activity`.
pub struct Watch {
    statement: Statement,
    /// (oid, name as written, mode wanted) of each relation that exists.
    targets: Vec<(u32, String, LockMode)>,
    exclude: Vec<i32>,
}

impl Watch {
    /// Resolves the relations (those that do not exist yet are left out:
    /// nobody can hold a lock on them) and prepares the query. `exclude`
    /// are lull's own backends.
    pub async fn new(
        client: &Client,
        locks: &[RelLock],
        exclude: Vec<i32>,
    ) -> Result<Watch, EngineError> {
        let mut targets = Vec::new();
        for l in locks {
            let quoted = match l.relation.split_once('.') {
                Some((schema, name)) => quote_qualified(Some(schema), name),
                None => quote_ident(&l.relation),
            };
            let row = client
                .query_one("SELECT to_regclass($1)::oid", &[&quoted])
                .await
                .map_err(|e| EngineError::db("resolving the step's relations", e))?;
            if let Some(oid) = row.get::<_, Option<u32>>(0) {
                targets.push((oid, l.relation.clone(), l.mode));
            }
        }
        let statement = client
            .prepare(
                "SELECT l.pid, l.relation, l.mode, l.granted, \
                        coalesce(a.usename::text, ''), coalesce(a.application_name, ''), \
                        coalesce(a.state, ''), coalesce(a.backend_type, ''), \
                        coalesce(extract(epoch FROM clock_timestamp() - \
                            coalesce(a.xact_start, a.query_start, a.backend_start))::float8, 0), \
                        coalesce(extract(epoch FROM clock_timestamp() - \
                            coalesce(a.state_change, a.query_start, a.backend_start))::float8, 0), \
                        extract(epoch FROM a.xact_start)::float8, coalesce(a.query, '') \
                 FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid \
                 WHERE l.locktype = 'relation' AND l.relation = ANY($1) \
                   AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
                   AND l.pid IS NOT NULL AND l.pid <> ALL($2)",
            )
            .await
            .map_err(|e| EngineError::db("preparing the pg_locks query", e))?;
        Ok(Watch {
            statement,
            targets,
            exclude,
        })
    }

    /// Whether any of the step's relations exists (otherwise there is
    /// nothing to watch).
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// The sessions that hold or queue for a conflicting lock now, one
    /// entry per session (its strongest conflicting lock).
    pub async fn holders(&self, client: &Client) -> Result<Vec<Holder>, EngineError> {
        if self.targets.is_empty() {
            return Ok(Vec::new());
        }
        let oids: Vec<u32> = self.targets.iter().map(|t| t.0).collect();
        let rows = client
            .query(&self.statement, &[&oids, &self.exclude])
            .await
            .map_err(|e| EngineError::db("reading pg_locks", e))?;
        let mut out: Vec<Holder> = Vec::new();
        for row in rows {
            let oid: u32 = row.get(1);
            let mode: String = row.get(2);
            let Some((_, relation, wanted)) = self.targets.iter().find(|t| t.0 == oid) else {
                continue;
            };
            let Some(held) = LockMode::from_pg_name(&mode) else {
                continue;
            };
            if !held.conflicts_with(wanted) {
                continue;
            }
            let pid: i32 = row.get(0);
            if out.iter().any(|h| h.pid == pid) {
                continue;
            }
            let query: String = row.get(11);
            out.push(Holder {
                pid,
                relation: relation.clone(),
                mode,
                granted: row.get(3),
                user: row.get(4),
                application: row.get(5),
                state: row.get(6),
                backend_type: row.get(7),
                transaction_age_secs: row.get(8),
                state_age_secs: row.get(9),
                xact_start: row.get(10),
                query: excerpt(&query, 200),
            });
        }
        out.sort_by(|a, b| b.transaction_age_secs.total_cmp(&a.transaction_age_secs));
        Ok(out)
    }
}

/// What to do next.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Long holders are there: poll again after the interval. The pids
    /// waited for, oldest first.
    Wait(Vec<i32>),
    /// Try now with this lock_timeout.
    Try(Duration),
}

/// The acquisition rules of one step (see the module docs).
#[derive(Debug, Clone)]
pub struct GapState {
    timeout: Duration,
    cap: Duration,
    escalate_after: u32,
    unexplained_failures: u32,
    watching: Option<BTreeSet<(i32, i64)>>,
}

impl GapState {
    /// Fresh state for a step under `policy`.
    pub fn new(policy: &DdlPolicy) -> Self {
        GapState {
            timeout: policy.lock_timeout.std(),
            cap: policy.max_lock_timeout.std().max(policy.lock_timeout.std()),
            escalate_after: policy.escalate_after.max(1),
            unexplained_failures: 0,
            watching: None,
        }
    }

    /// The lock_timeout the next try gets.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Decides from the conflicting sessions seen now.
    pub fn decide(&mut self, holders: &[Holder]) -> Decision {
        let long: Vec<&Holder> = holders.iter().filter(|h| h.age() >= self.timeout).collect();
        if long.is_empty() {
            self.watching = None;
            return Decision::Try(self.timeout);
        }
        let ids: BTreeSet<(i32, i64)> = long.iter().map(|h| h.id()).collect();
        let watching = self.watching.get_or_insert_with(|| ids.clone());
        if watching.intersection(&ids).next().is_some() {
            return Decision::Wait(long.iter().map(|h| h.pid).collect());
        }
        // Everyone watching began for has gone, yet new long ones are
        // there: the table is hot, its gaps are short; try in this one.
        self.watching = None;
        Decision::Try(self.timeout)
    }

    /// Records a failed try, given the conflicting sessions right after
    /// it. Returns the new timeout when it escalated.
    pub fn failed(&mut self, holders_after: &[Holder]) -> Option<Duration> {
        self.watching = None;
        let long_holder = holders_after.iter().any(|h| h.age() >= self.cap);
        if long_holder || self.timeout >= self.cap {
            return None;
        }
        self.unexplained_failures += 1;
        if self.unexplained_failures < self.escalate_after {
            return None;
        }
        self.unexplained_failures = 0;
        self.timeout = (self.timeout * 2).min(self.cap);
        Some(self.timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> DdlPolicy {
        lull_config::Policies::default().ddl
    }

    fn holder(pid: i32, age_ms: u64, xact: f64) -> Holder {
        Holder {
            pid,
            user: "app".into(),
            application: "web".into(),
            state: "active".into(),
            backend_type: "client backend".into(),
            relation: "orders".into(),
            mode: "RowExclusiveLock".into(),
            granted: true,
            transaction_age_secs: age_ms as f64 / 1000.0,
            state_age_secs: 0.0,
            query: "UPDATE orders SET ...".into(),
            xact_start: Some(xact),
        }
    }

    #[test]
    fn tries_at_once_when_only_young_transactions_hold() {
        let mut s = GapState::new(&policy());
        assert_eq!(s.decide(&[]), Decision::Try(Duration::from_millis(50)));
        assert_eq!(
            s.decide(&[holder(1, 3, 1.0), holder(2, 10, 2.0)]),
            Decision::Try(Duration::from_millis(50))
        );
    }

    #[test]
    fn waits_while_a_long_holder_stays_then_tries() {
        let mut s = GapState::new(&policy());
        let reader = holder(7, 2_000, 1.0);
        assert_eq!(
            s.decide(&[reader.clone(), holder(2, 1, 5.0)]),
            Decision::Wait(vec![7])
        );
        let mut older = reader.clone();
        older.transaction_age_secs = 5.0;
        assert_eq!(s.decide(&[older]), Decision::Wait(vec![7]));
        assert_eq!(
            s.decide(&[holder(3, 2, 9.0)]),
            Decision::Try(Duration::from_millis(50))
        );
    }

    #[test]
    fn a_new_transaction_of_the_same_pid_is_a_new_holder() {
        let mut s = GapState::new(&policy());
        assert_eq!(s.decide(&[holder(7, 100, 1.0)]), Decision::Wait(vec![7]));
        // Same pid, later transaction: the old one ended; try in the gap.
        assert!(matches!(s.decide(&[holder(7, 60, 2.0)]), Decision::Try(_)));
    }

    #[test]
    fn hot_table_turnover_tries_and_escalates_to_the_cap() {
        let mut s = GapState::new(&policy());
        // 80 ms transactions overlapping: some are always older than 50 ms.
        assert_eq!(s.decide(&[holder(1, 60, 1.0)]), Decision::Wait(vec![1]));
        assert_eq!(
            s.decide(&[holder(2, 55, 2.0)]),
            Decision::Try(Duration::from_millis(50))
        );
        let after = [holder(3, 70, 3.0)];
        assert_eq!(s.failed(&after), None);
        assert_eq!(s.failed(&after), None);
        assert_eq!(s.failed(&after), Some(Duration::from_millis(100)));
        for _ in 0..20 {
            s.failed(&after);
        }
        assert_eq!(s.timeout(), Duration::from_millis(500));
    }

    #[test]
    fn no_escalation_while_a_long_holder_explains_the_failures() {
        let mut s = GapState::new(&policy());
        let reader = [holder(7, 8_000, 1.0)];
        for _ in 0..10 {
            assert_eq!(s.failed(&reader), None);
        }
        assert_eq!(s.timeout(), Duration::from_millis(50));
    }

    #[test]
    fn only_strong_locks_need_a_gap() {
        let locks = vec![
            RelLock {
                relation: "orders".into(),
                mode: LockMode::ShareUpdateExclusive,
            },
            RelLock {
                relation: "customers".into(),
                mode: LockMode::ShareRowExclusive,
            },
        ];
        let strong = stronger_than_application(&locks);
        assert_eq!(strong.len(), 1);
        assert_eq!(strong[0].relation, "customers");
    }
}
