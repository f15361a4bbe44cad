//! Throwaway PostgreSQL clusters from the server binaries on this machine.
//!
//! Tests, the demo and benchmarks need a real server, not a mock. A
//! [`Sandbox`] runs `initdb` into a temporary directory and starts
//! `postgres` listening on a Unix socket in that directory and on
//! 127.0.0.1 with a free port, with trust authentication (the sandbox is
//! local and throwaway; nothing else ever uses trust).
//!
//! Cleanup never depends on the owner behaving: next to the server runs a
//! tiny guardian shell that waits for the end of a pipe held by the owning
//! process. Whether the owner drops the sandbox, panics, is interrupted
//! with Ctrl-C or killed with `kill -9`, the pipe closes and the guardian
//! stops the server and removes the directory. A detached sandbox (for
//! `lull sandbox start`) has no guardian and lives until it is stopped.
//!
//! When the process runs as root, `initdb` and `postgres` (which refuse
//! root) run as the `postgres` user, and the directory is owned by it.
//!
//! [`Sandbox::start_standby`] adds a real streaming standby (a
//! [`Standby`]) whose replay can be paused to make replication lag on
//! demand.
//!
//! Any supported major (14 to 18) can be asked for ([`Options::pg_version`],
//! `LULL_PG_VERSION`); [`npm_build`] installs the ones the machine lacks
//! and [`client_tool`] finds a `psql` or `pg_dump` that works with them.
//!
//! [`testing`] builds on this: one cluster per test binary and a fresh
//! database per test, or databases on an existing server named by
//! `LULL_TEST_DATABASE_URL`. [`catalog`] reads a database's schema as a
//! diffable list and compares two; [`testing::equivalence`] uses it to
//! check that `lull migrate` leaves the catalog plain `psql` leaves.

mod bindir;
pub mod catalog;
mod client;
mod cluster;
mod standby;
mod user;

pub mod npm_build;
pub mod testing;

pub use bindir::{
    find_bindir, find_bindir_for, parse_major, requested_version, server_major, BINDIR_VAR,
    VERSION_VAR,
};
pub use client::{client_tool, refuses_newer_servers};
pub use cluster::{Options, Sandbox, SandboxError, SandboxState};
pub use standby::{Lag, Standby};
