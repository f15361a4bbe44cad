//! The test harness: a fresh database per test on one cluster per test
//! binary, or on an existing server.
//!
//! ```no_run
//! let db = lull_sandbox::testing::TestDb::new();
//! let mut client = db.client();
//! client.batch_execute("create table t (id int)").unwrap();
//! // run the lull binary against db.url() ...
//! ```
//!
//! Set `LULL_TEST_DATABASE_URL` (a `postgres://` URL of a superuser or a
//! role with CREATEDB) to use an existing server instead of a sandbox; each
//! test still gets its own database, dropped when the test ends.
//!
//! Set `LULL_PG_VERSION=N` to run the tests on PostgreSQL N: the sandbox
//! uses that major's binaries and, unlike `lull sandbox start`, installs
//! the npm build into lull's cache when the machine lacks them (see
//! [`crate::npm_build`]). Tests whose expectations differ by version ask
//! [`server_major`].

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

use crate::{Options, Sandbox, SandboxError, Standby};

pub mod equivalence;

/// The environment variable naming an existing server for the tests.
pub const EXTERNAL_URL_VAR: &str = "LULL_TEST_DATABASE_URL";

enum Server {
    // Never dropped: the guardian removes it when the test binary exits.
    Sandbox(Sandbox),
    External(String),
}

impl Server {
    fn url(&self, database: &str) -> String {
        match self {
            Server::Sandbox(s) => s.url(database),
            Server::External(url) => with_database(url, database),
        }
    }
}

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| match std::env::var(EXTERNAL_URL_VAR) {
        Ok(url) if !url.trim().is_empty() => Server::External(url),
        _ => Server::Sandbox(
            start_sandbox()
                .unwrap_or_else(|e| panic!("cannot start a PostgreSQL sandbox for the tests: {e}")),
        ),
    })
}

/// Starts a sandbox for a test that needs a cluster of its own, on the
/// major `LULL_PG_VERSION` asks for (installed when missing).
pub fn start_sandbox() -> Result<Sandbox, SandboxError> {
    start_sandbox_with(Options::default())
}

/// [`start_sandbox`] with options; `opts.pg_version` wins over
/// `LULL_PG_VERSION`.
pub fn start_sandbox_with(mut opts: Options) -> Result<Sandbox, SandboxError> {
    opts.pg_version = match opts.pg_version {
        Some(major) => Some(major),
        None => crate::requested_version()?,
    };
    if let Some(major) = opts.pg_version {
        ensure_installed(major)?;
    }
    Sandbox::start_with(opts)
}

/// Makes sure binaries of `major` can be found, installing the npm build
/// into the cache when they cannot.
pub fn ensure_installed(major: u32) -> Result<(), SandboxError> {
    match crate::find_bindir_for(major) {
        Ok(_) => Ok(()),
        Err(SandboxError::VersionMissing { .. }) => crate::npm_build::install(major).map(drop),
        Err(e) => Err(e),
    }
}

/// The major version of the server the tests run on (e.g. 18), for
/// expectations that differ between versions.
pub fn server_major() -> u32 {
    static MAJOR: OnceLock<u32> = OnceLock::new();
    *MAJOR.get_or_init(|| match server() {
        Server::Sandbox(s) => s.pg_major(),
        Server::External(url) => {
            let mut client = connect(&with_database(url, "postgres"));
            let num: String = client
                .query_one("SHOW server_version_num", &[])
                .expect("server_version_num")
                .get(0);
            let major = num.parse::<u32>().expect("a number") / 10000;
            if let Ok(Some(asked)) = crate::requested_version() {
                assert_eq!(
                    major, asked,
                    "{EXTERNAL_URL_VAR} names a PostgreSQL {major} server, but \
                     LULL_PG_VERSION asks for {asked}"
                );
            }
            major
        }
    })
}

/// A database of its own for one test, dropped at the end of the test.
pub struct TestDb {
    name: String,
    url: String,
}

impl TestDb {
    /// Creates a fresh, empty database. Panics with the reason when no
    /// server can be had: tests without a database cannot mean anything.
    pub fn new() -> TestDb {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let server = server();
        let name = format!(
            "lull_test_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let mut admin = connect(&server.url("postgres"));
        admin
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .unwrap_or_else(|e| panic!("cannot create test database {name}: {e}"));
        TestDb {
            url: server.url(&name),
            name,
        }
    }

    /// Connection string of this database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Connection string of another database on the same server (e.g.
    /// `postgres`).
    pub fn server_url(&self, database: &str) -> String {
        server().url(database)
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A new synchronous client connected to this database.
    pub fn client(&self) -> postgres::Client {
        connect(&self.url)
    }

    /// The sandbox behind the tests, when they do not use an external
    /// server.
    pub fn sandbox() -> Option<&'static Sandbox> {
        match server() {
            Server::Sandbox(s) => Some(s),
            Server::External(_) => None,
        }
    }
}

impl Default for TestDb {
    fn default() -> Self {
        TestDb::new()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Ok(mut admin) = postgres::Client::connect(&server().url("postgres"), postgres::NoTls)
        {
            let _ = admin.batch_execute(&format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// A PostgreSQL client program (`psql`, `pg_dump`): from the sandbox's
/// binaries when the tests run on a sandbox, else the server binaries
/// found on this machine, else `PATH`.
pub fn client_program(name: &str) -> PathBuf {
    let dir = match server() {
        Server::Sandbox(s) => Some(s.bindir().to_path_buf()),
        Server::External(_) => crate::find_bindir().ok(),
    };
    dir.map(|d| d.join(name))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(name))
}

/// Runs `sql` through plain `psql` on `url` (`-X`, `ON_ERROR_STOP`, no
/// single transaction: statements run as a psql user's file would).
/// `Err` holds psql's output when it failed.
pub fn psql(url: &str, sql: &str) -> Result<String, String> {
    let mut child = Command::new(client_program("psql"))
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", "-", "-d", url])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run psql: {e}"))?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let text = sql.to_string();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(text.as_bytes());
    });
    let out = child
        .wait_with_output()
        .map_err(|e| format!("psql did not finish: {e}"))?;
    let _ = writer.join();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(text)
    }
}

/// Why this machine's `pg_dump` cannot dump the test server, if it cannot:
/// `pg_dump` refuses servers of a newer major than its own (Debian 12's 15
/// cannot dump 16, 17 or 18). Tests that need a real dump skip with it.
pub fn pg_dump_refuses() -> Option<String> {
    let program = client_program("pg_dump");
    let out = Command::new(&program).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"
    let version = text.split_whitespace().nth(2)?;
    let major: u32 = version.split('.').next()?.parse().ok()?;
    let server = server_major();
    (major < server).then(|| {
        format!(
            "pg_dump {major} cannot dump a PostgreSQL {server} server (it refuses newer majors)"
        )
    })
}

/// The output of the real `pg_dump --schema-only` (plus `extra` flags) of
/// the database at `url`. Panics with pg_dump's message when it fails.
pub fn pg_dump_schema(url: &str, extra: &[&str]) -> String {
    let out = Command::new(client_program("pg_dump"))
        .args(["--schema-only", "--no-owner", "-d", url])
        .args(extra)
        .output()
        .unwrap_or_else(|e| panic!("cannot run pg_dump: {e}"));
    assert!(
        out.status.success(),
        "pg_dump failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("pg_dump writes UTF-8 here")
}

fn connect(url: &str) -> postgres::Client {
    postgres::Client::connect(url, postgres::NoTls).unwrap_or_else(|e| {
        panic!(
            "cannot connect to the test server at {}: {e}",
            lull_config::redact_url(url)
        )
    })
}

/// A primary and a streaming standby of the test's own, for tests about
/// replicas (replication-lag guards, refusing to write to a standby).
///
/// Unlike [`TestDb`] this always starts a sandbox of its own (also when
/// `LULL_TEST_DATABASE_URL` is set): the shared server must not get a
/// standby, and a paused one would hold WAL for every other test. Both
/// servers stop and their directories go when the value is dropped or the
/// test binary ends in any way.
///
/// ```no_run
/// use std::time::Duration;
/// use lull_sandbox::testing::WithStandby;
///
/// let rep = WithStandby::new();
/// rep.primary_client().batch_execute("create table t (id int)").unwrap();
/// rep.standby().pause_replay().unwrap();
/// rep.primary_client().batch_execute("insert into t values (1)").unwrap();
/// rep.standby()
///     .wait_for_lag(Duration::from_secs(2), Duration::from_secs(60))
///     .unwrap();
/// // run the code under test against rep.primary_url(): it sees the lag
/// rep.standby().resume_replay().unwrap();
/// ```
pub struct WithStandby {
    // Dropped first: the standby goes before its primary.
    standby: Standby,
    primary: Sandbox,
}

impl WithStandby {
    /// The database both servers have, made before the standby was copied.
    pub const DATABASE: &'static str = "lull_test";

    /// Starts a primary with a database [`WithStandby::DATABASE`], then a
    /// standby of it. Panics with the reason when that fails.
    pub fn new() -> WithStandby {
        let primary = start_sandbox()
            .unwrap_or_else(|e| panic!("cannot start a PostgreSQL sandbox for the test: {e}"));
        connect(&primary.url("postgres"))
            .batch_execute(&format!("CREATE DATABASE \"{}\"", Self::DATABASE))
            .unwrap_or_else(|e| panic!("cannot create the test database: {e}"));
        let standby = primary
            .start_standby()
            .unwrap_or_else(|e| panic!("cannot start a standby of the sandbox: {e}"));
        WithStandby { standby, primary }
    }

    /// Connection string of the test database on the primary.
    pub fn primary_url(&self) -> String {
        self.primary.url(Self::DATABASE)
    }

    /// Connection string of the test database on the standby (read-only).
    pub fn standby_url(&self) -> String {
        self.standby.url(Self::DATABASE)
    }

    /// A new client of the test database on the primary.
    pub fn primary_client(&self) -> postgres::Client {
        connect(&self.primary_url())
    }

    /// The primary sandbox.
    pub fn primary(&self) -> &Sandbox {
        &self.primary
    }

    /// The standby: pause and resume replay, read the lag.
    pub fn standby(&self) -> &Standby {
        &self.standby
    }
}

impl Default for WithStandby {
    fn default() -> Self {
        WithStandby::new()
    }
}

/// The same URL with another database name.
pub fn with_database(url: &str, database: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return format!("{url} dbname={database}");
    };
    let after = scheme_end + 3;
    let rest = &url[after..];
    let path_start = rest.find(['/', '?']).map_or(url.len(), |i| after + i);
    let query_start = url[path_start..].find('?').map(|i| path_start + i);
    let query = query_start.map_or("", |q| &url[q..]);
    format!("{}/{database}{query}", &url[..path_start])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_database_in_urls() {
        assert_eq!(
            with_database("postgres://u:p@h:5/db", "x"),
            "postgres://u:p@h:5/x"
        );
        assert_eq!(with_database("postgres://h", "x"), "postgres://h/x");
        assert_eq!(
            with_database("postgres://h/db?sslmode=disable", "x"),
            "postgres://h/x?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://h?sslmode=disable", "x"),
            "postgres://h/x?sslmode=disable"
        );
    }
}
