//! Client tools (`psql`, `pg_dump`, `pg_restore`, `pg_basebackup`) for a
//! server of a given major.
//!
//! The npm server builds carry no client tools, so the tools come from the
//! distribution (Debian: `/usr/lib/postgresql/<major>/bin`), from
//! `pg_config --bindir` or from `PATH`. `psql` talks to servers newer than
//! itself; `pg_dump`, `pg_restore` and `pg_basebackup` refuse them
//! ("aborting because of server version mismatch", "incompatible server
//! version"), so for those only a tool at least as new as the server is
//! returned, and the error says which one to install.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::bindir::{debian_bindirs, version_of};
use crate::SandboxError;

/// Whether `tool` refuses to talk to a server newer than itself.
pub fn refuses_newer_servers(tool: &str) -> bool {
    matches!(
        tool,
        "pg_dump" | "pg_dumpall" | "pg_restore" | "pg_basebackup"
    )
}

/// Finds `tool` (e.g. `pg_dump`) able to work with a PostgreSQL
/// `server_major` server: the newest one installed, which for `pg_dump`
/// and `pg_restore` must be at least `server_major`.
pub fn client_tool(tool: &str, server_major: u32) -> Result<PathBuf, SandboxError> {
    let mut found: Vec<(u32, PathBuf)> = candidates(tool)
        .into_iter()
        .filter_map(|path| Some((tool_major(&path)?, path)))
        .collect();
    found.sort_by_key(|(major, _)| *major);
    let newest = found.pop();
    match newest {
        Some((major, path)) if major >= server_major || !refuses_newer_servers(tool) => Ok(path),
        newest => Err(SandboxError::NoClientTool {
            tool: tool.to_string(),
            server_major,
            newest: newest.map(|(major, _)| major),
        }),
    }
}

fn candidates(tool: &str) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = debian_bindirs(|dir| dir.join(tool).is_file())
        .into_iter()
        .map(|(_, dir)| dir.join(tool))
        .collect();
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        if out.status.success() {
            let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            paths.push(dir.join(tool));
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        paths.extend(std::env::split_paths(&path).map(|d| d.join(tool)));
    }
    paths.retain(|p| p.is_file());
    paths
}

/// The major of a client tool, from `tool --version`.
fn tool_major(path: &Path) -> Option<u32> {
    let out = Command::new(path).arg("--version").output().ok()?;
    out.status
        .success()
        .then(|| version_of(&String::from_utf8_lossy(&out.stdout)))
        .flatten()
}
