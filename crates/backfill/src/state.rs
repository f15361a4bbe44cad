//! Backfill bookkeeping in lull's schema: `backfills` (one row per
//! backfill: statement, key, status, counters, the pause flag) and
//! `backfill_parts` (one row per walk: the whole key range, or one
//! tenant's; its captured upper bound and the last key done).
//!
//! A batch's progress is written inside the batch's own transaction, so a
//! committed batch is recorded and an uncommitted one is neither applied
//! nor recorded: after `kill -9` or a server restart the walk continues
//! exactly after the last committed batch.
//!
//! `status` is the control channel between processes: `pause` sets
//! `paused` (the runner holds between batches), `resume` sets `running`
//! back, `cancel` sets `cancelled` (the runner stops after its batch).

use lull_analyzer::sql::quote_ident;
use serde::Serialize;
use tokio_postgres::Client;

use crate::error::{db, BackfillError};

/// Advisory-lock class of "a process is running backfill N".
pub const LOCK_CLASS: i32 = 0x6c75_6c6c;

/// One row of `backfills`, for `status`.
#[derive(Debug, Clone, Serialize)]
pub struct BackfillRecord {
    /// Its id.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// The table.
    pub table: String,
    /// The statement as given.
    pub statement: String,
    /// The per-tenant column.
    pub per_column: Option<String>,
    /// The key columns.
    pub key_columns: Vec<String>,
    /// `running`, `paused`, `cancelled`, `done` or `failed`.
    pub status: String,
    /// Whether a process holds it right now.
    pub active: bool,
    /// The catalog's row estimate at start.
    pub rows_estimate: Option<i64>,
    /// Rows changed.
    pub rows_done: i64,
    /// Rows of the key range walked.
    pub rows_scanned: i64,
    /// Batches committed.
    pub batches: i64,
    /// Parts (tenants) finished, of all parts.
    pub parts_done: i64,
    /// Parts.
    pub parts: i64,
    /// Rows still matching the WHERE at the end.
    pub remaining: Option<i64>,
    /// Why it is held now, if it is.
    pub hold_reason: Option<String>,
    /// The last error.
    pub error: Option<String>,
    /// Start, last batch and end, RFC 3339.
    pub started_at: String,
    /// Last change.
    pub updated_at: String,
    /// When it finished.
    pub finished_at: Option<String>,
}

/// One walk of a backfill.
#[derive(Debug, Clone)]
pub struct Part {
    /// Its number.
    pub part: i32,
    /// The tenant, for per-tenant backfills (`None` is also the NULL
    /// tenant when `tenant_null`).
    pub tenant: Option<String>,
    /// The rows of the NULL tenant.
    pub tenant_null: bool,
    /// The highest key when the backfill started; `None`: no rows.
    pub upper: Option<Vec<String>>,
    /// The last key done; `None`: none yet.
    pub last: Option<Vec<String>>,
    /// Finished.
    pub done: bool,
    /// Rows changed in it.
    pub rows_done: i64,
}

/// Names of lull's backfill tables in one schema.
#[derive(Debug, Clone)]
pub struct Tables {
    schema: String,
}

impl Tables {
    /// The tables in `schema`.
    pub fn new(schema: &str) -> Tables {
        Tables {
            schema: schema.to_string(),
        }
    }

    /// `schema.backfills`, quoted.
    pub fn backfills(&self) -> String {
        format!("{}.backfills", quote_ident(&self.schema))
    }

    /// `schema.backfill_parts`, quoted.
    pub fn parts(&self) -> String {
        format!("{}.backfill_parts", quote_ident(&self.schema))
    }

    /// Creates the schema and tables when missing.
    pub async fn ensure(&self, client: &Client) -> Result<(), BackfillError> {
        let present: bool = client
            .query_one(
                "SELECT to_regclass($1::text) IS NOT NULL AND to_regclass($2::text) IS NOT NULL",
                &[&self.backfills(), &self.parts()],
            )
            .await
            .map_err(|e| db("looking for lull's backfill tables", e))?
            .get(0);
        if present {
            return Ok(());
        }
        let schema_exists: bool = client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)",
                &[&self.schema],
            )
            .await
            .map_err(|e| db("looking for lull's schema", e))?
            .get(0);
        let create_schema = if schema_exists {
            String::new()
        } else {
            format!("CREATE SCHEMA IF NOT EXISTS {};", quote_ident(&self.schema))
        };
        // The transaction-level advisory lock keeps two first runs from
        // colliding in CREATE TABLE IF NOT EXISTS; it is held for a moment.
        let sql = format!(
            "BEGIN;
             SET LOCAL lock_timeout = '5s';
             SELECT pg_advisory_xact_lock({LOCK_CLASS}, 0);
             {create_schema}
             CREATE TABLE IF NOT EXISTS {b} (
                 id bigserial PRIMARY KEY,
                 name text NOT NULL UNIQUE,
                 table_name text NOT NULL,
                 statement text NOT NULL,
                 per_column text,
                 key_columns text[] NOT NULL,
                 status text NOT NULL DEFAULT 'running',
                 rows_estimate bigint,
                 rows_done bigint NOT NULL DEFAULT 0,
                 rows_scanned bigint NOT NULL DEFAULT 0,
                 batches bigint NOT NULL DEFAULT 0,
                 remaining bigint,
                 hold_reason text,
                 error text,
                 started_at timestamptz NOT NULL DEFAULT now(),
                 updated_at timestamptz NOT NULL DEFAULT now(),
                 finished_at timestamptz
             );
             CREATE TABLE IF NOT EXISTS {p} (
                 backfill_id bigint NOT NULL REFERENCES {b} (id) ON DELETE CASCADE,
                 part int NOT NULL,
                 tenant text,
                 tenant_null boolean NOT NULL DEFAULT false,
                 upper_key text[],
                 last_key text[],
                 rows_done bigint NOT NULL DEFAULT 0,
                 rows_scanned bigint NOT NULL DEFAULT 0,
                 batches int NOT NULL DEFAULT 0,
                 done boolean NOT NULL DEFAULT false,
                 PRIMARY KEY (backfill_id, part)
             );
             COMMIT;",
            b = self.backfills(),
            p = self.parts(),
        );
        if let Err(e) = client.batch_execute(&sql).await {
            let _ = client.batch_execute("ROLLBACK").await;
            let denied = e.code().is_some_and(|c| c.code() == "42501");
            let err = db("creating lull's backfill tables", e);
            if denied {
                return Err(BackfillError::Refused {
                    message: err.to_string(),
                    hint: format!(
                        "grant this role CREATE on schema {} (or let an owner run lull once)",
                        quote_ident(&self.schema)
                    ),
                });
            }
            return Err(err);
        }
        Ok(())
    }

    /// Whether the tables exist (read-only commands do not create them).
    pub async fn exist(&self, client: &Client) -> Result<bool, BackfillError> {
        Ok(client
            .query_one(
                "SELECT to_regclass($1::text) IS NOT NULL AND to_regclass($2::text) IS NOT NULL",
                &[&self.backfills(), &self.parts()],
            )
            .await
            .map_err(|e| db("looking for lull's backfill tables", e))?
            .get(0))
    }

    /// Every backfill, newest first, or only `name`.
    pub async fn list(
        &self,
        client: &Client,
        name: Option<&str>,
    ) -> Result<Vec<BackfillRecord>, BackfillError> {
        if !self.exist(client).await? {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT b.id, b.name, b.table_name, b.statement, b.per_column, b.key_columns, b.status, \
                    EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' \
                            AND l.classid = {LOCK_CLASS}::oid AND l.objid = (b.id % 2147483647)::oid \
                            AND l.objsubid = 2 AND l.granted AND l.database = \
                                (SELECT oid FROM pg_database WHERE datname = current_database())), \
                    b.rows_estimate, b.rows_done, b.rows_scanned, b.batches, \
                    (SELECT count(*) FROM {p} p WHERE p.backfill_id = b.id AND p.done), \
                    (SELECT count(*) FROM {p} p WHERE p.backfill_id = b.id), \
                    b.remaining, b.hold_reason, b.error, \
                    to_char(b.started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), \
                    to_char(b.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), \
                    to_char(b.finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') \
             FROM {b} b WHERE $1::text IS NULL OR b.name = $1 ORDER BY b.id DESC",
            b = self.backfills(),
            p = self.parts(),
        );
        let rows = client
            .query(&sql, &[&name])
            .await
            .map_err(|e| db("reading lull's backfills", e))?;
        Ok(rows
            .into_iter()
            .map(|r| BackfillRecord {
                id: r.get(0),
                name: r.get(1),
                table: r.get(2),
                statement: r.get(3),
                per_column: r.get(4),
                key_columns: r.get(5),
                status: r.get(6),
                active: r.get(7),
                rows_estimate: r.get(8),
                rows_done: r.get(9),
                rows_scanned: r.get(10),
                batches: r.get(11),
                parts_done: r.get(12),
                parts: r.get(13),
                remaining: r.get(14),
                hold_reason: r.get(15),
                error: r.get(16),
                started_at: r.get(17),
                updated_at: r.get(18),
                finished_at: r.get(19),
            })
            .collect())
    }

    /// Sets the status of `name` for `pause` (`paused`), `resume`
    /// (`running`) or `cancel` (`cancelled`). Only a backfill that is not
    /// finished can change; returns the status it had.
    pub async fn control(
        &self,
        client: &Client,
        name: &str,
        to: &str,
    ) -> Result<String, BackfillError> {
        let unknown = || BackfillError::Invalid {
            message: format!("there is no backfill named {name}"),
            hint: "`lull backfill status` lists them".into(),
        };
        if !self.exist(client).await? {
            return Err(unknown());
        }
        let sql = format!(
            "WITH old AS (SELECT id, status FROM {b} WHERE name = $1 FOR UPDATE) \
             UPDATE {b} b SET status = CASE WHEN old.status IN ('done', 'cancelled') THEN old.status ELSE $2 END, \
                    updated_at = now() \
             FROM old WHERE b.id = old.id RETURNING old.status",
            b = self.backfills()
        );
        let row = client
            .query_opt(&sql, &[&name, &to])
            .await
            .map_err(|e| db("changing the backfill's status", e))?
            .ok_or_else(unknown)?;
        let was: String = row.get(0);
        if was == "done" || (was == "cancelled" && to != "running") {
            return Err(BackfillError::Refused {
                message: format!("backfill {name} is {was}; nothing to change"),
                hint: "`lull backfill status` shows it".into(),
            });
        }
        if was == "cancelled" {
            // Resuming a cancelled backfill: allowed explicitly.
            client
                .execute(
                    &format!(
                        "UPDATE {} SET status = 'running' WHERE name = $1",
                        self.backfills()
                    ),
                    &[&name],
                )
                .await
                .map_err(|e| db("resuming the backfill", e))?;
        }
        Ok(was)
    }
}
