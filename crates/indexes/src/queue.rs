//! The pending-index queue, `<schema>.pending_indexes`: indexes that
//! should exist and will be built in the next window. Fed by `indexes
//! check --enqueue`, `indexes add`, and best-effort index steps of
//! `migrate` that failed. A row leaves the queue when its index is built
//! and verified; a skip, a cancellation or a failure stays on the row as
//! `last_error`, so `indexes pending` says why it is still there.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::Client;

use crate::definition::IndexDef;
use crate::error::{QueryContext, Result};
use lull_analyzer::sql::{quote_ident, quote_qualified};

/// One row of the queue.
#[derive(Debug, Clone, Serialize)]
pub struct PendingIndex {
    /// Index name (the key).
    pub name: String,
    /// Table, schema-qualified.
    pub table_name: String,
    /// The `CREATE INDEX` statement.
    pub definition: String,
    /// Why it is queued.
    pub reason: Option<String>,
    /// Builds started so far.
    pub attempts: i32,
    /// Why the last attempt did not finish, or why it was skipped.
    pub last_error: Option<String>,
    /// A query whose plan should use the index once it exists.
    pub example_query: Option<String>,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// The queue in one schema.
#[derive(Debug, Clone)]
pub struct Queue {
    table: String,
    schema: String,
}

impl Queue {
    /// The queue kept in `schema` (lull's own schema, `lull` by default).
    pub fn new(schema: &str) -> Queue {
        Queue {
            table: quote_qualified(Some(schema), "pending_indexes"),
            schema: schema.to_string(),
        }
    }

    /// Creates the schema and table when missing. The layout is shared
    /// with the migration runner, which inserts best-effort failures.
    pub async fn ensure(&self, client: &Client) -> Result<()> {
        client
            .batch_execute(&format!(
                "CREATE SCHEMA IF NOT EXISTS {schema};
                 CREATE TABLE IF NOT EXISTS {table} (
                     name text PRIMARY KEY,
                     table_name text NOT NULL,
                     definition text NOT NULL,
                     reason text,
                     attempts int NOT NULL DEFAULT 0,
                     last_error text,
                     example_query text,
                     created_at timestamptz NOT NULL DEFAULT now(),
                     updated_at timestamptz NOT NULL DEFAULT now())",
                schema = quote_ident(&self.schema),
                table = self.table
            ))
            .await
            .during("creating the pending-index queue")
    }

    /// Queues `def`, or updates the row of the same name. Returns true when
    /// the row is new.
    pub async fn add(
        &self,
        client: &Client,
        def: &IndexDef,
        reason: &str,
        example_query: Option<&str>,
    ) -> Result<bool> {
        self.ensure(client).await?;
        let row = client
            .query_one(
                &format!(
                    "INSERT INTO {t} AS q (name, table_name, definition, reason, example_query)
                     VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (name) DO UPDATE SET
                         table_name = excluded.table_name,
                         definition = excluded.definition,
                         reason = excluded.reason,
                         example_query = coalesce(excluded.example_query, q.example_query),
                         updated_at = now()
                     RETURNING (xmax = 0)",
                    t = self.table
                ),
                &[
                    &def.name,
                    &def.qualified_table(),
                    &def.sql,
                    &reason,
                    &example_query,
                ],
            )
            .await
            .during("adding to the pending-index queue")?;
        Ok(row.get(0))
    }

    /// Every row, oldest first; an empty list when the table does not exist.
    pub async fn list(&self, client: &Client) -> Result<Vec<PendingIndex>> {
        let exists: bool = client
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&self.table])
            .await
            .during("looking for the pending-index queue")?
            .get(0);
        if !exists {
            return Ok(Vec::new());
        }
        let rows = client
            .query(
                &format!(
                    "SELECT name, table_name, definition, reason, attempts, last_error, example_query,
                            created_at, updated_at
                       FROM {} ORDER BY created_at, name",
                    self.table
                ),
                &[],
            )
            .await
            .during("reading the pending-index queue")?;
        Ok(rows
            .iter()
            .map(|r| PendingIndex {
                name: r.get(0),
                table_name: r.get(1),
                definition: r.get(2),
                reason: r.get(3),
                attempts: r.get(4),
                last_error: r.get(5),
                example_query: r.get(6),
                created_at: r.get(7),
                updated_at: r.get(8),
            })
            .collect())
    }

    /// Counts a started build.
    pub async fn attempt_started(&self, client: &Client, name: &str) -> Result<()> {
        client
            .execute(
                &format!(
                    "UPDATE {} SET attempts = attempts + 1, updated_at = now() WHERE name = $1",
                    self.table
                ),
                &[&name],
            )
            .await
            .during("recording a build attempt")?;
        Ok(())
    }

    /// Records why the index is still pending (skipped, cancelled, failed).
    pub async fn record(&self, client: &Client, name: &str, why: &str) -> Result<()> {
        client
            .execute(
                &format!(
                    "UPDATE {} SET last_error = $2, updated_at = now() WHERE name = $1",
                    self.table
                ),
                &[&name, &why],
            )
            .await
            .during("recording why an index is still pending")?;
        Ok(())
    }

    /// Removes a built index from the queue.
    pub async fn remove(&self, client: &Client, name: &str) -> Result<bool> {
        let n = client
            .execute(
                &format!("DELETE FROM {} WHERE name = $1", self.table),
                &[&name],
            )
            .await
            .during("removing an index from the queue")?;
        Ok(n > 0)
    }
}
