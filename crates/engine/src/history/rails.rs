//! Rails (Active Record): `schema_migrations (version varchar primary
//! key)` beside `ar_internal_metadata`.
//!
//! As Active Record's `SchemaMigration` keeps it: one row per applied
//! migration holding its version (the timestamp before the first `_` of
//! the file name); `db:rollback` deletes it. For Rails teams that run SQL
//! migrations through lull, or that use `lull mark-applied` for "skip now,
//! build the index later" on a migration Rails will otherwise run.

use lull_migrations::Migration;

use super::{dbmate, History, RecordContext, Tool};
use crate::error::EngineError;

/// The Rails adapter.
pub struct Rails;

impl History for Rails {
    fn tool(&self) -> Tool {
        Tool::Rails
    }

    fn table(&self) -> &'static str {
        "schema_migrations"
    }

    fn detect_sql(&self) -> String {
        dbmate::detect_sql(true)
    }

    fn create_sql(&self) -> String {
        "CREATE TABLE IF NOT EXISTS schema_migrations (version character varying NOT NULL PRIMARY KEY)"
            .into()
    }

    fn read_sql(&self) -> String {
        "SELECT version::text, NULL::text, true, NULL::text FROM schema_migrations".into()
    }

    fn record_sql(&self, m: &Migration, _ctx: &RecordContext<'_>) -> Result<String, EngineError> {
        Ok(dbmate::record(m))
    }

    fn forget_sql(&self, m: &Migration, _migrations: &[Migration]) -> String {
        dbmate::forget(m)
    }
}
