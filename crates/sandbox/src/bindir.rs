//! Finding the PostgreSQL server binaries.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::SandboxError;

/// Finds a directory holding `initdb`, `postgres` and `pg_ctl`.
///
/// Looks at `LULL_PG_BINDIR`, then `pg_config --bindir`, then `PATH`, then
/// the highest `/usr/lib/postgresql/*/bin`.
pub fn find_bindir() -> Result<PathBuf, SandboxError> {
    let mut tried = Vec::new();
    if let Some(dir) = std::env::var_os("LULL_PG_BINDIR") {
        let dir = PathBuf::from(dir);
        if has_server(&dir) {
            return Ok(dir);
        }
        return Err(SandboxError::NoBinaries {
            tried: format!(
                "LULL_PG_BINDIR={} (no initdb/postgres there)",
                dir.display()
            ),
        });
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && has_server(&dir) {
            return Ok(dir);
        }
        tried.push(format!("pg_config --bindir ({})", dir.display()));
    } else {
        tried.push("pg_config (not found)".to_string());
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if has_server(&dir) {
                // Follow symlinks so the directory also holds pg_ctl & co.
                let real = dir.join("postgres").canonicalize().ok();
                if let Some(parent) = real.as_deref().and_then(Path::parent) {
                    if has_server(parent) {
                        return Ok(parent.to_path_buf());
                    }
                }
                return Ok(dir);
            }
        }
        tried.push("PATH".to_string());
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((v, e.path().join("bin")))
        })
        .filter(|(_, dir)| has_server(dir))
        .collect();
    versions.sort();
    if let Some((_, dir)) = versions.pop() {
        return Ok(dir);
    }
    tried.push("/usr/lib/postgresql/*/bin".to_string());
    Err(SandboxError::NoBinaries {
        tried: tried.join(", "),
    })
}

fn has_server(dir: &Path) -> bool {
    dir.join("initdb").is_file() && dir.join("postgres").is_file()
}
