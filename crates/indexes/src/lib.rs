//! Index operations: which indexes the schema declares but the database
//! lacks, a queue of pending builds, builds `CONCURRENTLY` inside a safe
//! window under load guards, live progress, verification, and a usage
//! report (unused, duplicate, INVALID).
//!
//! Everything here talks to PostgreSQL except [`definition`], [`expected`],
//! [`window`] and [`schedule`], which are plain data and parsing.

pub mod build;
pub mod cancel;
pub mod catalog;
pub mod check;
pub mod daemon;
pub mod db;
pub mod definition;
pub mod error;
pub mod estimate;
pub mod expected;
pub mod guards;
pub mod pass;
pub mod progress;
pub mod queue;
pub mod report;
pub mod schedule;
pub mod window;

pub use definition::{DefinitionError, IndexDef, KeyPart};
pub use error::{Error, Result};
