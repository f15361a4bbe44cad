//! Schema equivalence: a migration history applied once with plain `psql`
//! and once with `lull migrate` must leave the same catalog.
//!
//! This is how lull's rule "a rewrite leaves exactly the catalog the plain
//! file leaves" is tested. [`Equivalence`] creates two fresh databases,
//! applies the history's up files one by one with `psql` (as written,
//! `ON_ERROR_STOP`, no rewrites) to the first and runs the `lull` binary's
//! `migrate` on the second, then compares both catalogs with
//! [`crate::catalog`]. Every new rewrite gets a test through it.
//!
//! ```no_run
//! use lull_sandbox::testing::equivalence::Equivalence;
//! # let project = std::path::Path::new(".");
//! # let lull = std::path::Path::new("lull");
//! // In a test of the `lull` crate, `lull` is env!("CARGO_BIN_EXE_lull");
//! // `project` holds migrations/ (and lull.toml when needed).
//! Equivalence::new(lull, project)
//!     .setup_sql("CREATE SCHEMA auth")
//!     .replace(r#"{{ index .Options "Namespace" }}"#, "auth")
//!     .run()
//!     .assert_same();
//! ```
//!
//! The plain side reads the directory with [`lull_migrations::discover`]
//! (the same reader `lull migrate` uses), so both sides apply the same
//! files in the same order; what differs is only how: psql sends each
//! file's text as it is, lull plans, rewrites and runs it. Tool history
//! tables (which a tool writes and psql does not) and lull's own schema
//! are left out of the comparison; see [`Ignore::tool_history_tables`].

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::catalog::{assert_same_catalog, Catalog, Ignore};
use crate::testing::{psql, TestDb};

/// One comparison of plain `psql` against `lull migrate` (see the module
/// docs). Built with [`Equivalence::new`], configured with its builder
/// methods, run with [`Equivalence::run`].
pub struct Equivalence {
    lull: PathBuf,
    project: PathBuf,
    migrations: Option<PathBuf>,
    setup: Vec<String>,
    replacements: Vec<(String, String)>,
    lull_args: Vec<String>,
    env: Vec<(String, String)>,
    ignore: Ignore,
}

/// What [`Equivalence::run`] leaves: both databases (still there until
/// this is dropped), their catalogs and what `lull migrate` printed.
pub struct Outcome {
    /// The database the plain files were applied to with psql.
    pub plain_db: TestDb,
    /// The database `lull migrate` ran on.
    pub lull_db: TestDb,
    /// The catalog psql left.
    pub plain: Catalog,
    /// The catalog `lull migrate` left.
    pub lull: Catalog,
    /// `lull migrate`'s standard output and error.
    pub lull_output: String,
}

impl Outcome {
    /// Panics with the catalog diff (psql on the left, lull on the right)
    /// unless both are the same. Also panics when both are empty, since
    /// then the history applied nothing and the comparison says nothing.
    pub fn assert_same(&self) {
        assert!(
            !self.plain.is_empty(),
            "the history left no object at all; the comparison would mean nothing"
        );
        assert_same_catalog(("psql", &self.plain), ("lull migrate", &self.lull));
    }
}

impl Equivalence {
    /// A comparison for the project directory `project`, in which `lull
    /// migrate` runs (its `lull.toml` is read from there) on the
    /// migrations in `project/migrations` unless
    /// [`Equivalence::migrations`] names another directory. `lull` is the
    /// binary (`env!("CARGO_BIN_EXE_lull")` in the CLI's tests).
    pub fn new(lull: impl Into<PathBuf>, project: impl Into<PathBuf>) -> Equivalence {
        Equivalence {
            lull: lull.into(),
            project: project.into(),
            migrations: None,
            setup: Vec::new(),
            replacements: Vec::new(),
            lull_args: Vec::new(),
            env: Vec::new(),
            ignore: Ignore::default().tool_history_tables(),
        }
    }

    /// The migrations directory (passed to `lull migrate --dir`), when it
    /// is not `project/migrations`; e.g. a corpus read in place.
    pub fn migrations(mut self, dir: impl Into<PathBuf>) -> Equivalence {
        self.migrations = Some(dir.into());
        self
    }

    /// SQL run on both databases before the history (roles, schemas or
    /// extensions the history expects to exist). Part of both catalogs.
    pub fn setup_sql(mut self, sql: &str) -> Equivalence {
        self.setup.push(sql.to_string());
        self
    }

    /// Replaces `from` by `to` in every file before psql sends it (for
    /// templated SQL, whose placeholders lull substitutes from its
    /// `[placeholders]` config and psql cannot).
    pub fn replace(mut self, from: &str, to: &str) -> Equivalence {
        self.replacements.push((from.to_string(), to.to_string()));
        self
    }

    /// One more argument for `lull migrate` (e.g. `--layout`, `sqlx`).
    pub fn lull_arg(mut self, arg: &str) -> Equivalence {
        self.lull_args.push(arg.to_string());
        self
    }

    /// An environment variable for `lull migrate` (e.g. `LULL_ENV`).
    pub fn env(mut self, name: &str, value: &str) -> Equivalence {
        self.env.push((name.to_string(), value.to_string()));
        self
    }

    /// What both snapshots leave out, instead of lull's schema and the
    /// tool history tables.
    pub fn ignore(mut self, ignore: Ignore) -> Equivalence {
        self.ignore = ignore;
        self
    }

    fn migrations_dir(&self) -> PathBuf {
        self.migrations
            .clone()
            .unwrap_or_else(|| self.project.join("migrations"))
    }

    /// Applies the history both ways and reads both catalogs. Panics (with
    /// psql's or lull's output) when either way fails to apply it: a
    /// history that does not apply plainly is a broken test, one that does
    /// not apply through lull is a lull bug.
    pub fn run(self) -> Outcome {
        let dir = self.migrations_dir();
        let migrations = lull_migrations::discover(&dir)
            .unwrap_or_else(|e| panic!("cannot read the migrations in {}: {e}", dir.display()));
        assert!(
            !migrations.is_empty(),
            "no migrations in {}; the comparison would mean nothing",
            dir.display()
        );

        let plain_db = TestDb::new();
        let lull_db = TestDb::new();
        for sql in &self.setup {
            for db in [&plain_db, &lull_db] {
                db.client()
                    .batch_execute(sql)
                    .unwrap_or_else(|e| panic!("setup SQL failed: {e}\n{sql}"));
            }
        }

        for m in &migrations {
            let mut sql = m.up_sql().to_string();
            for (from, to) in &self.replacements {
                sql = sql.replace(from, to);
            }
            if let Err(out) = psql(plain_db.url(), &sql) {
                panic!("psql failed on {} (plain side):\n{out}", m.label());
            }
        }

        let out = Command::new(&self.lull)
            .arg("migrate")
            .arg("--dir")
            .arg(&dir)
            .args(&self.lull_args)
            .current_dir(&self.project)
            .env_remove("LULL_ENV")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("DATABASE_URL", lull_db.url())
            .env("NO_COLOR", "1")
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.lull.display()));
        let lull_output = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "lull migrate failed ({}) on {}:\n{lull_output}",
            out.status,
            dir.display()
        );

        let plain = Catalog::snapshot(&mut plain_db.client(), &self.ignore);
        let lull = Catalog::snapshot(&mut lull_db.client(), &self.ignore);
        Outcome {
            plain_db,
            lull_db,
            plain,
            lull,
            lull_output,
        }
    }
}

/// The path of a directory relative to the repository root (`../shared/corpora`
/// and the like), from a crate's manifest directory; `None` when it does
/// not exist, after printing a visible "skipped" line naming it, so a test
/// can `let Some(dir) = ... else { return };`.
pub fn repo_relative(manifest_dir: &str, relative: &str, test: &str) -> Option<PathBuf> {
    // crates/<name> → repository root.
    let root = Path::new(manifest_dir)
        .ancestors()
        .nth(2)
        .unwrap_or(Path::new(manifest_dir));
    let path = root.join(relative);
    if path.exists() {
        Some(path)
    } else {
        eprintln!(
            "SKIPPED {test}: {} is not there (the shared corpora sit next to the repository)",
            path.display()
        );
        None
    }
}
