//! Roles and sessions: a role without the privileges lull needs gets an
//! error that names the missing privilege and the grant that fixes it, with
//! nothing half applied; a `SET` in one migration file does not change how
//! the next one runs.

use assert_cmd::Command;
use lull_sandbox::testing::TestDb;
use predicates::prelude::*;

/// `url` with another user (and a password, for servers that ask).
fn as_role(url: &str, role: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    format!("{scheme}://{role}:app-secret@{host}")
}

#[test]
fn missing_privileges_are_named_with_the_grant_that_fixes_them() {
    let db = TestDb::new();
    let role = format!("{}_app", db.name());
    let mut admin = db.client();
    admin
        .batch_execute(&format!(
            "CREATE ROLE \"{role}\" LOGIN PASSWORD 'app-secret';
             REVOKE CREATE ON DATABASE \"{db}\" FROM PUBLIC;
             REVOKE CREATE ON SCHEMA public FROM PUBLIC;",
            db = db.name()
        ))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("migrations")).unwrap();
    std::fs::write(
        dir.path().join("migrations/1_orders.sql"),
        "CREATE TABLE orders (id bigint PRIMARY KEY);\n",
    )
    .unwrap();
    let url = as_role(db.url(), &role);
    let lull = || {
        let mut cmd = Command::cargo_bin("lull").unwrap();
        cmd.current_dir(dir.path())
            .env_remove("LULL_ENV")
            .env("DATABASE_URL", &url)
            .env("NO_COLOR", "1");
        cmd
    };

    // No right to create lull's state schema.
    lull().arg("migrate").assert().code(2).stderr(
        predicate::str::contains("may not create lull's state tables")
            .and(
                predicate::str::contains("CREATE SCHEMA \"lull\" AUTHORIZATION")
                    .or(predicate::str::contains("CREATE SCHEMA lull AUTHORIZATION")),
            )
            .and(predicate::str::contains("app-secret").not()),
    );

    // The owner does what the hint says; now the migration itself lacks a
    // privilege: it fails clearly and is recorded as failed, not applied.
    admin
        .batch_execute(&format!("CREATE SCHEMA lull AUTHORIZATION \"{role}\""))
        .unwrap();
    lull().arg("migrate").assert().code(1).stderr(
        predicate::str::contains("permission denied for schema public")
            .and(predicate::str::contains("app-secret").not()),
    );
    let exists: bool = admin
        .query_one("SELECT to_regclass('public.orders') IS NOT NULL", &[])
        .unwrap()
        .get(0);
    assert!(!exists, "a failed migration left its table behind");

    // With the grant, the same run goes through.
    admin
        .batch_execute(&format!("GRANT CREATE ON SCHEMA public TO \"{role}\""))
        .unwrap();
    lull().arg("migrate").assert().success();
    admin
        .batch_execute(&format!(
            "DROP OWNED BY \"{role}\" CASCADE; DROP ROLE IF EXISTS \"{role}\";"
        ))
        .ok();
}

#[test]
fn a_set_in_one_migration_does_not_leak_into_the_next() {
    let db = TestDb::new();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("migrations")).unwrap();
    db.client()
        .batch_execute("CREATE SCHEMA other; CREATE TABLE seen (path text)")
        .unwrap();
    std::fs::write(
        dir.path().join("migrations/1_set.sql"),
        "SET search_path = other, public;\nCREATE TABLE in_other (id int);\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("migrations/2_next.sql"),
        "INSERT INTO seen SELECT current_setting('search_path');\nCREATE TABLE in_default (id int);\n",
    )
    .unwrap();
    Command::cargo_bin("lull")
        .unwrap()
        .current_dir(dir.path())
        .env_remove("LULL_ENV")
        .env("DATABASE_URL", db.url())
        .arg("migrate")
        .assert()
        .success();
    let mut c = db.client();
    let schema_of = |c: &mut postgres::Client, t: &str| -> String {
        c.query_one(
            "SELECT n.nspname::text FROM pg_class r JOIN pg_namespace n ON n.oid = r.relnamespace WHERE r.relname = $1",
            &[&t],
        )
        .unwrap()
        .get(0)
    };
    assert_eq!(schema_of(&mut c, "in_other"), "other");
    assert_eq!(schema_of(&mut c, "in_default"), "public");
    let path: String = c.query_one("SELECT path FROM seen", &[]).unwrap().get(0);
    assert!(!path.contains("other"), "search_path leaked: {path}");
}
