//! Static analysis of PostgreSQL migrations.
//!
//! Parses SQL with the real PostgreSQL parser and derives, for every
//! statement, the facts the rest of lull relies on: its class, the lock it
//! takes on each relation, rewrites and scans, and whether it may run in a
//! transaction block ([`parse`], [`Facts`]). On top of those facts sit the
//! safe-by-default rewrites ([`safe_form`]) and the quoting of every
//! identifier lull generates ([`sql`]).
//!
//! This crate never talks to a database, never starts an async runtime and
//! never writes to a terminal, so it stays fast, fuzzable and usable as a
//! library.

mod ast;
mod facts;
mod parse;
mod safe;
pub mod sql;

pub use facts::{Class, Facts, IndexFacts, LockMode, RelLock};
pub use parse::{parse, ParseError, Span, Statement};
pub use safe::{make_object_name, safe_form, NewRelations, SafeForm, MAX_IDENTIFIER_BYTES};

/// The parse tree types, re-exported so callers of [`Statement::ast`] need
/// no direct `pg_query` dependency.
pub use pg_query::{protobuf as pg_ast, NodeEnum};
