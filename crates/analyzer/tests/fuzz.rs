//! Fuzzing the analyzer: arbitrary input through parse, lint and fix must
//! never panic, every finding must point inside its file, and whatever
//! `fix` returns for input that parses must parse too.
//!
//! Three kinds of input: any Unicode text; "SQL-ish" soup built from
//! keywords, identifiers, literals, comments and punctuation (which reaches
//! much deeper into the rules than random bytes); and the fix fixtures with
//! random edits (insertions, deletions, replacements), which stay close to
//! real migrations.
//!
//! The default run is short (256 cases per property) so it fits in
//! `cargo test`. For a sustained run set `LULL_FUZZ_CASES`:
//!
//! ```text
//! LULL_FUZZ_CASES=200000 cargo test --release -p lull-analyzer --test fuzz
//! ```
//!
//! A failure prints the smallest input proptest could shrink it to, and
//! proptest records the seed under `tests/fuzz.proptest-regressions` so
//! the case is replayed first on every later run (commit that file).

use std::path::PathBuf;

use lull_analyzer::{fix, lint, parse, FixOptions, LintOptions, Runner, SourceFile};
use proptest::prelude::*;

fn cases() -> u32 {
    std::env::var("LULL_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: cases(),
        // Shrinking a slow parser input can take long; a few thousand steps
        // give a readable case without stalling the run.
        max_shrink_iters: 4096,
        ..ProptestConfig::default()
    }
}

fn fixtures() -> Vec<String> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fix");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    paths
        .into_iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .collect()
}

#[rustfmt::skip]
const WORDS: &[&str] = &[
    "CREATE", "DROP", "ALTER", "TABLE", "INDEX", "UNIQUE", "CONCURRENTLY", "IF", "NOT", "EXISTS",
    "ON", "ADD", "COLUMN", "CONSTRAINT", "FOREIGN", "KEY", "REFERENCES", "CHECK", "PRIMARY",
    "VALID", "VALIDATE", "SET", "NULL", "DEFAULT", "TYPE", "USING", "RENAME", "TO", "BEGIN",
    "COMMIT", "ROLLBACK", "REINDEX", "VACUUM", "FULL", "LOCK", "IN", "ACCESS", "EXCLUSIVE",
    "MODE", "UPDATE", "DELETE", "FROM", "WHERE", "INSERT", "INTO", "VALUES", "SELECT",
    "TRUNCATE", "CASCADE", "REFRESH", "MATERIALIZED", "VIEW", "DETACH", "PARTITION", "OF",
    "EXCLUDE", "GIST", "WITH", "AS", "int", "bigint", "text", "varchar(10)", "timestamptz",
    "json", "serial", "now()", "random()", "lock_timeout", "statement_timeout", "'2s'",
    "orders", "users", "t", "\"Odd Name\"", "app.t", "a", "b", "id", "1", "0", "-1", "3.5",
    "'x'", "$$body$$", "E'\\n'", "(", ")", ",", ";", ".", "=", ">", "::", "*", "[", "]",
    "-- lull:ignore create-index-not-concurrently why\n",
    "-- lull:ignore-file set-not-null\n", "-- lull:ignore nope\n", "/* c */", "/* open",
    "-- comment\n", "\n", "\t", " ", "é", "\u{0}",
];

/// Statements made of plausible SQL tokens.
fn sqlish() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(WORDS), 0..60).prop_map(|words| words.join(" "))
}

/// A fixture with up to 8 random edits.
fn mutated() -> impl Strategy<Value = String> {
    let fixtures = fixtures();
    assert!(!fixtures.is_empty());
    let edit = (any::<prop::sample::Index>(), 0u8..3, ".{0,12}");
    (
        prop::sample::select(fixtures),
        prop::collection::vec(edit, 0..8),
    )
        .prop_map(|(mut sql, edits)| {
            for (at, kind, text) in edits {
                let boundaries: Vec<usize> = sql
                    .char_indices()
                    .map(|(i, _)| i)
                    .chain([sql.len()])
                    .collect();
                let pos = boundaries[at.index(boundaries.len())];
                let next = boundaries.iter().copied().find(|b| *b > pos).unwrap_or(pos);
                match kind {
                    0 => sql.insert_str(pos, &text),
                    1 => sql.replace_range(pos..next, ""),
                    _ => sql.replace_range(pos..next, &text),
                }
            }
            sql
        })
}

fn check(sql: &str) {
    let parsed = parse(sql);
    if let Ok(stmts) = &parsed {
        for s in stmts {
            assert!(s.span.start <= s.span.end && s.span.end <= sql.len());
            assert_eq!(&sql[s.span.start..s.span.end], s.text);
        }
    }
    for runner in [Runner::Lull, Runner::Transactional, Runner::Autocommit] {
        let file = SourceFile {
            path: "fuzz.sql".into(),
            sql: sql.to_string(),
            ..SourceFile::default()
        };
        let lint_opts = LintOptions {
            runner,
            enable: vec![
                "prefer-bigint".into(),
                "prefer-timestamptz".into(),
                "prefer-text".into(),
                "prefer-jsonb".into(),
            ],
            ..LintOptions::default()
        };
        let report = lint(std::slice::from_ref(&file), &lint_opts);
        for f in &report.findings {
            assert!(
                f.span.start <= f.span.end && f.span.end <= sql.len(),
                "{} points outside the file: {:?}",
                f.rule,
                f.span
            );
            assert!(sql.is_char_boundary(f.span.start) && sql.is_char_boundary(f.span.end));
            assert!(f.span.line >= 1 && f.span.column >= 1);
        }
        let opts = FixOptions {
            lint: lint_opts,
            ..FixOptions::default()
        };
        let result = fix(std::slice::from_ref(&file), &opts).remove(0);
        if parsed.is_ok() {
            if let Err(e) = parse(&result.fixed) {
                panic!(
                    "{runner:?}: fixed SQL does not parse ({e}):\n{}",
                    result.fixed
                );
            }
        } else {
            assert!(!result.changed(), "a file that does not parse was changed");
        }
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_text_is_handled(sql in "\\PC{0,200}") {
        check(&sql);
    }

    #[test]
    fn sqlish_soup_is_handled(sql in sqlish()) {
        check(&sql);
    }

    #[test]
    fn edited_fixtures_are_handled(sql in mutated()) {
        check(&sql);
    }
}
