//! What `lull lint` reads from the target database when a URL is given:
//! the server's major version, the indexes in its catalog (for
//! `unindexed-foreign-key`), its partitioned tables and their partitions
//! (for `concurrent-index-on-partitioned-table` and the per-partition
//! fix), which migrations are already applied there (so the pending ones
//! are linted as one unit), and, for the data rules, today's rows
//! ([`Rows`]).
//!
//! Read-only: it never creates lull's schema or any table. History tables
//! of the tools lull reads (lull's own, sqlx, golang-migrate / dbmate,
//! Prisma, Flyway, diesel) are read when they exist.

use std::collections::BTreeSet;

use lull_analyzer::data::{DataSource, Outcome, Probe};
use lull_config::redact_url;

use crate::error::CliError;

/// What the database says.
#[derive(Debug, Default)]
pub struct DatabaseFacts {
    /// `server_version_num / 10000`.
    pub major: Option<u32>,
    /// (schema-qualified table, index columns in order), expressions left out.
    pub indexes: Vec<(String, Vec<String>)>,
    /// Partitioned tables (`schema.name`) with their partitions.
    pub partitions: Vec<(String, Vec<String>)>,
    /// Applied migrations: versions, and Prisma's `<ts>_<name>` labels.
    pub applied: BTreeSet<String>,
    /// golang-migrate keeps one row, the last version applied: every
    /// numeric version up to it is applied.
    pub applied_through: Option<i64>,
    /// Whether any history table was found at all.
    pub has_history: bool,
}

impl DatabaseFacts {
    /// Whether the migration with this version (or Prisma label) is applied.
    pub fn is_applied(&self, version: &str, label: &str) -> bool {
        self.applied.contains(version)
            || self.applied.contains(label)
            || self
                .applied_through
                .zip(version.parse::<i64>().ok())
                .is_some_and(|(through, v)| v <= through)
    }
}

/// Reads the server version, the catalog's indexes and the applied
/// migrations, on one connection.
pub fn read(url: &str, lull_schema: &str) -> Result<DatabaseFacts, CliError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::new(format!("cannot start the async runtime: {e}")))?;
    let fail = |message: String| {
        CliError::new(format!(
            "cannot read the catalog of {}: {message}",
            redact_url(url),
        ))
        .hint("pass --offline to lint without the database")
    };
    runtime.block_on(async {
        let client = lull_engine::db::connect(url, "lull lint")
            .await
            .map_err(|e| {
                CliError::new(format!("cannot connect to {}: {e}", redact_url(url)))
                    .hint("pass --offline to lint without the database")
            })?;
        let mut facts = DatabaseFacts::default();
        let row = client
            .query_one("SELECT current_setting('server_version_num')::int", &[])
            .await
            .map_err(|e| fail(lull_engine::pg_message(&e)))?;
        let num: i32 = row.get(0);
        facts.major = u32::try_from(num / 10000).ok();
        let rows = client
            .query(
                "SELECT n.nspname::text, c.relname::text, \
                        array(SELECT a.attname::text FROM unnest(i.indkey) WITH ORDINALITY k(attnum, ord) \
                              JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
                              ORDER BY k.ord) \
                 FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND i.indisvalid",
                &[],
            )
            .await
            .map_err(|e| fail(lull_engine::pg_message(&e)))?;
        for row in rows {
            let schema: String = row.get(0);
            let table: String = row.get(1);
            let cols: Vec<String> = row.get(2);
            facts.indexes.push((format!("{schema}.{table}"), cols));
        }
        let rows = client
            .query(
                "SELECT pn.nspname::text || '.' || pc.relname::text, \
                        array(SELECT cn.nspname::text || '.' || cc.relname::text \
                              FROM pg_inherits i JOIN pg_class cc ON cc.oid = i.inhrelid \
                              JOIN pg_namespace cn ON cn.oid = cc.relnamespace \
                              WHERE i.inhparent = pc.oid ORDER BY 1) \
                 FROM pg_class pc JOIN pg_namespace pn ON pn.oid = pc.relnamespace \
                 WHERE pc.relkind = 'p' AND pn.nspname NOT IN ('pg_catalog', 'information_schema') \
                 ORDER BY 1",
                &[],
            )
            .await
            .map_err(|e| fail(lull_engine::pg_message(&e)))?;
        facts.partitions = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        let lull_table = format!(
            "{}.migrations",
            lull_analyzer::sql::quote_ident(lull_schema)
        );
        let histories: [(String, String); 6] = [
            (
                lull_table.clone(),
                format!("SELECT version::text FROM {lull_table} WHERE status = 'applied'"),
            ),
            (
                "_sqlx_migrations".into(),
                "SELECT version::text FROM _sqlx_migrations WHERE success".into(),
            ),
            (
                "schema_migrations".into(),
                "SELECT version::text FROM schema_migrations".into(),
            ),
            (
                "_prisma_migrations".into(),
                "SELECT migration_name::text FROM _prisma_migrations \
                 WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL"
                    .into(),
            ),
            (
                "flyway_schema_history".into(),
                "SELECT version::text FROM flyway_schema_history WHERE success AND version IS NOT NULL"
                    .into(),
            ),
            (
                "__diesel_schema_migrations".into(),
                "SELECT version::text FROM __diesel_schema_migrations".into(),
            ),
        ];
        for (table, query) in &histories {
            let exists: bool = client
                .query_one("SELECT to_regclass($1::text) IS NOT NULL", &[table])
                .await
                .map_err(|e| fail(lull_engine::pg_message(&e)))?
                .get(0);
            if !exists {
                continue;
            }
            // A table of that name written by another tool may have other
            // columns; such a table says nothing about this history.
            let Ok(rows) = client.query(query.as_str(), &[]).await else {
                continue;
            };
            facts.has_history = true;
            facts
                .applied
                .extend(rows.into_iter().map(|r| r.get::<_, String>(0)));
        }
        // golang-migrate's table: (version bigint, dirty boolean), one row.
        let through = client
            .query_opt(
                "SELECT max(version)::bigint FROM schema_migrations \
                 WHERE EXISTS (SELECT 1 FROM pg_attribute WHERE attname = 'dirty' \
                 AND NOT attisdropped AND attrelid = to_regclass('schema_migrations'))",
                &[],
            )
            .await;
        if let Ok(Some(row)) = through {
            facts.applied_through = row.get(0);
        }
        Ok(facts)
    })
}

/// How long one question about today's rows may run on the server.
pub const PROBE_TIMEOUT_MS: u64 = 5000;

/// Answers the data rules' probes on one read-only connection, each query
/// bounded by [`PROBE_TIMEOUT_MS`] and a short lock timeout; the same probe
/// is asked once.
pub struct Rows {
    runtime: tokio::runtime::Runtime,
    client: tokio_postgres::Client,
    answers: std::sync::Mutex<std::collections::HashMap<Probe, Outcome>>,
}

impl std::fmt::Debug for Rows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rows").finish_non_exhaustive()
    }
}

impl Rows {
    /// Connects for probes: read-only, with the timeouts set.
    pub fn connect(url: &str) -> Result<Rows, CliError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| CliError::new(format!("cannot start the async runtime: {e}")))?;
        let client = runtime.block_on(async {
            let client = lull_engine::db::connect(url, "lull lint")
                .await
                .map_err(|e| {
                    CliError::new(format!("cannot connect to {}: {e}", redact_url(url)))
                        .hint("pass --offline to lint without the database")
                })?;
            client
                .batch_execute(&format!(
                    "SET default_transaction_read_only = on; \
                     SET statement_timeout = {PROBE_TIMEOUT_MS}; SET lock_timeout = 1000"
                ))
                .await
                .map_err(|e| {
                    CliError::new(format!(
                        "cannot prepare the data checks on {}: {}",
                        redact_url(url),
                        lull_engine::pg_message(&e)
                    ))
                    .hint("pass --no-data-checks to lint without reading rows")
                })?;
            Ok::<_, CliError>(client)
        })?;
        Ok(Rows {
            runtime,
            client,
            answers: Default::default(),
        })
    }

    async fn ask(&self, probe: &Probe) -> Outcome {
        let exists = self
            .client
            .query_one("SELECT to_regclass($1::text) IS NOT NULL", &[&probe.table])
            .await;
        match exists {
            Ok(row) if !row.get::<_, bool>(0) => return Outcome::NoTable,
            Ok(_) => {}
            Err(e) => return Outcome::Unknown(lull_engine::pg_message(&e)),
        }
        match self.client.query_one(probe.sql.as_str(), &[]).await {
            Ok(row) => Outcome::Count(row.get::<_, i64>(0)),
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::QUERY_CANCELED) => {
                Outcome::Unknown(format!(
                    "the count did not finish within {} s (the table is large; check by hand)",
                    PROBE_TIMEOUT_MS / 1000
                ))
            }
            Err(e) => Outcome::Unknown(lull_engine::pg_message(&e)),
        }
    }
}

impl DataSource for Rows {
    fn answer(&self, probe: &Probe) -> Outcome {
        let mut answers = self.answers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(known) = answers.get(probe) {
            return known.clone();
        }
        let outcome = self.runtime.block_on(self.ask(probe));
        answers.insert(probe.clone(), outcome.clone());
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::DatabaseFacts;

    #[test]
    fn golang_migrates_one_row_marks_every_earlier_version_applied() {
        let facts = DatabaseFacts {
            applied: ["20240101_init".to_string(), "7".to_string()].into(),
            applied_through: Some(20240301),
            ..DatabaseFacts::default()
        };
        assert!(facts.is_applied("20240201", "20240201_users"));
        assert!(facts.is_applied("20240301", ""));
        assert!(!facts.is_applied("20240302", ""));
        assert!(facts.is_applied("x", "20240101_init"));
        // Not a number: only the rows count.
        assert!(!facts.is_applied("2024-01-01-000000", ""));
        let none = DatabaseFacts::default();
        assert!(!none.is_applied("1", "1_init"));
    }
}
