//! `lull lint` with a database asks today's rows: a UNIQUE build over
//! values that already repeat, SET NOT NULL over NULLs and `IF NOT EXISTS`
//! over an INVALID index are reported before the deploy fails on them; an
//! applied migration, a table the pending run creates, and rows that
//! satisfy the statement are left alone.

use std::path::Path;

use assert_cmd::Command;
use lull_sandbox::testing::TestDb;
use serde_json::Value;

fn lull(dir: &Path) -> Command {
    let mut cmd = Command::cargo_bin("lull").expect("lull binary");
    cmd.current_dir(dir)
        .env_remove("DATABASE_URL")
        .env_remove("LULL_ENV")
        .env("NO_COLOR", "1");
    cmd
}

fn lint(dir: &Path, url: &str, extra: &[&str]) -> (Value, i32) {
    let out = lull(dir)
        .env("DATABASE_URL", url)
        .args(["lint", "--format", "json", "migrations"])
        .args(extra)
        .output()
        .expect("runs");
    let value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (value, out.status.code().expect("exit code"))
}

/// (severity, message) of a rule's findings, in file order.
fn found(report: &Value, rule: &str) -> Vec<(String, String)> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["rule"] == rule)
        .map(|f| {
            (
                f["severity"].as_str().unwrap().to_string(),
                f["message"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// A golang-migrate history whose first two files are applied (its one
/// history row says version 2) and whose third is pending.
fn history(dir: &Path, pending: &str) {
    let m = dir.join("migrations");
    std::fs::create_dir_all(&m).unwrap();
    let write = |name: &str, sql: &str| std::fs::write(m.join(name), sql).unwrap();
    write(
        "1_users.up.sql",
        "CREATE TABLE users (id int PRIMARY KEY, email text, nick text, tenant int, deleted_at timestamptz);\n",
    );
    write("1_users.down.sql", "DROP TABLE users;\n");
    // Applied already: its statement ran, so today's NULLs in `nick` say
    // nothing about it.
    write(
        "2_nick.up.sql",
        "ALTER TABLE users ADD CONSTRAINT users_nick_unique UNIQUE (nick);\n",
    );
    write(
        "2_nick.down.sql",
        "ALTER TABLE users DROP CONSTRAINT users_nick_unique;\n",
    );
    write("3_checks.up.sql", pending);
    write("3_checks.down.sql", "SELECT 1;\n");
}

fn seed(db: &TestDb) {
    db.client()
        .batch_execute(
            "CREATE TABLE users (id int PRIMARY KEY, email text, nick text, tenant int, deleted_at timestamptz);
             INSERT INTO users VALUES
               (1, 'a@x', 'ann', 1, NULL), (2, 'a@x', NULL, 2, NULL),
               (3, 'b@x', NULL, 1, now()), (4, 'b@x', 'bob', 1, now()),
               (5, 'c@x', 'cy', 3, NULL), (6, NULL, 'dee', 4, NULL), (7, NULL, 'ann', 5, NULL);
             CREATE TABLE schema_migrations (version bigint PRIMARY KEY, dirty boolean NOT NULL);
             INSERT INTO schema_migrations VALUES (2, false);",
        )
        .unwrap();
}

#[test]
fn statements_that_fail_on_todays_rows_are_reported() {
    let db = TestDb::new();
    seed(&db);
    let tmp = tempfile::tempdir().unwrap();
    history(
        tmp.path(),
        "CREATE UNIQUE INDEX CONCURRENTLY users_email_key ON users (email);
CREATE UNIQUE INDEX CONCURRENTLY users_tenant_live ON users (tenant) WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX CONCURRENTLY users_email_nnd ON users (email) NULLS NOT DISTINCT;
ALTER TABLE users ADD CONSTRAINT users_id_key UNIQUE (id);
ALTER TABLE users ALTER COLUMN nick SET NOT NULL;
ALTER TABLE users ALTER COLUMN tenant SET NOT NULL;
CREATE TABLE posts (id int, slug text);
CREATE UNIQUE INDEX CONCURRENTLY posts_slug ON posts (slug);
ALTER TABLE posts ALTER COLUMN slug SET NOT NULL;
",
    );
    let (report, code) = lint(tmp.path(), db.url(), &[]);
    assert_eq!(code, 1, "{report}");
    let dups = found(&report, "duplicates-block-unique");
    // email repeats twice ('a@x', 'b@x'; NULLs do not clash); with NULLS
    // NOT DISTINCT the two NULLs are a third group. tenant repeats only
    // among deleted rows, which the partial index leaves out; id is unique;
    // posts is created by this run. The applied file 2 is not asked.
    assert_eq!(
        dups,
        vec![
            (
                "error".to_string(),
                "`users` already holds 2 groups of rows that share this key: the unique build fails on today's data".to_string()
            ),
            (
                "error".to_string(),
                "`users` already holds 3 groups of rows that share this key: the unique build fails on today's data".to_string()
            ),
        ],
        "{report}"
    );
    let nulls = found(&report, "nulls-block-not-null");
    assert_eq!(
        nulls,
        vec![(
            "error".to_string(),
            "`users` has 2 rows with a NULL there today: this statement fails on today's data"
                .to_string()
        )],
        "{report}"
    );
    // The help carries the query that counted them, and it runs.
    let help = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule"] == "nulls-block-not-null")
        .and_then(|f| f["help"].as_str())
        .unwrap()
        .to_string();
    let query = help.lines().last().unwrap();
    let n: i64 = db.client().query_one(query, &[]).unwrap().get(0);
    assert_eq!(n, 2, "{query}");
    // The statements really fail as reported.
    let mut client = db.client();
    let err = client
        .batch_execute("ALTER TABLE users ALTER COLUMN nick SET NOT NULL")
        .unwrap_err();
    let message = err.as_db_error().unwrap().message().to_string();
    assert!(message.contains("null"), "{message}");
    let err = client
        .batch_execute("CREATE UNIQUE INDEX users_email_key ON users (email)")
        .unwrap_err();
    let message = err.as_db_error().unwrap().message().to_string();
    assert!(
        message.contains("duplicate") || message.contains("unique"),
        "{message}"
    );
    client
        .batch_execute(
            "CREATE UNIQUE INDEX users_tenant_live ON users (tenant) WHERE deleted_at IS NULL",
        )
        .unwrap();

    // Opted out, nothing is asked.
    let (report, _) = lint(tmp.path(), db.url(), &["--no-data-checks"]);
    assert!(
        found(&report, "duplicates-block-unique").is_empty(),
        "{report}"
    );
    assert!(
        found(&report, "nulls-block-not-null").is_empty(),
        "{report}"
    );
}

#[test]
fn if_not_exists_over_an_invalid_index_is_reported_by_runner() {
    let db = TestDb::new();
    seed(&db);
    let mut client = db.client();
    // What a failed concurrent build leaves behind: an INVALID index.
    client
        .batch_execute("CREATE UNIQUE INDEX CONCURRENTLY users_email_idx ON users (email)")
        .unwrap_err();
    let invalid: bool = client
        .query_one(
            "SELECT NOT indisvalid FROM pg_index WHERE indexrelid = 'users_email_idx'::regclass",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(invalid);
    let tmp = tempfile::tempdir().unwrap();
    history(
        tmp.path(),
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS users_email_idx ON users (email);
CREATE INDEX CONCURRENTLY IF NOT EXISTS users_nick_idx ON users (nick);
",
    );
    // golang-migrate (the layout) runs the file as written: an error.
    let (report, code) = lint(tmp.path(), db.url(), &[]);
    let kept = found(&report, "invalid-index-kept");
    assert_eq!(
        kept,
        vec![(
            "error".to_string(),
            "index `users_email_idx` exists and is INVALID: IF NOT EXISTS keeps the broken index and reports success".to_string()
        )],
        "{report}"
    );
    assert_eq!(code, 1);
    // PostgreSQL does keep it: the statement succeeds and the index stays INVALID.
    client
        .batch_execute("CREATE INDEX CONCURRENTLY IF NOT EXISTS users_email_idx ON users (email)")
        .unwrap();
    let still: bool = client
        .query_one(
            "SELECT NOT indisvalid FROM pg_index WHERE indexrelid = 'users_email_idx'::regclass",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(still);
    // With lull as the runner, migrate drops and rebuilds it: information.
    let (report, _) = lint(tmp.path(), db.url(), &["--runner", "lull"]);
    let kept = found(&report, "invalid-index-kept");
    assert_eq!(kept.len(), 1, "{report}");
    assert_eq!(kept[0].0, "info", "{report}");
    // And it does: lull migrate applies the pending file (golang-migrate's
    // row says 2 are applied) and leaves a valid index.
    let out = lull(tmp.path())
        .env("DATABASE_URL", db.url())
        .args(["migrate"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let valid: bool = client
        .query_one(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = 'users_email_idx'::regclass",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(valid);
}

#[test]
fn a_count_that_cannot_finish_is_information_not_an_error() {
    let db = TestDb::new();
    seed(&db);
    // A session holding ACCESS EXCLUSIVE on users: the count waits for its
    // lock, hits lull's lock timeout and says it could not check.
    let mut holder = db.client();
    let mut tx = holder.transaction().unwrap();
    tx.batch_execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    history(
        tmp.path(),
        "-- lull:ignore set-not-null tested elsewhere\nALTER TABLE users ALTER COLUMN nick SET NOT NULL;\n",
    );
    let (report, _) = lint(tmp.path(), db.url(), &[]);
    let nulls = found(&report, "nulls-block-not-null");
    assert_eq!(nulls.len(), 1, "{report}");
    assert_eq!(nulls[0].0, "info", "{report}");
    assert!(
        nulls[0]
            .1
            .starts_with("could not check `users` for NULLs: "),
        "{report}"
    );
    tx.rollback().unwrap();
}
