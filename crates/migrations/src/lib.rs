//! Finding migrations on disk.
//!
//! Teams already have a migrations directory written for some tool. This
//! crate reads it as it is — sqlx, golang-migrate, dbmate, diesel, Prisma,
//! Drizzle, Flyway or lull's own layout — and returns one [`Migration`] per
//! version, sorted by version, with its up and (optional) down SQL. The
//! analyzer lints these files and the engine runs them; neither needs to
//! know which tool wrote them.
//!
//! What this crate is not for: parsing SQL (the analyzer does that) or
//! talking to a database. It only reads files.
//!
//! The layout is detected per directory from the names and first lines of
//! its files (see [`Layout`] for what each looks like). A directory that
//! mixes layouts, or holds a file no layout explains, is an error that names
//! the file and says what was expected, rather than a silently skipped
//! migration.

mod detect;
mod layout;
mod version;

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

pub use layout::Layout;
pub use version::compare_versions;

/// One migration: a version, a name, up SQL and optionally down SQL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Migration {
    /// The version as the tool that wrote the file spells it (digits for
    /// most tools; Flyway's `V1_2__` becomes `1.2`, diesel's
    /// `2023-01-02-030405` becomes `20230102030405` as diesel records it).
    pub version: String,
    /// The descriptive part of the file name (`create_users`).
    pub name: String,
    /// The SQL that applies the migration. `None` only for layouts where a
    /// version may exist with only an undo file (Flyway `U` without `V`),
    /// which discovery reports as an error, so in practice always `Some`.
    pub up: Option<SqlFile>,
    /// The SQL that reverts it, when the layout has one and it is present.
    pub down: Option<SqlFile>,
    /// Which layout the directory was read as.
    pub layout: Layout,
    /// The file asks not to be wrapped in a transaction (sqlx
    /// `-- no-transaction`, dbmate `transaction:false`, diesel
    /// `run_in_transaction = false`, lull `-- lull:no-transaction`).
    pub no_transaction: bool,
    /// SHA-256 (lower-case hex) of the up SQL as read; an applied
    /// migration whose checksum changed is refused by the runner.
    pub checksum: String,
}

impl Migration {
    /// `version_name`, the way people refer to a migration in messages.
    pub fn label(&self) -> String {
        if self.name.is_empty() {
            self.version.clone()
        } else {
            format!("{}_{}", self.version, self.name)
        }
    }

    /// The up SQL text, or an empty string when there is none.
    pub fn up_sql(&self) -> &str {
        self.up.as_ref().map(|f| f.sql.as_str()).unwrap_or("")
    }
}

/// The SQL of one direction of a migration, and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SqlFile {
    /// The file it was read from.
    pub path: PathBuf,
    /// The SQL of this part only (for single-file layouts with up and down
    /// sections, just the section).
    pub sql: String,
    /// How many lines of the file come before `sql`, so that a position in
    /// `sql` (1-based line `l`) is line `l + line_offset` of the file.
    pub line_offset: usize,
}

/// SHA-256 of a text as lower-case hex: the checksum kept for applied
/// migrations.
pub fn checksum(sql: &str) -> String {
    hex::encode(Sha256::digest(sql.as_bytes()))
}

/// Why a directory could not be read as migrations.
#[derive(Debug)]
pub enum DiscoverError {
    /// The directory does not exist or is not a directory.
    NotADirectory {
        /// The path that was given.
        path: PathBuf,
    },
    /// Reading a file or directory failed.
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A file is not valid UTF-8.
    NotUtf8 {
        /// The file.
        path: PathBuf,
    },
    /// A file or directory that no layout explains.
    UnknownFile {
        /// The file.
        path: PathBuf,
        /// What was expected instead, for the message.
        expected: String,
    },
    /// Two files that belong to different layouts.
    MixedLayouts {
        /// A file of the first layout.
        first: PathBuf,
        /// Its layout.
        first_layout: Layout,
        /// A file of another layout.
        second: PathBuf,
        /// That layout.
        second_layout: Layout,
    },
    /// Two migrations with the same version.
    DuplicateVersion {
        /// The version.
        version: String,
        /// The first file.
        first: PathBuf,
        /// The second file.
        second: PathBuf,
    },
    /// A file of the right name whose content does not fit the layout
    /// (a dbmate file without `-- migrate:up`, a down without an up).
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

impl fmt::Display for DiscoverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DiscoverError::NotADirectory { path } => write!(
                f,
                "migrations directory {} does not exist or is not a directory \
                 (pass --dir PATH or set `dir` in lull.toml)",
                path.display()
            ),
            DiscoverError::Io { path, source } => {
                write!(f, "cannot read {}: {source}", path.display())
            }
            DiscoverError::NotUtf8 { path } => {
                write!(
                    f,
                    "{} is not valid UTF-8 text; migrations must be UTF-8",
                    path.display()
                )
            }
            DiscoverError::UnknownFile { path, expected } => write!(
                f,
                "{} is not a migration file of any known layout; expected {expected}",
                path.display()
            ),
            DiscoverError::MixedLayouts {
                first,
                first_layout,
                second,
                second_layout,
            } => write!(
                f,
                "the migrations directory mixes layouts: {} looks like {first_layout} but {} \
                 looks like {second_layout}; keep one layout per directory",
                first.display(),
                second.display()
            ),
            DiscoverError::DuplicateVersion {
                version,
                first,
                second,
            } => write!(
                f,
                "version {version} is used twice: {} and {}; every migration needs its own version",
                first.display(),
                second.display()
            ),
            DiscoverError::Malformed { path, reason } => {
                write!(f, "{}: {reason}", path.display())
            }
        }
    }
}

impl std::error::Error for DiscoverError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DiscoverError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Reads every migration in `dir`, detecting the layout, sorted by version
/// (numerically where versions are numbers: `9` before `10`).
///
/// An empty directory gives an empty list. Hidden files, `README*`, `*.md`,
/// Prisma's `migration_lock.toml` and Drizzle's `meta/` directory are
/// ignored; any other file that fits no layout is an error.
pub fn discover(dir: &Path) -> Result<Vec<Migration>, DiscoverError> {
    detect::discover(dir, None)
}

/// Like [`discover`], but reads the directory as the given layout instead of
/// detecting it (for directories the heuristics cannot tell apart, such as
/// sqlx's reversible files versus golang-migrate's).
pub fn discover_as(dir: &Path, layout: Layout) -> Result<Vec<Migration>, DiscoverError> {
    detect::discover(dir, Some(layout))
}
