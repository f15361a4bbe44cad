//! diesel: `__diesel_schema_migrations (version varchar(50), run_on)`.
//!
//! As diesel_migrations keeps it: one row per applied migration whose
//! `version` is the directory name up to the first `_` with its dashes
//! removed (`2025-08-01-000016_add` is `20250801000016`), `run_on`
//! defaulting to the current timestamp; a revert deletes the row. No
//! checksums.

use lull_migrations::Migration;

use super::{lit, History, RecordContext, Tool};
use crate::error::EngineError;

/// The diesel adapter.
pub struct Diesel;

fn version(m: &Migration) -> String {
    m.version.replace('-', "")
}

impl History for Diesel {
    fn tool(&self) -> Tool {
        Tool::Diesel
    }

    fn table(&self) -> &'static str {
        "__diesel_schema_migrations"
    }

    fn create_sql(&self) -> String {
        "CREATE TABLE IF NOT EXISTS __diesel_schema_migrations (
            version VARCHAR(50) PRIMARY KEY NOT NULL,
            run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
        )"
        .into()
    }

    fn read_sql(&self) -> String {
        "SELECT version::text, NULL::text, true, NULL::text FROM __diesel_schema_migrations".into()
    }

    fn record_sql(&self, m: &Migration, _ctx: &RecordContext<'_>) -> Result<String, EngineError> {
        Ok(format!(
            "INSERT INTO __diesel_schema_migrations (version) VALUES ({}) ON CONFLICT DO NOTHING",
            lit(&version(m))
        ))
    }

    fn forget_sql(&self, m: &Migration, _migrations: &[Migration]) -> String {
        format!(
            "DELETE FROM __diesel_schema_migrations WHERE version = {}",
            lit(&version(m))
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::test_support::migrations;

    #[test]
    fn version_is_the_folder_prefix_without_dashes() {
        let dir = tempfile::tempdir().unwrap();
        let ms = migrations(dir.path(), &[("2025-08-01-000016_add/up.sql", "select 1;")]);
        let sql = Diesel
            .record_sql(&ms[0], &RecordContext::marked(&ms))
            .unwrap();
        assert!(sql.contains("VALUES ('20250801000016')"), "{sql}");
    }
}
