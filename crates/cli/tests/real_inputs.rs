//! Readers against output made by the real tools: `indexes check
//! --expected` on a real `pg_dump --schema-only` made in the test, on the
//! Rails `structure.sql` of a real site, and on a Prisma-style migration
//! directory; psql meta-commands in every reader (lint, plan, migrate,
//! indexes check). The corpora under `../shared/corpora` are read in
//! place, and a test says SKIPPED when they (or PostGIS) are missing.

use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use lull_sandbox::testing::equivalence::repo_relative;
use lull_sandbox::testing::{pg_dump_refuses, pg_dump_schema, psql, TestDb};

fn lull(dir: &Path, url: &str) -> Command {
    let mut cmd = Command::cargo_bin("lull").unwrap();
    cmd.current_dir(dir)
        .env_remove("DATABASE_URL")
        .env_remove("LULL_ENV")
        .env("NO_COLOR", "1")
        .env("DATABASE_URL", url);
    cmd
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `(kind, name)` of every finding of `indexes check --format json`.
fn findings(dir: &Path, url: &str, expected: &Path) -> (Option<i32>, Vec<(String, String)>) {
    let out = lull(dir, url)
        .args(["indexes", "check", "--format", "json", "--expected"])
        .arg(expected)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", text(&out)));
    let mut kinds: Vec<(String, String)> = v["report"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["kind"].as_str().unwrap().to_string(),
                f["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    kinds.sort();
    (out.status.code(), kinds)
}

const SCHEMA: &str = "
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL, name text, deleted_at timestamptz);
CREATE UNIQUE INDEX users_email_live ON users (lower(email)) WHERE deleted_at IS NULL;
CREATE INDEX users_name_trgm ON users USING gin (name gin_trgm_ops);
CREATE TABLE orders (id bigint PRIMARY KEY, user_id bigint REFERENCES users, ref text, status text, created_at timestamptz);
CREATE INDEX orders_user_created ON orders (user_id, created_at DESC);
CREATE UNIQUE INDEX orders_ref ON orders (ref);
CREATE INDEX orders_open ON orders (created_at) WHERE status = 'open';
CREATE INDEX \"Orders Mixed\" ON orders (status) INCLUDE (ref);
";

#[test]
fn check_on_a_real_pg_dump_names_the_four_and_nothing_else() {
    let db = TestDb::new();
    db.client().batch_execute(SCHEMA).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    if let Some(why) = pg_dump_refuses() {
        eprintln!("SKIPPED: {why}");
        return;
    }
    let dump = pg_dump_schema(db.url(), &[]);
    assert!(
        dump.contains("-- Name: orders_open; Type: INDEX"),
        "a real dump puts a comment before each index:\n{dump}"
    );
    let path = scratch.path().join("schema.sql");
    std::fs::write(&path, &dump).unwrap();

    // Untouched, as a new user would try it.
    let out = lull(scratch.path(), db.url())
        .args(["indexes", "check", "--expected"])
        .arg(&path)
        .output()
        .unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("6 declared, 6 in the database"), "{t}");
    assert!(t.contains("all match"), "{t}");

    // One missing, one INVALID, one redefined, one unexpected.
    let mut c = db.client();
    c.batch_execute(
        "DROP INDEX orders_user_created;
         DROP INDEX orders_ref;
         INSERT INTO users VALUES (1, 'a@b', 'a', NULL);
         INSERT INTO orders (id, user_id, ref) VALUES (1, 1, 'dup'), (2, 1, 'dup');
         DROP INDEX orders_open;
         CREATE INDEX orders_open ON orders (created_at) WHERE status = 'pending';
         CREATE INDEX orders_status ON orders (status);",
    )
    .unwrap();
    assert!(c
        .batch_execute("CREATE UNIQUE INDEX CONCURRENTLY orders_ref ON public.orders (ref)")
        .is_err());
    let (code, kinds) = findings(scratch.path(), db.url(), &path);
    assert_eq!(code, Some(1));
    assert_eq!(
        kinds,
        vec![
            ("different".into(), "orders_open".into()),
            ("invalid".into(), "orders_ref".into()),
            ("missing".into(), "orders_user_created".into()),
            ("unexpected".into(), "orders_status".into()),
        ]
    );
}

#[test]
fn meta_commands_are_ignored_or_named_by_every_reader() {
    let db = TestDb::new();
    db.client().batch_execute(SCHEMA).unwrap();
    if let Some(why) = pg_dump_refuses() {
        eprintln!("SKIPPED: {why}");
        return;
    }
    let dump = pg_dump_schema(db.url(), &[]);
    let scratch = tempfile::tempdir().unwrap();
    let migrations = scratch.path().join("migrations");
    std::fs::create_dir(&migrations).unwrap();
    // A `\restrict` pair around SQL, as pg_dump 15.14+ writes it.
    assert!(
        dump.contains("\\restrict ") || !dump.contains("\\unrestrict"),
        "pg_dump pairs the lines"
    );
    let restricted =
        "\\restrict k3y\nCREATE TABLE t (id int);\nCREATE INDEX t_id ON t (id);\n\\unrestrict k3y\n";
    std::fs::write(migrations.join("1_t.sql"), restricted).unwrap();

    let out = lull(scratch.path(), db.url())
        .args(["lint", "migrations"])
        .output()
        .unwrap();
    let t = text(&out);
    assert!(!t.contains("parse-error"), "{t}");
    let out = lull(scratch.path(), db.url()).arg("plan").output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let out = lull(scratch.path(), db.url())
        .arg("migrate")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let out = lull(scratch.path(), db.url())
        .args(["indexes", "check", "--schema", "public", "--expected"])
        .arg(&migrations)
        .output()
        .unwrap();
    let t = text(&out);
    assert!(
        t.contains("1 declared"),
        "the index after \\restrict is read:\n{t}"
    );
    assert!(!t.contains("public.t_id"), "t_id matches:\n{t}");

    // `\set` is not ignored: each reader names it and its line.
    std::fs::write(
        migrations.join("2_set.sql"),
        "CREATE TABLE u (id int);\n\\set ON_ERROR_STOP on\nCREATE INDEX u_id ON u (id);\n",
    )
    .unwrap();
    for args in [
        vec!["lint", "migrations"],
        vec!["plan"],
        vec!["migrate"],
        vec!["indexes", "check", "--expected", "migrations"],
    ] {
        let out = lull(scratch.path(), db.url()).args(&args).output().unwrap();
        let t = text(&out);
        assert!(!out.status.success(), "{args:?} accepted `\\set`:\n{t}");
        assert!(t.contains("`\\set`"), "{args:?}:\n{t}");
        assert!(
            t.contains("2_set.sql:2") || (t.contains("2_set.sql") && t.contains("line 2")),
            "{args:?} names the file and line:\n{t}"
        );
    }
    let applied: i64 = db
        .client()
        .query_one("SELECT count(*) FROM pg_class WHERE relname = 'u'", &[])
        .unwrap()
        .get(0);
    assert_eq!(applied, 0, "nothing of the refused file ran");
}

/// A migration directory as Prisma writes it: `<ts>_<name>/migration.sql`,
/// every statement preceded by a `-- CreateTable` / `-- CreateIndex`
/// comment, quoted identifiers.
#[test]
fn check_reads_a_prisma_migration_directory() {
    let db = TestDb::new();
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("prisma").join("migrations");
    let first = dir.join("20240101000000_init");
    let second = dir.join("20240201000000_posts");
    std::fs::create_dir_all(&first).unwrap();
    std::fs::create_dir_all(&second).unwrap();
    std::fs::write(
        dir.join("migration_lock.toml"),
        "provider = \"postgresql\"\n",
    )
    .unwrap();
    std::fs::write(
        first.join("migration.sql"),
        "-- CreateTable\nCREATE TABLE \"User\" (\n    \"id\" SERIAL NOT NULL,\n    \"email\" TEXT NOT NULL,\n    \"name\" TEXT,\n\n    CONSTRAINT \"User_pkey\" PRIMARY KEY (\"id\")\n);\n\n\
         -- CreateIndex\nCREATE UNIQUE INDEX \"User_email_key\" ON \"User\"(\"email\");\n",
    )
    .unwrap();
    std::fs::write(
        second.join("migration.sql"),
        "-- CreateTable\nCREATE TABLE \"Post\" (\n    \"id\" SERIAL NOT NULL,\n    \"authorId\" INTEGER NOT NULL,\n    \"title\" TEXT NOT NULL,\n\n    CONSTRAINT \"Post_pkey\" PRIMARY KEY (\"id\")\n);\n\n\
         -- CreateIndex\nCREATE INDEX \"Post_authorId_idx\" ON \"Post\"(\"authorId\");\n\n\
         -- AddForeignKey\nALTER TABLE \"Post\" ADD CONSTRAINT \"Post_authorId_fkey\" FOREIGN KEY (\"authorId\") REFERENCES \"User\"(\"id\") ON DELETE RESTRICT ON UPDATE CASCADE;\n",
    )
    .unwrap();
    for f in [&first, &second] {
        psql(
            db.url(),
            &std::fs::read_to_string(f.join("migration.sql")).unwrap(),
        )
        .unwrap();
    }
    let out = lull(scratch.path(), db.url())
        .args(["indexes", "check", "--expected"])
        .arg(&dir)
        .output()
        .unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("2 declared, 2 in the database"), "{t}");

    db.client()
        .batch_execute("DROP INDEX \"Post_authorId_idx\"")
        .unwrap();
    let (code, kinds) = findings(scratch.path(), db.url(), &dir);
    assert_eq!(code, Some(1));
    assert_eq!(kinds, vec![("missing".into(), "Post_authorId_idx".into())]);
}

fn corpus(relative: &str, test: &str) -> Option<PathBuf> {
    repo_relative(
        env!("CARGO_MANIFEST_DIR"),
        &format!("../shared/corpora/{relative}"),
        test,
    )
}

#[test]
fn openstreetmap_structure_sql_loaded_into_a_sandbox_all_match() {
    const TEST: &str = "openstreetmap_structure_sql_loaded_into_a_sandbox_all_match";
    let Some(path) = corpus("openstreetmap/structure.sql", TEST) else {
        return;
    };
    let db = TestDb::new();
    let available: i64 = db
        .client()
        .query_one(
            "SELECT count(*) FROM pg_available_extensions WHERE name IN ('postgis', 'btree_gist')",
            &[],
        )
        .unwrap()
        .get(0);
    if available < 2 {
        eprintln!(
            "SKIPPED {TEST}: the PostGIS extension is not installed for this server \
             (scripts/bootstrap installs postgresql-<version>-postgis-3)"
        );
        return;
    }
    let sql = std::fs::read_to_string(&path).unwrap();
    psql(db.url(), &sql).unwrap_or_else(|out| panic!("loading structure.sql failed:\n{out}"));
    let scratch = tempfile::tempdir().unwrap();
    let out = lull(scratch.path(), db.url())
        .args(["indexes", "check", "--expected"])
        .arg(&path)
        .output()
        .unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("all match"), "{t}");
    let declared = sql.matches("CREATE INDEX").count() + sql.matches("CREATE UNIQUE INDEX").count();
    assert!(declared > 50, "the corpus declares many indexes");
    assert!(
        t.contains(&format!("{declared} declared")),
        "every CREATE INDEX of the file is read ({declared}):\n{t}"
    );

    // And lint reads it without parse errors.
    let out = lull(scratch.path(), db.url())
        .arg("lint")
        .arg(&path)
        .output()
        .unwrap();
    let t = text(&out);
    assert!(!t.contains("parse-error"), "{t}");
}

/// A data dump as the real `pg_dump --data-only --inserts` writes it, long
/// enough that lull parses it in chunks, with values full of what a cut
/// must not fall into (`;` in strings, quotes, dollar signs, comment
/// markers, newlines, backslashes): lint reads every statement, and
/// `lull migrate` of it leaves exactly the rows the source holds.
#[test]
fn a_real_data_dump_is_read_in_chunks_and_applied_row_for_row() {
    if let Some(why) = pg_dump_refuses() {
        eprintln!("SKIPPED: {why}");
        return;
    }
    const TABLE: &str = "CREATE TABLE items (id int PRIMARY KEY, note text, \"odd;name\" text)";
    let source = TestDb::new();
    let mut c = source.client();
    c.batch_execute(&format!(
        "{TABLE};
         INSERT INTO items
         SELECT g, 'row ' || g || '; it''s $$ -- not /* a comment */ ' || E'\\n' || 'next line \\ end;',
                CASE WHEN g % 3 = 0 THEN NULL ELSE '$tag$;' || g END
           FROM generate_series(1, 3000) g;"
    ))
    .unwrap();
    let out = std::process::Command::new(lull_sandbox::testing::client_program("pg_dump"))
        .args(["--data-only", "--inserts", "--no-owner", "-d", source.url()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dump = String::from_utf8(out.stdout).unwrap();
    assert_eq!(dump.matches("INSERT INTO public.items").count(), 3000);

    let target = TestDb::new();
    target.client().batch_execute(TABLE).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let migrations = scratch.path().join("migrations");
    std::fs::create_dir(&migrations).unwrap();
    std::fs::write(migrations.join("1_data.sql"), &dump).unwrap();

    let out = lull(scratch.path(), target.url())
        .args(["lint", "--format", "json", "migrations"])
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("lint JSON ({e}): {}", text(&out)));
    assert!(
        report["files"][0]["parse_error"].is_null(),
        "{}",
        report["files"][0]
    );
    let statements = report["files"][0]["statements"].as_u64().unwrap();
    assert!(statements >= 3000, "{statements} statements read");

    let out = lull(scratch.path(), target.url())
        .arg("migrate")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let digest =
        "SELECT count(*)::text || ':' || md5(string_agg(id || '|' || coalesce(note, '<null>') \
                  || '|' || coalesce(\"odd;name\", '<null>'), ',' ORDER BY id)) FROM items";
    let want: String = c.query_one(digest, &[]).unwrap().get(0);
    let got: String = target.client().query_one(digest, &[]).unwrap().get(0);
    assert_eq!(got, want, "the rows lull applied differ from the source's");
}
