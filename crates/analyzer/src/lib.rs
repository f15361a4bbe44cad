//! Static analysis of PostgreSQL migrations.
//!
//! Parses SQL with the real PostgreSQL parser and derives, for every
//! statement, the facts the rest of lull relies on. This crate never talks
//! to a database, never starts an async runtime and never writes to a
//! terminal, so it stays fast, fuzzable and usable as a library.
