//! sqlx: `_sqlx_migrations`.
//!
//! As sqlx's PostgreSQL driver writes it (sqlx-postgres `migrate.rs`): one
//! row per applied migration, `version bigint` primary key, `description`
//! (the file name's description with `_` read as spaces), `installed_on`
//! (default `now()`), `success`, `checksum bytea` = SHA-384 of the up
//! file's exact text, `execution_time` in nanoseconds. A revert deletes the
//! row. `sqlx migrate run` refuses a migration whose checksum changed
//! ("was previously applied but has been modified").

use lull_migrations::Migration;
use sha2::{Digest, Sha384};

use super::{file_text, lit, History, RecordContext, Tool};
use crate::error::EngineError;

/// The sqlx adapter.
pub struct Sqlx;

const TABLE: &str = "_sqlx_migrations";

/// SHA-384 of the text, lower-case hex (the table keeps the bytes).
pub(crate) fn sha384_hex(text: &str) -> String {
    hex(&Sha384::digest(text.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn description(m: &Migration) -> String {
    m.name.replace('_', " ")
}

impl History for Sqlx {
    fn tool(&self) -> Tool {
        Tool::Sqlx
    }

    fn table(&self) -> &'static str {
        TABLE
    }

    fn create_sql(&self) -> String {
        "CREATE TABLE IF NOT EXISTS _sqlx_migrations (
            version BIGINT PRIMARY KEY,
            description TEXT NOT NULL,
            installed_on TIMESTAMPTZ NOT NULL DEFAULT now(),
            success BOOLEAN NOT NULL,
            checksum BYTEA NOT NULL,
            execution_time BIGINT NOT NULL
        )"
        .into()
    }

    fn read_sql(&self) -> String {
        "SELECT version::text, encode(checksum, 'hex'), success, NULL::text \
         FROM _sqlx_migrations ORDER BY version"
            .into()
    }

    fn checksum(&self, m: &Migration) -> Result<Option<String>, EngineError> {
        Ok(Some(sha384_hex(&file_text(m)?)))
    }

    fn refusal(&self, m: &Migration, recorded: &str, current: &str) -> String {
        format!(
            "sqlx would refuse this: migration {} was previously applied but has been modified \
             (SHA-384 in _sqlx_migrations {recorded}, file now {current})",
            m.version
        )
    }

    fn record_sql(&self, m: &Migration, ctx: &RecordContext<'_>) -> Result<String, EngineError> {
        let checksum = self.checksum(m)?.unwrap_or_default();
        // A failed row of an older sqlx (success = false) becomes the
        // finished one, as a successful re-run would leave it.
        Ok(format!(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES ({version}, {desc}, TRUE, decode({checksum}, 'hex'), ({elapsed}) * 1000000) \
             ON CONFLICT (version) DO UPDATE SET success = TRUE, checksum = EXCLUDED.checksum, \
                 description = EXCLUDED.description",
            version = version_literal(m)?,
            desc = lit(&description(m)),
            checksum = lit(&checksum),
            elapsed = ctx.elapsed_ms,
        ))
    }

    fn forget_sql(&self, m: &Migration, _migrations: &[Migration]) -> String {
        format!(
            "DELETE FROM _sqlx_migrations WHERE version = {}",
            version_literal(m).unwrap_or_else(|_| "NULL".into())
        )
    }

    fn repair_sql(&self, m: &Migration) -> Result<Option<String>, EngineError> {
        let checksum = self.checksum(m)?.unwrap_or_default();
        Ok(Some(format!(
            "UPDATE _sqlx_migrations SET checksum = decode({}, 'hex') WHERE version = {}",
            lit(&checksum),
            version_literal(m)?
        )))
    }
}

/// sqlx versions are `i64`; anything else cannot be in its table.
fn version_literal(m: &Migration) -> Result<String, EngineError> {
    m.version
        .parse::<i64>()
        .map(|v| v.to_string())
        .map_err(|_| EngineError::Other {
            message: format!(
                "migration {} has a version sqlx cannot record (it keeps a bigint)",
                m.label()
            ),
            hint: Some("set `history = \"lull\"` in lull.toml to keep only lull's tables".into()),
            kind: crate::error::ErrorKind::Error,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::test_support::migrations;

    #[test]
    fn checksum_is_sha384_of_the_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        // FIPS 180-2 test vector: SHA-384("abc").
        let ms = migrations(dir.path(), &[("1_abc.sql", "abc")]);
        assert_eq!(
            Sqlx.checksum(&ms[0]).unwrap().unwrap(),
            "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed\
             8086072ba1e7cc2358baeca134c825a7"
        );
    }

    #[test]
    fn row_is_written_as_sqlx_writes_it() {
        let dir = tempfile::tempdir().unwrap();
        let ms = migrations(dir.path(), &[("0003_add_users_table.sql", "select 1;\n")]);
        let sql = Sqlx
            .record_sql(&ms[0], &RecordContext::marked(&ms))
            .unwrap();
        assert!(
            sql.contains("VALUES (3, 'add users table', TRUE, decode('"),
            "{sql}"
        );
        assert!(sql.contains("ON CONFLICT (version)"), "{sql}");
        assert_eq!(
            Sqlx.forget_sql(&ms[0], &ms),
            "DELETE FROM _sqlx_migrations WHERE version = 3"
        );
    }
}
