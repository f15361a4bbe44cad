//! One module per command (or command group).

pub mod config;
pub mod daemon;
pub mod indexes;
pub mod sandbox;
