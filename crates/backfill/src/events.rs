//! What a running backfill reports. The engine never prints; the CLI
//! draws a progress bar on terminals and writes one JSON object per line
//! otherwise.

use std::time::Duration;

use serde::Serialize;

/// Progress of a backfill.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum BackfillEvent {
    /// It started or resumed.
    Started {
        /// Its name.
        name: String,
        /// The table.
        table: String,
        /// The key columns it walks.
        key: Vec<String>,
        /// The per-tenant column.
        per: Option<String>,
        /// Parts (one, or one per tenant).
        parts: usize,
        /// Parts already done.
        parts_done: usize,
        /// The catalog's row estimate of the table.
        estimate: Option<i64>,
        /// Rows changed by earlier runs.
        rows_done: i64,
        /// Rows walked by earlier runs.
        rows_scanned: i64,
        /// Whether an earlier run had started it.
        resumed: bool,
        /// The first batch size.
        batch_size: u64,
    },
    /// A batch committed.
    Batch {
        /// Its part.
        part: i32,
        /// Its tenant.
        tenant: Option<String>,
        /// Rows it changed.
        rows: u64,
        /// Rows of the key range it covered.
        scanned: u64,
        /// The size it was run with.
        size: u64,
        /// How long its transaction took.
        #[serde(serialize_with = "ms")]
        elapsed: Duration,
        /// Rows changed so far, all runs.
        total_rows: i64,
        /// Rows walked so far, all runs.
        total_scanned: i64,
    },
    /// A batch hit its statement timeout and is retried at half the size.
    Split {
        /// The size that timed out.
        from: u64,
        /// The next size.
        to: u64,
    },
    /// A batch failed on a lock or serialization error and is retried.
    Retry {
        /// Which retry.
        attempt: u32,
        /// The error.
        error: String,
        /// The sleep before it.
        #[serde(serialize_with = "ms")]
        sleep: Duration,
    },
    /// It holds; `reasons` changed since the last report.
    Held {
        /// Every signal that trips.
        reasons: Vec<String>,
    },
    /// The holds cleared.
    Released {
        /// How long it held.
        #[serde(serialize_with = "ms")]
        held: Duration,
    },
    /// A part (tenant) finished.
    PartDone {
        /// Its part.
        part: i32,
        /// Its tenant.
        tenant: Option<String>,
        /// Rows changed in it.
        rows: i64,
    },
    /// The backfill finished.
    Finished {
        /// Its name.
        name: String,
        /// Rows changed, all runs.
        rows: i64,
        /// Batches, all runs.
        batches: i64,
        /// This run's wall time.
        #[serde(serialize_with = "ms")]
        elapsed: Duration,
        /// Rows still matching the WHERE (at most the verify bound).
        remaining: Option<i64>,
    },
}

fn ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

/// Where events go.
pub type EventSink<'a> = &'a (dyn Fn(&BackfillEvent) + Send + Sync);
