//! golang-migrate: `schema_migrations (version bigint, dirty boolean)`.
//!
//! As golang-migrate's postgres driver keeps it: at most one row, the
//! version of the last applied migration, `dirty = true` while a migration
//! runs (and left so when it failed: `migrate` then refuses with "Dirty
//! database version N. Fix and force version."). Every migration up to
//! that version counts as applied. Going down sets the version of the
//! migration before; going below the first empties the table. `migrate
//! force N` writes the row as is, which is what `lull baseline N` does.
//! No checksums.

use lull_migrations::{compare_versions, Migration};

use super::{History, RawRow, RecordContext, Tool, ToolRecord};
use crate::error::{EngineError, ErrorKind};

/// The golang-migrate adapter.
pub struct GolangMigrate;

fn version_literal(m: &Migration) -> Result<String, EngineError> {
    m.version
        .parse::<u64>()
        .map(|v| v.to_string())
        .map_err(|_| EngineError::Other {
            message: format!(
                "migration {} has a version golang-migrate cannot record (it keeps a bigint)",
                m.label()
            ),
            hint: Some("set `history = \"lull\"` in lull.toml to keep only lull's tables".into()),
            kind: ErrorKind::Error,
        })
}

impl History for GolangMigrate {
    fn tool(&self) -> Tool {
        Tool::GolangMigrate
    }

    fn table(&self) -> &'static str {
        "schema_migrations"
    }

    fn detect_sql(&self) -> String {
        // dbmate and Rails use the same table name without `dirty`.
        "SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass('schema_migrations') \
             AND attname = 'dirty' AND NOT attisdropped)"
            .into()
    }

    fn create_sql(&self) -> String {
        "CREATE TABLE IF NOT EXISTS schema_migrations (version bigint NOT NULL PRIMARY KEY, \
         dirty boolean NOT NULL)"
            .into()
    }

    fn read_sql(&self) -> String {
        "SELECT version::text, NULL::text, NOT dirty, NULL::text FROM schema_migrations".into()
    }

    fn interpret(&self, rows: &[RawRow], migrations: &[Migration]) -> Vec<ToolRecord> {
        let Some(row) = rows.iter().max_by(|a, b| compare_versions(&a.key, &b.key)) else {
            return Vec::new();
        };
        migrations
            .iter()
            .filter(|m| compare_versions(&m.version, &row.key).is_le())
            .map(|m| ToolRecord {
                version: m.version.clone(),
                checksum: None,
                ok: row.ok || compare_versions(&m.version, &row.key).is_lt(),
            })
            .collect()
    }

    fn record_sql(&self, m: &Migration, _ctx: &RecordContext<'_>) -> Result<String, EngineError> {
        let v = version_literal(m)?;
        // The one row moves forward only: recording an older migration
        // (out of order) leaves a later version in place.
        Ok(format!(
            "INSERT INTO schema_migrations (version, dirty) SELECT {v}, false \
                 WHERE NOT EXISTS (SELECT 1 FROM schema_migrations WHERE version >= {v});
             UPDATE schema_migrations SET dirty = false WHERE version = {v};
             DELETE FROM schema_migrations WHERE version < (SELECT max(version) FROM schema_migrations)"
        ))
    }

    fn forget_sql(&self, m: &Migration, migrations: &[Migration]) -> String {
        let Ok(v) = version_literal(m) else {
            return "SELECT 1".into();
        };
        let previous = migrations
            .iter()
            .filter(|o| compare_versions(&o.version, &m.version).is_lt())
            .filter_map(|o| o.version.parse::<u64>().ok())
            .max();
        let mut sql = format!("DELETE FROM schema_migrations WHERE version >= {v}");
        if let Some(p) = previous {
            sql.push_str(&format!(
                ";\nINSERT INTO schema_migrations (version, dirty) SELECT {p}, false \
                 WHERE NOT EXISTS (SELECT 1 FROM schema_migrations)"
            ));
        }
        sql
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::test_support::migrations;

    fn three(dir: &std::path::Path) -> Vec<Migration> {
        migrations(
            dir,
            &[
                ("1_a.up.sql", "select 1;"),
                ("1_a.down.sql", "select 1;"),
                ("2_b.up.sql", "select 2;"),
                ("2_b.down.sql", "select 2;"),
                ("3_c.up.sql", "select 3;"),
                ("3_c.down.sql", "select 3;"),
            ],
        )
    }

    #[test]
    fn one_row_means_everything_up_to_it() {
        let dir = tempfile::tempdir().unwrap();
        let ms = three(dir.path());
        let row = |ok| RawRow {
            key: "2".into(),
            checksum: None,
            ok,
            extra: None,
        };
        let recs = GolangMigrate.interpret(&[row(true)], &ms);
        assert_eq!(
            recs.iter()
                .map(|r| (r.version.as_str(), r.ok))
                .collect::<Vec<_>>(),
            [("1", true), ("2", true)]
        );
        let dirty = GolangMigrate.interpret(&[row(false)], &ms);
        assert_eq!(
            dirty
                .iter()
                .map(|r| (r.version.as_str(), r.ok))
                .collect::<Vec<_>>(),
            [("1", true), ("2", false)]
        );
    }

    #[test]
    fn down_moves_to_the_previous_version() {
        let dir = tempfile::tempdir().unwrap();
        let ms = three(dir.path());
        let sql = GolangMigrate.forget_sql(&ms[2], &ms);
        assert!(sql.contains("version >= 3"), "{sql}");
        assert!(sql.contains("SELECT 2, false"), "{sql}");
        let first = GolangMigrate.forget_sql(&ms[0], &ms);
        assert!(!first.contains("INSERT"), "{first}");
    }
}
