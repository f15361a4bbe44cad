//! Flyway: `flyway_schema_history`.
//!
//! The table as Flyway documents it (<https://documentation.red-gate.com/fd/flyway-schema-history-table-277579008.html>):
//! `installed_rank` (1, 2, ... in the order applied; the primary key),
//! `version` (`1.2` for `V1_2__x.sql`), `description` (the name with `_`
//! read as spaces), `type` (`SQL`, `BASELINE`, `UNDO_SQL`, ...), `script`
//! (the file name), `checksum`, `installed_by`, `installed_on`,
//! `execution_time` (ms) and `success`. A `BASELINE` row counts every
//! version up to it as applied.
//!
//! The checksum is Flyway's `ChecksumCalculator`: one CRC-32 (IEEE) over
//! the UTF-8 bytes of every line of the file with its line terminator
//! (`\n`, `\r\n` or `\r`) removed and a BOM dropped from the first line,
//! stored as a signed 32-bit integer. `flyway validate` and `migrate`
//! refuse a file whose checksum differs ("Migration checksum mismatch");
//! `flyway repair` updates it and deletes failed rows.
//!
//! Flyway is a JVM program downloaded as an archive, so it cannot be
//! installed on this project's machines; these rows follow the documented
//! table and the checksum is tested against CRC-32's standard check value.

use lull_migrations::Migration;

use super::{file_name, file_text, lit, History, RawRow, RecordContext, Tool, ToolRecord};
use crate::error::EngineError;

/// The Flyway adapter.
pub struct Flyway;

/// Flyway's checksum of a file's text.
pub(crate) fn checksum(text: &str) -> i32 {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut crc = crc32fast::Hasher::new();
    let bytes = text.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\n' => {
                crc.update(&bytes[start..i]);
                start = i + 1;
            }
            b'\r' => {
                crc.update(&bytes[start..i]);
                if bytes.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    crc.update(&bytes[start..]);
    crc.finalize() as i32
}

impl History for Flyway {
    fn tool(&self) -> Tool {
        Tool::Flyway
    }

    fn table(&self) -> &'static str {
        "flyway_schema_history"
    }

    fn create_sql(&self) -> String {
        "CREATE TABLE IF NOT EXISTS \"flyway_schema_history\" (
            \"installed_rank\" INT NOT NULL CONSTRAINT \"flyway_schema_history_pk\" PRIMARY KEY,
            \"version\" VARCHAR(50),
            \"description\" VARCHAR(200) NOT NULL,
            \"type\" VARCHAR(20) NOT NULL,
            \"script\" VARCHAR(1000) NOT NULL,
            \"checksum\" INTEGER,
            \"installed_by\" VARCHAR(100) NOT NULL,
            \"installed_on\" TIMESTAMP NOT NULL DEFAULT now(),
            \"execution_time\" INTEGER NOT NULL,
            \"success\" BOOLEAN NOT NULL
        );
        CREATE INDEX IF NOT EXISTS \"flyway_schema_history_s_idx\" ON \"flyway_schema_history\" (\"success\")"
            .into()
    }

    fn read_sql(&self) -> String {
        "SELECT version::text, checksum::text, success, type::text FROM flyway_schema_history \
         WHERE version IS NOT NULL ORDER BY installed_rank"
            .into()
    }

    fn interpret(&self, rows: &[RawRow], migrations: &[Migration]) -> Vec<ToolRecord> {
        let mut out: Vec<ToolRecord> = Vec::new();
        for r in rows {
            let kind = r.extra.as_deref().unwrap_or("SQL");
            if kind == "BASELINE" {
                for m in migrations
                    .iter()
                    .filter(|m| lull_migrations::compare_versions(&m.version, &r.key).is_le())
                {
                    out.retain(|o| o.version != m.version);
                    out.push(ToolRecord {
                        version: m.version.clone(),
                        checksum: None,
                        ok: true,
                    });
                }
                continue;
            }
            let Some(m) = super::find(migrations, &r.key) else {
                continue;
            };
            out.retain(|o| o.version != m.version);
            if kind == "UNDO_SQL" || kind == "DELETE" {
                continue;
            }
            out.push(ToolRecord {
                version: m.version.clone(),
                checksum: r.checksum.clone(),
                ok: r.ok,
            });
        }
        out
    }

    fn checksum(&self, m: &Migration) -> Result<Option<String>, EngineError> {
        Ok(Some(checksum(&file_text(m)?).to_string()))
    }

    fn refusal(&self, m: &Migration, recorded: &str, current: &str) -> String {
        format!(
            "Flyway would refuse this: Migration checksum mismatch for migration version {} \
             (applied to database: {recorded}, resolved locally: {current})",
            m.version
        )
    }

    fn record_sql(&self, m: &Migration, ctx: &RecordContext<'_>) -> Result<String, EngineError> {
        let v = lit(&m.version);
        // Failed rows of the version go first, as `flyway repair` removes them.
        Ok(format!(
            "DELETE FROM flyway_schema_history WHERE version = {v} AND NOT success;
             INSERT INTO flyway_schema_history (installed_rank, version, description, type, script, \
                 checksum, installed_by, installed_on, execution_time, success) \
             SELECT n.rank, {v}, {desc}, 'SQL', {script}, {checksum}, current_user, now(), ({elapsed})::int, true \
             FROM (SELECT coalesce(max(installed_rank), 0) + 1 AS rank FROM flyway_schema_history) n \
             WHERE NOT EXISTS (SELECT 1 FROM flyway_schema_history WHERE version = {v} AND success \
                 AND type <> 'UNDO_SQL')",
            desc = lit(&m.name.replace('_', " ")),
            script = lit(&file_name(m)),
            checksum = checksum(&file_text(m)?),
            elapsed = ctx.elapsed_ms,
        ))
    }

    fn forget_sql(&self, m: &Migration, _migrations: &[Migration]) -> String {
        format!(
            "DELETE FROM flyway_schema_history WHERE version = {}",
            lit(&m.version)
        )
    }

    fn repair_sql(&self, m: &Migration) -> Result<Option<String>, EngineError> {
        Ok(Some(format!(
            "UPDATE flyway_schema_history SET checksum = {} WHERE version = {} AND type = 'SQL'",
            checksum(&file_text(m)?),
            lit(&m.version)
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::test_support::migrations;

    /// CRC-32 (IEEE 802.3)'s standard check value: CRC of "123456789" is
    /// 0xCBF43926, which Flyway stores as the signed int -873187034. Line
    /// terminators are not hashed, so the same digits over lines give the
    /// same checksum (Flyway's ChecksumCalculator reads with readLine).
    #[test]
    fn checksum_is_crc32_of_lines_without_terminators_as_signed_int() {
        assert_eq!(0xCBF4_3926u32 as i32, -873_187_034);
        assert_eq!(checksum("123456789"), -873_187_034);
        assert_eq!(checksum("1234\n56789\n"), -873_187_034);
        assert_eq!(checksum("1234\r\n567\r89"), -873_187_034);
        assert_eq!(checksum("\u{feff}123456789"), -873_187_034);
        assert_ne!(checksum("123456780"), -873_187_034);
    }

    #[test]
    fn baseline_counts_every_version_up_to_it() {
        let dir = tempfile::tempdir().unwrap();
        let ms = migrations(
            dir.path(),
            &[
                ("V1__a.sql", "select 1;"),
                ("V1_1__b.sql", "select 2;"),
                ("V2__c.sql", "select 3;"),
            ],
        );
        let rows = [RawRow {
            key: "1.1".into(),
            checksum: None,
            ok: true,
            extra: Some("BASELINE".into()),
        }];
        let recs = Flyway.interpret(&rows, &ms);
        assert_eq!(
            recs.iter().map(|r| r.version.as_str()).collect::<Vec<_>>(),
            ["1", "1.1"]
        );
    }

    #[test]
    fn row_has_flyways_columns() {
        let dir = tempfile::tempdir().unwrap();
        let ms = migrations(dir.path(), &[("V1_2__add_users.sql", "123456789")]);
        let sql = Flyway
            .record_sql(&ms[0], &RecordContext::marked(&ms))
            .unwrap();
        assert!(
            sql.contains("'1.2', 'add users', 'SQL', 'V1_2__add_users.sql', -873187034"),
            "{sql}"
        );
    }
}
