//! Alembic: `alembic_version (version_num varchar(32))`.
//!
//! As Alembic keeps it: one row per head revision, the revision id; with a
//! linear history that is one row, the newest applied revision, and every
//! revision before it counts as applied. `alembic stamp REV` only rewrites
//! this row, which is what `lull mark-applied` and `lull baseline` do.
//! lull's versions are the revision ids (name the Alembic revisions after
//! the migrations' versions). No checksums.

use lull_migrations::{compare_versions, Migration};

use super::{lit, History, RawRow, RecordContext, Tool, ToolRecord};
use crate::error::EngineError;

/// The Alembic adapter.
pub struct Alembic;

fn list(ms: &[&Migration]) -> String {
    let items: Vec<String> = ms.iter().map(|m| lit(&m.version)).collect();
    if items.is_empty() {
        "NULL".into()
    } else {
        items.join(", ")
    }
}

impl History for Alembic {
    fn tool(&self) -> Tool {
        Tool::Alembic
    }

    fn table(&self) -> &'static str {
        "alembic_version"
    }

    fn create_sql(&self) -> String {
        "CREATE TABLE IF NOT EXISTS alembic_version (version_num VARCHAR(32) NOT NULL, \
         CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))"
            .into()
    }

    fn read_sql(&self) -> String {
        "SELECT version_num::text, NULL::text, true, NULL::text FROM alembic_version".into()
    }

    fn interpret(&self, rows: &[RawRow], migrations: &[Migration]) -> Vec<ToolRecord> {
        let head = rows
            .iter()
            .filter_map(|r| migrations.iter().find(|m| m.version == r.key))
            .map(|m| m.version.clone())
            .max_by(|a, b| compare_versions(a, b));
        let Some(head) = head else {
            return Vec::new();
        };
        migrations
            .iter()
            .filter(|m| compare_versions(&m.version, &head).is_le())
            .map(|m| ToolRecord {
                version: m.version.clone(),
                checksum: None,
                ok: true,
            })
            .collect()
    }

    fn record_sql(&self, m: &Migration, ctx: &RecordContext<'_>) -> Result<String, EngineError> {
        let earlier: Vec<&Migration> = ctx
            .migrations
            .iter()
            .filter(|o| compare_versions(&o.version, &m.version).is_lt())
            .collect();
        let not_earlier: Vec<&Migration> = ctx
            .migrations
            .iter()
            .filter(|o| !compare_versions(&o.version, &m.version).is_lt())
            .collect();
        Ok(format!(
            "INSERT INTO alembic_version (version_num) SELECT {v} \
                 WHERE NOT EXISTS (SELECT 1 FROM alembic_version WHERE version_num IN ({later}));
             DELETE FROM alembic_version WHERE version_num IN ({earlier})",
            v = lit(&m.version),
            later = list(&not_earlier),
            earlier = list(&earlier),
        ))
    }

    fn forget_sql(&self, m: &Migration, migrations: &[Migration]) -> String {
        let previous = migrations
            .iter()
            .filter(|o| compare_versions(&o.version, &m.version).is_lt())
            .max_by(|a, b| compare_versions(&a.version, &b.version));
        let all: Vec<&Migration> = migrations.iter().collect();
        let mut sql = format!(
            "DELETE FROM alembic_version WHERE version_num = {}",
            lit(&m.version)
        );
        if let Some(p) = previous {
            sql.push_str(&format!(
                ";\nINSERT INTO alembic_version (version_num) SELECT {} \
                 WHERE NOT EXISTS (SELECT 1 FROM alembic_version WHERE version_num IN ({}))",
                lit(&p.version),
                list(&all)
            ));
        }
        sql
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::test_support::migrations;

    #[test]
    fn the_head_means_everything_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let ms = migrations(
            dir.path(),
            &[
                ("0001_a.sql", "select 1;"),
                ("0002_b.sql", "select 2;"),
                ("0003_c.sql", "select 3;"),
            ],
        );
        let rows = [RawRow {
            key: "0002".into(),
            checksum: None,
            ok: true,
            extra: None,
        }];
        let recs = Alembic.interpret(&rows, &ms);
        assert_eq!(
            recs.iter().map(|r| r.version.as_str()).collect::<Vec<_>>(),
            ["0001", "0002"]
        );
        let sql = Alembic
            .record_sql(&ms[2], &RecordContext::marked(&ms))
            .unwrap();
        assert!(
            sql.contains("DELETE FROM alembic_version WHERE version_num IN ('0001', '0002')"),
            "{sql}"
        );
    }
}
