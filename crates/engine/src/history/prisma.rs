//! Prisma Migrate: `_prisma_migrations`.
//!
//! The table as Prisma's schema engine creates it on PostgreSQL: `id`
//! (a UUID v4 as text, the primary key), `checksum` (SHA-256 of
//! `migration.sql`, 64 lower-case hex digits), `finished_at`,
//! `migration_name` (the directory name, `20240101120000_init`), `logs`,
//! `rolled_back_at`, `started_at` (default now) and `applied_steps_count`.
//! A row with `finished_at` set and `rolled_back_at` null is applied; one
//! with neither is a failed migration, which makes `prisma migrate deploy`
//! stop (P3009) until it is resolved. Prisma compares checksums allowing
//! the other line ending (its `script_matches_checksum` also hashes the
//! file with CRLF turned to LF and back) and accepts checksums written
//! without zero padding by old versions (prisma-engines issue 1887).
//!
//! Prisma's engine downloads a binary at install time, so it cannot run
//! on this project's machines; these rows follow the documented table
//! (<https://www.prisma.io/docs/orm/prisma-migrate/understanding-prisma-migrate/migration-histories>)
//! and the engine's checksum code.

use lull_migrations::Migration;
use sha2::{Digest, Sha256};

use super::{file_text, lit, History, RawRow, RecordContext, Tool, ToolRecord};
use crate::error::EngineError;

/// The Prisma adapter.
pub struct Prisma;

const TABLE: &str = "_prisma_migrations";

/// The directory name Prisma keys its rows by.
fn migration_name(m: &Migration) -> String {
    m.up.as_ref()
        .and_then(|f| f.path.parent())
        .and_then(|d| d.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| m.label())
}

fn sha256(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

fn padded(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The unpadded format of old Prisma versions: `{:x}` per byte.
fn unpadded(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:x}")).collect()
}

impl History for Prisma {
    fn tool(&self) -> Tool {
        Tool::Prisma
    }

    fn table(&self) -> &'static str {
        TABLE
    }

    fn create_sql(&self) -> String {
        "CREATE TABLE IF NOT EXISTS \"_prisma_migrations\" (
            \"id\" VARCHAR(36) PRIMARY KEY NOT NULL,
            \"checksum\" VARCHAR(64) NOT NULL,
            \"finished_at\" TIMESTAMPTZ,
            \"migration_name\" VARCHAR(255) NOT NULL,
            \"logs\" TEXT,
            \"rolled_back_at\" TIMESTAMPTZ,
            \"started_at\" TIMESTAMPTZ NOT NULL DEFAULT now(),
            \"applied_steps_count\" INTEGER NOT NULL DEFAULT 0
        )"
        .into()
    }

    fn read_sql(&self) -> String {
        "SELECT migration_name::text, checksum::text, finished_at IS NOT NULL, NULL::text \
         FROM \"_prisma_migrations\" WHERE rolled_back_at IS NULL ORDER BY started_at"
            .into()
    }

    fn interpret(&self, rows: &[RawRow], migrations: &[Migration]) -> Vec<ToolRecord> {
        // A finished row wins over a failed one of the same migration
        // (resolved and re-applied).
        let mut out: Vec<ToolRecord> = Vec::new();
        for r in rows {
            let Some(m) = migrations.iter().find(|m| migration_name(m) == r.key) else {
                continue;
            };
            match out.iter_mut().find(|o| o.version == m.version) {
                Some(o) if o.ok => {}
                Some(o) => {
                    o.ok = r.ok;
                    o.checksum = r.checksum.clone();
                }
                None => out.push(ToolRecord {
                    version: m.version.clone(),
                    checksum: r.checksum.clone(),
                    ok: r.ok,
                }),
            }
        }
        out
    }

    fn checksum(&self, m: &Migration) -> Result<Option<String>, EngineError> {
        Ok(Some(padded(&sha256(&file_text(m)?))))
    }

    fn checksum_matches(&self, recorded: &str, m: &Migration) -> Result<bool, EngineError> {
        let text = file_text(m)?;
        let variants = [
            text.clone(),
            text.replace("\r\n", "\n"),
            text.replace('\n', "\r\n"),
        ];
        Ok(variants.iter().any(|v| {
            let sum = sha256(v);
            if !recorded.is_empty() && recorded.len() != 64 {
                unpadded(&sum) == recorded
            } else {
                padded(&sum) == recorded
            }
        }))
    }

    fn refusal(&self, m: &Migration, recorded: &str, current: &str) -> String {
        format!(
            "Prisma would refuse this: the migration `{}` was modified after it was applied \
             (checksum in _prisma_migrations {recorded}, migration.sql now {current})",
            migration_name(m)
        )
    }

    fn record_sql(&self, m: &Migration, ctx: &RecordContext<'_>) -> Result<String, EngineError> {
        let name = lit(&migration_name(m));
        let checksum = lit(&self.checksum(m)?.unwrap_or_default());
        let steps = if ctx.marked { 0 } else { 1 };
        // A failed attempt Prisma left behind is resolved as rolled back,
        // as `prisma migrate resolve --rolled-back` would, so that
        // `migrate deploy` does not stop on it.
        Ok(format!(
            "UPDATE \"_prisma_migrations\" SET rolled_back_at = now() \
             WHERE migration_name = {name} AND finished_at IS NULL AND rolled_back_at IS NULL;
             INSERT INTO \"_prisma_migrations\" \
                 (id, checksum, finished_at, migration_name, logs, rolled_back_at, started_at, applied_steps_count) \
             SELECT gen_random_uuid()::text, {checksum}, now(), {name}, NULL, NULL, {started}, {steps} \
             WHERE NOT EXISTS (SELECT 1 FROM \"_prisma_migrations\" WHERE migration_name = {name} \
                 AND finished_at IS NOT NULL AND rolled_back_at IS NULL)",
            started = ctx.started_at,
        ))
    }

    fn forget_sql(&self, m: &Migration, _migrations: &[Migration]) -> String {
        format!(
            "DELETE FROM \"_prisma_migrations\" WHERE migration_name = {}",
            lit(&migration_name(m))
        )
    }

    fn repair_sql(&self, m: &Migration) -> Result<Option<String>, EngineError> {
        Ok(Some(format!(
            "UPDATE \"_prisma_migrations\" SET checksum = {} WHERE migration_name = {} \
             AND rolled_back_at IS NULL",
            lit(&self.checksum(m)?.unwrap_or_default()),
            lit(&migration_name(m))
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::test_support::migrations;

    #[test]
    fn checksum_is_sha256_hex_of_migration_sql() {
        let dir = tempfile::tempdir().unwrap();
        // FIPS 180-2 test vector: SHA-256("abc").
        let ms = migrations(dir.path(), &[("20240101000000_init/migration.sql", "abc")]);
        let sum = Prisma.checksum(&ms[0]).unwrap().unwrap();
        assert_eq!(
            sum,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(Prisma.checksum_matches(&sum, &ms[0]).unwrap());
        assert!(!Prisma.checksum_matches(&"0".repeat(64), &ms[0]).unwrap());
    }

    #[test]
    fn line_endings_and_old_unpadded_checksums_match_as_prisma_accepts_them() {
        let dir = tempfile::tempdir().unwrap();
        let ms = migrations(
            dir.path(),
            &[(
                "20240101000000_init/migration.sql",
                "SELECT 1;\r\nSELECT 2;\r\n",
            )],
        );
        let lf = padded(&sha256("SELECT 1;\nSELECT 2;\n"));
        assert!(Prisma.checksum_matches(&lf, &ms[0]).unwrap());
        let old = unpadded(&sha256("SELECT 1;\r\nSELECT 2;\r\n"));
        assert!(old.len() < 64);
        assert!(Prisma.checksum_matches(&old, &ms[0]).unwrap());
    }

    #[test]
    fn rows_are_keyed_by_directory_name() {
        let dir = tempfile::tempdir().unwrap();
        let ms = migrations(
            dir.path(),
            &[
                ("20240101000000_init/migration.sql", "select 1;"),
                ("20240102000000_two/migration.sql", "select 2;"),
            ],
        );
        let rows = vec![
            RawRow {
                key: "20240101000000_init".into(),
                checksum: Some("x".into()),
                ok: true,
                extra: None,
            },
            RawRow {
                key: "20240102000000_two".into(),
                checksum: Some("y".into()),
                ok: false,
                extra: None,
            },
        ];
        let recs = Prisma.interpret(&rows, &ms);
        assert_eq!(recs.len(), 2);
        assert!(recs[0].ok);
        assert!(!recs[1].ok);
        let sql = Prisma
            .record_sql(&ms[1], &RecordContext::marked(&ms))
            .unwrap();
        assert!(sql.contains("'20240102000000_two'"), "{sql}");
        assert!(sql.contains("gen_random_uuid()::text"), "{sql}");
    }
}
