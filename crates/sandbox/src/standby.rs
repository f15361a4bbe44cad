//! A real streaming standby of a sandbox, for testing what lull does
//! about replicas: replication-lag guards, holding work while a replica
//! falls behind, refusing to write to a server in recovery.
//!
//! [`Sandbox::start_standby`] copies the running sandbox with
//! `pg_basebackup -R` (which writes `standby.signal` and the
//! `primary_conninfo` pointing at the primary's socket) into a second
//! directory and starts it on another free port. It is a [`Sandbox`] in
//! its own right, with its own guardian: dropping it, or the owning
//! process ending in any way, stops it and removes its directory.
//!
//! Lag on demand: [`Standby::pause_replay`] (`pg_wal_replay_pause()`)
//! keeps the standby receiving WAL but not applying it, so the primary's
//! `pg_stat_replication.replay_lag` grows while the primary writes;
//! [`Standby::resume_replay`] lets it catch up.
//!
//! What it is not: a failover or high-availability setup. There is no
//! promotion, no replication slot and no synchronous replication.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::cluster::{log_tail, Sandbox, SandboxError, SUPERUSER};

/// A hot standby streaming from a sandbox. See the [module docs](self).
///
/// ```no_run
/// use std::time::Duration;
/// use lull_sandbox::Sandbox;
///
/// let primary = Sandbox::start().unwrap();
/// let standby = primary.start_standby().unwrap();
/// standby.pause_replay().unwrap();
/// // ... write on the primary; the standby no longer applies it ...
/// let lag = standby
///     .wait_for_lag(Duration::from_secs(2), Duration::from_secs(60))
///     .unwrap();
/// assert!(lag.replay_lag.unwrap() >= Duration::from_secs(2));
/// // ... the code under test sees the lag in pg_stat_replication ...
/// standby.resume_replay().unwrap();
/// standby.wait_caught_up(Duration::from_secs(60)).unwrap();
/// ```
#[derive(Debug)]
pub struct Standby {
    server: Sandbox,
    primary_url: String,
    name: String,
}

/// How far a standby is behind its primary, as the primary sees it in
/// `pg_stat_replication`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lag {
    /// `replay_lag`: time between the primary flushing WAL and the standby
    /// applying it. `None` while the primary has nothing to measure (no
    /// recent WAL, or the standby caught up a while ago).
    pub replay_lag: Option<Duration>,
    /// WAL bytes written on the primary and not yet applied on the standby.
    pub replay_bytes: u64,
}

impl Sandbox {
    /// Starts a streaming hot standby of this (running) sandbox on another
    /// free port: `pg_basebackup -R -X stream` into a fresh directory, then
    /// the server. Waits until it accepts (read-only) connections.
    ///
    /// The standby reports to the primary every second
    /// (`wal_receiver_status_interval = 1s`) so that lag shows without
    /// waiting; its `application_name` in the primary's
    /// `pg_stat_replication` is [`Standby::name`].
    pub fn start_standby(&self) -> Result<Standby, SandboxError> {
        // The standby runs the primary's binaries: a data directory is
        // only readable by its own major.
        let mut server = Sandbox::prepare(Vec::new(), false, self.bindir().to_path_buf())?;
        let name = format!("lull_standby_{}", self.port());
        server.set_settings(vec![
            ("hot_standby".into(), "on".into()),
            ("wal_receiver_status_interval".into(), "1s".into()),
            ("cluster_name".into(), name.clone()),
        ]);
        basebackup(&server, self.socket_dir(), self.port())?;
        server.start_on_port(None)?;
        Ok(Standby {
            server,
            primary_url: self.url("postgres"),
            name,
        })
    }
}

fn basebackup(standby: &Sandbox, primary_socket: &Path, port: u16) -> Result<(), SandboxError> {
    let data = standby.root().join("data");
    // The npm server builds carry no pg_basebackup; the distribution's
    // copies servers up to its own major.
    let exe = match standby.bindir().join("pg_basebackup") {
        exe if exe.is_file() => exe,
        _ => crate::client_tool("pg_basebackup", standby.pg_major())?,
    };
    let mut cmd = Command::new(&exe);
    cmd.arg("-D")
        .arg(&data)
        .arg("-h")
        .arg(primary_socket)
        .arg("-p")
        .arg(port.to_string())
        .args([
            "-U",
            SUPERUSER,
            "-R",
            "-X",
            "stream",
            "--checkpoint=fast",
            "--no-sync",
        ])
        .stdin(Stdio::null());
    standby.run_as_server(&mut cmd);
    let out = cmd.output().map_err(|source| SandboxError::Io {
        what: format!("running {}", exe.display()),
        source,
    })?;
    if !out.status.success() {
        return Err(SandboxError::Standby(format!(
            "pg_basebackup of the primary failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(())
}

impl Standby {
    /// Connection string for a database of the standby (read-only), as the
    /// superuser.
    pub fn url(&self, database: &str) -> String {
        self.server.url(database)
    }

    /// TCP port of the standby on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// Directory of the standby's Unix socket (also its root).
    pub fn socket_dir(&self) -> &Path {
        self.server.socket_dir()
    }

    /// Its `application_name` in the primary's `pg_stat_replication`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The standby as a sandbox (its directory, pid, log).
    pub fn sandbox(&self) -> &Sandbox {
        &self.server
    }

    /// Stops applying WAL (`pg_wal_replay_pause()`); WAL keeps arriving,
    /// so the lag grows while the primary writes.
    pub fn pause_replay(&self) -> Result<(), SandboxError> {
        self.on_standby("SELECT pg_wal_replay_pause()").map(drop)
    }

    /// Applies WAL again (`pg_wal_replay_resume()`).
    pub fn resume_replay(&self) -> Result<(), SandboxError> {
        self.on_standby("SELECT pg_wal_replay_resume()").map(drop)
    }

    /// Whether replay is paused or a pause was requested.
    pub fn is_replay_paused(&self) -> Result<bool, SandboxError> {
        let row = self.on_standby("SELECT pg_is_wal_replay_paused()")?;
        Ok(row.get(0))
    }

    /// The lag as the primary sees it now.
    pub fn lag(&self) -> Result<Lag, SandboxError> {
        let mut c = connect(&self.primary_url)?;
        let row = c
            .query_opt(
                "SELECT extract(epoch FROM replay_lag)::float8,
                        greatest(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn), 0)::int8
                   FROM pg_stat_replication WHERE application_name = $1",
                &[&self.name],
            )
            .map_err(query_err("reading pg_stat_replication on the primary"))?
            .ok_or_else(|| {
                SandboxError::Standby(format!(
                    "the standby {} is not streaming from the primary; its log says:\n{}",
                    self.name,
                    log_tail(self.server.root())
                ))
            })?;
        let secs: Option<f64> = row.get(0);
        let bytes: i64 = row.get(1);
        Ok(Lag {
            replay_lag: secs.map(|s| Duration::from_secs_f64(s.max(0.0))),
            replay_bytes: u64::try_from(bytes).unwrap_or(0),
        })
    }

    /// Waits until the primary reports a `replay_lag` of at least
    /// `at_least` (replay must be paused, see [`Standby::pause_replay`]).
    /// Writes a tiny WAL record on the primary every poll, so the primary
    /// has something to measure even when the test itself is idle.
    pub fn wait_for_lag(&self, at_least: Duration, timeout: Duration) -> Result<Lag, SandboxError> {
        let deadline = Instant::now() + timeout;
        let mut primary = connect(&self.primary_url)?;
        loop {
            tick(&mut primary)?;
            let lag = self.lag()?;
            if lag.replay_lag.is_some_and(|l| l >= at_least) {
                return Ok(lag);
            }
            if Instant::now() > deadline {
                return Err(SandboxError::Standby(format!(
                    "the standby's replay lag did not reach {at_least:?} within {timeout:?} \
                     (last seen: {lag:?}); is replay paused?"
                )));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits until the standby has applied everything the primary had
    /// written when this was called (replay must not be paused).
    pub fn wait_caught_up(&self, timeout: Duration) -> Result<(), SandboxError> {
        let deadline = Instant::now() + timeout;
        let mut primary = connect(&self.primary_url)?;
        // The insert position: sandboxes run with synchronous_commit off, so
        // a just-committed transaction may not be written yet.
        let target: String = primary
            .query_one("SELECT pg_current_wal_insert_lsn()::text", &[])
            .map_err(query_err("reading the primary's WAL position"))?
            .get(0);
        loop {
            let done: Option<bool> = primary
                .query_one(
                    "SELECT bool_or(replay_lsn >= $1::text::pg_lsn)
                       FROM pg_stat_replication WHERE application_name = $2",
                    &[&target, &self.name],
                )
                .map_err(query_err("reading pg_stat_replication on the primary"))?
                .get(0);
            if done == Some(true) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(SandboxError::Standby(format!(
                    "the standby did not replay up to {target} within {timeout:?}; is replay paused?"
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the standby and removes its directory now, reporting errors
    /// that `drop` would swallow.
    pub fn stop(self) -> Result<(), SandboxError> {
        self.server.stop()
    }

    fn on_standby(&self, sql: &str) -> Result<postgres::Row, SandboxError> {
        connect(&self.url("postgres"))?
            .query_one(sql, &[])
            .map_err(query_err(sql))
    }
}

/// A transactional logical message: a commit record in WAL without
/// touching any table.
fn tick(primary: &mut postgres::Client) -> Result<(), SandboxError> {
    primary
        .batch_execute("SELECT pg_logical_emit_message(true, 'lull-sandbox', 'tick')")
        .map_err(query_err("writing WAL on the primary"))
}

fn connect(url: &str) -> Result<postgres::Client, SandboxError> {
    postgres::Client::connect(url, postgres::NoTls)
        .map_err(|e| SandboxError::Standby(format!("cannot connect to {url}: {e}")))
}

fn query_err(what: &str) -> impl FnOnce(postgres::Error) -> SandboxError + '_ {
    move |e| {
        let message = e
            .as_db_error()
            .map_or_else(|| e.to_string(), |d| d.message().to_string());
        SandboxError::Standby(format!("{what}: {message}"))
    }
}
