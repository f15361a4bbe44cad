//! The history tables of other migration tools, read and written the way
//! each tool does it.
//!
//! A team adopting lull already has a tool's table saying what is applied
//! (`_sqlx_migrations`, `_prisma_migrations`, golang-migrate's
//! `schema_migrations`, ...). lull keeps its own per-step state (see
//! [`crate::state`]) as the source of truth for resuming, and keeps the
//! tool's table correct beside it: what the tool recorded counts as applied,
//! and every migration lull applies, marks or rolls back gets the row the
//! tool itself would have written, checksum included, in the same
//! transaction as the migration's last step. The team can switch back at
//! any time.
//!
//! One file per tool, each an implementation of [`History`]. An adapter
//! only produces SQL text and interprets rows; [`Active`] runs them. What
//! this module is not for: running migrations (the runner does) or parsing
//! migration files (lull-migrations does).

mod alembic;
mod dbmate;
mod diesel;
mod drizzle;
mod flyway;
mod golang_migrate;
mod knex;
mod prisma;
mod rails;
mod refinery;
mod sqlx;

use std::fmt;
use std::str::FromStr;

use lull_analyzer::sql::quote_literal;
use lull_migrations::{compare_versions, Layout, Migration};
use serde::Serialize;
use tokio_postgres::Client;

use crate::error::{EngineError, ErrorKind};

/// A migration tool whose history table lull reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tool {
    /// sqlx (`_sqlx_migrations`).
    Sqlx,
    /// diesel (`__diesel_schema_migrations`).
    Diesel,
    /// golang-migrate (`schema_migrations` with `dirty`).
    GolangMigrate,
    /// dbmate (`schema_migrations`, no `ar_internal_metadata`).
    Dbmate,
    /// Flyway (`flyway_schema_history`).
    Flyway,
    /// Prisma Migrate (`_prisma_migrations`).
    Prisma,
    /// Drizzle (`drizzle.__drizzle_migrations`).
    Drizzle,
    /// refinery (`refinery_schema_history`).
    Refinery,
    /// Knex (`knex_migrations`).
    Knex,
    /// Rails (`schema_migrations` beside `ar_internal_metadata`).
    Rails,
    /// Alembic (`alembic_version`).
    Alembic,
}

impl Tool {
    /// Every tool, in the order messages list them.
    pub const ALL: [Tool; 11] = [
        Tool::Sqlx,
        Tool::Diesel,
        Tool::GolangMigrate,
        Tool::Dbmate,
        Tool::Flyway,
        Tool::Prisma,
        Tool::Drizzle,
        Tool::Refinery,
        Tool::Knex,
        Tool::Rails,
        Tool::Alembic,
    ];

    /// The name used in `lull.toml`, flags and messages.
    pub fn name(self) -> &'static str {
        match self {
            Tool::Sqlx => "sqlx",
            Tool::Diesel => "diesel",
            Tool::GolangMigrate => "golang-migrate",
            Tool::Dbmate => "dbmate",
            Tool::Flyway => "flyway",
            Tool::Prisma => "prisma",
            Tool::Drizzle => "drizzle",
            Tool::Refinery => "refinery",
            Tool::Knex => "knex",
            Tool::Rails => "rails",
            Tool::Alembic => "alembic",
        }
    }

    /// The adapter for this tool.
    pub fn adapter(self) -> &'static dyn History {
        match self {
            Tool::Sqlx => &sqlx::Sqlx,
            Tool::Diesel => &diesel::Diesel,
            Tool::GolangMigrate => &golang_migrate::GolangMigrate,
            Tool::Dbmate => &dbmate::Dbmate,
            Tool::Flyway => &flyway::Flyway,
            Tool::Prisma => &prisma::Prisma,
            Tool::Drizzle => &drizzle::Drizzle,
            Tool::Refinery => &refinery::Refinery,
            Tool::Knex => &knex::Knex,
            Tool::Rails => &rails::Rails,
            Tool::Alembic => &alembic::Alembic,
        }
    }

    /// The tools whose tables `history = "auto"` looks for with this
    /// layout, most likely first. Reversible sqlx files read as
    /// golang-migrate (same names), so each also looks for the other.
    fn for_layout(layout: Layout) -> &'static [Tool] {
        match layout {
            Layout::Sqlx | Layout::GolangMigrate => &[Tool::Sqlx, Tool::GolangMigrate],
            Layout::Dbmate => &[Tool::Dbmate, Tool::Rails],
            Layout::Diesel => &[Tool::Diesel],
            Layout::Prisma => &[Tool::Prisma],
            Layout::Drizzle => &[Tool::Drizzle],
            Layout::Flyway => &[Tool::Flyway, Tool::Refinery],
            Layout::Lull => &[],
        }
    }

    /// Tools whose files are not SQL (Ruby, JavaScript, Python), so no
    /// layout points to them: looked for with any layout.
    const ANY_LAYOUT: [Tool; 3] = [Tool::Rails, Tool::Knex, Tool::Alembic];
}

impl fmt::Display for Tool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which history table lull keeps beside its own (`history` in lull.toml).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HistoryChoice {
    /// Use the table of the layout's tool when it exists (the default).
    #[default]
    Auto,
    /// Only lull's own tables.
    Lull,
    /// This tool's table; created the way the tool creates it when missing.
    Tool(Tool),
}

impl FromStr for HistoryChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_lowercase().replace('_', "-");
        match wanted.as_str() {
            "auto" => return Ok(HistoryChoice::Auto),
            "lull" | "none" => return Ok(HistoryChoice::Lull),
            _ => {}
        }
        Tool::ALL
            .into_iter()
            .find(|t| t.name() == wanted)
            .map(HistoryChoice::Tool)
            .ok_or_else(|| {
                let names: Vec<&str> = Tool::ALL.iter().map(|t| t.name()).collect();
                format!(
                    "unknown history `{s}`; expected auto, lull or one of {}",
                    names.join(", ")
                )
            })
    }
}

/// One row of a tool's table as its `read_sql` returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct RawRow {
    /// What the tool keys the row by (a version, a migration name, a file
    /// name), as text.
    pub key: String,
    /// The recorded checksum, as text, when the tool keeps one.
    pub checksum: Option<String>,
    /// The tool considers it finished (not failed, not dirty).
    pub ok: bool,
    /// A tool-specific column (Flyway's `type`, Drizzle's `created_at`).
    pub extra: Option<String>,
}

/// What a tool's table says about one migration on disk.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolRecord {
    /// The migration's version as lull spells it.
    pub version: String,
    /// The checksum the tool recorded, if it keeps one (in its own format).
    pub checksum: Option<String>,
    /// Finished; `false` means the tool recorded a failure (a dirty
    /// golang-migrate version, a Prisma row without `finished_at`).
    pub ok: bool,
}

/// What a row written for a migration needs besides the migration.
#[derive(Debug, Clone)]
pub struct RecordContext<'a> {
    /// Every migration on disk, sorted by version.
    pub migrations: &'a [Migration],
    /// SQL expression: milliseconds the migration took (`0` when marked).
    pub elapsed_ms: String,
    /// SQL expression: when the migration started (`now()` when marked).
    pub started_at: String,
    /// Marked applied without running (Prisma's `resolve --applied` writes
    /// `applied_steps_count = 0` then).
    pub marked: bool,
}

impl RecordContext<'_> {
    /// The context of a migration marked applied without running it.
    pub fn marked(migrations: &[Migration]) -> RecordContext<'_> {
        RecordContext {
            migrations,
            elapsed_ms: "0".into(),
            started_at: "now()".into(),
            marked: true,
        }
    }
}

/// One tool's history table: how to find it, read it and write it.
///
/// Every method returns SQL text or interprets rows; none talks to the
/// database, so adapters are plain data tested without a server. SQL that
/// writes must be idempotent: after an autocommit last step it runs in a
/// transaction of its own and may run again on resume.
pub trait History: Send + Sync {
    /// Which tool this is.
    fn tool(&self) -> Tool;

    /// The table, as people know it (for messages).
    fn table(&self) -> &'static str;

    /// A query returning one boolean: the tool has run on this database
    /// (its table exists, with the tool's columns where names collide).
    fn detect_sql(&self) -> String {
        format!(
            "SELECT to_regclass({}) IS NOT NULL",
            quote_literal(self.table())
        )
    }

    /// The table as the tool creates it, `IF NOT EXISTS`.
    fn create_sql(&self) -> String;

    /// A query returning `(key text, checksum text, ok bool, extra text)`
    /// for each row.
    fn read_sql(&self) -> String;

    /// The migrations on disk the rows say are applied or failed.
    fn interpret(&self, rows: &[RawRow], migrations: &[Migration]) -> Vec<ToolRecord> {
        rows.iter()
            .filter_map(|r| {
                let m = find(migrations, &r.key)?;
                Some(ToolRecord {
                    version: m.version.clone(),
                    checksum: r.checksum.clone(),
                    ok: r.ok,
                })
            })
            .collect()
    }

    /// The checksum the tool would record for this migration now, when it
    /// keeps one.
    fn checksum(&self, _m: &Migration) -> Result<Option<String>, EngineError> {
        Ok(None)
    }

    /// Whether a recorded checksum matches the file as the tool compares
    /// them (some accept other line endings or older formats).
    fn checksum_matches(&self, recorded: &str, m: &Migration) -> Result<bool, EngineError> {
        Ok(match self.checksum(m)? {
            Some(current) => current == recorded,
            None => true,
        })
    }

    /// What the tool would say about an edited applied file, in its words.
    fn refusal(&self, m: &Migration, recorded: &str, current: &str) -> String {
        format!(
            "{} would refuse this: migration {} was applied with checksum {recorded} in {}, \
             the file now gives {current}",
            self.tool(),
            m.label(),
            self.table()
        )
    }

    /// SQL that records `m` as applied, exactly as the tool writes it.
    fn record_sql(&self, m: &Migration, ctx: &RecordContext<'_>) -> Result<String, EngineError>;

    /// SQL that forgets `m` after a rollback, as the tool's own down does.
    fn forget_sql(&self, m: &Migration, migrations: &[Migration]) -> String;

    /// SQL that records the file's current checksum for an applied `m`
    /// (for `lull repair`); `None` when the tool keeps no checksum.
    fn repair_sql(&self, _m: &Migration) -> Result<Option<String>, EngineError> {
        Ok(None)
    }
}

/// The migration on disk a tool's key names: a version (`7` finds
/// `0007`), a diesel version written with dashes, or a name starting with
/// a version (`20240101_init`, `20240101_init.js`).
pub fn find<'m>(migrations: &'m [Migration], key: &str) -> Option<&'m Migration> {
    let key = key.trim();
    let exact = migrations
        .iter()
        .find(|m| compare_versions(&m.version, key).is_eq());
    if exact.is_some() {
        return exact;
    }
    let digits: String = key
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '-')
        .filter(|c| *c != '-')
        .collect();
    if digits.is_empty() {
        return None;
    }
    migrations
        .iter()
        .find(|m| compare_versions(&m.version, &digits).is_eq())
}

/// The name of the file that holds `m`'s up SQL (`V1__init.sql`).
pub(crate) fn file_name(m: &Migration) -> String {
    m.up.as_ref()
        .and_then(|f| f.path.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| format!("{}.sql", m.label()))
}

/// The exact bytes of `m`'s up file as the tool reads it (tools hash the
/// file, not lull's section of it).
pub(crate) fn file_text(m: &Migration) -> Result<String, EngineError> {
    let Some(up) = &m.up else {
        return Ok(String::new());
    };
    std::fs::read_to_string(&up.path).map_err(|e| EngineError::Other {
        message: format!("cannot read {}: {e}", up.path.display()),
        hint: None,
        kind: ErrorKind::Error,
    })
}

/// `'text'` for SQL.
pub(crate) fn lit(s: &str) -> String {
    quote_literal(s)
}

/// The history table in use for one run: the adapter, whether its table
/// exists, and what it says.
#[derive(Clone)]
pub struct Active {
    /// The adapter.
    pub adapter: &'static dyn History,
    /// The table exists (an explicit choice may not have created it yet).
    pub present: bool,
    /// What it says about the migrations on disk.
    pub records: Vec<ToolRecord>,
}

impl fmt::Debug for Active {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Active")
            .field("tool", &self.adapter.tool())
            .field("present", &self.present)
            .field("records", &self.records)
            .finish()
    }
}

impl Active {
    /// Finds the history table to keep for `choice` and reads it. `None`
    /// for `lull`, and for `auto` when no tool's table is there.
    pub async fn load(
        client: &Client,
        choice: HistoryChoice,
        migrations: &[Migration],
    ) -> Result<Option<Active>, EngineError> {
        let tool = match choice {
            HistoryChoice::Lull => return Ok(None),
            HistoryChoice::Tool(t) => t,
            HistoryChoice::Auto => {
                let Some(t) = detect(client, migrations).await? else {
                    return Ok(None);
                };
                t
            }
        };
        let adapter = tool.adapter();
        let present = query_bool(client, &adapter.detect_sql()).await?;
        let records = if present {
            read(client, adapter, migrations).await?
        } else {
            Vec::new()
        };
        Ok(Some(Active {
            adapter,
            present,
            records,
        }))
    }

    /// The tool's name.
    pub fn tool(&self) -> Tool {
        self.adapter.tool()
    }

    /// The record of one version, if the table has one.
    pub fn record(&self, version: &str) -> Option<&ToolRecord> {
        self.records
            .iter()
            .rev()
            .find(|r| compare_versions(&r.version, version).is_eq())
    }

    /// Whether the tool counts `version` as applied.
    pub fn applied(&self, version: &str) -> bool {
        self.record(version).is_some_and(|r| r.ok)
    }

    /// Creates the table the way the tool does, when an explicit choice
    /// names a tool that has not run here yet. Call with the runner lock.
    pub async fn ensure(&mut self, client: &Client) -> Result<(), EngineError> {
        if self.present {
            return Ok(());
        }
        client
            .batch_execute(&self.adapter.create_sql())
            .await
            .map_err(|e| {
                EngineError::db(
                    format!("creating {}'s table {}", self.tool(), self.adapter.table()),
                    e,
                )
            })?;
        self.present = true;
        Ok(())
    }

    /// Refuses an applied migration whose file no longer has the checksum
    /// the tool recorded, in the tool's words.
    pub fn check_checksum(&self, m: &Migration) -> Result<(), EngineError> {
        let Some(recorded) = self
            .record(&m.version)
            .filter(|r| r.ok)
            .and_then(|r| r.checksum.as_deref())
        else {
            return Ok(());
        };
        if self.adapter.checksum_matches(recorded, m)? {
            return Ok(());
        }
        let current = self.adapter.checksum(m)?.unwrap_or_default();
        Err(EngineError::Other {
            message: self.adapter.refusal(m, recorded, &current),
            hint: Some(format!(
                "restore the file as it was applied; or, if the edit needs no re-run, `lull repair` \
                 updates both lull's checksum and the one in {}; or pass --allow-changed for this run",
                self.adapter.table()
            )),
            kind: ErrorKind::Refused,
        })
    }
}

/// The first tool whose table exists, among the layout's tools and then
/// the tools of any layout.
async fn detect(client: &Client, migrations: &[Migration]) -> Result<Option<Tool>, EngineError> {
    let layout = migrations.first().map(|m| m.layout).unwrap_or(Layout::Lull);
    let candidates = Tool::for_layout(layout)
        .iter()
        .chain(Tool::ANY_LAYOUT.iter());
    for tool in candidates {
        if query_bool(client, &tool.adapter().detect_sql()).await? {
            return Ok(Some(*tool));
        }
    }
    Ok(None)
}

async fn query_bool(client: &Client, sql: &str) -> Result<bool, EngineError> {
    let row = client
        .query_one(sql, &[])
        .await
        .map_err(|e| EngineError::db("looking for another tool's history table", e))?;
    Ok(row.get::<_, Option<bool>>(0).unwrap_or(false))
}

async fn read(
    client: &Client,
    adapter: &dyn History,
    migrations: &[Migration],
) -> Result<Vec<ToolRecord>, EngineError> {
    let rows = client
        .query(&adapter.read_sql(), &[])
        .await
        .map_err(|e| EngineError::db(format!("reading {}", adapter.table()), e))?;
    let raw: Vec<RawRow> = rows
        .into_iter()
        .map(|r| RawRow {
            key: r.get::<_, Option<String>>(0).unwrap_or_default(),
            checksum: r.get(1),
            ok: r.get::<_, Option<bool>>(2).unwrap_or(false),
            extra: r.get(3),
        })
        .collect();
    Ok(adapter.interpret(&raw, migrations))
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Migrations on disk for the adapters' unit tests.

    use std::path::Path;

    use lull_migrations::Migration;

    /// Writes `files` (name, content) into `dir` and discovers them.
    pub fn migrations(dir: &Path, files: &[(&str, &str)]) -> Vec<Migration> {
        for (name, text) in files {
            let path = dir.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        lull_migrations::discover(dir).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choice_parses_names() {
        assert_eq!("auto".parse(), Ok(HistoryChoice::Auto));
        assert_eq!("lull".parse(), Ok(HistoryChoice::Lull));
        assert_eq!(
            "golang_migrate".parse(),
            Ok(HistoryChoice::Tool(Tool::GolangMigrate))
        );
        assert_eq!("Prisma".parse(), Ok(HistoryChoice::Tool(Tool::Prisma)));
        let err = "liquibase".parse::<HistoryChoice>().unwrap_err();
        assert!(err.contains("expected auto, lull or one of sqlx"), "{err}");
    }

    #[test]
    fn keys_find_migrations() {
        let dir = tempfile::tempdir().unwrap();
        let ms = test_support::migrations(
            dir.path(),
            &[
                ("2025-08-01-000016_add/up.sql", "select 1;"),
                ("2025-08-02-000000_more/up.sql", "select 2;"),
            ],
        );
        assert_eq!(find(&ms, "20250801000016").unwrap().name, "add");
        assert_eq!(find(&ms, "2025-08-01-000016").unwrap().name, "add");
        assert_eq!(find(&ms, "20250802000000_more.js").unwrap().name, "more");
        assert!(find(&ms, "1").is_none());
        assert!(find(&ms, "abc").is_none());
    }
}
