//! Guards: the conditions under which a build may start and may go on.
//! Checked before each build (a tripped guard skips it) and every
//! `check_interval` during it (a tripped guard cancels it).
//!
//! Load is measured on the database the build runs in: active sessions
//! and old transactions of other databases neither slow this build nor
//! make it wait.

use std::time::Duration;

use chrono::{DateTime, Utc};
use lull_config::IndexesSection;
use serde::Serialize;
use tokio_postgres::Client;

use crate::error::{QueryContext, Result};
use crate::window::{Window, WindowState};

/// The guards of one environment, from `[indexes]`.
#[derive(Debug, Clone, Default)]
pub struct Guards {
    /// Builds run only inside this window; always when `None`.
    pub window: Option<Window>,
    /// Cancel one build that runs longer.
    pub max_build_duration: Option<Duration>,
    /// Start no build after a pass has run this long.
    pub max_pass_duration: Option<Duration>,
    /// Skip or cancel while more sessions than this run a statement.
    pub max_active_connections: Option<u32>,
    /// Skip or cancel while autovacuum works on the table.
    pub skip_when_autovacuum: bool,
    /// Skip or cancel while a replica lags more.
    pub max_replication_lag: Option<Duration>,
    /// Skip or cancel while a transaction older than this is open (the
    /// build would wait for it).
    pub max_transaction_age: Option<Duration>,
    /// How often guards and progress are checked during a build.
    pub check_interval: Duration,
}

/// Why a guard stopped a build.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "guard", rename_all = "snake_case")]
pub enum Trip {
    /// Outside the safe window.
    Window {
        /// The window, for people.
        window: String,
        /// When it opens next.
        opens_at: DateTime<Utc>,
    },
    /// The build ran longer than `max_build_duration`.
    BuildDuration {
        /// The limit.
        max_secs: f64,
    },
    /// The pass ran longer than `max_pass_duration`.
    PassDuration {
        /// The limit.
        max_secs: f64,
    },
    /// Too many sessions are running statements.
    ActiveConnections {
        /// Active sessions seen.
        active: i64,
        /// The limit.
        max: u32,
    },
    /// Autovacuum is working on the table.
    Autovacuum {
        /// The autovacuum backend.
        pid: i32,
    },
    /// A replica lags too far behind.
    ReplicationLag {
        /// The worst lag seen, in seconds.
        lag_secs: f64,
        /// The limit.
        max_secs: f64,
    },
    /// A transaction is older than `max_transaction_age`.
    OldTransaction {
        /// Its backend.
        pid: i32,
        /// Its age in seconds.
        age_secs: f64,
        /// The limit.
        max_secs: f64,
        /// Its statement, shortened.
        query: String,
    },
    /// Stopped from outside: SIGTERM or `indexes cancel`.
    Stopped,
    /// Another session cancelled the build (`lull indexes cancel`,
    /// `pg_cancel_backend`).
    CancelledElsewhere,
    /// The guards could not be checked (the connection broke, …).
    Unchecked {
        /// What went wrong.
        error: String,
    },
}

impl std::fmt::Display for Trip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Trip::Window { window, opens_at } => {
                write!(f, "outside the window {window} (next opens {})", opens_at.format("%Y-%m-%d %H:%M:%S UTC"))
            }
            Trip::BuildDuration { max_secs } => write!(f, "build ran longer than max_build_duration ({max_secs:.0}s)"),
            Trip::PassDuration { max_secs } => write!(f, "pass ran longer than max_pass_duration ({max_secs:.0}s)"),
            Trip::ActiveConnections { active, max } => {
                write!(f, "{active} active sessions, more than max_active_connections = {max}")
            }
            Trip::Autovacuum { pid } => write!(f, "autovacuum (pid {pid}) is working on the table"),
            Trip::ReplicationLag { lag_secs, max_secs } => {
                write!(f, "replication lag {lag_secs:.1}s is above max_replication_lag ({max_secs:.0}s)")
            }
            Trip::OldTransaction { pid, age_secs, max_secs, query } => write!(
                f,
                "transaction of pid {pid} is {age_secs:.0}s old, above max_transaction_age ({max_secs:.0}s); \
                 the build would wait for it (last statement: {query})"
            ),
            Trip::Stopped => write!(f, "stopped on request"),
            Trip::CancelledElsewhere => {
                write!(f, "cancelled from another session (lull indexes cancel or pg_cancel_backend)")
            }
            Trip::Unchecked { error } => write!(f, "the guards could not be checked: {error}"),
        }
    }
}

/// What a guard check needs to know about the build in progress.
#[derive(Debug, Clone, Copy)]
pub struct GuardContext<'a> {
    /// `schema.table` the index is on.
    pub table: &'a str,
    /// Backend of the build, when one runs (left out of load counts).
    pub build_pid: Option<i32>,
    /// How long the build has run, when one runs.
    pub build_elapsed: Option<Duration>,
    /// How long the pass has run.
    pub pass_elapsed: Duration,
}

impl Guards {
    /// The guards `[indexes]` describes.
    pub fn from_config(s: &IndexesSection) -> Result<Guards> {
        let window = match &s.window {
            Some(spec) => Some(Window::parse(
                spec,
                s.timezone.as_deref(),
                s.days.as_deref(),
            )?),
            None => None,
        };
        Ok(Guards {
            window,
            max_build_duration: s.max_build_duration.map(|d| d.std()),
            max_pass_duration: s.max_pass_duration.map(|d| d.std()),
            max_active_connections: s.max_active_connections,
            skip_when_autovacuum: s.skip_when_autovacuum.unwrap_or(true),
            max_replication_lag: s.max_replication_lag.map(|d| d.std()),
            max_transaction_age: s.max_transaction_age.map(|d| d.std()),
            check_interval: s
                .check_interval
                .map(|d| d.std())
                .unwrap_or(Duration::from_secs(5)),
        })
    }

    /// The window guard alone, at `now`.
    pub fn window_trip(&self, now: DateTime<Utc>) -> Option<Trip> {
        let window = self.window.as_ref()?;
        match window.state(now) {
            WindowState::Open { .. } => None,
            WindowState::Closed { opens_at } => Some(Trip::Window {
                window: window.to_string(),
                opens_at,
            }),
        }
    }

    /// The first guard that trips, or `None` when the build may start or
    /// go on. `client` must not be the build's own connection.
    pub async fn check(&self, client: &Client, ctx: GuardContext<'_>) -> Result<Option<Trip>> {
        if let Some(trip) = self.window_trip(Utc::now()) {
            return Ok(Some(trip));
        }
        match (ctx.build_elapsed, self.max_build_duration) {
            (Some(elapsed), Some(max)) if elapsed > max => {
                return Ok(Some(Trip::BuildDuration {
                    max_secs: max.as_secs_f64(),
                }))
            }
            _ => {}
        }
        // The pass limit is about starting builds, not cutting one short.
        if let (None, Some(max)) = (ctx.build_pid, self.max_pass_duration) {
            if ctx.pass_elapsed > max {
                return Ok(Some(Trip::PassDuration {
                    max_secs: max.as_secs_f64(),
                }));
            }
        }
        let build_pid = ctx.build_pid.unwrap_or(0);
        if let Some(max) = self.max_active_connections {
            let active: i64 = client
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity
                      WHERE state = 'active' AND backend_type = 'client backend'
                        AND datname = current_database()
                        AND pid <> pg_backend_pid() AND pid <> $1",
                    &[&build_pid],
                )
                .await
                .during("counting active sessions")?
                .get(0);
            if active > i64::from(max) {
                return Ok(Some(Trip::ActiveConnections { active, max }));
            }
        }
        if self.skip_when_autovacuum {
            let row = client
                .query_opt(
                    "SELECT v.pid FROM pg_stat_progress_vacuum v
                       JOIN pg_stat_activity a ON a.pid = v.pid
                      WHERE v.relid = to_regclass($1) AND a.backend_type = 'autovacuum worker' LIMIT 1",
                    &[&ctx.table],
                )
                .await
                .during("looking for autovacuum on the table")?;
            if let Some(r) = row {
                return Ok(Some(Trip::Autovacuum { pid: r.get(0) }));
            }
        }
        if let Some(max) = self.max_replication_lag {
            let lag: Option<f64> = client
                .query_one(
                    "SELECT max(extract(epoch FROM greatest(write_lag, flush_lag, replay_lag)))::float8
                       FROM pg_stat_replication",
                    &[],
                )
                .await
                .during("reading replication lag")?
                .get(0);
            if let Some(lag) = lag.filter(|l| *l > max.as_secs_f64()) {
                return Ok(Some(Trip::ReplicationLag {
                    lag_secs: lag,
                    max_secs: max.as_secs_f64(),
                }));
            }
        }
        if let Some(max) = self.max_transaction_age {
            let row = client
                .query_opt(
                    "SELECT pid, extract(epoch FROM clock_timestamp() - xact_start)::float8,
                            coalesce(left(query, 120), '')
                       FROM pg_stat_activity
                      WHERE xact_start IS NOT NULL AND backend_type = 'client backend'
                        AND datname = current_database()
                        AND pid <> pg_backend_pid() AND pid <> $1
                        AND clock_timestamp() - xact_start > make_interval(secs => $2)
                      ORDER BY xact_start LIMIT 1",
                    &[&build_pid, &max.as_secs_f64()],
                )
                .await
                .during("looking for old transactions")?;
            if let Some(r) = row {
                return Ok(Some(Trip::OldTransaction {
                    pid: r.get(0),
                    age_secs: r.get(1),
                    max_secs: max.as_secs_f64(),
                    query: r.get(2),
                }));
            }
        }
        Ok(None)
    }
}
