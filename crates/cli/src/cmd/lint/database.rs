//! What `lull lint` reads from the target database when a URL is given:
//! the server's major version, the indexes in its catalog (for
//! `unindexed-foreign-key`), its partitioned tables and their partitions
//! (for `concurrent-index-on-partitioned-table` and the per-partition
//! fix), and which migrations are already applied
//! there (so the pending ones are linted as one unit).
//!
//! Read-only: it never creates lull's schema or any table. History tables
//! of the tools lull reads (lull's own, sqlx, golang-migrate / dbmate,
//! Prisma, Flyway, diesel) are read when they exist.

use std::collections::BTreeSet;

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
    /// Whether any history table was found at all.
    pub has_history: bool,
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
        Ok(facts)
    })
}
