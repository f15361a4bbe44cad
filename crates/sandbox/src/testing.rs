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

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

use crate::Sandbox;

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
            Sandbox::start()
                .unwrap_or_else(|e| panic!("cannot start a PostgreSQL sandbox for the tests: {e}")),
        ),
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

fn connect(url: &str) -> postgres::Client {
    postgres::Client::connect(url, postgres::NoTls).unwrap_or_else(|e| {
        panic!(
            "cannot connect to the test server at {}: {e}",
            lull_config::redact_url(url)
        )
    })
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
