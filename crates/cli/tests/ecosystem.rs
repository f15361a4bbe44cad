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
