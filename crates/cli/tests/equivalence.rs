//! Schema equivalence through the CLI: histories applied with plain psql
//! and with `lull migrate` leave the same catalog (see
//! `lull_sandbox::testing::equivalence`). The real histories under
//! `../shared/corpora` are read in place and skipped with a visible line
//! when absent.

use lull_sandbox::testing::equivalence::{repo_relative, Equivalence};

const LULL: &str = env!("CARGO_BIN_EXE_lull");

fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("migrations")).unwrap();
    for (name, sql) in files {
        std::fs::write(dir.path().join("migrations").join(name), sql).unwrap();
    }
    dir
}

fn corpus(relative: &str, test: &str) -> Option<std::path::PathBuf> {
    repo_relative(
        env!("CARGO_MANIFEST_DIR"),
        &format!("../shared/corpora/{relative}"),
        test,
    )
}

#[test]
fn a_small_history_leaves_the_same_catalog() {
    let dir = project(&[
        (
            "1_users.sql",
            "CREATE TABLE users (id bigint PRIMARY KEY, email text);\n\
             CREATE INDEX users_email_idx ON users (email);\n",
        ),
        (
            "2_posts.sql",
            "CREATE TABLE posts (id bigint PRIMARY KEY, user_id bigint, title text);\n\
             ALTER TABLE posts ADD CONSTRAINT posts_user_fk FOREIGN KEY (user_id) REFERENCES users (id);\n",
        ),
    ]);
    let outcome = Equivalence::new(LULL, dir.path()).run();
    outcome.assert_same();
    assert!(outcome
        .plain
        .objects
        .contains_key("constraint public.posts.posts_user_fk"));
}

#[test]
fn atuin_history_leaves_the_same_catalog() {
    let Some(dir) = corpus("atuin/migrations", "atuin_history_leaves_the_same_catalog") else {
        return;
    };
    let project = tempfile::tempdir().unwrap();
    let outcome = Equivalence::new(LULL, project.path())
        .migrations(&dir)
        .run();
    outcome.assert_same();
    // The history's own objects are there, not just an empty schema.
    assert!(
        outcome
            .plain
            .objects
            .contains_key("relation public.history"),
        "{}",
        outcome.plain
    );
}

/// Every rewrite lull makes, on tables an earlier migration created (so
/// the rewrites apply), with the names PostgreSQL chooses for unnamed
/// constraints: several columns, one column used twice, a clash with a
/// constraint of an earlier file (`…_check1`), a later `DROP CONSTRAINT
/// IF EXISTS` by the name PostgreSQL chose.
#[test]
fn every_rewrite_leaves_the_catalog_the_plain_file_leaves() {
    let dir = project(&[
        (
            "1_tables.sql",
            "CREATE TABLE users (id bigint, email text, lo int, hi int);\n\
             CREATE TABLE orders (id bigint PRIMARY KEY, user_id bigint, qty int CONSTRAINT orders_qty_check CHECK (qty >= 0), ref text);\n\
             INSERT INTO users VALUES (1, 'a@b', 1, 2);\n\
             INSERT INTO orders VALUES (1, 1, 3, 'r1');\n\
             CREATE INDEX orders_ref_old ON orders (ref);\n",
        ),
        (
            "2_rewrites.sql",
            "CREATE INDEX orders_user_id_idx ON orders (user_id);\n\
             DROP INDEX orders_ref_old;\n\
             REINDEX INDEX orders_user_id_idx;\n\
             ALTER TABLE users ADD PRIMARY KEY (id);\n\
             ALTER TABLE users ADD UNIQUE (email);\n\
             ALTER TABLE orders ADD FOREIGN KEY (user_id) REFERENCES users (id);\n\
             ALTER TABLE users ADD CHECK (lo < hi);\n\
             ALTER TABLE users ADD CHECK (lo > 0 AND lo < 100);\n\
             ALTER TABLE orders ADD CHECK (qty < 1000);\n\
             ALTER TABLE orders ADD CONSTRAINT orders_ref_len CHECK (length(ref) < 50);\n\
             ALTER TABLE users ALTER COLUMN email SET NOT NULL;\n",
        ),
        (
            "3_later.sql",
            "ALTER TABLE users DROP CONSTRAINT IF EXISTS users_check;\n\
             ALTER TABLE orders ADD CHECK (qty <> 7);\n",
        ),
    ]);
    let outcome = Equivalence::new(LULL, dir.path()).run();
    for rewrite in [
        "concurrently",
        "not-valid-then-validate",
        "check-then-set-not-null",
        "unique-index-concurrently",
    ] {
        assert!(
            outcome.lull_output.contains(rewrite) || rewrite_ran(&outcome, rewrite),
            "the history exercises `{rewrite}`:\n{}",
            outcome.lull_output
        );
    }
    outcome.assert_same();
    let names: Vec<&str> = outcome
        .plain
        .objects
        .keys()
        .filter(|k| k.starts_with("constraint "))
        .map(String::as_str)
        .collect();
    for expected in [
        "constraint public.orders.orders_qty_check1",
        "constraint public.orders.orders_qty_check2",
        "constraint public.users.users_lo_check",
        "constraint public.users.users_email_key",
        "constraint public.users.users_pkey",
        "constraint public.orders.orders_user_id_fkey",
    ] {
        assert!(names.contains(&expected), "{expected} in {names:#?}");
    }
    assert!(!names.contains(&"constraint public.users.users_check"));
}

/// Whether lull recorded a step made by `rewrite` (the SQL it ran).
fn rewrite_ran(outcome: &lull_sandbox::testing::equivalence::Outcome, rewrite: &str) -> bool {
    let needle = match rewrite {
        "concurrently" => "CONCURRENTLY",
        "not-valid-then-validate" => "VALIDATE CONSTRAINT",
        "check-then-set-not-null" => "IS NOT NULL) NOT VALID",
        "unique-index-concurrently" => "USING INDEX",
        _ => return false,
    };
    let n: i64 = outcome
        .lull_db
        .client()
        .query_one(
            "SELECT count(*) FROM lull.steps WHERE sql LIKE '%' || $1 || '%'",
            &[&needle],
        )
        .unwrap()
        .get(0);
    n > 0
}

/// supabase/auth's history carries Go template placeholders; with the
/// value configured in lull.toml, lint reads every file without a parse
/// error and `lull migrate` leaves what psql leaves on the same files with
/// the placeholder filled in.
#[test]
fn supabase_auth_history_with_its_placeholder_leaves_the_same_catalog() {
    const TEST: &str = "supabase_auth_history_with_its_placeholder_leaves_the_same_catalog";
    let Some(dir) = corpus("supabase-auth/migrations", TEST) else {
        return;
    };
    let project = tempfile::tempdir().unwrap();
    std::fs::write(
        project.path().join("lull.toml"),
        "[placeholders]\nNamespace = \"auth\"\n",
    )
    .unwrap();
    let lint = std::process::Command::new(LULL)
        .args(["lint", "--format", "json"])
        .arg(&dir)
        .current_dir(project.path())
        .env_remove("LULL_ENV")
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&lint.stdout)
        .unwrap_or_else(|e| panic!("lint JSON ({e}): {}", String::from_utf8_lossy(&lint.stderr)));
    let text = report.to_string();
    assert!(!text.contains("parse-error"), "{text}");
    assert!(
        text.contains("supabase-auth"),
        "the files were read: {text}"
    );

    let outcome = Equivalence::new(LULL, project.path())
        .migrations(&dir)
        .setup_sql("CREATE SCHEMA auth")
        .replace(r#"{{ index .Options "Namespace" }}"#, "auth")
        .replace(r#"{{index .Options "Namespace" }}"#, "auth")
        .run();
    outcome.assert_same();
    assert!(outcome.plain.objects.contains_key("relation auth.users"));
}
