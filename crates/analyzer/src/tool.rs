//! Which tool applies the migration files, and what that means for the
//! transactions they run in and the words a hint uses.
//!
//! Each migration tool wraps (or does not wrap) a file in a transaction
//! in its own way, and each has its own way to opt a file out. The linter
//! needs the first to know what runs together; the hints need the second
//! so that a Prisma user is told about Prisma, not about sqlx. This module
//! is plain data: the CLI picks the tool from the directory layout or from
//! `runner = "..."` in lull.toml.

use serde::{Deserialize, Serialize};

use crate::lint::Runner;

/// A migration tool that applies files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tool {
    /// `lull migrate`: splits transactions itself, tracks every step, and
    /// runs the safe form of a blocking statement.
    Lull,
    /// Prisma Migrate: sends `migration.sql` as one multi-statement query,
    /// which PostgreSQL runs as one implicit transaction.
    Prisma,
    /// drizzle-kit / drizzle `migrate()`: every pending migration in one
    /// transaction.
    Drizzle,
    /// Flyway: one transaction per migration, except a migration holding
    /// only statements that cannot run in one.
    Flyway,
    /// diesel: one transaction per migration unless its `metadata.toml`
    /// says `run_in_transaction = false`.
    Diesel,
    /// dbmate: one transaction per migration unless
    /// `-- migrate:up transaction:false`.
    Dbmate,
    /// sqlx: one transaction per migration unless its first line is
    /// `-- no-transaction`.
    Sqlx,
    /// golang-migrate (postgres driver): the whole file as one
    /// multi-statement query, one implicit transaction.
    GolangMigrate,
}

impl Tool {
    /// Every tool, in the order messages list them.
    pub const ALL: [Tool; 8] = [
        Tool::Lull,
        Tool::Prisma,
        Tool::Drizzle,
        Tool::Flyway,
        Tool::Diesel,
        Tool::Dbmate,
        Tool::Sqlx,
        Tool::GolangMigrate,
    ];

    /// The name used in lull.toml (`runner = "prisma"`) and messages.
    pub fn name(self) -> &'static str {
        match self {
            Tool::Lull => "lull",
            Tool::Prisma => "prisma",
            Tool::Drizzle => "drizzle",
            Tool::Flyway => "flyway",
            Tool::Diesel => "diesel",
            Tool::Dbmate => "dbmate",
            Tool::Sqlx => "sqlx",
            Tool::GolangMigrate => "golang-migrate",
        }
    }

    /// Parses a name as [`Tool::name`] spells it.
    pub fn parse(name: &str) -> Option<Tool> {
        Tool::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The transaction model the tool applies files with.
    pub fn runner(self) -> Runner {
        match self {
            Tool::Lull => Runner::Lull,
            _ => Runner::Transactional,
        }
    }

    /// Whether the tool's transaction is PostgreSQL's implicit transaction
    /// of a multi-statement query: a COMMIT written in the file does not
    /// get a statement out of it (the next statement opens another).
    pub fn implicit_transaction(self) -> bool {
        matches!(self, Tool::Prisma | Tool::GolangMigrate | Tool::Drizzle)
    }

    /// Whether this file, with these statements, runs outside the tool's
    /// transaction even though the file does not say so: a Prisma or
    /// golang-migrate file of one statement is a single query; a Flyway
    /// migration of only non-transactional statements runs without one.
    pub(crate) fn unwraps(self, transactional: &[bool]) -> bool {
        match self {
            Tool::Prisma | Tool::GolangMigrate => transactional.len() <= 1,
            Tool::Flyway => !transactional.is_empty() && transactional.iter().all(|t| !t),
            _ => false,
        }
    }

    /// How to run a statement outside a transaction with this tool, as a
    /// phrase that completes "to run it outside a transaction, ...".
    pub fn no_transaction_hint(self) -> &'static str {
        match self {
            Tool::Lull => "leave it to `lull migrate`, which runs it in its own autocommit step",
            Tool::Prisma => {
                "put it in a migration file of its own: Prisma runs a one-statement migration.sql outside a transaction"
            }
            Tool::Drizzle => {
                "run it outside drizzle's migrate(), which applies every migration in one transaction (e.g. with `lull migrate` or psql)"
            }
            Tool::Flyway => {
                "put it in a migration of its own: Flyway runs a migration holding only non-transactional statements outside a transaction"
            }
            Tool::Diesel => {
                "put it in a migration of its own with `run_in_transaction = false` in its metadata.toml"
            }
            Tool::Dbmate => {
                "put it in a migration of its own that starts with `-- migrate:up transaction:false`"
            }
            Tool::Sqlx => "put it in a migration of its own whose first line is `-- no-transaction`",
            Tool::GolangMigrate => {
                "put it in a migration file of its own: golang-migrate sends a one-statement file as a single query"
            }
        }
    }
}

impl std::fmt::Display for Tool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The part of `lull explain` that says how each tool runs files.
pub const TOOLS_DOC: &str = "\
Runners
  Which transaction a statement runs in depends on the tool that applies
  the file. lull reads it from the directory layout, or from
  `runner = \"...\"` in lull.toml (which wins):

    lull            splits each file into steps itself and tracks every step;
                    blocking statements run in their safe form
    prisma          migration.sql is one implicit transaction; a file of one
                    statement runs outside it
    drizzle         every pending migration in one transaction
    flyway          one transaction per migration; a migration of only
                    non-transactional statements runs without one
    diesel          one transaction per migration unless metadata.toml says
                    run_in_transaction = false
    dbmate          one transaction per migration unless
                    `-- migrate:up transaction:false`
    sqlx            one transaction per migration unless the first line is
                    `-- no-transaction`
    golang-migrate  the file is one implicit transaction; a file of one
                    statement runs outside it
    transactional   any other tool that wraps each file in a transaction
    autocommit      any tool that runs each statement on its own (psql -f)

  With lull as the runner, a blocking statement that `lull migrate`
  rewrites itself (create-index-not-concurrently, drop-index-not-
  concurrently, reindex-not-concurrently, constraint-not-valid,
  unique-constraint-without-index, set-not-null) is reported as
  information, \"lull migrate runs this as ...\"; under any other runner
  it stays an error, because that tool runs the statement as written.
  missing-if-not-exists only speaks where a failure can leave half a
  file applied: outside a transaction, under a runner that does not
  track steps.
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for tool in Tool::ALL {
            assert_eq!(Tool::parse(tool.name()), Some(tool));
        }
        assert_eq!(Tool::parse("rails"), None);
    }

    #[test]
    fn single_statement_files_escape_implicit_transactions() {
        assert!(Tool::Prisma.unwraps(&[false]));
        assert!(!Tool::Prisma.unwraps(&[true, false]));
        assert!(Tool::Flyway.unwraps(&[false, false]));
        assert!(!Tool::Flyway.unwraps(&[true, false]));
        assert!(!Tool::Sqlx.unwraps(&[false]));
    }
}
