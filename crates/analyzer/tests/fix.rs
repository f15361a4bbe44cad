//! `lull fix` on every fixture, under every runner: the result parses, no
//! longer triggers the rules it fixed, and triggers no rule more often
//! than the original did. The fixtures are in `tests/fixtures/fix/`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use lull_analyzer::{fix, lint, parse, FixOptions, LintOptions, Runner, SourceFile};

fn fixtures() -> Vec<SourceFile> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fix");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("fixture directory")
        .map(|e| e.expect("fixture entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    paths.sort();
    assert!(paths.len() >= 10, "fixtures missing in {}", dir.display());
    paths
        .into_iter()
        .map(|p| SourceFile {
            path: p.file_name().unwrap().to_string_lossy().into_owned(),
            sql: std::fs::read_to_string(&p).expect("fixture is UTF-8"),
            ..SourceFile::default()
        })
        .collect()
}

fn counts(files: &[SourceFile], opts: &LintOptions) -> BTreeMap<(String, &'static str), usize> {
    let mut out = BTreeMap::new();
    for f in lint(files, opts).findings {
        *out.entry((f.file, f.rule)).or_default() += 1;
    }
    out
}

fn options(runner: Runner) -> FixOptions {
    FixOptions {
        lint: LintOptions {
            runner,
            ..LintOptions::default()
        },
        ..FixOptions::default()
    }
}

/// Each fixture on its own (every table in it but the ones it creates
/// exists), under each runner.
#[test]
fn every_fixture_fixes_cleanly_under_every_runner() {
    let mut changed = 0;
    for runner in [Runner::Lull, Runner::Transactional, Runner::Autocommit] {
        let opts = options(runner);
        for file in fixtures() {
            let input = [file.clone()];
            let result = fix(&input, &opts).remove(0);
            let out = [SourceFile {
                sql: result.fixed.clone(),
                ..file.clone()
            }];
            if let Err(e) = parse(&result.fixed) {
                panic!(
                    "{runner:?} {}: fixed SQL does not parse: {e}\n{}",
                    file.path, result.fixed
                );
            }
            let before = counts(&input, &opts.lint);
            let after = counts(&out, &opts.lint);
            for rule in result.fixed_rules() {
                let skipped = result.skipped.iter().any(|s| s.rule == rule);
                let left = after.get(&(file.path.clone(), rule)).copied().unwrap_or(0);
                assert!(
                    skipped || left == 0,
                    "{runner:?} {}: {rule} still reported {left} time(s) after the fix:\n{}",
                    file.path,
                    result.fixed
                );
            }
            for (key, n) in &after {
                let was = before.get(key).copied().unwrap_or(0);
                assert!(
                    *n <= was,
                    "{runner:?} {}: the fix introduced {} more {} finding(s):\n{}",
                    file.path,
                    n - was,
                    key.1,
                    result.fixed
                );
            }
            // Fixing twice changes nothing more.
            let again = fix(&out, &opts).remove(0);
            assert_eq!(
                again.fixed, result.fixed,
                "{runner:?} {}: fix is not idempotent",
                file.path
            );
            if result.changed() {
                changed += 1;
                assert!(!result.applied.is_empty());
            }
        }
    }
    assert!(
        changed >= 20,
        "only {changed} fixture runs changed anything"
    );
}
