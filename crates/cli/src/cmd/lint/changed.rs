//! `lull lint --changed-since REF`: which files git says were added or
//! edited since REF (committed, staged, unstaged or untracked), so that
//! only their findings are reported while the whole history is still
//! linted around them (earlier files' indexes, the units that run
//! together).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::CliError;

/// Canonical paths of the files added or modified since `reference`.
pub fn changed_since(reference: &str) -> Result<BTreeSet<PathBuf>, CliError> {
    if reference.starts_with('-') {
        return Err(
            CliError::new(format!("--changed-since {reference} is not a git revision"))
                .hint("pass a branch, tag or commit, e.g. --changed-since origin/main"),
        );
    }
    let root = git(&["rev-parse", "--show-toplevel"])?;
    let root = PathBuf::from(root.trim());
    // Fails clearly when the revision does not exist (e.g. not fetched).
    git(&["rev-parse", "--verify", "--quiet", &format!("{reference}^{{commit}}")]).map_err(
        |_| {
            CliError::new(format!("git cannot resolve `{reference}` to a commit"))
                .hint("fetch it first (e.g. `git fetch origin main`, or `fetch-depth: 0` in CI), or pass a commit id")
        },
    )?;
    // Against the merge base, so a branch behind `reference` does not
    // count what `reference` changed meanwhile.
    let base = git(&["merge-base", reference, "HEAD"])
        .map(|b| b.trim().to_string())
        .unwrap_or_else(|_| reference.to_string());
    let mut changed = BTreeSet::new();
    let diff = git(&[
        "diff",
        "--name-only",
        "--no-renames",
        "--diff-filter=AM",
        &base,
        "--",
    ])?;
    let untracked = git(&["ls-files", "--others", "--exclude-standard", "--full-name"])?;
    for line in diff.lines().chain(untracked.lines()) {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let path = root.join(line);
        changed.insert(path.canonicalize().unwrap_or(path));
    }
    Ok(changed)
}

/// Whether a linted file (its path as shown) is among the changed ones.
pub fn is_changed(path: &str, changed: &BTreeSet<PathBuf>) -> bool {
    let path = Path::new(path);
    match path.canonicalize() {
        Ok(canonical) => changed.contains(&canonical),
        Err(_) => false,
    }
}

fn git(args: &[&str]) -> Result<String, CliError> {
    let out = Command::new("git").args(args).output().map_err(|e| {
        CliError::new(format!("cannot run git: {e}")).hint("--changed-since needs git on PATH")
    })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(CliError::new(format!(
            "git {} failed: {}",
            args.first().unwrap_or(&""),
            stderr.trim()
        ))
        .hint("run lull inside the git checkout of the migrations"));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
