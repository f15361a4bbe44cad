//! What `lull lint` reads: migration directories (through
//! `lull-migrations`, so only "up" parts in version order), single files,
//! stdin, exclusion globs, and table sizes from a live database.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use lull_analyzer::{SourceFile, TableStats, Tool};
use lull_config::Config;
use lull_migrations::{DiscoverError, Layout};

use crate::error::CliError;

/// One path argument.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Input {
    /// `-`: SQL on stdin.
    Stdin,
    /// A directory of migrations.
    Dir(PathBuf),
    /// One SQL file.
    File(PathBuf),
}

impl Input {
    fn of(path: &Path) -> Input {
        if path.as_os_str() == "-" {
            Input::Stdin
        } else if path.is_dir() {
            Input::Dir(path.to_path_buf())
        } else {
            Input::File(path.to_path_buf())
        }
    }
}

/// The `[lint] exclude` globs.
pub fn excludes(config: &Config) -> Result<Vec<glob::Pattern>, CliError> {
    config
        .settings
        .lint
        .exclude
        .iter()
        .flatten()
        .map(|g| {
            glob::Pattern::new(g).map_err(|e| {
                CliError::new(format!("[lint] exclude has an invalid glob `{g}`: {e}"))
                    .hint("globs look like \"migrations/legacy/**\"")
            })
        })
        .collect()
}

pub(crate) fn excluded(path: &Path, excludes: &[glob::Pattern]) -> bool {
    let text = path.to_string_lossy();
    let text = text.strip_prefix("./").unwrap_or(&text);
    // A directory counts as excluded when a glob such as `legacy/**`
    // covers everything under it.
    let inside = format!("{text}/\u{1}");
    excludes
        .iter()
        .any(|g| g.matches(text) || (path.is_dir() && g.matches(&inside)))
}

/// The files to lint, in run order, with the migration each one is (for
/// files read from a migration directory).
#[derive(Debug, Default)]
pub struct Collected {
    /// The files.
    pub files: Vec<SourceFile>,
    /// Per file: (version, `version_name` label) when it is a migration.
    pub ids: Vec<Option<(String, String)>>,
}

impl Collected {
    fn push(&mut self, file: SourceFile, id: Option<(String, String)>) {
        self.files.push(file);
        self.ids.push(id);
    }
}

/// Reads every input into the files to lint, in run order.
pub fn collect(
    paths: &[PathBuf],
    config: &Config,
    excludes: &[glob::Pattern],
) -> Result<Collected, CliError> {
    let inputs: Vec<Input> = if paths.is_empty() {
        let dir = config.migrations_dir();
        if !dir.is_dir() {
            return Err(CliError::new(format!(
                "no paths given and {} is not a directory",
                dir.display()
            ))
            .hint("pass files or directories to lint, `-` for stdin, or set `dir` in lull.toml"));
        }
        vec![Input::Dir(dir)]
    } else {
        paths.iter().map(|p| Input::of(p)).collect()
    };
    let mut files = Collected::default();
    for input in inputs {
        match input {
            Input::Stdin => {
                let mut sql = String::new();
                std::io::stdin()
                    .read_to_string(&mut sql)
                    .map_err(|e| CliError::new(format!("cannot read stdin: {e}")))?;
                files.push(
                    SourceFile {
                        path: "<stdin>".into(),
                        sql,
                        ..SourceFile::default()
                    },
                    None,
                );
            }
            Input::File(path) => {
                if excluded(&path, excludes) {
                    continue;
                }
                let sql = std::fs::read_to_string(&path).map_err(|e| {
                    CliError::new(format!("cannot read {}: {e}", path.display()))
                        .hint("check the path; use `-` to read SQL from stdin")
                })?;
                files.push(
                    SourceFile {
                        path: display(&path),
                        sql,
                        ..SourceFile::default()
                    },
                    None,
                );
            }
            Input::Dir(dir) => {
                let part = directory(&dir, excludes)?;
                files.files.extend(part.files);
                files.ids.extend(part.ids);
            }
        }
    }
    Ok(files)
}

/// The "up" parts of a migration directory, in version order.
///
/// A directory that is not one migration layout (loose .sql files, or
/// subdirectories holding migrations of different tools) is linted
/// piece by piece instead: each subdirectory as a directory, each .sql
/// file on its own, in name order, with a note on stderr saying so.
fn directory(dir: &Path, excludes: &[glob::Pattern]) -> Result<Collected, CliError> {
    let migrations = match lull_migrations::discover(dir) {
        Ok(migrations) => migrations,
        Err(err @ (DiscoverError::UnknownFile { .. } | DiscoverError::MixedLayouts { .. })) => {
            let (files, considered) = piecewise(dir, excludes)?;
            if considered == 0 {
                // Everything in it is excluded: nothing to lint, nothing wrong.
                return Ok(files);
            }
            if files.files.is_empty() {
                return Err(CliError::new(err)
                    .hint("pass single .sql files instead, or fix the directory layout"));
            }
            let mut stderr = anstream::stderr();
            let _ = writeln!(
                stderr,
                "note: {} is not one migration directory; linting its subdirectories and .sql files in name order",
                dir.display()
            );
            return Ok(files);
        }
        Err(err) => {
            return Err(CliError::new(err)
                .hint("pass single .sql files instead, or fix the directory layout"))
        }
    };
    let mut files = Collected::default();
    for m in migrations {
        let Some(up) = &m.up else { continue };
        if excluded(&up.path, excludes) {
            continue;
        }
        let id = Some((m.version.clone(), m.label()));
        files.push(
            SourceFile {
                path: display(&up.path),
                sql: up.sql.clone(),
                line_offset: up.line_offset,
                no_transaction: m.no_transaction,
                has_down: m.layout.has_down().then_some(m.down.is_some()),
                runs_with_previous: false,
                tool: Some(tool_of(m.layout)),
                runner: Some(tool_of(m.layout).runner()),
                applied: false,
            },
            id,
        );
    }
    Ok(files)
}

/// Subdirectories (as directories) and .sql files of `dir`, in name order,
/// and how many entries were not excluded.
fn piecewise(dir: &Path, excludes: &[glob::Pattern]) -> Result<(Collected, usize), CliError> {
    let read = std::fs::read_dir(dir)
        .map_err(|e| CliError::new(format!("cannot read {}: {e}", dir.display())))?;
    let mut entries: Vec<PathBuf> = read.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    let mut files = Collected::default();
    let mut considered = 0;
    for path in entries {
        let hidden = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if hidden || excluded(&path, excludes) {
            continue;
        }
        considered += 1;
        if path.is_dir() {
            let part = directory(&path, excludes)?;
            files.files.extend(part.files);
            files.ids.extend(part.ids);
        } else if path.extension().is_some_and(|e| e == "sql") {
            let sql = std::fs::read_to_string(&path)
                .map_err(|e| CliError::new(format!("cannot read {}: {e}", path.display())))?;
            files.push(
                SourceFile {
                    path: display(&path),
                    sql,
                    ..SourceFile::default()
                },
                None,
            );
        }
    }
    Ok((files, considered))
}

/// The tool that applies a layout's files.
pub(crate) fn tool_of(layout: Layout) -> Tool {
    match layout {
        Layout::Lull => Tool::Lull,
        Layout::Sqlx => Tool::Sqlx,
        Layout::GolangMigrate => Tool::GolangMigrate,
        Layout::Dbmate => Tool::Dbmate,
        Layout::Diesel => Tool::Diesel,
        Layout::Prisma => Tool::Prisma,
        Layout::Drizzle => Tool::Drizzle,
        Layout::Flyway => Tool::Flyway,
    }
}

/// Whether the paths are whole migration histories (directories, or the
/// configured directory), so an index none of them creates is missing.
pub fn whole_history(paths: &[PathBuf]) -> bool {
    paths.is_empty() || paths.iter().all(|p| p.is_dir())
}

fn display(path: &Path) -> String {
    path.display().to_string()
}

/// Row estimates and total sizes of every user table, read the same way
/// `lull stats export` writes them.
pub fn stats_from_database(url: &str) -> Result<TableStats, CliError> {
    crate::cmd::stats::read_table_stats(url, "lull lint", &[])
        .map_err(|e| e.hint("pass --offline to lint without sizes, or --stats FILE"))
}
