//! What can go wrong in a backfill, each with what to do next.

use std::fmt;

/// A backfill error. Every variant says what to do next
/// ([`BackfillError::hint`]); the CLI renders it once.
#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    /// A query failed.
    #[error("{context}: {message}")]
    Db {
        /// What lull was doing.
        context: String,
        /// PostgreSQL's message.
        message: String,
        /// The SQLSTATE, when the server sent one.
        code: Option<String>,
    },
    /// The statement cannot be batched safely (see [`crate::statement`]).
    #[error("this statement cannot be batched: {reason}")]
    NotBatchable {
        /// Why.
        reason: String,
    },
    /// Bad input: an unknown table, column, or a statement that does not
    /// parse.
    #[error("{message}")]
    Invalid {
        /// What is wrong.
        message: String,
        /// What to do.
        hint: String,
    },
    /// Refused before changing anything (another process runs it, a
    /// different statement under the same name, ...).
    #[error("{message}")]
    Refused {
        /// Why.
        message: String,
        /// What to do.
        hint: String,
    },
    /// `lull backfill cancel` stopped it.
    #[error("backfill {name} was cancelled after {rows} rows; the rows of committed batches stay changed")]
    Cancelled {
        /// The backfill.
        name: String,
        /// Rows changed before it stopped.
        rows: i64,
    },
    /// A batch failed for good.
    #[error("backfill {name}: a batch failed after {tries} tries: {message}")]
    BatchFailed {
        /// The backfill.
        name: String,
        /// Tries made.
        tries: u32,
        /// PostgreSQL's message.
        message: String,
        /// The SQLSTATE.
        code: Option<String>,
        /// What to do.
        hint: String,
    },
}

impl BackfillError {
    /// What to do next.
    pub fn hint(&self) -> Option<String> {
        match self {
            BackfillError::Db { .. } => Some(
                "committed batches are recorded; run the same backfill again to resume after the \
                 last one"
                    .into(),
            ),
            BackfillError::NotBatchable { .. } => Some(
                "give the table a primary key or a unique NOT NULL column, or rewrite the \
                 statement; `lull explain unbatched-backfill` shows the batched form"
                    .into(),
            ),
            BackfillError::Invalid { hint, .. }
            | BackfillError::Refused { hint, .. }
            | BackfillError::BatchFailed { hint, .. } => Some(hint.clone()),
            BackfillError::Cancelled { .. } => Some(
                "`lull backfill resume NAME`, then the same `lull backfill run` (or `lull migrate`), continues it".into(),
            ),
        }
    }

    /// The SQLSTATE behind it, if any.
    pub fn code(&self) -> Option<&str> {
        match self {
            BackfillError::Db { code, .. } | BackfillError::BatchFailed { code, .. } => {
                code.as_deref()
            }
            _ => None,
        }
    }
}

/// PostgreSQL's own message for an error (the driver's `db error: ...`
/// wrapper removed).
pub fn pg_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => {
            let mut m = d.message().to_string();
            if let Some(detail) = d.detail() {
                m.push_str(&format!(" ({detail})"));
            }
            m
        }
        None => e.to_string(),
    }
}

/// The SQLSTATE of an error, if the server sent one.
pub fn sqlstate(e: &tokio_postgres::Error) -> Option<String> {
    e.code().map(|c| c.code().to_string())
}

/// A query failure while doing `context`.
pub fn db(context: impl fmt::Display, e: tokio_postgres::Error) -> BackfillError {
    BackfillError::Db {
        context: context.to_string(),
        message: pg_message(&e),
        code: sqlstate(&e),
    }
}
