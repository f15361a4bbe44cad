//! Batched backfills: a big `UPDATE` or `DELETE` run as many short
//! transactions over the table's key, resumable, throttled and verified,
//! so the application never waits behind one long statement's row locks.
//!
//! Used by the runner (a migration's single-table UPDATE/DELETE on an
//! existing table runs through here) and by `lull backfill run`.
//!
//! # How it runs
//!
//! 1. [`run::prepare`]: the statement is taken apart ([`statement`]) and
//!    the table's key found ([`key`]): the primary key, else a unique
//!    index over NOT NULL columns. No key, or a statement whose result
//!    depends on the whole statement, is refused with the reason; the
//!    runner then runs it as written and warns.
//! 2. The key range is captured once, when the backfill is first recorded:
//!    the highest key of the table (or of each tenant, with `per`).
//! 3. Each batch is one transaction: find the key `size` rows further
//!    (`ORDER BY key LIMIT size`), run the user's statement with
//!    `AND key > last AND key <= batch_end` added to its WHERE, and
//!    record `last = batch_end` in `lull.backfill_parts`, then commit.
//! 4. Between batches the health signals are read ([`throttle`]); the
//!    batch size follows the target duration ([`size`]).
//! 5. At the end the rows still matching the WHERE are counted (bounded
//!    by [`run::VERIFY_LIMIT`]) and reported.
//!
//! # Semantics
//!
//! - Every row whose key was at or below the captured bound is visited by
//!   exactly one committed batch, even across `kill -9` and server
//!   restarts: a batch's change and its progress commit together, so a
//!   batch is either applied and recorded or neither. A non-idempotent
//!   `SET c = c + 1` adds exactly one to each row.
//! - Rows inserted after the start with keys above the captured bound are
//!   not touched, as the one statement's snapshot would not see them.
//!   Rows inserted meanwhile *below* the bound in a range not yet walked
//!   are changed if they match (a key walk cannot tell them apart); with
//!   increasing keys (serials, identities) there are none.
//! - Each batch sees the rows as committed when it runs (READ COMMITTED),
//!   not one snapshot of the whole table: a value the application changes
//!   meanwhile is the value the batch reads. Functions such as `now()`
//!   return the batch's transaction time.
//! - The statement may not change the key or the per-tenant column (rows
//!   would move between batches), nor read its own table again (batches
//!   would see earlier batches' changes).
//! - With `per`, each tenant's rows are walked in their own batches: a
//!   batch never mixes tenants, and progress is kept per tenant.

pub mod error;
pub mod events;
pub mod key;
pub mod run;
pub mod size;
pub mod state;
pub mod statement;
pub mod throttle;

pub use error::BackfillError;
pub use events::{BackfillEvent, EventSink};
pub use run::{describe, prepare, run, Options, Outcome, Prepared, Spec};
pub use state::{BackfillRecord, Tables};
pub use statement::{analyze, Batchable, NotBatchable, Verb};
pub use throttle::Hold;
