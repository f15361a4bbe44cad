//! The migration directory layouts lull reads, and what each looks like.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// A directory layout, named after the tool that writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    /// sqlx: `<ver>_<name>.sql` (up only) or `<ver>_<name>.up.sql` +
    /// `<ver>_<name>.down.sql`; a first line `-- no-transaction` runs the
    /// file outside a transaction. Reversible files are detected as sqlx
    /// only when one of them says `-- no-transaction`; otherwise they read
    /// as golang-migrate, which has the same names and the same meaning.
    Sqlx,
    /// golang-migrate: `<ver>_<name>.up.sql` + `<ver>_<name>.down.sql`.
    GolangMigrate,
    /// dbmate: `<ver>_<name>.sql` holding `-- migrate:up` and
    /// `-- migrate:down` sections; `-- migrate:up transaction:false` runs the
    /// up section outside a transaction.
    Dbmate,
    /// diesel: a directory `<ver>_<name>/` with `up.sql` and `down.sql`
    /// (and optionally `metadata.toml` with `run_in_transaction = false`).
    Diesel,
    /// Prisma: a directory `<timestamp>_<name>/` with `migration.sql`, and
    /// optionally `down.sql` beside it (the down migration Prisma's docs
    /// have teams generate with `prisma migrate diff`).
    Prisma,
    /// Drizzle: `NNNN_<name>.sql` with `--> statement-breakpoint` between
    /// statements, usually beside `meta/_journal.json`; no down migrations.
    Drizzle,
    /// Flyway: `V<ver>__<name>.sql`, with optional undo files
    /// `U<ver>__<name>.sql`; `_` in a version reads as `.` (`V1_2` is 1.2).
    Flyway,
    /// lull's own: `<ver>_<name>.sql`; the up SQL comes first, and an
    /// optional line `-- lull:down` starts the down SQL. A first line
    /// `-- lull:no-transaction` runs every statement in autocommit.
    Lull,
}

impl Layout {
    /// Every layout, in the order messages list them.
    pub const ALL: [Layout; 8] = [
        Layout::Lull,
        Layout::Sqlx,
        Layout::GolangMigrate,
        Layout::Dbmate,
        Layout::Diesel,
        Layout::Prisma,
        Layout::Drizzle,
        Layout::Flyway,
    ];

    /// The name used in `lull.toml` and messages.
    pub fn name(self) -> &'static str {
        match self {
            Layout::Sqlx => "sqlx",
            Layout::GolangMigrate => "golang-migrate",
            Layout::Dbmate => "dbmate",
            Layout::Diesel => "diesel",
            Layout::Prisma => "prisma",
            Layout::Drizzle => "drizzle",
            Layout::Flyway => "flyway",
            Layout::Lull => "lull",
        }
    }

    /// Whether this layout expects down migrations (lint rules ask for
    /// one). Prisma's optional `down.sql` is read when present but not
    /// expected.
    pub fn has_down(self) -> bool {
        !matches!(self, Layout::Prisma | Layout::Drizzle)
    }

    /// A short description of the file names, for error messages.
    pub fn pattern(self) -> &'static str {
        match self {
            Layout::Sqlx => "<version>_<name>.sql or <version>_<name>.up.sql/.down.sql",
            Layout::GolangMigrate => "<version>_<name>.up.sql and <version>_<name>.down.sql",
            Layout::Dbmate => "<version>_<name>.sql with -- migrate:up / -- migrate:down",
            Layout::Diesel => "<version>_<name>/up.sql and down.sql",
            Layout::Prisma => "<timestamp>_<name>/migration.sql",
            Layout::Drizzle => "NNNN_<name>.sql with --> statement-breakpoint",
            Layout::Flyway => "V<version>__<name>.sql (and U<version>__<name>.sql)",
            Layout::Lull => "<version>_<name>.sql with an optional -- lull:down section",
        }
    }

    /// Every layout's pattern, one per line, for "expected ..." messages.
    pub fn all_patterns() -> String {
        Layout::ALL
            .iter()
            .map(|l| format!("{} ({})", l.pattern(), l.name()))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Layout {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_lowercase().replace('_', "-");
        Layout::ALL
            .into_iter()
            .find(|l| l.name() == wanted)
            .ok_or_else(|| {
                let names: Vec<&str> = Layout::ALL.iter().map(|l| l.name()).collect();
                format!(
                    "unknown migration layout `{s}`; expected one of {}",
                    names.join(", ")
                )
            })
    }
}
