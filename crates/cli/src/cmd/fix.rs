//! `lull fix`: rewrite the mechanically fixable lint findings of
//! migrations into their safe form.
//!
//! This module reads the files (directories through `lull-migrations`, so
//! only "up" parts, in version order), builds the lint options from flags
//! and lull.toml, calls [`lull_analyzer::fix`], and either prints a unified
//! diff or writes the files back. The rewrites themselves live in the
//! analyzer crate.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args as ClapArgs;
use lull_analyzer::{fix, FileFix, FixOptions, SourceFile};
use lull_config::Config;

use super::lint::inputs::{excluded, excludes};
use super::lint::RunnerArg;
use crate::context::GlobalArgs;
use crate::error::{exit, CliError, CliResult};

/// Rewrite migrations into their safe form.
///
/// Fixes what `lull lint` reports and a machine can fix without guessing:
///   - CREATE / DROP / REINDEX INDEX get CONCURRENTLY (and leave a
///     BEGIN ... COMMIT block, which cannot hold them);
///   - FOREIGN KEY and CHECK are added NOT VALID and validated in a
///     separate transaction;
///   - UNIQUE / PRIMARY KEY become a unique index built CONCURRENTLY,
///     attached with USING INDEX;
///   - SET NOT NULL is proven by a validated CHECK first;
///   - CREATE / DROP get IF [NOT] EXISTS;
///   - files another tool runs get SET lock_timeout / statement_timeout.
///
/// Only the statements it rewrites change; comments and formatting of
/// everything else are kept. Findings it cannot fix safely are listed with
/// the reason (e.g. CONCURRENTLY in a file the runner wraps in a
/// transaction: move it to its own non-transactional migration).
///
/// Without --write, prints a unified diff and changes nothing. PATHS are
/// migration directories (any layout lull reads), .sql files, or `-` for
/// stdin (with --write the fixed SQL goes to stdout). Without PATHS the
/// migrations directory of lull.toml (default `migrations`) is used.
///
/// Exit code: 0 when it ran (whether or not there was anything to fix),
/// 2 on usage or I/O errors.
///
/// Examples:
///   lull fix migrations/
///   lull fix --write migrations/20240101_add_index.sql
///   lull fix --runner transactional --rule missing-if-not-exists db/
#[derive(ClapArgs, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Files, migration directories, or `-` for stdin [default: the
    /// migrations directory of lull.toml].
    #[arg(value_name = "PATHS")]
    pub paths: Vec<PathBuf>,

    /// Write the fixed files instead of printing a diff.
    #[arg(long)]
    pub write: bool,

    /// Who will run these files, which decides where transactions must be
    /// split [default: `runner` in lull.toml, else the directory's layout
    /// (Prisma, sqlx, dbmate, …), else lull].
    #[arg(long, value_enum)]
    pub runner: Option<RunnerArg>,

    /// Fix only this rule (repeatable) [default: every fixable rule].
    #[arg(long = "rule", value_name = "RULE")]
    pub rules: Vec<String>,

    /// lock_timeout written into files another tool runs.
    #[arg(long, value_name = "DURATION", default_value = "2s")]
    pub lock_timeout: String,

    /// statement_timeout written into files another tool runs.
    #[arg(long, value_name = "DURATION", default_value = "5min")]
    pub statement_timeout: String,
}

/// One input: where its SQL sits in a file on disk.
struct Input {
    source: SourceFile,
    /// `None` for stdin.
    path: Option<PathBuf>,
    /// Byte offset of `source.sql` in the file (dbmate's up section).
    offset: usize,
}

/// Runs `lull fix`.
pub fn run(global: &GlobalArgs, args: Args) -> CliResult {
    let config = global.config()?;
    let opts = options(&config, &args)?;
    let inputs = collect(&args.paths, &config)?;
    let mut sources: Vec<SourceFile> = inputs.iter().map(|i| i.source.clone()).collect();
    // The layout names the runner unless --runner or lull.toml does.
    super::lint::stamp_runner(
        &mut sources,
        super::lint::runner_choice(&config, args.runner),
    );
    let fixes = fix(&sources, &opts);
    let mut out = anstream::stdout();
    let mut err = anstream::stderr();
    let (mut applied, mut skipped, mut files_changed) = (0, 0, 0);
    for (input, result) in inputs.iter().zip(&fixes) {
        for a in &result.applied {
            let _ = writeln!(
                err,
                "{}:{}: fixed {}: {}",
                result.path, a.line, a.rule, a.note
            );
        }
        for s in &result.skipped {
            let _ = writeln!(
                err,
                "{}:{}: not fixed {}: {}",
                result.path, s.line, s.rule, s.reason
            );
        }
        applied += result.applied.len();
        skipped += result.skipped.len();
        if !result.changed() {
            continue;
        }
        files_changed += 1;
        match (&input.path, args.write) {
            (None, true) => {
                let _ = write!(out, "{}", result.fixed);
            }
            (Some(path), true) => write_back(path, input.offset, result)?,
            (_, false) => {
                let _ = write!(out, "{}", diff(result));
            }
        }
    }
    let verb = if args.write { "applied" } else { "to apply" };
    let _ = writeln!(
        err,
        "{applied} fix(es) {verb} in {files_changed} file(s); {skipped} finding(s) left to fix by hand"
    );
    if !args.write && files_changed > 0 {
        let _ = writeln!(err, "run again with --write to change the files");
    }
    Ok(ExitCode::from(exit::OK))
}

/// The lint options that decide what is a finding, from flags and lull.toml.
fn options(config: &Config, args: &Args) -> Result<FixOptions, CliError> {
    let lint = super::lint::config_options(config, args.runner, &[])?;
    for id in &args.rules {
        if !lull_analyzer::FIXABLE_RULES.contains(&id.as_str()) {
            return Err(
                CliError::new(format!("--rule {id} is not a rule lull can fix")).hint(format!(
                    "fixable rules: {}",
                    lull_analyzer::FIXABLE_RULES.join(", ")
                )),
            );
        }
    }
    let lock_timeout = pg_duration("--lock-timeout", &args.lock_timeout)?;
    let statement_timeout = pg_duration("--statement-timeout", &args.statement_timeout)?;
    Ok(FixOptions {
        lint,
        only: args.rules.clone(),
        lock_timeout,
        statement_timeout,
    })
}

/// A duration flag in a spelling PostgreSQL accepts (it knows `min` but
/// not `m`).
fn pg_duration(flag: &str, value: &str) -> Result<String, CliError> {
    let d: lull_config::Duration = value.parse().map_err(|e| {
        CliError::new(format!("{flag} {value}: {e}")).hint("write it like 500ms, 2s or 5min")
    })?;
    let ms = d.0.as_millis();
    Ok(if ms > 0 && ms.is_multiple_of(60_000) {
        format!("{}min", ms / 60_000)
    } else if ms.is_multiple_of(1_000) {
        format!("{}s", ms / 1_000)
    } else {
        format!("{ms}ms")
    })
}

/// Reads every path into inputs, in run order.
fn collect(paths: &[PathBuf], config: &Config) -> Result<Vec<Input>, CliError> {
    let paths: Vec<PathBuf> = if paths.is_empty() {
        let dir = config.migrations_dir();
        if !dir.is_dir() {
            return Err(CliError::new(format!(
                "no paths given and {} is not a directory",
                dir.display()
            ))
            .hint("pass files or directories to fix, `-` for stdin, or set `dir` in lull.toml"));
        }
        vec![dir]
    } else {
        paths.to_vec()
    };
    let excludes = excludes(config)?;
    let mut inputs = Vec::new();
    for path in paths {
        if path.as_os_str() == "-" {
            let mut sql = String::new();
            std::io::stdin()
                .read_to_string(&mut sql)
                .map_err(|e| CliError::new(format!("cannot read stdin: {e}")))?;
            inputs.push(Input {
                source: SourceFile {
                    path: "<stdin>".into(),
                    sql,
                    ..SourceFile::default()
                },
                path: None,
                offset: 0,
            });
        } else if path.is_dir() {
            inputs.extend(directory(&path, &excludes)?);
        } else {
            if excluded(&path, &excludes) {
                continue;
            }
            let sql = read(&path)?;
            inputs.push(Input {
                source: SourceFile {
                    path: path.display().to_string(),
                    sql,
                    ..SourceFile::default()
                },
                path: Some(path),
                offset: 0,
            });
        }
    }
    Ok(inputs)
}

fn read(path: &Path) -> Result<String, CliError> {
    std::fs::read_to_string(path).map_err(|e| {
        CliError::new(format!("cannot read {}: {e}", path.display()))
            .hint("check the path; use `-` to read SQL from stdin")
    })
}

/// The "up" parts of a migration directory, in version order, with where
/// each sits in its file.
fn directory(dir: &Path, excludes: &[glob::Pattern]) -> Result<Vec<Input>, CliError> {
    let migrations = lull_migrations::discover(dir).map_err(|e| {
        CliError::new(e).hint("pass single .sql files instead, or fix the directory layout")
    })?;
    let mut inputs = Vec::new();
    for m in migrations {
        let Some(up) = &m.up else { continue };
        if excluded(&up.path, excludes) {
            continue;
        }
        let whole = read(&up.path)?;
        let offset = section_offset(&whole, &up.sql, up.line_offset).ok_or_else(|| {
            CliError::new(format!(
                "cannot find the up section of {} in the file",
                up.path.display()
            ))
            .hint("fix this file on its own: lull fix FILE")
        })?;
        inputs.push(Input {
            source: SourceFile {
                path: up.path.display().to_string(),
                sql: up.sql.clone(),
                line_offset: up.line_offset,
                no_transaction: m.no_transaction,
                has_down: m.layout.has_down().then_some(m.down.is_some()),
                tool: Some(super::lint::inputs::tool_of(m.layout)),
                runner: Some(super::lint::inputs::tool_of(m.layout).runner()),
                ..SourceFile::default()
            },
            path: Some(up.path.clone()),
            offset,
        });
    }
    Ok(inputs)
}

/// Byte offset of `section`, which starts at 0-based line `line` of
/// `whole`.
fn section_offset(whole: &str, section: &str, line: usize) -> Option<usize> {
    let start = if line == 0 {
        0
    } else {
        whole
            .match_indices('\n')
            .nth(line - 1)
            .map(|(i, _)| i + 1)?
    };
    whole[start..].starts_with(section).then_some(start)
}

/// Writes the fixed section back into its file.
fn write_back(path: &Path, offset: usize, result: &FileFix) -> Result<(), CliError> {
    let whole = read(path)?;
    let end = offset + result.original.len();
    if whole.get(offset..end) != Some(result.original.as_str()) {
        return Err(CliError::new(format!(
            "{} changed while lull fix ran; nothing written to it",
            path.display()
        ))
        .hint("run lull fix again"));
    }
    let text = format!("{}{}{}", &whole[..offset], result.fixed, &whole[end..]);
    std::fs::write(path, text).map_err(|e| {
        CliError::new(format!("cannot write {}: {e}", path.display()))
            .hint("check the file's permissions")
    })
}

/// A unified diff of one file's fix.
fn diff(result: &FileFix) -> String {
    similar::TextDiff::from_lines(&result.original, &result.fixed)
        .unified_diff()
        .context_radius(3)
        .header(&format!("a/{}", result.path), &format!("b/{}", result.path))
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_are_found_by_line() {
        let whole = "-- migrate:up\nCREATE INDEX i ON t (a);\n-- migrate:down\nDROP INDEX i;\n";
        assert_eq!(
            section_offset(whole, "CREATE INDEX i ON t (a);\n", 1),
            Some(14)
        );
        assert_eq!(section_offset(whole, "nope", 1), None);
        assert_eq!(section_offset(whole, whole, 0), Some(0));
    }

    #[test]
    fn durations_are_written_the_way_postgres_reads_them() {
        assert_eq!(pg_duration("--x", "5m").unwrap(), "5min");
        assert_eq!(pg_duration("--x", "2s").unwrap(), "2s");
        assert_eq!(pg_duration("--x", "1500ms").unwrap(), "1500ms");
        assert!(pg_duration("--x", "soon").is_err());
    }
}
