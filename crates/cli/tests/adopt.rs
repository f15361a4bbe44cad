//! Adopting a project another tool migrated, through the CLI against a
//! real PostgreSQL: the tool's history table is read (`status`), completed
//! (`migrate`), kept (`mark-applied`, `baseline`, `rollback`, `repair`) and
//! checked in the tool's own checksum algorithm.
//!
//! The tools' rows are written here the way the tools write them, with
//! checksums computed by PostgreSQL's own `sha256()` / `sha384()` over the
//! file text, so the test does not share lull's checksum code. The real
//! tools themselves run in `scripts/interop`.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use lull_sandbox::testing::TestDb;
use serde_json::Value;

struct Project {
    dir: tempfile::TempDir,
    db: TestDb,
}

impl Project {
    fn new() -> Project {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("migrations")).unwrap();
        Project {
            dir,
            db: TestDb::new(),
        }
    }

    fn migrations(&self) -> PathBuf {
        self.dir.path().join("migrations")
    }

    fn write(&self, name: &str, sql: &str) {
        let path = self.migrations().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, sql).unwrap();
    }

    fn lull(&self) -> Command {
        let mut cmd = Command::cargo_bin("lull").unwrap();
        cmd.current_dir(self.dir.path())
            .env_remove("LULL_ENV")
            .env("DATABASE_URL", self.db.url())
            .env("NO_COLOR", "1");
        cmd
    }

    fn client(&self) -> postgres::Client {
        self.db.client()
    }

    fn status(&self) -> Vec<Value> {
        let out = self
            .lull()
            .args(["status", "--format", "json"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        serde_json::from_slice::<Value>(&out.stdout)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    }
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `(version, status, source)` of every migration `lull status` lists.
fn summary(status: &[Value]) -> Vec<(String, String, String)> {
    status
        .iter()
        .map(|s| {
            (
                s["version"].as_str().unwrap().to_string(),
                s["status"].as_str().unwrap().to_string(),
                s["source"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The history of a small Prisma project: an enum (so a re-run fails with
/// "already exists"), tables, an index, and a down.sql for the last one.
const PRISMA: &[(&str, &str)] = &[
    (
        "20240101000000_init/migration.sql",
        "-- CreateEnum\nCREATE TYPE \"Role\" AS ENUM ('USER', 'ADMIN');\n\n-- CreateTable\nCREATE TABLE \"User\" (\n    \"id\" SERIAL NOT NULL,\n    \"role\" \"Role\" NOT NULL DEFAULT 'USER',\n    CONSTRAINT \"User_pkey\" PRIMARY KEY (\"id\")\n);\n",
    ),
    (
        "20240102000000_posts/migration.sql",
        "-- CreateTable\nCREATE TABLE \"Post\" (\n    \"id\" SERIAL NOT NULL,\n    \"authorId\" INTEGER NOT NULL,\n    CONSTRAINT \"Post_pkey\" PRIMARY KEY (\"id\")\n);\n",
    ),
    (
        "20240103000000_post_title/migration.sql",
        "-- AlterTable\nALTER TABLE \"Post\" ADD COLUMN \"title\" TEXT;\n",
    ),
    (
        "20240104000000_post_author_idx/migration.sql",
        "-- CreateIndex\nCREATE INDEX \"Post_authorId_idx\" ON \"Post\"(\"authorId\");\n",
    ),
    (
        "20240104000000_post_author_idx/down.sql",
        "DROP INDEX \"Post_authorId_idx\";\n",
    ),
];

/// `_prisma_migrations` as Prisma's schema engine creates it.
const PRISMA_TABLE: &str = "CREATE TABLE \"_prisma_migrations\" (
    \"id\" VARCHAR(36) NOT NULL,
    \"checksum\" VARCHAR(64) NOT NULL,
    \"finished_at\" TIMESTAMPTZ,
    \"migration_name\" VARCHAR(255) NOT NULL,
    \"logs\" TEXT,
    \"rolled_back_at\" TIMESTAMPTZ,
    \"started_at\" TIMESTAMPTZ NOT NULL DEFAULT now(),
    \"applied_steps_count\" INTEGER NOT NULL DEFAULT 0,
    CONSTRAINT \"_prisma_migrations_pkey\" PRIMARY KEY (\"id\")
)";

/// Applies the first `n` Prisma migrations as `prisma migrate deploy`
/// does: the SQL, then a row with a UUID v4 id, SHA-256 hex checksum,
/// `finished_at` and `applied_steps_count = 1`. With `failed`, the last
/// one's row is left as Prisma leaves a failed migration (no
/// `finished_at`, the error in `logs`) and its SQL is not run.
fn prisma_deploy(p: &Project, n: usize, failed: bool) {
    let mut c = p.client();
    c.batch_execute(PRISMA_TABLE).unwrap();
    let ups: Vec<&(&str, &str)> = PRISMA
        .iter()
        .filter(|(f, _)| f.ends_with("migration.sql"))
        .collect();
    for (i, (file, sql)) in ups.iter().take(n).enumerate() {
        let name = file.split('/').next().unwrap();
        let fail = failed && i + 1 == n;
        if !fail {
            c.batch_execute(sql).unwrap();
        }
        c.execute(
            "INSERT INTO _prisma_migrations (id, checksum, finished_at, migration_name, logs, \
                 rolled_back_at, started_at, applied_steps_count) \
             VALUES (gen_random_uuid()::text, encode(sha256(convert_to($1, 'UTF8')), 'hex'), \
                 CASE WHEN $3 THEN NULL ELSE now() END, $2, \
                 CASE WHEN $3 THEN 'Database error code: 42P07' END, NULL, now(), \
                 CASE WHEN $3 THEN 0 ELSE 1 END)",
            &[sql, &name, &fail],
        )
        .unwrap();
    }
}

fn write_prisma(p: &Project) {
    p.write("migration_lock.toml", "provider = \"postgresql\"\n");
    for (file, sql) in PRISMA {
        p.write(file, sql);
    }
}

#[test]
fn a_database_prisma_migrated_halfway_is_shown_and_completed() {
    let p = Project::new();
    write_prisma(&p);
    prisma_deploy(&p, 2, false);

    let st = p.status();
    assert_eq!(
        summary(&st),
        [
            ("20240101000000".into(), "applied".into(), "prisma".into()),
            ("20240102000000".into(), "applied".into(), "prisma".into()),
            ("20240103000000".into(), "pending".into(), String::new()),
            ("20240104000000".into(), "pending".into(), String::new()),
        ]
    );
    let human = p.lull().arg("status").output().unwrap();
    assert!(
        text(&human).contains("recorded by prisma"),
        "{}",
        text(&human)
    );

    let out = p.lull().arg("migrate").output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let ran = text(&out);
    assert!(!ran.contains("already exists"), "{ran}");

    // Every migration has one finished row, with Prisma's checksum of its
    // migration.sql, a UUID id and one applied step.
    let mut c = p.client();
    let rows = c
        .query(
            "SELECT migration_name, checksum, id, applied_steps_count, finished_at IS NOT NULL, \
                    rolled_back_at IS NULL, logs IS NULL \
             FROM _prisma_migrations ORDER BY migration_name",
            &[],
        )
        .unwrap();
    assert_eq!(rows.len(), 4);
    for (row, (file, sql)) in rows
        .iter()
        .zip(PRISMA.iter().filter(|(f, _)| f.ends_with("migration.sql")))
    {
        let name: String = row.get(0);
        assert_eq!(name, file.split('/').next().unwrap());
        let expected: String = c
            .query_one(
                "SELECT encode(sha256(convert_to($1, 'UTF8')), 'hex')",
                &[sql],
            )
            .unwrap()
            .get(0);
        assert_eq!(row.get::<_, String>(1), expected, "{name}");
        let id: String = row.get(2);
        assert_eq!(id.len(), 36, "{id}");
        assert_eq!(&id[14..15], "4", "UUID v4: {id}");
        assert_eq!(row.get::<_, i32>(3), 1, "{name}");
        assert!(row.get::<_, bool>(4) && row.get::<_, bool>(5) && row.get::<_, bool>(6));
    }
    let st = p.status();
    assert!(st.iter().all(|s| s["status"] == "applied"), "{st:?}");
    assert_eq!(st[3]["source"], "lull+prisma");

    // A second run has nothing to do and adds no row.
    let again = p.lull().arg("migrate").output().unwrap();
    assert!(again.status.success(), "{}", text(&again));
    let n: i64 = c
        .query_one("SELECT count(*) FROM _prisma_migrations", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 4);

    // The down.sql beside migration.sql is the way down; Prisma's row goes.
    let down = p.lull().args(["rollback"]).output().unwrap();
    assert!(down.status.success(), "{}", text(&down));
    let idx: bool = c
        .query_one("SELECT to_regclass('\"Post_authorId_idx\"') IS NULL", &[])
        .unwrap()
        .get(0);
    assert!(idx);
    let left: Vec<String> = c
        .query(
            "SELECT migration_name FROM _prisma_migrations ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(left.len(), 3);
    assert!(!left.iter().any(|n| n.contains("post_author_idx")));

    // A migration with no down.sql cannot be rolled back.
    let no_down = p.lull().args(["rollback"]).output().unwrap();
    assert!(!no_down.status.success());
}

#[test]
fn an_edited_prisma_migration_is_refused_in_prismas_words_and_repaired_in_both() {
    let p = Project::new();
    write_prisma(&p);
    prisma_deploy(&p, 2, false);
    p.write(
        "20240102000000_posts/migration.sql",
        "-- edited after it was applied\nCREATE TABLE \"Post\" (\"id\" SERIAL NOT NULL);\n",
    );
    let out = p.lull().arg("migrate").output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let msg = text(&out);
    assert!(msg.contains("Prisma would refuse this"), "{msg}");
    assert!(msg.contains("20240102000000_posts"), "{msg}");
    assert!(msg.contains("lull repair"), "{msg}");
    let st = p.status();
    assert_eq!(st[1]["changed"], true);

    let repair = p.lull().arg("repair").output().unwrap();
    assert!(repair.status.success(), "{}", text(&repair));
    assert!(
        text(&repair).contains("_prisma_migrations"),
        "{}",
        text(&repair)
    );
    let same: bool = p
        .client()
        .query_one(
            "SELECT checksum = encode(sha256(convert_to($1, 'UTF8')), 'hex') FROM _prisma_migrations \
             WHERE migration_name = '20240102000000_posts'",
            &[&"-- edited after it was applied\nCREATE TABLE \"Post\" (\"id\" SERIAL NOT NULL);\n"],
        )
        .unwrap()
        .get(0);
    assert!(same);
    let out = p.lull().arg("migrate").output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn a_migration_prisma_left_failed_is_refused_until_resolved() {
    let p = Project::new();
    write_prisma(&p);
    prisma_deploy(&p, 3, true);
    let st = p.status();
    assert_eq!(st[2]["status"], "failed");
    assert_eq!(st[2]["source"], "prisma");
    let out = p.lull().arg("migrate").output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let msg = text(&out);
    assert!(
        msg.contains("prisma recorded migration 20240103000000_post_title as failed"),
        "{msg}"
    );
    assert!(msg.contains("mark-applied 20240103000000"), "{msg}");
    // Nothing ran.
    let col: bool = p
        .client()
        .query_one(
            "SELECT NOT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_name = 'Post' AND column_name = 'title')",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(col);

    // Done by hand; recorded, the failed row is resolved as rolled back.
    p.client()
        .batch_execute("ALTER TABLE \"Post\" ADD COLUMN \"title\" TEXT")
        .unwrap();
    let mark = p
        .lull()
        .args(["mark-applied", "20240103000000"])
        .output()
        .unwrap();
    assert!(mark.status.success(), "{}", text(&mark));
    let (failed_open, finished): (i64, i64) = {
        let r = p
            .client()
            .query_one(
                "SELECT count(*) FILTER (WHERE finished_at IS NULL AND rolled_back_at IS NULL), \
                        count(*) FILTER (WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL) \
                 FROM _prisma_migrations WHERE migration_name = '20240103000000_post_title'",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!((failed_open, finished), (0, 1));
    let out = p.lull().arg("migrate").output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn history_lull_opts_out_and_unknown_names_are_explained() {
    let p = Project::new();
    write_prisma(&p);
    prisma_deploy(&p, 2, false);
    let out = p
        .lull()
        .args(["status", "--format", "json", "--history", "lull"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let st: Vec<Value> = serde_json::from_slice::<Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone();
    assert!(st.iter().all(|s| s["status"] == "pending"), "{st:?}");

    std::fs::write(p.dir.path().join("lull.toml"), "history = \"liquibase\"\n").unwrap();
    let bad = p.lull().arg("status").output().unwrap();
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));
    assert!(
        text(&bad).contains("unknown history `liquibase`"),
        "{}",
        text(&bad)
    );
}

#[test]
fn baseline_writes_the_tools_rows_in_one_go() {
    let p = Project::new();
    for (name, sql) in [
        ("1_users.up.sql", "CREATE TABLE users (id int);"),
        ("1_users.down.sql", "DROP TABLE users;"),
        ("2_posts.up.sql", "CREATE TABLE posts (id int);"),
        ("2_posts.down.sql", "DROP TABLE posts;"),
        ("3_tags.up.sql", "CREATE TABLE tags (id int);"),
        ("3_tags.down.sql", "DROP TABLE tags;"),
    ] {
        p.write(name, sql);
    }
    // golang-migrate named explicitly: its table is created as it creates it.
    let out = p
        .lull()
        .args(["baseline", "2", "--history", "golang-migrate"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("recorded 2 migrations"),
        "{}",
        text(&out)
    );
    let rows: Vec<(i64, bool)> = p
        .client()
        .query("SELECT version, dirty FROM schema_migrations", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(rows, [(2, false)]);

    // From now on auto-detected by its `dirty` column.
    let out = p.lull().arg("migrate").output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let v: i64 = p
        .client()
        .query_one("SELECT version FROM schema_migrations", &[])
        .unwrap()
        .get(0);
    assert_eq!(v, 3);
    let st = p.status();
    assert_eq!(st[2]["source"], "lull+golang-migrate");
    let down = p.lull().args(["rollback"]).output().unwrap();
    assert!(down.status.success(), "{}", text(&down));
    let v: i64 = p
        .client()
        .query_one("SELECT version FROM schema_migrations", &[])
        .unwrap()
        .get(0);
    assert_eq!(v, 2);
}

#[test]
fn mark_applied_through_refuses_a_step_and_records_nothing() {
    let p = Project::new();
    p.write("1_users.sql", "CREATE TABLE users (id int);");
    p.write("2_posts.sql", "CREATE TABLE posts (id int);");
    for args in [
        &["mark-applied", "--through", "2", "--step", "1"][..],
        &[
            "mark-applied",
            "--through",
            "2",
            "--step",
            "1",
            "--not-applied",
        ],
    ] {
        let out = p.lull().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        let msg = text(&out);
        assert!(
            msg.contains("--through <VERSION>") && msg.contains("cannot be used with"),
            "{args:?}: {msg}"
        );
        assert!(msg.contains("--step <N>"), "{args:?}: {msg}");
    }
    // Nothing was recorded: both are still pending, and --through alone works.
    let pending: Vec<String> = summary(&p.status())
        .into_iter()
        .map(|(_, s, _)| s)
        .collect();
    assert_eq!(pending, ["pending", "pending"]);
    let out = p
        .lull()
        .args(["mark-applied", "--through", "2"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let applied: Vec<String> = summary(&p.status())
        .into_iter()
        .map(|(_, s, _)| s)
        .collect();
    assert_eq!(applied, ["applied", "applied"]);
}

#[test]
fn diesel_versions_are_accepted_as_written_in_folder_names() {
    let p = Project::new();
    p.write(
        "00000000000000_diesel_initial_setup/up.sql",
        "CREATE OR REPLACE FUNCTION diesel_noop() RETURNS void AS $$ BEGIN END $$ LANGUAGE plpgsql;",
    );
    p.write(
        "2025-08-01-000016_users/up.sql",
        "CREATE TABLE users (id int);",
    );
    p.write("2025-08-01-000016_users/down.sql", "DROP TABLE users;");
    p.write(
        "2025-08-02-000000_posts/up.sql",
        "CREATE TABLE posts (id int);",
    );
    p.client()
        .batch_execute(
            "CREATE TABLE __diesel_schema_migrations (version VARCHAR(50) PRIMARY KEY NOT NULL, \
                 run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP);
             INSERT INTO __diesel_schema_migrations (version) VALUES ('00000000000000');
             CREATE OR REPLACE FUNCTION diesel_noop() RETURNS void AS $$ BEGIN END $$ LANGUAGE plpgsql;",
        )
        .unwrap();
    let out = p
        .lull()
        .args(["migrate", "--to", "2025-08-01-000016"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let versions: Vec<String> = p
        .client()
        .query(
            "SELECT version FROM __diesel_schema_migrations ORDER BY version",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(versions, ["00000000000000", "20250801000016"]);
    let mark = p
        .lull()
        .args(["mark-applied", "2025-08-02-000000"])
        .output()
        .unwrap();
    assert!(mark.status.success(), "{}", text(&mark));
    let st = p.status();
    assert_eq!(st[0]["source"], "diesel");
    assert!(st.iter().all(|s| s["status"] == "applied"), "{st:?}");
    let unknown = p
        .lull()
        .args(["mark-applied", "2025-09-09-000000"])
        .output()
        .unwrap();
    assert_eq!(unknown.status.code(), Some(2), "{}", text(&unknown));
}

fn corpus(name: &str) -> Option<PathBuf> {
    let base = std::env::var_os("LULL_CORPORA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpora"));
    let dir = base.join(name);
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "SKIPPED: corpus {} not found (set LULL_CORPORA to the corpora directory)",
            dir.display()
        );
        None
    }
}

#[test]
fn atuin_is_adopted_from_its_sqlx_migrations_rows() {
    let Some(src) = corpus("atuin/migrations") else {
        return;
    };
    let p = Project::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&src)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    for f in &files {
        std::fs::copy(f, p.migrations().join(f.file_name().unwrap())).unwrap();
    }
    // sqlx applied the first half: each file, then its row (version,
    // description with `_` as spaces, SHA-384 of the file, success).
    let half = files.len() / 2;
    let mut c = p.client();
    c.batch_execute(
        "CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL, \
             installed_on TIMESTAMPTZ NOT NULL DEFAULT now(), success BOOLEAN NOT NULL, \
             checksum BYTEA NOT NULL, execution_time BIGINT NOT NULL)",
    )
    .unwrap();
    for f in &files[..half] {
        let sql = std::fs::read_to_string(f).unwrap();
        let stem = f.file_stem().unwrap().to_string_lossy().to_string();
        let (version, desc) = stem.split_once('_').unwrap();
        c.batch_execute(&sql).unwrap();
        c.execute(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES ($1::text::bigint, $2, true, sha384(convert_to($3, 'UTF8')), 1000)",
            &[&version, &desc.replace('_', " "), &sql],
        )
        .unwrap();
    }
    let st = p.status();
    assert_eq!(st.len(), files.len());
    for (i, s) in st.iter().enumerate() {
        if i < half {
            assert_eq!(
                (s["status"].as_str(), s["source"].as_str()),
                (Some("applied"), Some("sqlx")),
                "{s}"
            );
        } else {
            assert_eq!(s["status"], "pending", "{s}");
        }
    }
    let out = p.lull().arg("migrate").output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let (n, bad): (i64, i64) = {
        let r = c
            .query_one(
                "SELECT count(*), count(*) FILTER (WHERE NOT success OR execution_time < 0) FROM _sqlx_migrations",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!((n as usize, bad), (files.len(), 0));
    for f in &files {
        let sql = std::fs::read_to_string(f).unwrap();
        let stem = f.file_stem().unwrap().to_string_lossy().to_string();
        let (version, desc) = stem.split_once('_').unwrap();
        let ok: bool = c
            .query_one(
                "SELECT checksum = sha384(convert_to($2, 'UTF8')) AND description = $3 \
                 FROM _sqlx_migrations WHERE version = $1::text::bigint",
                &[&version, &sql, &desc.replace('_', " ")],
            )
            .unwrap()
            .get(0);
        assert!(ok, "{stem}");
    }
}
