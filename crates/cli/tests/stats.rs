//! `lull stats export` against a real PostgreSQL, and `lull lint --stats`
//! reading what it wrote.

use std::path::Path;

use assert_cmd::Command;
use lull_analyzer::TableStats;
use lull_sandbox::testing::TestDb;
use predicates::prelude::*;
use serde_json::Value;

fn lull(dir: &Path) -> Command {
    let mut cmd = Command::cargo_bin("lull").unwrap();
    cmd.current_dir(dir)
        .env_remove("DATABASE_URL")
        .env_remove("LULL_ENV");
    cmd
}

fn schema(db: &TestDb) {
    db.client()
        .batch_execute(
            "CREATE TABLE orders (id bigint PRIMARY KEY, note text);
             INSERT INTO orders SELECT g, repeat('x', 100) FROM generate_series(1, 5000) g;
             CREATE SCHEMA billing;
             CREATE TABLE billing.invoices (id int);
             INSERT INTO billing.invoices SELECT generate_series(1, 30);
             CREATE TABLE events (at date, n int) PARTITION BY RANGE (at);
             CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
             CREATE MATERIALIZED VIEW order_count AS SELECT count(*) FROM orders;
             CREATE TABLE never_analyzed (id int);
             CREATE VIEW not_a_table AS SELECT 1 AS one;
             ANALYZE orders, billing.invoices;",
        )
        .unwrap();
}

#[test]
fn export_writes_row_estimates_and_sizes_of_every_table() {
    let db = TestDb::new();
    schema(&db);
    let dir = tempfile::tempdir().unwrap();
    lull(dir.path())
        .args([
            "--database-url",
            db.url(),
            "stats",
            "export",
            "-o",
            "stats.json",
        ])
        .assert()
        .success()
        .stderr(predicate::str::contains("stats.json"));
    let text = std::fs::read_to_string(dir.path().join("stats.json")).unwrap();
    let stats = TableStats::from_json(&text).expect("the analyzer reads the file");
    let orders = stats.get("public.orders").expect("orders is exported");
    assert_eq!(orders.rows, 5000);
    // 5000 rows of ~100 bytes plus a primary key: well over 500 kB.
    assert!(orders.bytes > 500_000, "{orders:?}");
    let actual: i64 = db
        .client()
        .query_one("SELECT pg_total_relation_size('orders')", &[])
        .unwrap()
        .get(0);
    assert_eq!(orders.bytes, actual as u64);
    assert_eq!(stats.get("billing.invoices").unwrap().rows, 30);
    assert!(stats.get("public.events").is_some(), "partitioned table");
    assert!(stats.get("public.events_2024").is_some(), "partition");
    assert!(
        stats.get("public.order_count").is_some(),
        "materialized view"
    );
    // Never analyzed: reltuples is -1 (PostgreSQL 14+) or 0, written as 0.
    assert_eq!(stats.get("public.never_analyzed").unwrap().rows, 0);
    assert!(
        stats.get("public.not_a_table").is_none(),
        "views have no size"
    );
    assert!(
        !stats
            .tables
            .keys()
            .any(|k| k.starts_with("pg_") || k.starts_with("information_schema")),
        "system tables exported: {:?}",
        stats.tables.keys().collect::<Vec<_>>()
    );
}

#[test]
fn export_to_stdout_filtered_by_schema() {
    let db = TestDb::new();
    schema(&db);
    let dir = tempfile::tempdir().unwrap();
    let out = lull(dir.path())
        .env("DATABASE_URL", db.url())
        .args(["stats", "export", "--schema", "billing"])
        .assert()
        .success();
    let stats = TableStats::from_json(&String::from_utf8_lossy(&out.get_output().stdout))
        .expect("stdout is a stats file");
    let names: Vec<&String> = stats.tables.keys().collect();
    assert_eq!(names, ["billing.invoices"]);
}

/// The file feeds `lull lint --stats`: a finding on a known small table
/// is lowered a level, offline.
#[test]
fn lint_reads_the_exported_file() {
    let db = TestDb::new();
    schema(&db);
    let dir = tempfile::tempdir().unwrap();
    lull(dir.path())
        .args([
            "--database-url",
            db.url(),
            "stats",
            "export",
            "-o",
            "stats.json",
        ])
        .assert()
        .success();
    let sql = "ALTER TABLE billing.invoices ADD CONSTRAINT c CHECK (id > 0);\n";
    let severity = |extra: &[&str]| -> String {
        let out = lull(dir.path())
            .args([
                "lint",
                "--format",
                "json",
                "--fail-on",
                "never",
                "--offline",
            ])
            .args(extra)
            .arg("-")
            .write_stdin(sql)
            .assert()
            .success();
        let report: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["rule"] == "constraint-not-valid")
            .expect("constraint-not-valid finding")["severity"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(severity(&[]), "error");
    assert_eq!(severity(&["--stats", "stats.json"]), "warning");
}

#[test]
fn connection_errors_never_show_the_password() {
    let dir = tempfile::tempdir().unwrap();
    lull(dir.path())
        .args([
            "--database-url",
            "postgres://lull:s3cret-pw@127.0.0.1:1/nowhere?connect_timeout=2",
            "stats",
            "export",
        ])
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("cannot read table sizes")
                .and(predicate::str::contains("s3cret-pw").not()),
        );
}

#[test]
fn a_table_locked_by_a_migration_does_not_hang_the_export() {
    let db = TestDb::new();
    schema(&db);
    // A migration holding ACCESS EXCLUSIVE on orders: pg_total_relation_size
    // would wait for it forever; lull falls back to pg_class page counts.
    let mut holder = db.client();
    let mut tx = holder.transaction().unwrap();
    tx.batch_execute("LOCK TABLE orders IN ACCESS EXCLUSIVE MODE")
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = lull(dir.path())
        .args(["--database-url", db.url(), "stats", "export"])
        .timeout(std::time::Duration::from_secs(60))
        .assert()
        .success();
    let stats = TableStats::from_json(&String::from_utf8_lossy(&out.get_output().stdout))
        .expect("the analyzer reads the output");
    let orders = stats.get("public.orders").expect("orders is exported");
    assert_eq!(orders.rows, 5000);
    // ANALYZE set relpages: the heap alone is well over 500 kB.
    assert!(orders.bytes > 500_000, "{orders:?}");
    tx.rollback().unwrap();
}
