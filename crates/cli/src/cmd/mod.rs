//! One module per command (or command group).

pub mod backfill;
pub mod baseline;
pub mod completions;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod explain;
pub mod fix;
pub mod indexes;
pub mod lint;
pub mod lsp;
pub mod man;
pub mod mark_applied;
pub mod migrate;
pub mod plan;
pub mod repair;
pub mod rollback;
pub mod run_shared;
pub mod sandbox;
pub mod stats;
pub mod status;
