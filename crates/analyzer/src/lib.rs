//! Static analysis of PostgreSQL migrations.
//!
//! Parses SQL with the real PostgreSQL parser and derives, for every
//! statement, the facts the rest of lull relies on: its class, the lock it
//! takes on each relation, rewrites and scans, and whether it may run in a
//! transaction block ([`parse`], [`Facts`]). On top of those facts sit the
//! safe-by-default rewrites ([`safe_form`]), the quoting of every
//! identifier lull generates ([`sql`]), the lint rules ([`lint`],
//! [`rules`]) and the risk level of a migration ([`RiskLevel`]). Facts
//! are derived for a target PostgreSQL major ([`parse_for`]); what differs
//! between majors is in [`versions`].
//!
//! This crate never talks to a database, never starts an async runtime and
//! never writes to a terminal, so it stays fast, fuzzable and usable as a
//! library.

mod ast;
pub mod data;
mod facts;
mod fix;
pub mod known;
mod lex;
mod lint;
pub mod meta;
mod parse;
pub mod partition_index;
pub mod placeholders;
mod risk;
pub mod rules;
mod safe;
pub mod sql;
mod stats;
mod suppress;
mod tool;
pub mod versions;

pub use facts::{Class, Facts, IndexFacts, LockMode, RelLock};
pub use fix::{fix, Applied, FileFix, FixOptions, Skipped, FIXABLE_RULES};
pub use known::Known;
pub use lint::{
    lint, FileReport, Finding, Level, LintOptions, LintReport, Runner, Severity, SourceFile,
};
pub use parse::{parse, parse_for, ParseError, Span, Statement};
pub use risk::{Risk, RiskLevel, HIGH_SCORE, MEDIUM_SCORE, RISK_DOC};
pub use rules::{Category, Rule};
pub use safe::{
    choose_constraint_name, make_object_name, safe_form, NewRelations, SafeForm,
    MAX_IDENTIFIER_BYTES,
};
pub use stats::{TableSize, TableStats};
pub use tool::{Tool, TOOLS_DOC};
pub use versions::{LockChange, Requirement};

/// The parse tree types, re-exported so callers of [`Statement::ast`] need
/// no direct `pg_query` dependency.
pub use pg_query::{protobuf as pg_ast, NodeEnum};
