//! Finding the PostgreSQL server binaries, of any major or of one asked for.
//!
//! Without a version, whatever this machine has is used (the way a
//! developer expects `lull sandbox start` to behave). With one — `--pg N`,
//! `Options::pg_version`, or `LULL_PG_VERSION` — only binaries of that
//! major are accepted, from `LULL_PG_BINDIR`, Debian's
//! `/usr/lib/postgresql/N/bin`, lull's cache of npm builds
//! ([`crate::npm_build`]) or `pg_config`, checked with `postgres --version`.
//! This module only looks; installing is [`crate::npm_build::install`].

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::SandboxError;

/// The environment variable that picks the PostgreSQL major for the
/// sandbox and the tests (e.g. `LULL_PG_VERSION=17`).
pub const VERSION_VAR: &str = "LULL_PG_VERSION";

/// The environment variable naming a directory of server binaries to use.
pub const BINDIR_VAR: &str = "LULL_PG_BINDIR";

/// The major version `LULL_PG_VERSION` asks for, if it is set.
pub fn requested_version() -> Result<Option<u32>, SandboxError> {
    match std::env::var(VERSION_VAR) {
        Ok(v) if !v.trim().is_empty() => {
            parse_major(v.trim())
                .map(Some)
                .ok_or_else(|| SandboxError::BadVersion {
                    given: format!("{VERSION_VAR}={v}"),
                })
        }
        _ => Ok(None),
    }
}

/// Reads a major version as users write it: `18`, `17.2`, `16beta1`.
pub fn parse_major(text: &str) -> Option<u32> {
    let digits: String = text.chars().take_while(char::is_ascii_digit).collect();
    let major = digits.parse::<u32>().ok()?;
    // 9.6 and older were numbered by their first two parts; lull does not
    // support them, and a bare "9" must not be taken for a real major.
    (major >= 10).then_some(major)
}

/// Finds a directory holding `initdb`, `postgres` and `pg_ctl`.
///
/// When `LULL_PG_VERSION` is set, this is [`find_bindir_for`] that major.
/// Otherwise it looks at `LULL_PG_BINDIR`, then `pg_config --bindir`, then
/// `PATH`, then the highest `/usr/lib/postgresql/*/bin`.
pub fn find_bindir() -> Result<PathBuf, SandboxError> {
    if let Some(major) = requested_version()? {
        return find_bindir_for(major);
    }
    let mut tried = Vec::new();
    if let Some(dir) = std::env::var_os(BINDIR_VAR) {
        let dir = PathBuf::from(dir);
        if has_server(&dir) {
            return Ok(dir);
        }
        return Err(SandboxError::NoBinaries {
            tried: format!("{BINDIR_VAR}={} (no initdb/postgres there)", dir.display()),
        });
    }
    match pg_config_bindir() {
        Some(dir) if has_server(&dir) => return Ok(dir),
        Some(dir) => tried.push(format!("pg_config --bindir ({})", dir.display())),
        None => tried.push("pg_config (not found)".to_string()),
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
    if let Some((_, dir)) = debian_bindirs(has_server).pop() {
        return Ok(dir);
    }
    tried.push("/usr/lib/postgresql/*/bin".to_string());
    Err(SandboxError::NoBinaries {
        tried: tried.join(", "),
    })
}

/// Finds server binaries of PostgreSQL `major`: `LULL_PG_BINDIR` (which
/// must then be that major), `/usr/lib/postgresql/<major>/bin`, lull's
/// cache of npm builds, `pg_config --bindir`. Installs nothing; the error
/// names the command that does.
pub fn find_bindir_for(major: u32) -> Result<PathBuf, SandboxError> {
    if let Some(dir) = std::env::var_os(BINDIR_VAR) {
        let dir = PathBuf::from(dir);
        if !has_server(&dir) {
            return Err(SandboxError::NoBinaries {
                tried: format!("{BINDIR_VAR}={} (no initdb/postgres there)", dir.display()),
            });
        }
        let found = server_major(&dir)?;
        if found != major {
            return Err(SandboxError::VersionMismatch {
                asked: major,
                found,
                dir,
            });
        }
        return Ok(dir);
    }
    let mut tried = Vec::new();
    let debian = PathBuf::from(format!("/usr/lib/postgresql/{major}/bin"));
    if has_server(&debian) {
        return Ok(debian);
    }
    tried.push(debian.display().to_string());
    match crate::npm_build::cache_dir() {
        Ok(cache) => {
            let dir = cache.join(major.to_string()).join("bin");
            if has_server(&dir) {
                return Ok(dir);
            }
            tried.push(dir.display().to_string());
        }
        Err(e) => tried.push(format!("lull's cache ({e})")),
    }
    if let Some(dir) = pg_config_bindir().filter(|d| has_server(d)) {
        if server_major(&dir).ok() == Some(major) {
            return Ok(dir);
        }
        tried.push(format!("pg_config --bindir ({})", dir.display()));
    }
    Err(SandboxError::VersionMissing {
        major,
        tried: tried.join(", "),
    })
}

/// The major version of the server binaries in `bindir`, from
/// `postgres --version` (which, unlike starting a server, works as root).
pub fn server_major(bindir: &Path) -> Result<u32, SandboxError> {
    let postgres = bindir.join("postgres");
    let out = Command::new(&postgres)
        .arg("--version")
        .output()
        .map_err(|source| SandboxError::Io {
            what: format!("running {} --version", postgres.display()),
            source,
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    version_of(&text)
        .filter(|_| out.status.success())
        .ok_or_else(|| {
            SandboxError::Start(format!(
                "{} --version printed {:?}{}",
                postgres.display(),
                text.trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        })
}

/// The major of a `--version` line: `postgres (PostgreSQL) 15.18 (Debian …)`.
pub(crate) fn version_of(line: &str) -> Option<u32> {
    let (_, rest) = line.split_once(')')?;
    parse_major(rest.trim_start())
}

/// `/usr/lib/postgresql/<major>/bin` directories that pass `keep`, by
/// ascending major.
pub(crate) fn debian_bindirs(keep: impl Fn(&Path) -> bool) -> Vec<(u32, PathBuf)> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((v, e.path().join("bin")))
        })
        .filter(|(_, dir)| keep(dir))
        .collect();
    versions.sort();
    versions
}

fn pg_config_bindir() -> Option<PathBuf> {
    let out = Command::new("pg_config").arg("--bindir").output().ok()?;
    out.status
        .success()
        .then(|| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

pub(crate) fn has_server(dir: &Path) -> bool {
    dir.join("initdb").is_file() && dir.join("postgres").is_file()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_versions_as_written_and_printed() {
        assert_eq!(parse_major("18"), Some(18));
        assert_eq!(parse_major("17.2"), Some(17));
        assert_eq!(parse_major("16beta1"), Some(16));
        assert_eq!(parse_major("9"), None);
        assert_eq!(parse_major("x"), None);
        assert_eq!(parse_major(""), None);
        assert_eq!(
            version_of("postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)\n"),
            Some(15)
        );
        assert_eq!(version_of("postgres (PostgreSQL) 18.4\n"), Some(18));
        assert_eq!(version_of("pg_dump (PostgreSQL) 14.23\n"), Some(14));
        assert_eq!(version_of("garbage"), None);
    }
}
