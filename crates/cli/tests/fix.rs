//! `lull fix` through the CLI: the diff, `--write`, and files that still
//! apply on a real PostgreSQL after the fix (and do what the original
//! meant: the constraints exist and are validated, the indexes are valid).

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use lull_analyzer::parse;
use lull_sandbox::testing::TestDb;
use predicates::prelude::*;

fn lull(dir: &Path) -> Command {
    let mut cmd = Command::cargo_bin("lull").unwrap();
    cmd.current_dir(dir)
        .env_remove("DATABASE_URL")
        .env_remove("LULL_ENV");
    cmd
}

fn fixtures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../analyzer/tests/fixtures/fix");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    paths.sort();
    paths
}

/// The tables and indexes the fixtures expect to exist already.
const SCHEMA: &str = "
CREATE TABLE users (id bigint PRIMARY KEY, email text);
INSERT INTO users SELECT g, 'u' || g || '@example.com' FROM generate_series(1, 50) g;
CREATE TABLE accounts (id bigint, name text);
INSERT INTO accounts SELECT g, 'a' || g FROM generate_series(1, 20) g;
CREATE TABLE orders (
    id bigint PRIMARY KEY, user_id bigint, ref text, quantity int, total numeric,
    status text, created_at timestamptz DEFAULT now(), night int
);
INSERT INTO orders
SELECT g, 1 + g % 50, CASE WHEN g % 2 = 0 THEN 'r' || g END, 1 + g % 3, g, 'new', now(), 1
FROM generate_series(1, 200) g;
CREATE INDEX orders_old_idx ON orders (status);
CREATE INDEX orders_older_idx ON orders (quantity);
CREATE INDEX orders_oldest_idx ON orders (total);
CREATE INDEX orders_legacy_idx ON orders (created_at, status);
CREATE INDEX orders_x_idx ON orders (night);
CREATE TABLE old_orders (id int);
";

/// Runs a file the way lull's runner and autocommit tools do: statement
/// by statement on one session, so CONCURRENTLY runs outside any
/// transaction and an explicit BEGIN ... COMMIT still groups its statements.
fn apply_statement_by_statement(client: &mut postgres::Client, sql: &str, name: &str) {
    let stmts = parse(sql).unwrap_or_else(|e| panic!("{name} does not parse: {e}"));
    for stmt in stmts {
        client
            .batch_execute(&stmt.text)
            .unwrap_or_else(|e| panic!("{name}: `{}` failed: {}\n{sql}", stmt.text, db_error(&e)));
    }
}

fn db_error(e: &postgres::Error) -> String {
    e.as_db_error()
        .map_or_else(|| e.to_string(), |d| d.message().to_string())
}

fn copy_fixtures(dir: &Path) -> Vec<PathBuf> {
    fixtures()
        .into_iter()
        .map(|src| {
            let dst = dir.join(src.file_name().unwrap());
            std::fs::copy(&src, &dst).unwrap();
            dst
        })
        .collect()
}

fn assert_schema_is_what_the_migrations_meant(client: &mut postgres::Client) {
    let validated = |client: &mut postgres::Client, name: &str| -> bool {
        client
            .query_one(
                "SELECT convalidated FROM pg_constraint WHERE conname = $1",
                &[&name],
            )
            .unwrap_or_else(|e| panic!("constraint {name} is missing: {e}"))
            .get(0)
    };
    for name in [
        "orders_user_id_fkey",
        "orders_quantity_check",
        "orders_total_nonneg",
    ] {
        assert!(validated(client, name), "{name} is not validated");
    }
    let email_not_null: bool = client
        .query_one(
            "SELECT attnotnull FROM pg_attribute WHERE attrelid = 'users'::regclass AND attname = 'email'",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(email_not_null, "users.email is not NOT NULL");
    let invalid: i64 = client
        .query_one("SELECT count(*) FROM pg_index WHERE NOT indisvalid", &[])
        .unwrap()
        .get(0);
    assert_eq!(invalid, 0, "an INVALID index was left behind");
    for index in [
        "orders_user_id_idx",
        "orders_ref_idx",
        "orders_shipped_at_idx",
    ] {
        let found: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_class WHERE relname = $1",
                &[&index],
            )
            .unwrap()
            .get(0);
        assert_eq!(found, 1, "index {index} was not built");
    }
    let gone: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_class WHERE relname IN ('orders_old_idx', 'orders_older_idx', 'orders_oldest_idx')",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(gone, 0, "dropped indexes are still there");
}

#[test]
fn fixed_files_apply_on_a_real_server_with_the_lull_runner() {
    let db = TestDb::new();
    let mut client = db.client();
    client.batch_execute(SCHEMA).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let files = copy_fixtures(dir.path());
    let mut cmd = lull(dir.path());
    cmd.args(["fix", "--write", "--runner", "lull"])
        .args(&files);
    cmd.assert().success().stderr(predicate::str::contains(
        "fixed create-index-not-concurrently",
    ));
    for file in &files {
        let sql = std::fs::read_to_string(file).unwrap();
        apply_statement_by_statement(&mut client, &sql, &file.display().to_string());
    }
    assert_schema_is_what_the_migrations_meant(&mut client);
    let pk: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_constraint WHERE conname = 'accounts_pkey' AND contype = 'p'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(pk, 1, "the primary key was not attached");
    // The fixed files lint clean for the rules the fixer handles.
    let out = lull(dir.path())
        .args(["fix", "--runner", "lull"])
        .args(&files)
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).to_string();
    assert!(
        stdout.is_empty(),
        "a second fix still changes files:\n{stdout}"
    );
}

/// The same, run by `lull migrate` itself: its planner must not rewrite
/// what the fixer already made safe (a SET NOT NULL after the fixer's
/// validated CHECK would otherwise add that CHECK a second time).
#[test]
fn fixed_files_apply_with_lull_migrate() {
    let db = TestDb::new();
    let mut client = db.client();
    client.batch_execute(SCHEMA).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let migrations = dir.path().join("migrations");
    std::fs::create_dir(&migrations).unwrap();
    copy_fixtures(&migrations);
    lull(dir.path())
        .args(["fix", "--write", "--runner", "lull", "migrations"])
        .assert()
        .success();
    lull(dir.path())
        .args(["--database-url", db.url(), "migrate", "--dir", "migrations"])
        .assert()
        .success()
        .stderr(predicate::str::contains("applied 12 migrations"));
    assert_schema_is_what_the_migrations_meant(&mut client);
}

#[test]
fn fixed_files_apply_inside_a_wrapping_transaction() {
    let db = TestDb::new();
    let mut client = db.client();
    client.batch_execute(SCHEMA).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let files = copy_fixtures(dir.path());
    let out = lull(dir.path())
        .args(["fix", "--write", "--runner", "transactional"])
        .args(&files)
        .assert()
        .success();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(stderr.contains("fixed missing-lock-timeout"), "{stderr}");
    // CONCURRENTLY cannot run in a wrapped file before or after the fix;
    // the fixer says to move it to its own non-transactional migration.
    assert!(
        stderr.contains("007_concurrently_in_block.sql:2: not fixed concurrently-in-transaction"),
        "{stderr}"
    );
    for file in &files {
        let sql = std::fs::read_to_string(file).unwrap();
        let name = file.file_name().unwrap().to_string_lossy();
        if name.starts_with("007") {
            continue;
        }
        // As sqlx and friends do: the whole file in one transaction.
        client
            .batch_execute(&format!("BEGIN;\n{sql}\n;COMMIT;"))
            .unwrap_or_else(|e| panic!("{name} failed in a transaction: {}\n{sql}", db_error(&e)));
    }
    // The CONCURRENTLY index builds were left as plain builds (still
    // valid, just not online), so only the constraints are checked here.
    for name in ["orders_user_id_fkey", "orders_quantity_check"] {
        let ok: bool = client
            .query_one(
                "SELECT convalidated FROM pg_constraint WHERE conname = $1",
                &[&name],
            )
            .unwrap()
            .get(0);
        assert!(ok, "{name} is not validated");
    }
}

#[test]
fn without_write_a_diff_is_printed_and_nothing_changes() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("0001_index.sql");
    let original = "-- keep me\nCREATE INDEX i ON t (a);\n";
    std::fs::write(&file, original).unwrap();
    lull(dir.path())
        .args(["fix", "0001_index.sql"])
        .assert()
        .success()
        .stdout(
            predicate::str::contains("--- a/0001_index.sql")
                .and(predicate::str::contains("-CREATE INDEX i ON t (a);"))
                .and(predicate::str::contains(
                    "+CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON t (a);",
                )),
        )
        .stderr(predicate::str::contains("--write"));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), original);
}

/// The diff for every fixture, pinned: what a user sees before --write.
#[test]
fn diff_of_the_fixtures() {
    let dir = tempfile::tempdir().unwrap();
    let migrations = dir.path().join("migrations");
    std::fs::create_dir(&migrations).unwrap();
    copy_fixtures(&migrations);
    let out = lull(dir.path())
        .args(["fix", "--runner", "lull", "migrations"])
        .assert()
        .success();
    insta::assert_snapshot!(String::from_utf8_lossy(&out.get_output().stdout));
}

#[test]
fn stdin_with_write_prints_the_fixed_sql() {
    let dir = tempfile::tempdir().unwrap();
    lull(dir.path())
        .args(["fix", "--write", "-"])
        .write_stdin("DROP INDEX i;\n")
        .assert()
        .success()
        .stdout("DROP INDEX CONCURRENTLY IF EXISTS i;\n");
}

#[test]
fn dbmate_up_sections_are_fixed_in_place_as_dbmate_runs_them() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    std::fs::create_dir(&db).unwrap();
    // dbmate wraps this file in a transaction (the layout says so): no
    // CONCURRENTLY there; the fix says how dbmate runs it outside one.
    let wrapped = db.join("20240101000000_index.sql");
    std::fs::write(
        &wrapped,
        "-- migrate:up\nCREATE INDEX i ON t (a);\n\n-- migrate:down\nDROP INDEX i;\n",
    )
    .unwrap();
    // `transaction:false`: dbmate runs it as written, CONCURRENTLY works.
    let plain = db.join("20240102000000_index.sql");
    std::fs::write(
        &plain,
        "-- migrate:up transaction:false\nCREATE INDEX j ON t (b);\n\n-- migrate:down\nDROP INDEX j;\n",
    )
    .unwrap();
    let out = lull(dir.path())
        .args(["fix", "--write", "db"])
        .assert()
        .success();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(
        stderr.contains("not fixed create-index-not-concurrently: the runner wraps this file in a transaction, where CONCURRENTLY fails: to run it outside a transaction, put it in a migration of its own that starts with `-- migrate:up transaction:false`"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(&wrapped).unwrap(),
        "-- migrate:up\nSET lock_timeout = '2s';\nSET statement_timeout = '5min';\nCREATE INDEX i ON t (a);\n\n-- migrate:down\nDROP INDEX i;\n"
    );
    assert_eq!(
        std::fs::read_to_string(&plain).unwrap(),
        "-- migrate:up transaction:false\nSET lock_timeout = '2s';\nSET statement_timeout = '5min';\nCREATE INDEX CONCURRENTLY IF NOT EXISTS j ON t (b);\n\n-- migrate:down\nDROP INDEX j;\n"
    );
}

#[test]
fn unknown_rules_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    lull(dir.path())
        .args(["fix", "--rule", "drop-table", "-"])
        .write_stdin("")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("not a rule lull can fix"));
}

/// A CREATE INDEX [CONCURRENTLY] on a table the history partitions is
/// fixed into the per-partition form, which applies on a real server
/// (the CONCURRENTLY original does not) and leaves a valid index on the
/// parent with every partition's index attached.
#[test]
fn an_index_on_a_partitioned_table_is_fixed_per_partition() {
    let dir = tempfile::tempdir().unwrap();
    let history = "CREATE TABLE ev (id bigint, at date) PARTITION BY RANGE (at);\n\
                   CREATE TABLE ev_1 PARTITION OF ev FOR VALUES FROM ('2020-01-01') TO ('2021-01-01');\n\
                   CREATE TABLE ev_2 PARTITION OF ev FOR VALUES FROM ('2021-01-01') TO ('2022-01-01');\n";
    std::fs::create_dir(dir.path().join("migrations")).unwrap();
    std::fs::write(dir.path().join("migrations/1_ev.sql"), history).unwrap();
    let change = dir.path().join("migrations/2_idx.sql");
    std::fs::write(
        &change,
        "CREATE INDEX CONCURRENTLY ev_at ON ev (at);\nCREATE INDEX ev_id ON ev (id);\n",
    )
    .unwrap();
    // The layout is sqlx's, which wraps each file in a transaction where
    // CONCURRENTLY cannot run; lull is the runner here.
    lull(dir.path())
        .args(["fix", "--runner", "lull", "--write", "migrations"])
        .assert()
        .success();
    let fixed = std::fs::read_to_string(&change).unwrap();
    assert!(
        fixed.contains("ev_at ON ONLY ev ")
            && fixed.contains("CONCURRENTLY")
            && fixed.contains("ev_2_id_idx ON ev_2 ")
            && fixed.contains("ALTER INDEX ev_id ATTACH PARTITION ev_2_id_idx"),
        "{fixed}"
    );
    assert!(!fixed.contains("CONCURRENTLY ev_at"), "{fixed}");
    let db = TestDb::new();
    let mut client = db.client();
    apply_statement_by_statement(&mut client, history, "1_ev.sql");
    apply_statement_by_statement(&mut client, &fixed, "2_idx.sql");
    let rows = client
        .query(
            "SELECT c.relname::text, i.indisvalid, \
                    (SELECT count(*) FROM pg_inherits h WHERE h.inhparent = c.oid) \
             FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
             WHERE c.relname IN ('ev_at', 'ev_id') ORDER BY 1",
            &[],
        )
        .unwrap();
    let got: Vec<(String, bool, i64)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        got,
        [
            ("ev_at".to_string(), true, 2),
            ("ev_id".to_string(), true, 2)
        ],
        "{fixed}"
    );
}
