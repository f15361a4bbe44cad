//! Health signals checked between batches: while any trips, the backfill
//! holds. A signal that cannot be read holds too (fail closed): a
//! backfill that cannot tell whether the standby keeps up must assume it
//! does not.
//!
//! - the pause flag (`lull backfill pause`) and cancel (`cancel`);
//! - replication lag: the worst `pg_stat_replication.replay_lag` (a
//!   stuck replay shows a growing lag; a standby whose row this role may
//!   not read is unknown);
//! - autovacuum working on the table;
//! - more active sessions in the database than a bound;
//! - a user SQL probe that returns true (NULL or an error also hold).

use lull_config::BackfillPolicy;
use serde::Serialize;
use tokio_postgres::Client;

use crate::error::pg_message;
use crate::state::Tables;

/// Why a backfill holds.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "hold", rename_all = "snake_case")]
pub enum Hold {
    /// `lull backfill pause`.
    Paused,
    /// A standby's replay lags.
    ReplicationLag {
        /// The standby's application_name.
        standby: String,
        /// Its replay lag in seconds.
        lag_secs: f64,
        /// The bound.
        max_secs: f64,
    },
    /// Autovacuum works on the table.
    Autovacuum {
        /// Its backend.
        pid: i32,
    },
    /// Too many sessions run a statement.
    ActiveSessions {
        /// Seen.
        active: i64,
        /// The bound.
        max: u32,
    },
    /// The user probe returned true.
    Probe {
        /// The probe.
        sql: String,
    },
    /// A signal could not be read.
    Unknown {
        /// Which.
        signal: String,
        /// Why.
        error: String,
    },
}

impl std::fmt::Display for Hold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Hold::Paused => write!(f, "paused (`lull backfill resume` continues)"),
            Hold::ReplicationLag {
                standby,
                lag_secs,
                max_secs,
            } => write!(
                f,
                "standby {standby} replays {lag_secs:.1}s behind (max_replication_lag {max_secs:.0}s)"
            ),
            Hold::Autovacuum { pid } => write!(f, "autovacuum (pid {pid}) works on the table"),
            Hold::ActiveSessions { active, max } => {
                write!(f, "{active} active sessions, more than max_active_sessions = {max}")
            }
            Hold::Probe { sql } => write!(f, "the probe returned true: {sql}"),
            Hold::Unknown { signal, error } => {
                write!(f, "{signal} could not be read ({error}); holding until it can")
            }
        }
    }
}

/// What the control row says besides holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Go on (or hold for the signals).
    Run,
    /// `lull backfill cancel`.
    Cancel,
}

/// Reads every signal once. Returns the holds (empty: go) and whether the
/// backfill was cancelled.
pub async fn check(
    client: &Client,
    tables: &Tables,
    id: i64,
    table_oid: u32,
    policy: &BackfillPolicy,
) -> (Vec<Hold>, Control) {
    let mut holds = Vec::new();
    let mut control = Control::Run;
    let unknown = |signal: &str, error: String| Hold::Unknown {
        signal: signal.to_string(),
        error,
    };
    match client
        .query_one(
            &format!("SELECT status FROM {} WHERE id = $1", tables.backfills()),
            &[&id],
        )
        .await
    {
        Ok(row) => match row.get::<_, String>(0).as_str() {
            "paused" => holds.push(Hold::Paused),
            "cancelled" => control = Control::Cancel,
            _ => {}
        },
        Err(e) => holds.push(unknown("the pause flag", pg_message(&e))),
    }
    if let Some(max) = policy.max_replication_lag {
        match client
            .query(
                "SELECT coalesce(application_name, ''), state IS NULL, \
                        coalesce(extract(epoch FROM replay_lag)::float8, 0) \
                 FROM pg_stat_replication",
                &[],
            )
            .await
        {
            Ok(rows) => {
                for r in rows {
                    let standby: String = r.get(0);
                    let hidden: bool = r.get(1);
                    let lag: f64 = r.get(2);
                    if hidden {
                        holds.push(unknown(
                            &format!("the replication lag of standby {standby}"),
                            "this role may not read pg_stat_replication; grant it pg_read_all_stats, \
                             or set [backfill] max_replication_lag = \"0\""
                                .into(),
                        ));
                    } else if lag > max.std().as_secs_f64() {
                        holds.push(Hold::ReplicationLag {
                            standby,
                            lag_secs: lag,
                            max_secs: max.std().as_secs_f64(),
                        });
                    }
                }
            }
            Err(e) => holds.push(unknown("replication lag", pg_message(&e))),
        }
    }
    if policy.hold_on_autovacuum {
        match client
            .query(
                "SELECT a.pid FROM pg_stat_activity a \
                 WHERE a.backend_type = 'autovacuum worker' AND a.pid IN \
                   (SELECT v.pid FROM pg_stat_progress_vacuum v WHERE v.relid = $1) LIMIT 1",
                &[&table_oid],
            )
            .await
        {
            Ok(rows) => {
                if let Some(r) = rows.first() {
                    holds.push(Hold::Autovacuum { pid: r.get(0) });
                }
            }
            Err(e) => holds.push(unknown("autovacuum activity", pg_message(&e))),
        }
    }
    if let Some(max) = policy.max_active_sessions {
        match client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' \
                 AND backend_type = 'client backend' AND pid <> pg_backend_pid() \
                 AND datname = current_database()",
                &[],
            )
            .await
        {
            Ok(r) => {
                let active: i64 = r.get(0);
                if active > i64::from(max) {
                    holds.push(Hold::ActiveSessions { active, max });
                }
            }
            Err(e) => holds.push(unknown("active sessions", pg_message(&e))),
        }
    }
    if let Some(probe) = &policy.probe {
        match client.query(probe.as_str(), &[]).await {
            Ok(rows) => {
                let value = rows
                    .first()
                    .and_then(|r| r.try_get::<_, Option<bool>>(0).ok())
                    .flatten();
                match value {
                    Some(false) => {}
                    Some(true) => holds.push(Hold::Probe { sql: probe.clone() }),
                    None => holds.push(unknown(
                        "the probe",
                        "it returned no boolean (write it as a SELECT of one boolean)".into(),
                    )),
                }
            }
            Err(e) => holds.push(unknown("the probe", pg_message(&e))),
        }
    }
    (holds, control)
}
