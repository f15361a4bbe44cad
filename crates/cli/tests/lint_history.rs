//! `lull lint` on whole migration histories as a team runs it in CI: which
//! tables count as new (the unit that runs together), which runner the
//! layout implies, the target PostgreSQL version, pending migrations on a
//! real database, and `--changed-since` on a real git repository.

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

fn json(cmd: &mut Command) -> (Value, i32) {
    let out = cmd.output().expect("runs");
    let value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (value, out.status.code().expect("exit code"))
}

fn findings<'a>(report: &'a Value, rule: &str) -> Vec<&'a Value> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["rule"] == rule)
        .collect()
}

/// A Prisma history: `migrations/<ts>_<name>/migration.sql`, as
/// `prisma migrate dev` writes it.
fn prisma_history(root: &Path) -> std::path::PathBuf {
    let dir = root.join("migrations");
    let write = |name: &str, sql: &str| {
        std::fs::create_dir_all(dir.join(name)).unwrap();
        std::fs::write(dir.join(name).join("migration.sql"), sql).unwrap();
    };
    write(
        "20240101000000_init",
        "-- CreateTable\nCREATE TABLE \"User\" (\n    \"id\" SERIAL NOT NULL,\n    \"email\" TEXT NOT NULL,\n    CONSTRAINT \"User_pkey\" PRIMARY KEY (\"id\")\n);\n",
    );
    write(
        "20240201000000_email_index",
        "-- CreateIndex\nCREATE INDEX \"User_email_idx\" ON \"User\"(\"email\");\n",
    );
    write(
        "20240301000000_posts",
        "-- CreateTable\nCREATE TABLE \"Post\" (\"id\" SERIAL NOT NULL, \"userId\" INTEGER NOT NULL, CONSTRAINT \"Post_pkey\" PRIMARY KEY (\"id\"));\n\n-- CreateIndex\nCREATE INDEX CONCURRENTLY \"Post_userId_idx\" ON \"Post\"(\"userId\");\n",
    );
    std::fs::write(
        dir.join("migration_lock.toml"),
        "provider = \"postgresql\"\n",
    )
    .unwrap();
    dir
}

#[test]
fn a_table_from_an_earlier_prisma_migration_is_live() {
    let tmp = tempfile::tempdir().unwrap();
    prisma_history(tmp.path());
    let (report, code) = json(lull(tmp.path()).args(["lint", "--format", "json", "migrations"]));
    assert_eq!(code, 1, "{report}");
    let index = findings(&report, "create-index-not-concurrently");
    assert_eq!(index.len(), 1, "{report}");
    assert!(index[0]["file"]
        .as_str()
        .unwrap()
        .contains("20240201000000_email_index"));
    assert_eq!(index[0]["severity"], "error");
    // Prisma runs a multi-statement migration.sql as one transaction: the
    // CONCURRENTLY build fails there, and the hint speaks Prisma.
    let tx = findings(&report, "concurrently-in-transaction");
    assert_eq!(tx.len(), 1, "{report}");
    assert!(
        tx[0]["help"].as_str().unwrap().contains("Prisma"),
        "{}",
        tx[0]["help"]
    );
    // Idempotency guards are noise inside Prisma's transaction.
    assert!(
        findings(&report, "missing-if-not-exists").is_empty(),
        "{report}"
    );
}

#[test]
fn with_lull_as_the_runner_its_rewrites_are_information() {
    let tmp = tempfile::tempdir().unwrap();
    prisma_history(tmp.path());
    std::fs::write(tmp.path().join("lull.toml"), "runner = \"lull\"\n").unwrap();
    let (report, code) = json(lull(tmp.path()).args(["lint", "--format", "json", "migrations"]));
    assert_eq!(code, 0, "{report}");
    let index = findings(&report, "create-index-not-concurrently");
    assert_eq!(index[0]["severity"], "info");
    assert!(index[0]["message"]
        .as_str()
        .unwrap()
        .starts_with("lull migrate runs this as CONCURRENTLY"));
    assert!(findings(&report, "concurrently-in-transaction").is_empty());
    // The flag wins over lull.toml.
    let (report, code) = json(lull(tmp.path()).args([
        "lint",
        "--format",
        "json",
        "--runner",
        "prisma",
        "migrations",
    ]));
    assert_eq!(code, 1);
    assert_eq!(
        findings(&report, "create-index-not-concurrently")[0]["severity"],
        "error"
    );
}

#[test]
fn the_target_version_decides_what_parses() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("m.sql");
    std::fs::write(&file, "SELECT count(*) FROM (SELECT 1) ;\n").unwrap();
    let (report, code) =
        json(lull(tmp.path()).args(["lint", "--format", "json", "--pg-version", "15", "m.sql"]));
    assert_eq!(code, 1);
    assert_eq!(findings(&report, "requires-newer-postgres").len(), 1);
    let (report, code) =
        json(lull(tmp.path()).args(["lint", "--format", "json", "--pg-version", "16", "m.sql"]));
    assert_eq!(code, 0);
    assert!(findings(&report, "requires-newer-postgres").is_empty());
    // From lull.toml.
    std::fs::write(tmp.path().join("lull.toml"), "pg_version = 14\n").unwrap();
    let (report, _) = json(lull(tmp.path()).args(["lint", "--format", "json", "m.sql"]));
    assert_eq!(findings(&report, "requires-newer-postgres").len(), 1);
    // A version that is not a major version is refused.
    lull(tmp.path())
        .args(["lint", "--pg-version", "150", "m.sql"])
        .assert()
        .code(2);
}

#[test]
fn pending_migrations_on_the_database_run_together() {
    let db = TestDb::new();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("migrations");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("1_users.up.sql"),
        "CREATE TABLE users (id int PRIMARY KEY);\n",
    )
    .unwrap();
    std::fs::write(dir.join("1_users.down.sql"), "DROP TABLE users;\n").unwrap();
    std::fs::write(
        dir.join("2_users_id.up.sql"),
        "CREATE UNIQUE INDEX users_id ON users (id);\n",
    )
    .unwrap();
    std::fs::write(dir.join("2_users_id.down.sql"), "DROP INDEX users_id;\n").unwrap();
    let run = || {
        json(lull(tmp.path()).env("DATABASE_URL", db.url()).args([
            "lint",
            "--format",
            "json",
            "migrations",
        ]))
    };
    // Nothing applied: one deploy runs both, the table is new for file 2.
    let (report, code) = run();
    assert!(
        findings(&report, "create-index-not-concurrently").is_empty(),
        "{report}"
    );
    assert_eq!(code, 0, "{report}");
    // File 1 applied (golang-migrate's history): the table is live.
    let mut client = db.client();
    client
        .batch_execute(
            "CREATE TABLE users (id int PRIMARY KEY); \
             CREATE TABLE schema_migrations (version bigint PRIMARY KEY, dirty boolean NOT NULL); \
             INSERT INTO schema_migrations VALUES (1, false);",
        )
        .unwrap();
    let (report, _) = run();
    let index = findings(&report, "create-index-not-concurrently");
    assert_eq!(index.len(), 1, "{report}");
    // The database says the table is empty: a warning, not an error.
    assert_eq!(index[0]["severity"], "warning");
    // The server's version is the target: this file is linted as for it.
    let version: i32 = client
        .query_one(
            "SELECT current_setting('server_version_num')::int / 10000",
            &[],
        )
        .unwrap()
        .get(0);
    std::fs::write(tmp.path().join("q.sql"), "SELECT 1 FROM (SELECT 1);\n").unwrap();
    let (report, _) = json(
        lull(tmp.path())
            .env("DATABASE_URL", db.url())
            .args(["lint", "--format", "json", "q.sql"]),
    );
    assert_eq!(
        findings(&report, "requires-newer-postgres").len(),
        usize::from(version < 16),
        "server {version}: {report}"
    );
}

fn git(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("git")
        .current_dir(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn changed_since_reports_only_new_and_edited_migrations() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("migrations");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("1_a.sql"),
        "CREATE TABLE a (id int);\nCREATE INDEX a_x ON b (x);\n",
    )
    .unwrap();
    std::fs::write(dir.join("2_b.sql"), "ALTER TABLE a ADD COLUMN u int;\n").unwrap();
    git(tmp.path(), &["init", "-q", "-b", "main"]);
    git(tmp.path(), &["add", "."]);
    git(tmp.path(), &["commit", "-q", "-m", "history"]);
    // A new migration, not committed yet, and an index in file 1's history.
    std::fs::write(
        dir.join("3_c.sql"),
        "CREATE INDEX a_id ON a (id);\nALTER TABLE a ADD CONSTRAINT f FOREIGN KEY (u) REFERENCES b (id) NOT VALID;\n",
    )
    .unwrap();
    let (report, code) = json(lull(tmp.path()).args([
        "lint",
        "--format",
        "json",
        "--changed-since",
        "main",
        "migrations",
    ]));
    assert_eq!(code, 1, "{report}");
    let files: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["file"].as_str().unwrap())
        .collect();
    assert!(
        !files.is_empty() && files.iter().all(|f| f.ends_with("3_c.sql")),
        "{files:?}"
    );
    assert_eq!(findings(&report, "create-index-not-concurrently").len(), 1);
    // Without --changed-since the old file's finding is there too.
    let (report, _) = json(lull(tmp.path()).args(["lint", "--format", "json", "migrations"]));
    assert_eq!(findings(&report, "create-index-not-concurrently").len(), 2);
    // An unknown revision is a clear error.
    let out = lull(tmp.path())
        .args(["lint", "--changed-since", "no-such-branch", "migrations"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot resolve `no-such-branch`"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
