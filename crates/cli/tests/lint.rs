//! `lull lint` and `lull explain` as a user runs them: the real binary on
//! fixture migrations in several layouts, human output pinned by
//! snapshots, JSON checked field by field, exit codes, and table sizes
//! read from a real database.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use lull_sandbox::testing::TestDb;
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lint")
}

/// `lull` run in the fixtures directory with no config, database or
/// colour from the environment.
fn lull() -> Command {
    let mut cmd = Command::cargo_bin("lull").expect("lull binary");
    cmd.current_dir(fixtures())
        .env_remove("DATABASE_URL")
        .env_remove("LULL_ENV")
        .env("NO_COLOR", "1");
    cmd
}

fn json(args: &[&str]) -> (Value, i32) {
    let out = lull()
        .args(["lint", "--format", "json"])
        .args(args)
        .output()
        .expect("runs");
    let value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)));
    (value, out.status.code().expect("exit code"))
}

fn rules_of(report: &Value) -> Vec<String> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn human_output_of_a_migration_directory() {
    let out = lull().args(["lint", "sqlx"]).output().expect("runs");
    assert_eq!(out.status.code(), Some(1), "errors fail the run");
    insta::assert_snapshot!(String::from_utf8_lossy(&out.stdout));
}

#[test]
fn json_output_lists_findings_with_positions_and_risk() {
    let (report, code) = json(&["sqlx"]);
    assert_eq!(code, 1);
    let rules = rules_of(&report);
    assert!(
        rules.contains(&"constraint-not-valid".to_string()),
        "{rules:?}"
    );
    assert!(
        rules.contains(&"create-index-not-concurrently".to_string()),
        "{rules:?}"
    );
    // The suppressed drop-column is gone; the users table is new in the
    // run, so its index is not a locking finding.
    assert!(!rules.contains(&"drop-column".to_string()), "{rules:?}");
    let index = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule"] == "create-index-not-concurrently")
        .unwrap();
    assert_eq!(index["span"]["line"], 3);
    assert_eq!(index["span"]["column"], 1);
    assert!(index["file"]
        .as_str()
        .unwrap()
        .ends_with("20240102000000_orders.up.sql"));
    assert!(index["help"].as_str().unwrap().contains("CONCURRENTLY"));
    assert_eq!(report["summary"]["files"], 3);
    assert_eq!(report["files"][1]["risk"]["level"], "medium");
}

#[test]
fn only_up_sections_are_linted_with_file_line_numbers() {
    let (report, code) = json(&["dbmate"]);
    assert_eq!(code, 1);
    let findings = report["findings"].as_array().unwrap();
    assert_eq!(
        rules_of(&report),
        vec![
            "create-index-not-concurrently",
            "missing-lock-timeout",
            "missing-statement-timeout"
        ],
        "the down section's DROP INDEX is not linted; dbmate sets no timeouts"
    );
    assert_eq!(findings[0]["span"]["line"], 2);
}

#[test]
fn a_directory_of_mixed_layouts_is_linted_piece_by_piece() {
    let out = lull()
        .args(["lint", "--format", "json", "."])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not one migration directory"));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let files: Vec<&str> = report["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    for part in [
        "dbmate/20240101000000_add_index.sql",
        "plain/lock.sql",
        "sqlx/20240103000000_concurrent.sql",
    ] {
        assert!(
            files.iter().any(|f| f.ends_with(part)),
            "{part} not linted: {files:?}"
        );
    }
    assert!(
        !files.iter().any(|f| f.ends_with(".down.sql")),
        "down files are not linted: {files:?}"
    );
}

#[test]
fn a_broken_file_is_reported_and_the_rest_still_linted() {
    let (report, code) = json(&["plain/broken.sql", "plain/lock.sql"]);
    assert_eq!(code, 1);
    let findings = report["findings"].as_array().unwrap();
    assert_eq!(findings[0]["rule"], "parse-error");
    assert_eq!(findings[0]["span"]["line"], 2);
    assert_eq!(findings[0]["span"]["column"], 8);
    assert!(rules_of(&report).contains(&"lock-table".to_string()));
}

#[test]
fn exit_codes_follow_fail_on() {
    lull().args(["lint", "plain/clean.sql"]).assert().code(0);
    // lock-table is a warning: fails only with --fail-on warning.
    lull().args(["lint", "plain/lock.sql"]).assert().code(0);
    lull()
        .args(["lint", "--fail-on", "warning", "plain/lock.sql"])
        .assert()
        .code(1);
    lull()
        .args(["lint", "--fail-on", "never", "plain/broken.sql"])
        .assert()
        .code(0);
    lull().args(["lint", "no/such/file.sql"]).assert().code(2);
}

#[test]
fn stdin_is_read_with_a_dash() {
    let out = lull()
        .args(["lint", "--format", "json", "-"])
        .write_stdin("CREATE INDEX IF NOT EXISTS i ON t (a);")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["findings"][0]["file"], "<stdin>");
}

#[test]
fn config_sets_levels_and_unknown_rules_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("lull.toml"),
        "[lint.rules]\nlock-table = \"error\"\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("m.sql"), "LOCK TABLE accounts;").unwrap();
    let mut cmd = Command::cargo_bin("lull").unwrap();
    cmd.current_dir(dir.path())
        .env_remove("DATABASE_URL")
        .args(["lint", "m.sql"])
        .assert()
        .code(1);
    std::fs::write(
        dir.path().join("lull.toml"),
        "[lint.rules]\nno-such-rule = \"error\"\n",
    )
    .unwrap();
    let mut cmd = Command::cargo_bin("lull").unwrap();
    let out = cmd
        .current_dir(dir.path())
        .env_remove("DATABASE_URL")
        .args(["lint", "m.sql"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-rule"));
}

#[test]
fn excludes_file_suppressions_and_opt_in_rules() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("sql/legacy")).unwrap();
    std::fs::write(
        dir.path().join("lull.toml"),
        "[lint]\nexclude = [\"sql/legacy/**\"]\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("sql/legacy/old.sql"),
        "LOCK TABLE accounts;",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("sql/new.sql"),
        "-- lull:ignore-file lock-table, truncate reviewed with the DBA\nLOCK TABLE a;\nCREATE TABLE IF NOT EXISTS n (id int);\n",
    )
    .unwrap();
    let run = |extra: &[&str]| {
        let out = Command::cargo_bin("lull")
            .unwrap()
            .current_dir(dir.path())
            .env_remove("DATABASE_URL")
            .args(["lint", "--format", "json", "--fail-on", "never"])
            .args(extra)
            .arg("sql")
            .output()
            .unwrap();
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let report = run(&[]);
    assert_eq!(
        report["summary"]["files"], 1,
        "the excluded file is not linted: {report}"
    );
    // lock-table is suppressed; the unused `truncate` suppression is reported.
    assert_eq!(rules_of(&report), vec!["unused-suppression"]);
    let report = run(&["--enable", "prefer-bigint"]);
    assert!(
        rules_of(&report).contains(&"prefer-bigint".to_string()),
        "{report}"
    );
}

#[test]
fn table_sizes_from_a_stats_file_raise_and_lower_findings() {
    let dir = tempfile::tempdir().unwrap();
    let stats = dir.path().join("stats.json");
    std::fs::write(
        &stats,
        r#"{"tables": {"public.accounts": {"rows": 50000000, "bytes": 0}, "public.tiny": {"rows": 3, "bytes": 8192}}}"#,
    )
    .unwrap();
    let file = dir.path().join("m.sql");
    std::fs::write(
        &file,
        "LOCK TABLE accounts; LOCK TABLE tiny; LOCK TABLE unknown;",
    )
    .unwrap();
    let (report, code) = json(&["--stats", stats.to_str().unwrap(), file.to_str().unwrap()]);
    assert_eq!(code, 1, "the large table's finding is an error");
    let severity = |table: &str| {
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["table"] == table)
            .unwrap()["severity"]
            .clone()
    };
    assert_eq!(severity("accounts"), "error");
    assert_eq!(severity("tiny"), "info");
    assert_eq!(severity("unknown"), "warning");
}

#[test]
fn table_sizes_come_from_the_database_url() {
    let db = TestDb::new();
    let mut client = db.client();
    client
        .batch_execute(
            "CREATE TABLE big (id int); INSERT INTO big SELECT generate_series(1, 2000); ANALYZE big; \
             CREATE TABLE small (id int); ANALYZE small;",
        )
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("lull.toml"),
        "[lint]\nlarge_table_rows = 1000\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("m.sql"),
        "LOCK TABLE big; LOCK TABLE small;",
    )
    .unwrap();
    let out = Command::cargo_bin("lull")
        .unwrap()
        .current_dir(dir.path())
        .env("DATABASE_URL", db.url())
        .args(["lint", "--format", "json", "m.sql"])
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let severity = |table: &str| {
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["table"] == table)
            .unwrap()["severity"]
            .clone()
    };
    assert_eq!(severity("big"), "error");
    assert_eq!(severity("small"), "info");
}

#[test]
fn explain_lists_rules_and_prints_docs() {
    let out = lull().arg("explain").output().unwrap();
    assert!(out.status.success());
    let list = String::from_utf8_lossy(&out.stdout);
    for id in [
        "create-index-not-concurrently",
        "set-not-null",
        "prefer-jsonb",
        "risk",
    ] {
        assert!(list.contains(id), "{id} missing from:\n{list}");
    }
    let out = lull().args(["explain", "set-not-null"]).output().unwrap();
    let doc = String::from_utf8_lossy(&out.stdout);
    assert!(
        doc.contains("Why it hurts") && doc.contains("VALIDATE CONSTRAINT"),
        "{doc}"
    );
    let out = lull().args(["explain", "risk"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("score = lock x work x size"));
    let out = lull().args(["explain", "create-index"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("create-index-not-concurrently"));
}

/// A history that partitions a table, then indexes it CONCURRENTLY,
/// attaches an existing table and adds a primary key on a nullable column
/// with USING INDEX: the three partition/primary-key rules fire (and stay
/// silent where the history proves the statement cheap), `lull explain`
/// documents them and SARIF lists them.
#[test]
fn partition_and_primary_key_rules_follow_the_history() {
    let dir = tempfile::tempdir().unwrap();
    let migrations = dir.path().join("migrations");
    std::fs::create_dir(&migrations).unwrap();
    std::fs::write(
        migrations.join("1_events.sql"),
        "CREATE TABLE events (id bigint, at date NOT NULL) PARTITION BY RANGE (at);\n\
         CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');\n\
         CREATE TABLE events_2025 (id bigint, at date NOT NULL);\n\
         CREATE TABLE events_2026 (id bigint, at date NOT NULL);\n\
         ALTER TABLE events_2026 ADD CONSTRAINT b CHECK (at >= '2026-01-01' AND at < '2027-01-01');\n\
         CREATE TABLE users (id bigint, email text NOT NULL);\n",
    )
    .unwrap();
    std::fs::write(
        migrations.join("2_changes.sql"),
        "CREATE INDEX CONCURRENTLY events_at_idx ON events (at);\n\
         ALTER TABLE events ATTACH PARTITION events_2025 FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');\n\
         ALTER TABLE events ATTACH PARTITION events_2026 FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');\n\
         CREATE UNIQUE INDEX CONCURRENTLY users_id_idx ON users (id);\n\
         CREATE UNIQUE INDEX CONCURRENTLY users_email_idx ON users (email);\n\
         ALTER TABLE users ADD CONSTRAINT users_pkey PRIMARY KEY USING INDEX users_id_idx;\n\
         ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE USING INDEX users_email_idx;\n",
    )
    .unwrap();
    let run = |args: &[&str]| {
        Command::cargo_bin("lull")
            .unwrap()
            .current_dir(dir.path())
            .env_remove("DATABASE_URL")
            .env_remove("LULL_ENV")
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["lint", "--format", "json", "migrations"]);
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let lines = |rule: &str| -> Vec<u64> {
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["rule"] == rule)
            .map(|f| f["span"]["line"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(
        lines("concurrent-index-on-partitioned-table"),
        [1],
        "{report:#}"
    );
    assert_eq!(
        lines("attach-partition-scan"),
        [2],
        "the CHECKed one is silent"
    );
    assert_eq!(lines("primary-key-using-index"), [6], "{report:#}");
    let finding = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule"] == "concurrent-index-on-partitioned-table")
        .unwrap();
    let help = finding["help"].as_str().unwrap();
    assert!(
        help.contains("CREATE INDEX events_at_idx ON ONLY events")
            && help.contains("CREATE INDEX CONCURRENTLY events_2024_at_idx ON events_2024"),
        "{help}"
    );

    let sarif: Value =
        serde_json::from_slice(&run(&["lint", "--format", "sarif", "migrations"]).stdout).unwrap();
    let ids: Vec<&str> = sarif["runs"][0]["tool"]["driver"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    for id in [
        "primary-key-using-index",
        "attach-partition-scan",
        "concurrent-index-on-partitioned-table",
    ] {
        assert!(ids.contains(&id), "{id} in SARIF rules");
        let out = run(&["explain", id]);
        assert!(out.status.success());
        let doc = String::from_utf8_lossy(&out.stdout);
        assert!(
            doc.starts_with(id) && doc.contains("Safe alternative"),
            "{doc}"
        );
    }
}

/// With a database URL, a table partitioned in the catalog (and not in
/// the files) is known to be partitioned.
#[test]
fn a_partitioned_table_in_the_catalog_is_known_to_lint() {
    let db = TestDb::new();
    db.client()
        .batch_execute(
            "CREATE TABLE ev (id int, at date) PARTITION BY RANGE (at); \
             CREATE TABLE ev_1 PARTITION OF ev FOR VALUES FROM ('2020-01-01') TO ('2021-01-01');",
        )
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("m.sql"),
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS ev_at ON ev (at);\n",
    )
    .unwrap();
    let rules = |url: Option<&str>| {
        let mut cmd = Command::cargo_bin("lull").unwrap();
        cmd.current_dir(dir.path())
            .env_remove("DATABASE_URL")
            .env_remove("LULL_ENV")
            .args(["lint", "--format", "json", "m.sql"]);
        if let Some(url) = url {
            cmd.env("DATABASE_URL", url);
        }
        let out = cmd.output().unwrap();
        let report: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
        (rules_of(&report), report)
    };
    let (offline, _) = rules(None);
    assert!(!offline.contains(&"concurrent-index-on-partitioned-table".to_string()));
    let (online, report) = rules(Some(db.url()));
    assert!(
        online.contains(&"concurrent-index-on-partitioned-table".to_string()),
        "{report:#}"
    );
    assert!(
        report
            .to_string()
            .contains("ATTACH PARTITION public.ev_1_at_idx"),
        "the catalog's partitions are in the help: {report:#}"
    );
}
