//! refinery: `refinery_schema_history (version int4, name, applied_on,
//! checksum)`.
//!
//! As refinery_core writes it: one row per applied migration with
//! `version` (the number of `V{n}__{name}.sql`), `name`, `applied_on` (an
//! RFC 3339 timestamp as text) and `checksum` (a `u64` as text): SipHash
//! 1-3 with zero keys over the name, the version as `i32` and the file's
//! SQL, each fed the way Rust's `Hash` feeds them (a `str` is its bytes
//! and a `0xff`; an `i32` its four bytes). refinery refuses to run when an
//! applied migration's name or checksum differs from the file's
//! ("divergent"). No down migrations.

use std::hash::{Hash, Hasher};

use lull_migrations::Migration;
use siphasher::sip::SipHasher13;

use super::{file_text, lit, History, RecordContext, Tool};
use crate::error::{EngineError, ErrorKind};

/// The refinery adapter.
pub struct Refinery;

fn version(m: &Migration) -> Result<i32, EngineError> {
    m.version.parse::<i32>().map_err(|_| EngineError::Other {
        message: format!(
            "migration {} has a version refinery cannot record (it keeps an int4)",
            m.label()
        ),
        hint: Some("set `history = \"lull\"` in lull.toml to keep only lull's tables".into()),
        kind: ErrorKind::Error,
    })
}

/// refinery's checksum of a migration.
pub(crate) fn checksum(name: &str, version: i32, sql: &str) -> u64 {
    let mut h = SipHasher13::new();
    name.hash(&mut h);
    version.hash(&mut h);
    sql.hash(&mut h);
    h.finish()
}

impl History for Refinery {
    fn tool(&self) -> Tool {
        Tool::Refinery
    }

    fn table(&self) -> &'static str {
        "refinery_schema_history"
    }

    fn create_sql(&self) -> String {
        "CREATE TABLE IF NOT EXISTS refinery_schema_history (
            version INT4 PRIMARY KEY,
            name VARCHAR(255),
            applied_on VARCHAR(255),
            checksum VARCHAR(255))"
            .into()
    }

    fn read_sql(&self) -> String {
        "SELECT version::text, checksum::text, true, name::text FROM refinery_schema_history \
         ORDER BY version"
            .into()
    }

    fn checksum(&self, m: &Migration) -> Result<Option<String>, EngineError> {
        Ok(Some(
            checksum(&m.name, version(m)?, &file_text(m)?).to_string(),
        ))
    }

    fn refusal(&self, m: &Migration, recorded: &str, current: &str) -> String {
        format!(
            "refinery would refuse this: applied migration V{}__{} is different than the \
             filesystem one (checksum in refinery_schema_history {recorded}, file now {current})",
            m.version, m.name
        )
    }

    fn record_sql(&self, m: &Migration, _ctx: &RecordContext<'_>) -> Result<String, EngineError> {
        Ok(format!(
            "INSERT INTO refinery_schema_history (version, name, applied_on, checksum) \
             VALUES ({v}, {name}, to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), {sum}) \
             ON CONFLICT (version) DO NOTHING",
            v = version(m)?,
            name = lit(&m.name),
            sum = lit(&self.checksum(m)?.unwrap_or_default()),
        ))
    }

    fn forget_sql(&self, m: &Migration, _migrations: &[Migration]) -> String {
        match version(m) {
            Ok(v) => format!("DELETE FROM refinery_schema_history WHERE version = {v}"),
            Err(_) => "SELECT 1".into(),
        }
    }

    fn repair_sql(&self, m: &Migration) -> Result<Option<String>, EngineError> {
        Ok(Some(format!(
            "UPDATE refinery_schema_history SET checksum = {}, name = {} WHERE version = {}",
            lit(&self.checksum(m)?.unwrap_or_default()),
            lit(&m.name),
            version(m)?
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hasher is SipHash 1-3 with zero keys (refinery's
    /// `SipHasher13::new()`); fed as `Hash` feeds it, a changed name,
    /// version or SQL each changes the checksum.
    #[test]
    fn checksum_covers_name_version_and_sql() {
        let base = checksum("initial", 1, "CREATE TABLE t (id int);");
        assert_eq!(base, checksum("initial", 1, "CREATE TABLE t (id int);"));
        assert_ne!(base, checksum("initial2", 1, "CREATE TABLE t (id int);"));
        assert_ne!(base, checksum("initial", 2, "CREATE TABLE t (id int);"));
        assert_ne!(base, checksum("initial", 1, "CREATE TABLE t (id bigint);"));
        // The name/sql boundary is marked (0xff), so moving text across it
        // changes the checksum.
        assert_ne!(checksum("ab", 1, "c"), checksum("a", 1, "bc"));
    }

    /// The checksum refinery_cli 0.10.0 itself wrote for
    /// `V1__users.sql` holding this line (`scripts/interop refinery`).
    #[test]
    fn checksum_is_the_one_refinery_writes() {
        assert_eq!(
            checksum("users", 1, "CREATE TABLE users (id int PRIMARY KEY);\n"),
            7668093413072388362
        );
    }
}
