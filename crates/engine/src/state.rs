//! lull's own bookkeeping in the database: which migrations are applied,
//! failed or running, and which of their steps are done.
//!
//! Tables live in a schema of their own (default `lull`):
//! `migrations` (one row per migration) and `steps` (one row per started
//! step and direction). A transactional step writes its row inside the
//! same transaction as its statements, so "done" and "applied" can never
//! disagree; an autocommit step is marked `running` before it starts and
//! checked against the catalog when a run resumes.

use chrono::{DateTime, Utc};
use lull_analyzer::sql::{quote_ident, quote_literal};
use serde::Serialize;
use tokio_postgres::Client;

use crate::error::{pg_message, sqlstate, EngineError, ErrorKind};

/// A migration's recorded status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Every step is done.
    Applied,
    /// A step failed; the next `migrate` resumes after the last done step.
    Failed,
    /// A run is applying it, or was killed while doing so.
    Running,
    /// A rollback is running or was interrupted.
    RollingBack,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Applied => "applied",
            Status::Failed => "failed",
            Status::Running => "running",
            Status::RollingBack => "rolling_back",
        }
    }

    fn parse(s: &str) -> Status {
        match s {
            "applied" => Status::Applied,
            "failed" => Status::Failed,
            "rolling_back" => Status::RollingBack,
            _ => Status::Running,
        }
    }
}

/// One row of `<schema>.migrations`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MigrationRecord {
    /// The version.
    pub version: String,
    /// The name when it was applied.
    pub name: String,
    /// SHA-256 of the up SQL when it was applied.
    pub checksum: String,
    /// Where it stands.
    pub status: Status,
    /// When the first run started.
    pub started_at: DateTime<Utc>,
    /// When it was applied.
    pub finished_at: Option<DateTime<Utc>>,
    /// Run time in milliseconds.
    pub duration_ms: Option<i64>,
    /// Database user that applied it.
    pub applied_by: String,
    /// The last error, for failed migrations.
    pub error: Option<String>,
    /// `lull`, `naive` or `mark-applied`.
    pub mode: String,
}

/// One row of `<schema>.steps`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepRecord {
    /// `up` or `down`.
    pub direction: String,
    /// 1-based step number.
    pub step: i32,
    /// `transaction` or `autocommit`.
    pub kind: String,
    /// The SQL the step ran.
    pub sql: String,
    /// `done`, `running` or `failed`.
    pub status: String,
    /// Tries it took.
    pub tries: i32,
    /// Run time in milliseconds, when done.
    pub duration_ms: Option<i64>,
    /// The last error, when failed.
    pub error: Option<String>,
}

/// Access to lull's tables in one schema.
#[derive(Debug, Clone)]
pub struct State {
    schema: String,
}

impl State {
    /// State kept in `schema`.
    pub fn new(schema: &str) -> Self {
        State {
            schema: schema.to_string(),
        }
    }

    /// The schema name.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    fn t(&self, table: &str) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(table))
    }

    /// Creates the schema and tables if missing. Call with the runner lock
    /// held: concurrent `CREATE TABLE IF NOT EXISTS` can still collide.
    pub async fn ensure(&self, client: &Client) -> Result<(), EngineError> {
        // `CREATE SCHEMA IF NOT EXISTS` checks the CREATE privilege even
        // when the schema exists, so an application role that may not
        // create schemas can still run once the tables are there.
        let present = client
            .query_one(
                "SELECT to_regclass($1::text) IS NOT NULL AND to_regclass($2::text) IS NOT NULL \
                    AND to_regclass($3::text) IS NOT NULL",
                &[
                    &self.t("migrations"),
                    &self.t("steps"),
                    &self.t("pending_indexes"),
                ],
            )
            .await
            .map_err(|e| EngineError::db("looking for lull's state tables", e))?;
        if present.get::<_, bool>(0) {
            return self.ensure_columns(client).await;
        }
        let schema_exists: bool = client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)",
                &[&self.schema],
            )
            .await
            .map_err(|e| EngineError::db("looking for lull's state schema", e))?
            .get(0);
        // Only when missing: an owner may have made it for a role that may
        // create tables in it but not schemas in the database.
        let create_schema = if schema_exists {
            String::new()
        } else {
            format!("CREATE SCHEMA IF NOT EXISTS {};", quote_ident(&self.schema))
        };
        let sql = format!(
            "SET lock_timeout = '5s';
             {create_schema}
             CREATE TABLE IF NOT EXISTS {m} (
                 version text PRIMARY KEY,
                 name text NOT NULL,
                 checksum text NOT NULL,
                 status text NOT NULL,
                 started_at timestamptz NOT NULL DEFAULT now(),
                 finished_at timestamptz,
                 duration_ms bigint,
                 applied_by text NOT NULL DEFAULT current_user,
                 error text,
                 mode text NOT NULL DEFAULT 'lull'
             );
             CREATE TABLE IF NOT EXISTS {st} (
                 version text NOT NULL REFERENCES {m} (version) ON DELETE CASCADE,
                 direction text NOT NULL,
                 step int NOT NULL,
                 kind text NOT NULL,
                 sql text NOT NULL,
                 status text NOT NULL,
                 tries int NOT NULL DEFAULT 0,
                 started_at timestamptz NOT NULL DEFAULT now(),
                 finished_at timestamptz,
                 duration_ms bigint,
                 error text,
                 PRIMARY KEY (version, direction, step)
             );
             {pending}
             RESET lock_timeout;",
            m = self.t("migrations"),
            st = self.t("steps"),
            pending = pending_indexes_ddl(&self.schema),
        );
        let created = client.batch_execute(&sql).await.map_err(|e| {
            if sqlstate(&e).as_deref() != Some("42501") {
                return EngineError::db("creating lull's state tables", e);
            }
            let schema = quote_ident(&self.schema);
            EngineError::Other {
                message: format!(
                    "this role may not create lull's state tables in schema {schema}: {}",
                    pg_message(&e)
                ),
                hint: Some(format!(
                    "have an owner run `CREATE SCHEMA {schema} AUTHORIZATION <this role>` once \
                     (or GRANT CREATE on the database or on schema {schema}), or set `schema` in \
                     lull.toml to a schema this role may create tables in"
                )),
                kind: ErrorKind::Error,
            }
        });
        created?;
        self.ensure_columns(client).await
    }

    /// Columns added after the first release of the state tables, added
    /// to tables an older lull made (only when missing: `ALTER TABLE`
    /// locks the table even when there is nothing to do).
    async fn ensure_columns(&self, client: &Client) -> Result<(), EngineError> {
        let present: bool = client
            .query_one(
                "SELECT EXISTS (SELECT FROM pg_attribute WHERE attrelid = to_regclass($1::text) \
                   AND attname = 'index_name' AND NOT attisdropped)",
                &[&self.t("steps")],
            )
            .await
            .map_err(|e| EngineError::db("looking at lull.steps", e))?
            .get(0);
        if present {
            return Ok(());
        }
        client
            .batch_execute(&format!(
                "SET lock_timeout = '5s'; ALTER TABLE {} ADD COLUMN IF NOT EXISTS index_name text; \
                 RESET lock_timeout",
                self.t("steps")
            ))
            .await
            .map_err(|e| EngineError::db("adding lull.steps.index_name", e))
    }

    /// Records the name lull chose for the unnamed index a step builds
    /// (see [`crate::index_name`]), before the build starts.
    pub async fn set_step_index_name(
        &self,
        client: &Client,
        version: &str,
        direction: &str,
        step: usize,
        name: &str,
    ) -> Result<(), EngineError> {
        client
            .execute(
                &format!(
                    "UPDATE {} SET index_name = $4 WHERE version = $1 AND direction = $2 AND step = $3",
                    self.t("steps")
                ),
                &[&version, &direction, &(step as i32), &name],
            )
            .await
            .map_err(|e| EngineError::db("recording the index name", e))?;
        Ok(())
    }

    /// The index name recorded for a step by [`State::set_step_index_name`].
    pub async fn step_index_name(
        &self,
        client: &Client,
        version: &str,
        direction: &str,
        step: usize,
    ) -> Result<Option<String>, EngineError> {
        let row = client
            .query_opt(
                &format!(
                    "SELECT index_name FROM {} WHERE version = $1 AND direction = $2 AND step = $3",
                    self.t("steps")
                ),
                &[&version, &direction, &(step as i32)],
            )
            .await
            .map_err(|e| EngineError::db("reading the recorded index name", e))?;
        Ok(row.and_then(|r| r.get(0)))
    }

    /// Whether the state tables exist (read-only commands must not create
    /// them).
    pub async fn exists(&self, client: &Client) -> Result<bool, EngineError> {
        let row = client
            .query_one(
                "SELECT to_regclass($1::text) IS NOT NULL",
                &[&self.t("migrations")],
            )
            .await
            .map_err(|e| EngineError::db("looking for lull's state tables", e))?;
        Ok(row.get(0))
    }

    /// Fails unless `client` holds the runner lock (see [`crate::lock`]).
    pub async fn fence(&self, client: &Client, doing: &str) -> Result<(), EngineError> {
        client
            .batch_execute(&self.fence_sql())
            .await
            .map_err(|e| fence_error(doing, e))
    }

    /// Every recorded migration.
    pub async fn migrations(&self, client: &Client) -> Result<Vec<MigrationRecord>, EngineError> {
        if !self.exists(client).await? {
            return Ok(Vec::new());
        }
        let rows = client
            .query(
                &format!(
                    "SELECT version, name, checksum, status, started_at, finished_at, duration_ms, \
                            applied_by, error, mode FROM {}",
                    self.t("migrations")
                ),
                &[],
            )
            .await
            .map_err(|e| EngineError::db("reading lull.migrations", e))?;
        Ok(rows
            .into_iter()
            .map(|r| MigrationRecord {
                version: r.get(0),
                name: r.get(1),
                checksum: r.get(2),
                status: Status::parse(r.get::<_, &str>(3)),
                started_at: r.get(4),
                finished_at: r.get(5),
                duration_ms: r.get(6),
                applied_by: r.get(7),
                error: r.get(8),
                mode: r.get(9),
            })
            .collect())
    }

    /// The recorded steps of one migration in one direction, by step.
    pub async fn steps(
        &self,
        client: &Client,
        version: &str,
        direction: &str,
    ) -> Result<Vec<StepRecord>, EngineError> {
        if !self.exists(client).await? {
            return Ok(Vec::new());
        }
        let rows = client
            .query(
                &format!(
                    "SELECT direction, step, kind, sql, status, tries, duration_ms, error FROM {} \
                     WHERE version = $1 AND direction = $2 ORDER BY step",
                    self.t("steps")
                ),
                &[&version, &direction],
            )
            .await
            .map_err(|e| EngineError::db("reading lull.steps", e))?;
        Ok(rows
            .into_iter()
            .map(|r| StepRecord {
                direction: r.get(0),
                step: r.get(1),
                kind: r.get(2),
                sql: r.get(3),
                status: r.get(4),
                tries: r.get(5),
                duration_ms: r.get(6),
                error: r.get(7),
            })
            .collect())
    }

    /// Records that a migration starts (or restarts after a failure).
    pub async fn start_migration(
        &self,
        client: &Client,
        version: &str,
        name: &str,
        checksum: &str,
        status: Status,
        mode: &str,
    ) -> Result<(), EngineError> {
        self.fence(client, "recording the migration start").await?;
        client
            .execute(
                &format!(
                    "INSERT INTO {} (version, name, checksum, status, mode) VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (version) DO UPDATE SET status = EXCLUDED.status, error = NULL, \
                         name = EXCLUDED.name, checksum = EXCLUDED.checksum",
                    self.t("migrations")
                ),
                &[&version, &name, &checksum, &status.as_str(), &mode],
            )
            .await
            .map_err(|e| EngineError::db("recording the migration start", e))?;
        Ok(())
    }

    /// SQL that marks a migration applied; run inside the last step's
    /// transaction when there is one.
    pub fn finish_sql(&self, version: &str) -> String {
        format!(
            "{};\nUPDATE {} SET status = 'applied', finished_at = now(), error = NULL, \
                 duration_ms = (extract(epoch FROM now() - started_at) * 1000)::bigint \
             WHERE version = {}",
            self.fence_sql(),
            self.t("migrations"),
            quote_literal(version)
        )
    }

    /// SQL that forgets a rolled-back migration (its steps go with it).
    pub fn forget_sql(&self, version: &str) -> String {
        format!(
            "{};\nDELETE FROM {} WHERE version = {}",
            self.fence_sql(),
            self.t("migrations"),
            quote_literal(version)
        )
    }

    /// SQL that fails unless this session holds the runner lock of this
    /// state schema (see [`crate::lock`]); every state write starts with it.
    pub fn fence_sql(&self) -> String {
        crate::lock::fence_sql(crate::lock::lock_key(&self.schema))
    }

    /// SQL that marks a step done; run inside the step's transaction for
    /// transactional steps, after the fence.
    ///
    /// The `done` row is inserted, never upserted: an earlier `running` or
    /// `failed` row of the step is deleted first (keeping its start time),
    /// while an earlier `done` row stays and makes the `INSERT` fail with a
    /// primary-key violation. A second runner that ran the same step
    /// therefore cannot commit it: its insert waits for the first runner's
    /// transaction and then conflicts with its row.
    pub fn step_done_sql(
        &self,
        version: &str,
        direction: &str,
        step: usize,
        kind: &str,
        sql: &str,
        tries: usize,
    ) -> String {
        format!(
            "{fence};\n\
             WITH earlier AS (DELETE FROM {t} WHERE version = {v} AND direction = {d} AND step = {step} \
                 AND status <> 'done' RETURNING started_at) \
             INSERT INTO {t} (version, direction, step, kind, sql, status, tries, started_at, finished_at, duration_ms) \
             SELECT {v}, {d}, {step}, {k}, {s}, 'done', {tries}, started, clock_timestamp(), \
                 (extract(epoch FROM clock_timestamp() - started) * 1000)::bigint \
             FROM (SELECT coalesce((SELECT min(started_at) FROM earlier), now()) AS started) AS e",
            fence = self.fence_sql(),
            t = self.t("steps"),
            v = quote_literal(version),
            d = quote_literal(direction),
            k = quote_literal(kind),
            s = quote_literal(sql),
        )
    }

    /// Marks a step as started (autocommit steps, before they run).
    pub async fn step_running(
        &self,
        client: &Client,
        version: &str,
        direction: &str,
        step: usize,
        kind: &str,
        sql: &str,
    ) -> Result<(), EngineError> {
        let step = step as i32;
        self.fence(client, "recording the step start").await?;
        let n = client
            .execute(
                &format!(
                    "INSERT INTO {t} (version, direction, step, kind, sql, status) \
                     VALUES ($1, $2, $3, $4, $5, 'running') \
                     ON CONFLICT (version, direction, step) DO UPDATE SET status = 'running', \
                         error = NULL, started_at = now() WHERE {t}.status <> 'done'",
                    t = self.t("steps")
                ),
                &[&version, &direction, &step, &kind, &sql],
            )
            .await
            .map_err(|e| EngineError::db("recording the step start", e))?;
        if n == 0 {
            return Err(already_done(version, step));
        }
        Ok(())
    }

    /// Records a failure of a step and its migration (outside the failed
    /// transaction, which was rolled back).
    #[allow(clippy::too_many_arguments)]
    pub async fn fail(
        &self,
        client: &Client,
        version: &str,
        direction: &str,
        step: usize,
        kind: &str,
        sql: &str,
        tries: usize,
        error: &str,
    ) -> Result<(), EngineError> {
        let (step, tries) = (step as i32, tries as i32);
        self.fence(client, "recording the step failure").await?;
        // A `done` row is never overwritten: it belongs to a run that
        // committed the step.
        client
            .execute(
                &format!(
                    "INSERT INTO {t} (version, direction, step, kind, sql, status, tries, error) \
                     VALUES ($1, $2, $3, $4, $5, 'failed', $6, $7) \
                     ON CONFLICT (version, direction, step) DO UPDATE SET status = 'failed', \
                         tries = EXCLUDED.tries, error = EXCLUDED.error WHERE {t}.status <> 'done'",
                    t = self.t("steps")
                ),
                &[&version, &direction, &step, &kind, &sql, &tries, &error],
            )
            .await
            .map_err(|e| EngineError::db("recording the step failure", e))?;
        let status = if direction == "down" {
            "rolling_back"
        } else {
            "failed"
        };
        client
            .execute(
                &format!(
                    "UPDATE {} SET status = $2, error = $3 WHERE version = $1 AND status <> 'applied'",
                    self.t("migrations")
                ),
                &[&version, &status, &error],
            )
            .await
            .map_err(|e| EngineError::db("recording the migration failure", e))?;
        Ok(())
    }

    /// Writes `error` on a step's row without changing its status (an
    /// autocommit step whose outcome is unknown stays `running`).
    pub async fn note_error(
        &self,
        client: &Client,
        version: &str,
        direction: &str,
        step: usize,
        error: &str,
    ) -> Result<(), EngineError> {
        self.fence(client, "recording the step's error").await?;
        let step = step as i32;
        client
            .execute(
                &format!(
                    "UPDATE {} SET error = $4 WHERE version = $1 AND direction = $2 AND step = $3",
                    self.t("steps")
                ),
                &[&version, &direction, &step, &error],
            )
            .await
            .map_err(|e| EngineError::db("recording the step's error", e))?;
        client
            .execute(
                &format!(
                    "UPDATE {} SET error = $2 WHERE version = $1 AND status <> 'applied'",
                    self.t("migrations")
                ),
                &[&version, &error],
            )
            .await
            .map_err(|e| EngineError::db("recording the migration's error", e))?;
        Ok(())
    }

    /// Records that an operator decided an uncertain step's outcome: `done`
    /// (it took effect), or `failed` so that the next `migrate` runs it
    /// again. Refuses a step already recorded `done`.
    #[allow(clippy::too_many_arguments)]
    pub async fn resolve_step(
        &self,
        client: &Client,
        version: &str,
        step: usize,
        kind: &str,
        sql: &str,
        applied: bool,
    ) -> Result<(), EngineError> {
        if applied {
            let done = self.step_done_sql(version, "up", step, kind, sql, 1);
            let result = client
                .batch_execute(&format!("BEGIN; {done}; COMMIT"))
                .await;
            if result.is_err() {
                let _ = client.batch_execute("ROLLBACK").await;
            }
            return result.map_err(|e| {
                if sqlstate(&e).as_deref() == Some("23505") {
                    return already_done(version, step as i32);
                }
                fence_error("recording the step as done", e)
            });
        }
        self.fail(
            client,
            version,
            "up",
            step,
            kind,
            sql,
            0,
            "recorded as not applied by `lull mark-applied --not-applied`; the next run runs it again",
        )
        .await
    }

    /// Records a migration as applied without running it.
    pub async fn mark_applied(
        &self,
        client: &Client,
        version: &str,
        name: &str,
        checksum: &str,
    ) -> Result<(), EngineError> {
        self.fence(client, "recording the migration as applied")
            .await?;
        client
            .execute(
                &format!(
                    "INSERT INTO {} (version, name, checksum, status, finished_at, duration_ms, mode) \
                     VALUES ($1, $2, $3, 'applied', now(), 0, 'mark-applied') \
                     ON CONFLICT (version) DO UPDATE SET status = 'applied', checksum = EXCLUDED.checksum, \
                         name = EXCLUDED.name, finished_at = now(), error = NULL, mode = 'mark-applied'",
                    self.t("migrations")
                ),
                &[&version, &name, &checksum],
            )
            .await
            .map_err(|e| EngineError::db("recording the migration as applied", e))?;
        Ok(())
    }

    /// Records the current checksum of an applied migration (after its
    /// file was edited on purpose).
    pub async fn set_checksum(
        &self,
        client: &Client,
        version: &str,
        checksum: &str,
    ) -> Result<(), EngineError> {
        client
            .execute(
                &format!(
                    "UPDATE {} SET checksum = $2 WHERE version = $1",
                    self.t("migrations")
                ),
                &[&version, &checksum],
            )
            .await
            .map_err(|e| EngineError::db("updating the recorded checksum", e))?;
        Ok(())
    }

    /// Queues an index whose best-effort build failed, for `lull indexes
    /// build` to retry in a safe window.
    pub async fn queue_pending_index(
        &self,
        client: &Client,
        name: &str,
        table: &str,
        definition: &str,
        reason: &str,
        error: &str,
    ) -> Result<(), EngineError> {
        client
            .execute(
                &format!(
                    "INSERT INTO {} (name, table_name, definition, reason, attempts, last_error) \
                     VALUES ($1, $2, $3, $4, 1, $5) \
                     ON CONFLICT (name) DO UPDATE SET attempts = {0}.attempts + 1, \
                         last_error = EXCLUDED.last_error, definition = EXCLUDED.definition, \
                         updated_at = now()",
                    self.t("pending_indexes")
                ),
                &[&name, &table, &definition, &reason, &error],
            )
            .await
            .map_err(|e| EngineError::db("queueing the pending index", e))?;
        Ok(())
    }
}

/// A step's `done` row already exists: another run committed the step.
fn already_done(version: &str, step: i32) -> EngineError {
    EngineError::Other {
        message: format!(
            "migration {version} step {step} is already recorded as done by another lull run"
        ),
        hint: Some(
            "run `lull status` to see where the migration stands; nothing was applied twice".into(),
        ),
        kind: ErrorKind::Refused,
    }
}

/// The error of a failed fence, or of the query that ran it.
pub(crate) fn fence_error(doing: &str, e: tokio_postgres::Error) -> EngineError {
    if sqlstate(&e).as_deref() == Some(crate::lock::LOST_LOCK_SQLSTATE) {
        return lost_lock();
    }
    EngineError::db(doing, e)
}

/// This runner's session no longer holds the runner lock.
pub(crate) fn lost_lock() -> EngineError {
    EngineError::Other {
        message: "this lull run lost its runner lock, so it stopped before its next commit".into(),
        hint: Some(
            "another runner may have taken over; run `lull status`, then `lull migrate` again"
                .into(),
        ),
        kind: ErrorKind::Failed,
    }
}

/// `CREATE TABLE IF NOT EXISTS <schema>.pending_indexes (...)`: the queue
/// shared with lull-indexes, in the shape agreed with it.
pub fn pending_indexes_ddl(schema: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {}.pending_indexes (name text primary key, \
         table_name text not null, definition text not null, reason text, \
         attempts int not null default 0, last_error text, example_query text, \
         created_at timestamptz not null default now(), updated_at timestamptz not null default now());",
        quote_ident(schema)
    )
}
