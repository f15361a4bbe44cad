//! Knex: `knex_migrations (id, name, batch, migration_time)` and
//! `knex_migrations_lock`.
//!
//! As Knex's migrator keeps them: one row per applied migration whose
//! `name` is the migration's file name (`20240101120000_create_users.js`),
//! `batch` the run that applied it (`knex migrate:rollback` undoes the last
//! batch) and `migration_time` when; the lock table holds one row
//! `is_locked = 0`. lull writes the file name with the extension the
//! table's rows already use (`.js` when it is empty), one batch per
//! migration. No checksums.

use lull_migrations::Migration;

use super::{lit, History, RecordContext, Tool};
use crate::error::EngineError;

/// The Knex adapter.
pub struct Knex;

/// SQL for the name Knex keys the row by: the label plus the extension
/// of the newest row.
fn name_sql(m: &Migration) -> String {
    format!(
        "{} || coalesce((SELECT substring(name from '\\.[A-Za-z0-9]+$') FROM knex_migrations \
             ORDER BY id DESC LIMIT 1), '.js')",
        lit(&m.label())
    )
}

impl History for Knex {
    fn tool(&self) -> Tool {
        Tool::Knex
    }

    fn table(&self) -> &'static str {
        "knex_migrations"
    }

    fn create_sql(&self) -> String {
        "CREATE TABLE IF NOT EXISTS knex_migrations (id serial PRIMARY KEY, name varchar(255), \
             batch integer, migration_time timestamptz);
         CREATE TABLE IF NOT EXISTS knex_migrations_lock (index serial PRIMARY KEY, is_locked integer);
         INSERT INTO knex_migrations_lock (is_locked) SELECT 0 \
             WHERE NOT EXISTS (SELECT 1 FROM knex_migrations_lock)"
            .into()
    }

    fn read_sql(&self) -> String {
        "SELECT name::text, NULL::text, true, NULL::text FROM knex_migrations ORDER BY id".into()
    }

    fn record_sql(&self, m: &Migration, _ctx: &RecordContext<'_>) -> Result<String, EngineError> {
        let prefix = lit(&format!("{}.%", m.label()));
        Ok(format!(
            "INSERT INTO knex_migrations (name, batch, migration_time) \
             SELECT {name}, coalesce((SELECT max(batch) FROM knex_migrations), 0) + 1, now() \
             WHERE NOT EXISTS (SELECT 1 FROM knex_migrations WHERE name LIKE {prefix})",
            name = name_sql(m),
        ))
    }

    fn forget_sql(&self, m: &Migration, _migrations: &[Migration]) -> String {
        format!(
            "DELETE FROM knex_migrations WHERE name LIKE {}",
            lit(&format!("{}.%", m.label()))
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::test_support::migrations;

    #[test]
    fn name_is_the_file_name_with_knex_extension() {
        let dir = tempfile::tempdir().unwrap();
        let ms = migrations(
            dir.path(),
            &[("20240101120000_create_users.sql", "select 1;")],
        );
        let sql = Knex
            .record_sql(&ms[0], &RecordContext::marked(&ms))
            .unwrap();
        assert!(
            sql.contains("'20240101120000_create_users' || coalesce("),
            "{sql}"
        );
        assert!(sql.contains("'.js')"), "{sql}");
    }
}
