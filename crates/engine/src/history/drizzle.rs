//! Drizzle: `drizzle.__drizzle_migrations (id serial, hash text,
//! created_at bigint)`.
//!
//! As drizzle-orm's PostgreSQL migrator keeps it: one row per applied
//! migration with `hash` = SHA-256 (hex) of the `.sql` file's text (CRLF
//! read as LF) and `created_at` = the `when` of the file's entry in
//! `meta/_journal.json`. Drizzle decides what to run from `created_at`
//! alone: it reads the largest and runs every journal entry whose `when`
//! is greater. So a row with a wrong `created_at` makes Drizzle skip (or
//! re-run) later migrations; lull always writes the journal's value, and
//! counts as applied what Drizzle would. Drizzle has no down migrations
//! and never compares hashes.

use std::collections::BTreeMap;
use std::path::Path;

use lull_migrations::Migration;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{file_text, lit, History, RawRow, RecordContext, Tool, ToolRecord};
use crate::error::{EngineError, ErrorKind};

/// The Drizzle adapter.
pub struct Drizzle;

const TABLE: &str = "\"drizzle\".\"__drizzle_migrations\"";

#[derive(Deserialize)]
struct Journal {
    entries: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    when: i64,
    tag: String,
}

/// `tag -> when` from the journal beside the migrations.
fn journal(dir: &Path) -> Result<BTreeMap<String, i64>, EngineError> {
    let path = dir.join("meta").join("_journal.json");
    let text = std::fs::read_to_string(&path).map_err(|e| EngineError::Other {
        message: format!("cannot read Drizzle's journal {}: {e}", path.display()),
        hint: Some(
            "Drizzle records each migration with its journal entry's `when`; run \
             `drizzle-kit generate` so the journal exists, or set `history = \"lull\"`"
                .into(),
        ),
        kind: ErrorKind::Error,
    })?;
    let j: Journal = serde_json::from_str(&text).map_err(|e| EngineError::Other {
        message: format!("{} is not a Drizzle journal: {e}", path.display()),
        hint: None,
        kind: ErrorKind::Error,
    })?;
    Ok(j.entries.into_iter().map(|e| (e.tag, e.when)).collect())
}

fn dir_of(m: &Migration) -> Option<&Path> {
    m.up.as_ref().and_then(|f| f.path.parent())
}

fn when(m: &Migration) -> Result<i64, EngineError> {
    let dir = dir_of(m).unwrap_or(Path::new("."));
    journal(dir)?
        .get(&m.label())
        .copied()
        .ok_or_else(|| EngineError::Other {
            message: format!(
                "Drizzle's journal {} has no entry for {}; Drizzle would never run it",
                dir.join("meta").join("_journal.json").display(),
                m.label()
            ),
            hint: Some("add it with `drizzle-kit generate` (or an entry by hand) first".into()),
            kind: ErrorKind::Error,
        })
}

/// Drizzle's hash of a file's text.
pub(crate) fn hash(text: &str) -> String {
    let text = text.replace("\r\n", "\n");
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl History for Drizzle {
    fn tool(&self) -> Tool {
        Tool::Drizzle
    }

    fn table(&self) -> &'static str {
        "drizzle.__drizzle_migrations"
    }

    fn create_sql(&self) -> String {
        format!(
            "CREATE SCHEMA IF NOT EXISTS \"drizzle\";
             CREATE TABLE IF NOT EXISTS {TABLE} (id SERIAL PRIMARY KEY, hash text NOT NULL, created_at bigint)"
        )
    }

    fn read_sql(&self) -> String {
        format!("SELECT hash, NULL::text, true, created_at::text FROM {TABLE} ORDER BY created_at")
    }

    fn interpret(&self, rows: &[RawRow], migrations: &[Migration]) -> Vec<ToolRecord> {
        let last = rows
            .iter()
            .filter_map(|r| r.extra.as_deref()?.parse::<i64>().ok())
            .max();
        let Some(last) = last else {
            return Vec::new();
        };
        let Some(entries) = migrations
            .first()
            .and_then(dir_of)
            .and_then(|d| journal(d).ok())
        else {
            return Vec::new();
        };
        migrations
            .iter()
            .filter(|m| entries.get(&m.label()).is_some_and(|w| *w <= last))
            .map(|m| ToolRecord {
                version: m.version.clone(),
                checksum: None,
                ok: true,
            })
            .collect()
    }

    fn record_sql(&self, m: &Migration, _ctx: &RecordContext<'_>) -> Result<String, EngineError> {
        let when = when(m)?;
        Ok(format!(
            "INSERT INTO {TABLE} (\"hash\", \"created_at\") SELECT {hash}, {when} \
             WHERE NOT EXISTS (SELECT 1 FROM {TABLE} WHERE created_at = {when})",
            hash = lit(&hash(&file_text(m)?)),
        ))
    }

    fn forget_sql(&self, m: &Migration, _migrations: &[Migration]) -> String {
        match when(m) {
            Ok(when) => format!("DELETE FROM {TABLE} WHERE created_at = {when}"),
            Err(_) => "SELECT 1".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::test_support::migrations;

    const JOURNAL: &str = r#"{"version":"7","dialect":"postgresql","entries":[
        {"idx":0,"version":"7","when":1700000000000,"tag":"0000_init","breakpoints":true},
        {"idx":1,"version":"7","when":1700000100000,"tag":"0001_more","breakpoints":true}]}"#;

    #[test]
    fn created_at_is_the_journal_when_and_applied_follows_drizzle() {
        let dir = tempfile::tempdir().unwrap();
        let ms = migrations(
            dir.path(),
            &[
                ("meta/_journal.json", JOURNAL),
                (
                    "0000_init.sql",
                    "CREATE TABLE a (id int);\r\n--> statement-breakpoint\r\nSELECT 1;",
                ),
                ("0001_more.sql", "CREATE TABLE b (id int);"),
            ],
        );
        let sql = Drizzle
            .record_sql(&ms[1], &RecordContext::marked(&ms))
            .unwrap();
        assert!(sql.contains("1700000100000"), "{sql}");
        assert!(sql.contains(&hash("CREATE TABLE b (id int);")), "{sql}");
        assert_eq!(
            hash("x\r\ny"),
            hash("x\ny"),
            "drizzle-orm hashes the text with CRLF read as LF"
        );
        let rows = [RawRow {
            key: "whatever".into(),
            checksum: None,
            ok: true,
            extra: Some("1700000000000".into()),
        }];
        let recs = Drizzle.interpret(&rows, &ms);
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].version, "0000");
    }
}
