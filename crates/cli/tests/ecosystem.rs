//! Where teams use lull besides the terminal: shell completions, manual
//! pages, the GitHub Action's and the pre-commit hook's command lines.

use std::path::{Path, PathBuf};
use std::process::Command;

use assert_cmd::prelude::*;

fn lull() -> Command {
    let mut cmd = Command::cargo_bin("lull").unwrap();
    cmd.env_remove("DATABASE_URL").env_remove("LULL_ENV");
    cmd
}

fn stdout_of(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn bash_completion_is_valid_bash_and_completes_commands() {
    let script = stdout_of(lull().args(["completions", "bash"]));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lull.bash");
    std::fs::write(&file, &script).unwrap();
    let status = Command::new("bash").arg("-n").arg(&file).status().unwrap();
    assert!(status.success(), "bash -n accepts the script");
    // Ask bash itself what `lull mig<TAB>` and `lull indexes b<TAB>` complete to.
    let probe = format!(
        "source {}; complete -p lull >/dev/null || exit 3; \
         COMP_WORDS=(lull mig); COMP_CWORD=1; COMP_LINE='lull mig'; COMP_POINT=8; _lull lull mig lull; \
         echo \"${{COMPREPLY[*]}}\"; \
         COMP_WORDS=(lull indexes b); COMP_CWORD=2; COMP_LINE='lull indexes b'; COMP_POINT=14; _lull lull b indexes; \
         echo \"${{COMPREPLY[*]}}\"",
        file.display()
    );
    let out = Command::new("bash").arg("-c").arg(&probe).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(lines.first().copied(), Some("migrate"), "{text}");
    assert_eq!(lines.get(1).copied(), Some("build"), "{text}");
}

#[test]
fn zsh_and_fish_completions_name_every_command() {
    let zsh = stdout_of(lull().args(["completions", "zsh"]));
    assert!(
        zsh.starts_with("#compdef lull"),
        "{}",
        &zsh[..80.min(zsh.len())]
    );
    let fish = stdout_of(lull().args(["completions", "fish"]));
    for command in ["migrate", "lint", "indexes", "lsp", "man", "completions"] {
        assert!(zsh.contains(&format!("'{command}:")), "zsh lacks {command}");
        assert!(
            fish.contains(&format!("-a \"{command}\"")),
            "fish lacks {command}"
        );
    }
}

#[test]
fn unknown_shell_is_a_usage_error_listing_the_shells() {
    let out = lull().args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bash") && err.contains("zsh") && err.contains("fish"),
        "{err}"
    );
}

#[test]
fn man_page_renders_and_one_page_per_command_is_written() {
    let page = stdout_of(lull().arg("man"));
    assert!(
        page.contains(".TH lull 1"),
        "{}",
        &page[..200.min(page.len())]
    );
    assert!(page.contains("migrate"), "the page lists the commands");
    let dir = tempfile::tempdir().unwrap();
    let out = lull()
        .args(["man", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    for name in [
        "lull.1",
        "lull-migrate.1",
        "lull-indexes-build.1",
        "lull-lint.1",
    ] {
        let text = std::fs::read_to_string(dir.path().join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(text.contains(".TH"), "{name} is a roff page");
    }
    let migrate = std::fs::read_to_string(dir.path().join("lull-migrate.1")).unwrap();
    assert!(migrate.contains("lull\\-migrate") || migrate.contains("lull-migrate"));
    // Rendered by a real man formatter when one is installed.
    if Command::new("man").arg("--version").output().is_ok() {
        let out = Command::new("man")
            .arg("-l")
            .arg(dir.path().join("lull-migrate.1"))
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "80")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("migrate"));
    }
    let out = lull()
        .args(["man", "--dir", "/proc/lull-cannot-write-here"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot write"));
}

#[test]
fn license_files_match_the_manifest() {
    let manifest = std::fs::read_to_string(repo_root().join("Cargo.toml")).unwrap();
    assert!(manifest.contains("license = \"MIT OR Apache-2.0\""));
    let mit = std::fs::read_to_string(repo_root().join("LICENSE-MIT")).unwrap();
    assert!(mit.starts_with("MIT License"));
    let apache = std::fs::read_to_string(repo_root().join("LICENSE-APACHE")).unwrap();
    assert!(apache.contains("Apache License") && apache.contains("Version 2.0"));
}

/// A git repository with one committed migration (a hazard on a live
/// table, already merged) and one new, uncommitted migration.
fn repo_with_a_new_migration() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .args(args)
            .current_dir(dir.path())
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let migrations = dir.path().join("migrations");
    std::fs::create_dir(&migrations).unwrap();
    std::fs::write(
        migrations.join("20240101000000_old.sql"),
        "CREATE INDEX users_email_idx ON users (email);\n",
    )
    .unwrap();
    git(&["init", "-q"]);
    git(&["add", "."]);
    git(&["commit", "-qm", "old"]);
    std::fs::write(
        migrations.join("20240102000000_new.sql"),
        "CREATE INDEX orders_created_idx ON orders (created_at);\n",
    )
    .unwrap();
    dir
}

fn path_with_lull() -> String {
    let bin = Path::new(env!("CARGO_BIN_EXE_lull")).parent().unwrap();
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// Runs the action's lint step in `repo` as the action does (changes since
/// HEAD), with one more input set.
fn action_lint(script: &Path, repo: &Path, input: (&str, &str)) -> std::process::Output {
    Command::new(script)
        .current_dir(repo)
        .env("PATH", path_with_lull())
        .env("LULL_CHANGED_SINCE", "HEAD")
        .env(input.0, input.1)
        .env_remove("DATABASE_URL")
        .output()
        .unwrap()
}

#[test]
fn the_actions_lint_step_annotates_only_what_changed() {
    let repo = repo_with_a_new_migration();
    let script = repo_root().join("scripts/action-lint");
    let action = std::fs::read_to_string(repo_root().join("action.yml")).unwrap();
    assert!(
        action.contains("scripts/action-lint"),
        "action.yml runs the script tested here"
    );
    let out = action_lint(&script, repo.path(), ("LULL_SARIF", "true"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("::error file=migrations/20240102000000_new.sql"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("20240101000000_old.sql"),
        "only the change: {stdout}"
    );
    let sarif = std::fs::read_to_string(repo.path().join("lull.sarif")).unwrap();
    let sarif: serde_json::Value = serde_json::from_str(&sarif).unwrap();
    assert_eq!(sarif["version"], "2.1.0");
    assert!(sarif["runs"][0]["results"]
        .as_array()
        .is_some_and(|r| !r.is_empty()));

    let out = action_lint(&script, repo.path(), ("LULL_FAIL_ON", "never"));
    assert_eq!(out.status.code(), Some(0), "fail-on never passes the step");
}

#[test]
fn the_pre_commit_hooks_entry_fails_on_a_new_hazard() {
    let hooks = std::fs::read_to_string(repo_root().join(".pre-commit-hooks.yaml")).unwrap();
    let entry = hooks
        .lines()
        .find_map(|l| l.trim().strip_prefix("entry: "))
        .expect("the hook has an entry");
    assert!(hooks.contains("id: lull-lint"));
    let repo = repo_with_a_new_migration();
    // pre-commit runs the entry with the repository as working directory.
    let out = Command::new("sh")
        .arg("-c")
        .arg(entry)
        .current_dir(repo.path())
        .env("PATH", path_with_lull())
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("20240102000000_new.sql"), "{stdout}");
    assert!(stdout.contains("create-index-not-concurrently"), "{stdout}");
}
