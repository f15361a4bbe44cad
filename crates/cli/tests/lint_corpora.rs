//! `lull lint` on real migration histories (`../shared/corpora` beside
//! the repository, or `LULL_CORPORA`): a directory run reports on tables
//! created by earlier files exactly what per-file runs report, and
//! idempotency findings stay a small share of all findings (they only
//! speak where a failure leaves half a file applied). Skipped, with a
//! message, when the corpora are absent.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::Value;

fn corpora() -> Option<PathBuf> {
    let dir = std::env::var_os("LULL_CORPORA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpora"));
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "skipped: no corpora at {} (set LULL_CORPORA to run this test)",
            dir.display()
        );
        None
    }
}

fn lint_json(flags: &[&str], paths: &[&Path]) -> Value {
    let out = Command::cargo_bin("lull")
        .unwrap()
        .env_remove("DATABASE_URL")
        .env_remove("LULL_ENV")
        .args(["lint", "--format", "json", "--fail-on", "never"])
        .args(flags)
        .args(paths)
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stderr)))
}

fn findings(report: &Value) -> Vec<(String, String)> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["rule"].as_str().unwrap().to_string(),
                f["file"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

const HISTORIES: &[&str] = &["atuin/migrations", "supabase-auth/migrations"];

/// Locking rules whose findings depend on which tables are new.
const LOCKING: &[&str] = &[
    "create-index-not-concurrently",
    "constraint-not-valid",
    "set-not-null",
    "unique-constraint-without-index",
];

#[test]
fn idempotency_findings_are_a_small_share() {
    let Some(root) = corpora() else { return };
    let (mut total, mut idempotency) = (0usize, 0usize);
    for history in HISTORIES {
        let report = lint_json(&[], &[&root.join(history)]);
        let all = findings(&report);
        let guards = all
            .iter()
            .filter(|(r, _)| r == "missing-if-not-exists")
            .count();
        println!(
            "{history}: {} findings, {guards} missing-if-not-exists",
            all.len()
        );
        total += all.len();
        idempotency += guards;
    }
    assert!(total > 0, "the corpora produce findings");
    let share = idempotency as f64 / total as f64;
    println!(
        "idempotency share: {:.1}% ({idempotency} of {total})",
        share * 100.0
    );
    assert!(share < 0.05, "idempotency share {:.1}%", share * 100.0);
}

#[test]
fn a_directory_run_reports_what_per_file_runs_report() {
    let Some(root) = corpora() else { return };
    let history = root.join("atuin/migrations");
    let dir_report = lint_json(&[], &[&history]);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&history)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    let count =
        |all: &[(String, String)], rule: &str| all.iter().filter(|(r, _)| r == rule).count();
    let dir = findings(&dir_report);
    let mut per_file = Vec::new();
    for file in &files {
        // The directory is sqlx's layout; a loose file needs telling.
        per_file.extend(findings(&lint_json(&["--runner", "sqlx"], &[file])));
    }
    for rule in LOCKING {
        assert_eq!(
            count(&dir, rule),
            count(&per_file, rule),
            "{rule}: directory run vs per-file runs"
        );
    }
    assert!(
        LOCKING.iter().any(|r| count(&dir, r) > 0),
        "the history has locking findings on tables earlier files created: {dir:?}"
    );
}
