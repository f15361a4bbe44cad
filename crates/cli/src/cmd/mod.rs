//! One module per command (or command group).

pub mod config;
pub mod sandbox;
