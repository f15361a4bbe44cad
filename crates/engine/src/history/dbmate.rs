//! dbmate: `schema_migrations (version varchar(128) primary key)`.
//!
//! As dbmate's postgres driver keeps it: one row per applied migration
//! holding the file's version (the digits before the first `_`); a
//! rollback deletes it. No checksums. Rails has a table of the same name
//! and shape; it is told apart by Rails' `ar_internal_metadata` (see the
//! Rails adapter), and golang-migrate's by its `dirty` column.

use lull_migrations::Migration;

use super::{lit, History, RecordContext, Tool};
use crate::error::EngineError;

/// The dbmate adapter.
pub struct Dbmate;

/// Detects a `schema_migrations` with a `version` column and no `dirty`,
/// with or without `ar_internal_metadata`.
pub(crate) fn detect_sql(rails: bool) -> String {
    format!(
        "SELECT to_regclass('schema_migrations') IS NOT NULL \
             AND NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass('schema_migrations') \
                 AND attname = 'dirty' AND NOT attisdropped) \
             AND {} (to_regclass('ar_internal_metadata') IS NOT NULL)",
        if rails { "" } else { "NOT" }
    )
}

/// `INSERT` of the version, idempotent.
pub(crate) fn record(m: &Migration) -> String {
    format!(
        "INSERT INTO schema_migrations (version) VALUES ({}) ON CONFLICT DO NOTHING",
        lit(&m.version)
    )
}

/// `DELETE` of the version.
pub(crate) fn forget(m: &Migration) -> String {
    format!(
        "DELETE FROM schema_migrations WHERE version = {}",
        lit(&m.version)
    )
}

impl History for Dbmate {
    fn tool(&self) -> Tool {
        Tool::Dbmate
    }

    fn table(&self) -> &'static str {
        "schema_migrations"
    }

    fn detect_sql(&self) -> String {
        detect_sql(false)
    }

    fn create_sql(&self) -> String {
        "CREATE TABLE IF NOT EXISTS schema_migrations (version varchar(128) PRIMARY KEY)".into()
    }

    fn read_sql(&self) -> String {
        "SELECT version::text, NULL::text, true, NULL::text FROM schema_migrations".into()
    }

    fn record_sql(&self, m: &Migration, _ctx: &RecordContext<'_>) -> Result<String, EngineError> {
        Ok(record(m))
    }

    fn forget_sql(&self, m: &Migration, _migrations: &[Migration]) -> String {
        forget(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::test_support::migrations;

    #[test]
    fn version_row() {
        let dir = tempfile::tempdir().unwrap();
        let ms = migrations(
            dir.path(),
            &[(
                "20240101000000_init.sql",
                "-- migrate:up\nselect 1;\n-- migrate:down\n",
            )],
        );
        assert_eq!(
            Dbmate.record_sql(&ms[0], &RecordContext::marked(&ms)).unwrap(),
            "INSERT INTO schema_migrations (version) VALUES ('20240101000000') ON CONFLICT DO NOTHING"
        );
        assert!(detect_sql(false).contains("NOT (to_regclass('ar_internal_metadata')"));
    }
}
