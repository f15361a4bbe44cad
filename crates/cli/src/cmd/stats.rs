//! `lull stats export`: write the sizes of a database's tables to a file,
//! so `lull lint --stats FILE` (or `[lint] stats_file`) can judge findings
//! by production sizes in CI, without access to production.
//!
//! The file is the analyzer's [`TableStats`] JSON:
//! `{"tables": {"public.users": {"rows": 1200000, "bytes": 402653184}}}`,
//! with `rows` from `pg_class.reltuples` (the planner's estimate, 0 for a
//! table never analyzed) and `bytes` from `pg_total_relation_size` (heap,
//! indexes and TOAST), or from pg_class page counts when a table is locked.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args as ClapArgs, Subcommand};
use lull_analyzer::{TableSize, TableStats};
use lull_config::redact_url;

use crate::context::GlobalArgs;
use crate::error::{CliError, CliResult};

/// Table sizes for offline linting.
#[derive(ClapArgs, Debug)]
pub struct Args {
    #[command(subcommand)]
    command: StatsCommand,
}

#[derive(Subcommand, Debug)]
enum StatsCommand {
    // The help text is the doc of `ExportArgs`.
    Export(ExportArgs),
}

/// Write row estimates and sizes of every table to a stats file.
///
/// Connects to --database-url (or DATABASE_URL, or `database_url` in
/// lull.toml) and reads, for every table, partitioned table and
/// materialized view outside the system schemas: `reltuples` (the
/// planner's row estimate; run ANALYZE first on a fresh database) and
/// `pg_total_relation_size` (heap, indexes and TOAST). Reading them scans
/// nothing; when a table is locked by a running migration, lull waits 2 s
/// and then takes the sizes from the page counts in pg_class (kept by
/// VACUUM and ANALYZE), so it is safe on production.
///
/// `lull lint --stats FILE` (or `[lint] stats_file = "FILE"`) then lowers
/// findings on small tables and raises them on large ones, offline.
///
/// Examples:
///   lull stats export --database-url "$PROD_READONLY_URL" -o lull-stats.json
///   lull lint --stats lull-stats.json migrations/
#[derive(ClapArgs, Debug)]
#[command(verbatim_doc_comment)]
pub struct ExportArgs {
    /// Write to FILE instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,

    /// Only tables in this schema (repeatable) [default: every non-system
    /// schema].
    #[arg(long, value_name = "SCHEMA")]
    schema: Vec<String>,
}

/// Runs `lull stats`.
pub fn run(global: &GlobalArgs, args: Args) -> CliResult {
    match args.command {
        StatsCommand::Export(export) => run_export(global, export),
    }
}

fn run_export(global: &GlobalArgs, args: ExportArgs) -> CliResult {
    let config = global.config()?;
    let url = global.database_url(&config)?;
    let stats = read_table_stats(&url, "lull stats export", &args.schema).map_err(|e| {
        e.hint("check the connection string; a read-only role is enough (it reads pg_class only)")
    })?;
    let json = stats.to_json() + "\n";
    match &args.output {
        Some(path) => {
            std::fs::write(path, &json).map_err(|e| {
                CliError::new(format!("cannot write {}: {e}", path.display()))
                    .hint("check the directory exists and is writable, or leave out -o to print")
            })?;
            let _ = writeln!(
                anstream::stderr(),
                "wrote the sizes of {} table(s) to {}",
                stats.tables.len(),
                path.display()
            );
        }
        None => crate::render::emit(&json),
    }
    Ok(ExitCode::SUCCESS)
}

/// Row estimates and total sizes of the tables (ordinary, partitioned,
/// materialized views) of `url`, keyed `schema.table`; only `schemas` when
/// not empty. `application` is the connection's application_name.
pub fn read_table_stats(
    url: &str,
    application: &str,
    schemas: &[String],
) -> Result<TableStats, CliError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::new(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(async {
        let client = lull_engine::db::connect(url, application)
            .await
            .map_err(|e| {
                CliError::new(format!(
                    "cannot read table sizes from {}: {e}",
                    redact_url(url)
                ))
            })?;
        // pg_total_relation_size takes ACCESS SHARE on each table, which
        // waits behind a migration holding ACCESS EXCLUSIVE; after a short
        // lock timeout the sizes come from the page counts VACUUM and
        // ANALYZE keep in pg_class instead, which take no lock.
        let query = |bytes: &str| {
            format!(
                "SELECT n.nspname::text, c.relname::text, greatest(c.reltuples, 0)::float8, {bytes}::int8 \
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind IN ('r', 'p', 'm') \
                   AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
                   AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%' \
                   AND (cardinality($1::text[]) = 0 OR n.nspname = ANY($1::text[]))"
            )
        };
        let fail = |e: tokio_postgres::Error| {
            CliError::new(format!(
                "cannot read table sizes from {}: {}",
                redact_url(url),
                lull_engine::pg_message(&e)
            ))
        };
        client
            .batch_execute("SET lock_timeout = 2000")
            .await
            .map_err(fail)?;
        let exact = client
            .query(query("pg_total_relation_size(c.oid)").as_str(), &[&schemas])
            .await;
        let rows = match exact {
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE) => {
                client
                    .query(
                        query(
                            "(c.relpages::int8 + coalesce((SELECT t.relpages FROM pg_class t \
                              WHERE t.oid = c.reltoastrelid), 0) + coalesce((SELECT sum(ic.relpages) \
                              FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid \
                              WHERE i.indrelid = c.oid), 0)) * current_setting('block_size')::int8",
                        )
                        .as_str(),
                        &[&schemas],
                    )
                    .await
            }
            other => other,
        }
        .map_err(fail)?;
        let mut stats = TableStats::default();
        for row in rows {
            let schema: String = row.get(0);
            let table: String = row.get(1);
            let reltuples: f64 = row.get(2);
            let bytes: i64 = row.get(3);
            stats.insert(
                format!("{schema}.{table}"),
                TableSize {
                    // reltuples is an estimate stored as float4; whole rows
                    // are all a size class needs.
                    rows: reltuples.round() as u64,
                    bytes: u64::try_from(bytes).unwrap_or(0),
                },
            );
        }
        Ok(stats)
    })
}
